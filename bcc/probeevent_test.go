package bcc

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/iovisor/gobpf/internal/probeevent"
	"github.com/iovisor/gobpf/internal/testutil"
)

const probeChildEnv = "GOBPF_PROBE_RESTART_CHILD"

const restartSource = `
#ifndef TGID
#define TGID 0
#endif
BPF_ARRAY(hits, u64, 2);
static inline int hit(int k) {
	u64 *p = hits.lookup(&k);
	if (p)
		__sync_fetch_and_add(p, 1);
	return 0;
}
int on_entry(struct pt_regs *ctx) { return hit(0); }
int on_return(struct pt_regs *ctx) { return hit(1); }
int on_kentry(struct pt_regs *ctx) { return (bpf_get_current_pid_tgid() >> 32) == TGID ? hit(0) : 0; }
int on_kreturn(struct pt_regs *ctx) { return (bpf_get_current_pid_tgid() >> 32) == TGID ? hit(1) : 0; }
`

// restartChild attaches a uprobe and a uretprobe to gobpf_add of the
// binary $GOBPF_PROBE_BIN and runs it (or, when $GOBPF_PROBE_KIND is
// kprobe, a kprobe and a kretprobe to getppid, and calls it), reports, then
// hangs (to be killed) or closes the module, as $GOBPF_PROBE_RESTART_CHILD
// says.
func restartChild(t *testing.T, mode string) {
	if os.Getenv("GOBPF_PROBE_KIND") == "kprobe" {
		restartKprobeChild(t, mode)
		return
	}
	if n := os.Getenv("GOBPF_PROBE_NONCE"); n != "" {
		probeevent.SetNonce(n)
	}
	bin := os.Getenv("GOBPF_PROBE_BIN")
	fmt.Printf("NONCE %s\nPID %d\n", probeevent.Nonce(), os.Getpid())
	if _, err := os.Stat("/sys/bus/event_source/devices/uprobe/type"); err == nil {
		fmt.Println("PMU visible")
	}
	m := mustNewModule(t, restartSource)
	for _, p := range []struct {
		fn     string
		attach func(string, string, int, int) error
	}{{"on_entry", m.AttachUprobe}, {"on_return", m.AttachUretprobe}} {
		fd, err := m.LoadUprobe(p.fn)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.attach(bin, "gobpf_add", fd, -1); err != nil {
			fmt.Printf("ATTACHERR %v\n", strings.ReplaceAll(err.Error(), "\n", " "))
			t.Fatal(err)
		}
	}
	fmt.Printf("EVENTS %s\n", strings.Join(ownEvents(probeevent.Nonce()), ","))
	testutil.Run(t, bin, "5")
	fmt.Printf("HITS %d,%d\n", lookupU64(t, m, "hits", 0), lookupU64(t, m, "hits", 1))
	if mode == "hang" {
		fmt.Println("READY")
		select {}
	}
	m.Close()
	fmt.Printf("AFTERCLOSE %s\n", strings.Join(ownEvents(probeevent.Nonce()), ","))
	fmt.Println("READY")
}

func restartKprobeChild(t *testing.T, mode string) {
	if n := os.Getenv("GOBPF_PROBE_NONCE"); n != "" {
		probeevent.SetNonce(n)
	}
	fmt.Printf("NONCE %s\nPID %d\n", probeevent.Nonce(), os.Getpid())
	if _, err := os.Stat("/sys/bus/event_source/devices/kprobe/type"); err == nil {
		fmt.Println("PMU visible")
	}
	// The pid in the host's pid namespace, which the program sees: /proc
	// is the host's.
	host, err := os.Readlink("/proc/self")
	if err != nil {
		t.Fatal(err)
	}
	m := mustNewModule(t, restartSource, "-DTGID="+host)
	fn := GetSyscallFnName("getppid")
	kfd, err := m.LoadKprobe("on_kentry")
	if err != nil {
		t.Fatal(err)
	}
	rfd, err := m.LoadKprobe("on_kreturn")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AttachKprobe(fn, kfd, -1); err != nil {
		fmt.Printf("ATTACHERR %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		t.Fatal(err)
	}
	if err := m.AttachKretprobe(fn, rfd, 4); err != nil {
		fmt.Printf("ATTACHERR %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		t.Fatal(err)
	}
	fmt.Printf("EVENTS %s\n", strings.Join(ownEventsIn("kprobe_events", probeevent.Nonce()), ","))
	for i := 0; i < 5; i++ {
		syscall.Getppid()
	}
	fmt.Printf("HITS %d,%d\n", lookupU64(t, m, "hits", 0), lookupU64(t, m, "hits", 1))
	if mode == "hang" {
		fmt.Println("READY")
		select {}
	}
	m.Close()
	fmt.Printf("AFTERCLOSE %s\n", strings.Join(ownEventsIn("kprobe_events", probeevent.Nonce()), ","))
	fmt.Println("READY")
}

// ownEvents lists the uprobe_events entries whose names hold nonce.
func ownEvents(nonce string) []string { return ownEventsIn("uprobe_events", nonce) }

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
	bin := testutil.BuildC(t, uprobeTargetSource, "-fno-builtin")
	testEventsRestart(t, "uprobe", "TestUprobeEventsRestart", "GOBPF_PROBE_BIN="+bin)
}

// TestKprobeEventsRestart is TestUprobeEventsRestart for a kprobe and a
// kretprobe (kprobe_events, the kprobe PMU hidden).
func TestKprobeEventsRestart(t *testing.T) {
	if mode := os.Getenv(probeChildEnv); mode != "" {
		restartChild(t, mode)
		return
	}
	testutil.RequireKprobes(t)
	testEventsRestart(t, "kprobe", "TestKprobeEventsRestart", "GOBPF_PROBE_KIND=kprobe")
}

// testEventsRestart runs the kill-and-restart cycle of kind ("uprobe" or
// "kprobe") probes in children running test, with env added.
func testEventsRestart(t *testing.T, kind, test string, env ...string) {
	file := kind + "_events"
	run := func(t *testing.T, mode, nonce string) map[string]string {
		t.Helper()
		env := append([]string{probeChildEnv + "=" + mode}, env...)
		if nonce != "" {
			env = append(env, "GOBPF_PROBE_NONCE="+nonce)
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
		if r["HITS"] != "5,5" {
			t.Errorf("%s child: entry,return hits %s, want 5,5", mode, r["HITS"])
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
		{"SameNames", fmt.Sprintf("%08x", uint32(os.Getpid())<<8|0x5a)},
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
