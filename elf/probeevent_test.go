package elf

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/iovisor/gobpf/internal/probeevent"
	"github.com/iovisor/gobpf/internal/testutil"
)

const probeChildEnv = "GOBPF_ELF_PROBE_RESTART_CHILD"

const restartSnippet = `
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2); __type(key, int); __type(value, long); } hits SEC(".maps");
static void hit(int k) { long *v = bpf_map_lookup_elem(&hits, &k); if (v) __sync_fetch_and_add(v, 1); }
SEC("uprobe/target_func") int on_entry(void *ctx) { hit(0); return 0; }
SEC("uretprobe/target_func") int on_return(void *ctx) { hit(1); return 0; }
`

const restartKprobeSnippet = `
static unsigned long long (*bpf_get_current_pid_tgid)(void) = (void *)BPF_FUNC_get_current_pid_tgid;
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2); __type(key, int); __type(value, long); } hits SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, int); __type(value, int); } cfg SEC(".maps");
static void hit(int k) {
	int z = 0;
	int *tgid = bpf_map_lookup_elem(&cfg, &z);
	if (!tgid || *tgid != (int)(bpf_get_current_pid_tgid() >> 32))
		return;
	long *v = bpf_map_lookup_elem(&hits, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
}
SEC("kprobe/__x64_sys_getppid") int on_kentry(void *ctx) { hit(0); return 0; }
SEC("kretprobe/__x64_sys_getppid") int on_kreturn(void *ctx) { hit(1); return 0; }
`

const restartTarget = `#include <stdio.h>
__attribute__((noinline)) int target_func(int x) { return x * 2; }
int main(void) {
	volatile int s = 0;
	for (int i = 1; i <= 3; i++)
		s += target_func(i);
	return 0;
}
`

