package bcc

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/iovisor/gobpf/internal/probeevent"
	"github.com/iovisor/gobpf/internal/testutil"
)

const probeChildEnv = "GOBPF_PROBE_RESTART_CHILD"

const restartSource = `
BPF_ARRAY(hits, u64, 2);
static inline int hit(int k) {
	u64 *p = hits.lookup(&k);
	if (p)
		__sync_fetch_and_add(p, 1);
	return 0;
}
int on_entry(struct pt_regs *ctx) { return hit(0); }
int on_return(struct pt_regs *ctx) { return hit(1); }
`

// restartChild attaches a uprobe and a uretprobe to gobpf_add of the
// binary $GOBPF_PROBE_BIN, runs it, reports, then hangs (to be killed) or
// closes the module, as $GOBPF_PROBE_RESTART_CHILD says.
func restartChild(t *testing.T, mode string) {
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

// ownEvents lists the uprobe_events entries whose names hold nonce.
func ownEvents(nonce string) []string {
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
	bin := testutil.BuildC(t, uprobeTargetSource, "-fno-builtin")
	run := func(t *testing.T, mode, nonce string) map[string]string {
		t.Helper()
		env := []string{probeChildEnv + "=" + mode, "GOBPF_PROBE_BIN=" + bin}
		if nonce != "" {
			env = append(env, "GOBPF_PROBE_NONCE="+nonce)
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
			t.Fatalf("the uprobe PMU is visible in the child: the test cannot hide it")
		}
		if r["PID"] != "1" {
			t.Errorf("child pid %s, want 1", r["PID"])
		}
		if r["HITS"] != "5,5" {
			t.Errorf("%s child: uprobe,uretprobe hits %s, want 5,5", mode, r["HITS"])
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
		{"SameNames", fmt.Sprintf("%08x", uint32(os.Getpid())<<8|0x5a)},
		{"NewNonce", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dead := run(t, "hang", tc.nonce)
			stale := ownEvents(dead["NONCE"])
			if len(stale) != 2 {
				t.Fatalf("after SIGKILL uprobe_events holds %q of the dead child, want its 2 entries", stale)
			}
			defer func() {
				for _, ev := range ownEvents(dead["NONCE"]) {
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
			if left := ownEvents(dead["NONCE"]); len(left) != 0 {
				t.Errorf("the dead child's entries are still in uprobe_events: %q", left)
			}
		})
	}
}
