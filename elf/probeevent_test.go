package elf

import (
	"fmt"
	"os"
	"strings"
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

// ownUprobeEvents lists the uprobe_events entries whose names hold nonce.
func ownUprobeEvents(nonce string) []string {
	var out []string
	for _, ev := range probeevent.List(probeevent.Root("uprobe_events"), "uprobe_events") {
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
	run := func(t *testing.T, mode, nonce string) map[string]string {
		t.Helper()
		env := []string{probeChildEnv + "=" + mode, "GOBPF_ELF_PROBE_BIN=" + bin, "GOBPF_ELF_PROBE_OBJ=" + obj}
		if nonce != "" {
			env = append(env, "GOBPF_ELF_PROBE_NONCE="+nonce)
		}
		cmd := testutil.CommandWithoutPMU("uprobe", "TestUprobeEventsRestart", env...)
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
			t.Fatal("the uprobe PMU is visible in the child: the test cannot hide it")
		}
		if r["PID"] != "1" {
			t.Errorf("child pid %s, want 1", r["PID"])
		}
		if r["HITS"] != "3,3" {
			t.Errorf("%s child: uprobe,uretprobe hits %s, want 3,3", mode, r["HITS"])
		}
		if n := len(strings.Split(r["EVENTS"], ",")); r["EVENTS"] == "" || n != 2 {
			t.Errorf("%s child registered uprobe_events entries %q, want 2", mode, r["EVENTS"])
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
			stale := ownUprobeEvents(dead["NONCE"])
			if len(stale) != 2 {
				t.Fatalf("after SIGKILL uprobe_events holds %q of the dead child, want its 2 entries", stale)
			}
			defer func() {
				for _, ev := range ownUprobeEvents(dead["NONCE"]) {
					probeevent.Remove(probeevent.Root("uprobe_events"), "uprobe_events", ev)
				}
			}()
			next := run(t, "close", tc.nonce)
			if tc.nonce != "" && next["EVENTS"] != dead["EVENTS"] {
				t.Errorf("the restart used events %q, the dead child %q: want the same names", next["EVENTS"], dead["EVENTS"])
			}
			if next["AFTERCLOSE"] != "" {
				t.Errorf("entries left after Close: %q", next["AFTERCLOSE"])
			}
			if left := ownUprobeEvents(dead["NONCE"]); len(left) != 0 {
				t.Errorf("the dead child's entries are still in uprobe_events: %q", left)
			}
		})
	}
}