// restartChild loads $GOBPF_ELF_PROBE_OBJ, attaches its uprobe and
// uretprobe to target_func of $GOBPF_ELF_PROBE_BIN, runs it, reports, and
// hangs (to be killed) or closes the module.
func restartChild(t *testing.T, mode string) {
	if os.Getenv("GOBPF_ELF_PROBE_KIND") == "kprobe" {
		restartKprobeChild(t, mode)
		return
	}
	if n := os.Getenv("GOBPF_ELF_PROBE_NONCE"); n != "" {
		probeevent.SetNonce(n)
	}
	bin := os.Getenv("GOBPF_ELF_PROBE_BIN")
	fmt.Printf("NONCE %s\nPID %d\n", probeevent.Nonce(), os.Getpid())
	if _, err := os.Stat("/sys/bus/event_source/devices/uprobe/type"); err == nil {
		fmt.Println("PMU visible")
	}
	m := NewModule(os.Getenv("GOBPF_ELF_PROBE_OBJ"))
	if err := m.Load(nil); err != nil {
		t.Fatal(err)
	}
	off := symbolFileOffset(t, bin, "target_func")
	for _, sec := range []string{"uprobe/target_func", "uretprobe/target_func"} {
		if err := AttachUprobe(m.Uprobe(sec), bin, off); err != nil {
			fmt.Printf("ATTACHERR %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
			t.Fatal(err)
		}
	}
	fmt.Printf("EVENTS %s\n", strings.Join(ownUprobeEvents(probeevent.Nonce()), ","))
	testutil.Run(t, bin)
	var hits [2]uint64
	for k := range hits {
		key := uint32(k)
		if err := m.LookupElement(m.Map("hits"), unsafe.Pointer(&key), unsafe.Pointer(&hits[k])); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("HITS %d,%d\n", hits[0], hits[1])
	if mode == "hang" {
		fmt.Println("READY")
		select {}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("AFTERCLOSE %s\n", strings.Join(ownUprobeEvents(probeevent.Nonce()), ","))
	fmt.Println("READY")
}

// restartKprobeChild is restartChild for the kprobe and kretprobe of
// restartKprobeSnippet, counting 5 getppid calls.
func restartKprobeChild(t *testing.T, mode string) {
	if n := os.Getenv("GOBPF_ELF_PROBE_NONCE"); n != "" {
		probeevent.SetNonce(n)
	}
	fmt.Printf("NONCE %s\nPID %d\n", probeevent.Nonce(), os.Getpid())
	if _, err := os.Stat("/sys/bus/event_source/devices/kprobe/type"); err == nil {
		fmt.Println("PMU visible")
	}
	host, err := os.Readlink("/proc/self") // the host's /proc: the host pid
	if err != nil {
		t.Fatal(err)
	}
	tgid, _ := strconv.Atoi(host)
	m := NewModule(os.Getenv("GOBPF_ELF_PROBE_OBJ"))
	if err := m.Load(nil); err != nil {
		t.Fatal(err)
	}
	zero, v := uint32(0), uint32(tgid)
	if err := m.UpdateElement(m.Map("cfg"), unsafe.Pointer(&zero), unsafe.Pointer(&v), 0); err != nil {
		t.Fatal(err)
	}
	if err := m.EnableKprobes(4); err != nil {
		fmt.Printf("ATTACHERR %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		t.Fatal(err)
	}
	fmt.Printf("EVENTS %s\n", strings.Join(ownEventsIn("kprobe_events", probeevent.Nonce()), ","))
	// Count the hits of these five calls only.
	read := func() (hits [2]uint64) {
		for k := range hits {
			key := uint32(k)
			if err := m.LookupElement(m.Map("hits"), unsafe.Pointer(&key), unsafe.Pointer(&hits[k])); err != nil {
				t.Fatal(err)
			}
		}
		return hits
	}
	before := read()
	for i := 0; i < 5; i++ {
		syscall.Getppid()
	}
	after := read()
	fmt.Printf("HITS %d,%d\n", after[0]-before[0], after[1]-before[1])
	if mode == "hang" {
		fmt.Println("READY")
		select {}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("AFTERCLOSE %s\n", strings.Join(ownEventsIn("kprobe_events", probeevent.Nonce()), ","))
	fmt.Println("READY")
}

// ownUprobeEvents lists the uprobe_events entries whose names hold nonce.
func ownUprobeEvents(nonce string) []string { return ownEventsIn("uprobe_events", nonce) }

// ownEventsIn lists the entries of file whose names hold nonce.
func ownEventsIn(file, nonce string) []string {
	var out []string
	for _, ev := range probeevent.List(probeevent.Root(file), file) {
		if strings.Contains(ev, probeevent.Prefix+nonce+"_") {
			out = append(out, ev)
		}
	}
	return out
}

// TestUprobeEventsRestart kills a program whose uprobes went through
// uprobe_events (the uprobe PMU hidden, as in some containers) and
// restarts it as pid 1 of a new pid namespace: the restart attaches, and
// the dead program's entries are removed.
func TestUprobeEventsRestart(t *testing.T) {
	if mode := os.Getenv(probeChildEnv); mode != "" {
		restartChild(t, mode)
		return
	}
	if probeevent.Root("uprobe_events") == "" {
		t.Skip("no uprobe_events in tracefs")
	}
	obj := compileSnippet(t, restartSnippet)
	bin := testutil.BuildC(t, restartTarget)
	testEventsRestart(t, "uprobe", "TestUprobeEventsRestart", "3,3", "GOBPF_ELF_PROBE_BIN="+bin, "GOBPF_ELF_PROBE_OBJ="+obj)
}

// TestKprobeEventsRestart is TestUprobeEventsRestart for a kprobe and a
// kretprobe (kprobe_events, the kprobe PMU hidden).
func TestKprobeEventsRestart(t *testing.T) {
	if mode := os.Getenv(probeChildEnv); mode != "" {
		restartChild(t, mode)
		return
	}
	testutil.RequireKprobes(t)
	obj := compileSnippet(t, restartKprobeSnippet)
	testEventsRestart(t, "kprobe", "TestKprobeEventsRestart", "5,5", "GOBPF_ELF_PROBE_KIND=kprobe", "GOBPF_ELF_PROBE_OBJ="+obj)
}

// testEventsRestart runs the kill-and-restart cycle of kind ("uprobe" or
// "kprobe") probes in children running test with env added; each child
// must count hits.
func testEventsRestart(t *testing.T, kind, test, hits string, env ...string) {
	file := kind + "_events"
	run := func(t *testing.T, mode, nonce string) map[string]string {
		t.Helper()
		env := append([]string{probeChildEnv + "=" + mode}, env...)
		if nonce != "" {
			env = append(env, "GOBPF_ELF_PROBE_NONCE="+nonce)
		}
		cmd := testutil.CommandWithoutPMU(kind, test, env...)
		r := testutil.ChildReport(t, cmd)
		if mode == "hang" {
			testutil.KillWithoutPMU(t, cmd)
		} else {
			cmd.Wait()
		}
		if r["READY"] == "" {
			t.Fatalf("%s child failed: %v", mode, r)
		}
		if r["PMU"] != "" {
			t.Fatalf("the %s PMU is visible in the child: the test cannot hide it", kind)
		}
		if r["PID"] != "1" {
			t.Errorf("child pid %s, want 1", r["PID"])
		}
		if r["HITS"] != hits {
			t.Errorf("%s child: entry,return hits %s, want %s", mode, r["HITS"], hits)
		}
		if n := len(strings.Split(r["EVENTS"], ",")); r["EVENTS"] == "" || n != 2 {
			t.Errorf("%s child registered %s entries %q, want 2", mode, file, r["EVENTS"])
		}
		return r
	}
	for _, tc := range []struct {
		name  string
		nonce string // forced in both runs: the restart uses the same names
	}{
		{"SameNames", fmt.Sprintf("%08x", uint32(os.Getpid())<<8|0xe1)},
		{"NewNonce", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dead := run(t, "hang", tc.nonce)
			stale := ownEventsIn(file, dead["NONCE"])
			if len(stale) != 2 {
				t.Fatalf("after SIGKILL %s holds %q of the dead child, want its 2 entries", file, stale)
			}
			defer func() {
				for _, ev := range ownEventsIn(file, dead["NONCE"]) {
					probeevent.Remove(probeevent.Root(file), file, ev)
				}
			}()
			next := run(t, "close", tc.nonce)
			if tc.nonce != "" && next["EVENTS"] != dead["EVENTS"] {
				t.Errorf("the restart used events %q, the dead child %q: want the same names", next["EVENTS"], dead["EVENTS"])
			}
			if next["AFTERCLOSE"] != "" {
				t.Errorf("entries left after Close: %q", next["AFTERCLOSE"])
			}
			if left := ownEventsIn(file, dead["NONCE"]); len(left) != 0 {
				t.Errorf("the dead child's entries are still in %s: %q", file, left)
			}
		})
	}
}
