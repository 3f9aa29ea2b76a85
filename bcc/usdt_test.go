package bcc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/iovisor/gobpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// usdtProg writes a byte to stdout once it runs main (its binary and
// libraries are mapped), fires gobpftest:tick(i, 42) argv[1] times once it
// reads a byte from stdin, then waits for stdin's end.
const usdtProg = `
#include <sys/sdt.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
	int n = atoi(argv[1]);
	char b = 'r';
	if (write(1, &b, 1) != 1)
		return 3;
	if (read(0, &b, 1) != 1)
		return 2;
	for (int i = 0; i < n; i++)
		DTRACE_PROBE2(gobpftest, tick, i, 42);
	read(0, &b, 1);
	return 0;
}
`

// usdtSemProg is usdtProg with a semaphore-guarded probe gobpftest:sem;
// it counts in its exit status how often the semaphore was set.
const usdtSemProg = `
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>
#include <stdlib.h>
#include <unistd.h>
__extension__ unsigned short gobpftest_sem_semaphore __attribute__((unused)) __attribute__((section(".probes")));
int main(int argc, char **argv) {
	int n = atoi(argv[1]), on = 0;
	char b = 'r';
	if (write(1, &b, 1) != 1)
		return 201;
	if (read(0, &b, 1) != 1)
		return 200;
	for (int i = 0; i < n; i++) {
		if (gobpftest_sem_semaphore) {
			on++;
			DTRACE_PROBE2(gobpftest, sem, i, 42);
		}
	}
	read(0, &b, 1);
	return on;
}
`

const usdtBPF = `
#include <uapi/linux/ptrace.h>
BPF_ARRAY(seen, u64, 64);
BPF_ARRAY(stats, u64, 2); // 0: hits, 1: hits whose second argument was not 42

int on_tick(struct pt_regs *ctx) {
	int i = -1, v = 0;
	bpf_usdt_readarg(1, ctx, &i);
	bpf_usdt_readarg(2, ctx, &v);
	stats.increment(0);
	if (v != 42)
		stats.increment(1);
	if (i >= 0 && i < 64)
		seen.increment(i);
	return 0;
}
`

// usdtChild is a started test program, running main and blocked on stdin.
type usdtChild struct {
	cmd *exec.Cmd
	in  interface {
		Write([]byte) (int, error)
		Close() error
	}
}

// startUSDTChild starts bin and returns once it runs main: its binary and
// libraries are mapped, so that a process's USDT context sees its probes.
func startUSDTChild(t *testing.T, bin string, n int) *usdtChild {
	t.Helper()
	cmd := exec.Command(bin, fmt.Sprint(n))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &usdtChild{cmd: cmd, in: in}
	t.Cleanup(func() { c.finish() })
	// The program writes one byte when main starts, then blocks on
	// stdin; it writes nothing else.
	var b [1]byte
	if _, err := io.ReadFull(out, b[:]); err != nil {
		t.Fatalf("test program did not start: %v (exit code %d)", err, c.finish())
	}
	return c
}

// run lets the program fire its probes and exit; it returns the exit code.
func (c *usdtChild) run(t *testing.T) int {
	t.Helper()
	if _, err := c.in.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	return c.finish()
}

func (c *usdtChild) finish() int {
	if c.cmd.ProcessState != nil {
		return c.cmd.ProcessState.ExitCode()
	}
	c.in.Close()
	c.cmd.Wait()
	return c.cmd.ProcessState.ExitCode()
}

// checkTicks checks that on_tick saw i = 0..n-1 once each, with 42.
func checkTicks(t *testing.T, m *Module, n int) {
	t.Helper()
	if hits, bad := arrayU64(t, m, "stats", 0, 8), arrayU64(t, m, "stats", 1, 8); hits != uint64(n) || bad != 0 {
		t.Fatalf("probe hits %d (with a wrong second argument: %d), want %d (0)", hits, bad, n)
	}
	for i := uint32(0); i < 64; i++ {
		want := uint64(0)
		if int(i) < n {
			want = 1
		}
		if got := arrayU64(t, m, "seen", i, 8); got != want {
			t.Fatalf("probe fired with i=%d %d times, want %d", i, got, want)
		}
	}
}

func TestUSDT(t *testing.T) {
	bin := testutil.BuildC(t, usdtProg)
	semBin := testutil.BuildC(t, usdtSemProg)
	const n = 17

	t.Run("path", func(t *testing.T) {
		defer testutil.CheckLeaks(t)()
		u, err := NewUSDTContext(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		probes, err := u.Probes()
		if err != nil {
			t.Fatal(err)
		}
		if len(probes) != 1 || probes[0].Provider != "gobpftest" || probes[0].Name != "tick" ||
			probes[0].NumArguments != 2 || probes[0].Semaphore != 0 || probes[0].NumLocations != 1 {
			t.Fatalf("probes = %+v", probes)
		}
		args, err := u.ProbeArgs("gobpftest:tick")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(args) != "[{4 true int32_t} {4 true int32_t}]" {
			t.Fatalf("ProbeArgs = %v", args)
		}
		if _, err := u.ProbeArgs("nosuch"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("ProbeArgs(missing) err = %v", err)
		}
		if err := u.EnableProbe("nosuch", "on_tick"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing probe: err = %v, want ErrNotFound", err)
		}
		if err := u.EnableProbe("tick", "not a function"); err == nil {
			t.Fatal("bad function name accepted")
		}
		if err := u.EnableProbe("gobpftest:tick", "on_tick"); err != nil {
			t.Fatal(err)
		}
		if err := u.EnableProbe("tick", "on_tick"); err == nil {
			t.Fatal("probe enabled twice")
		}
		m, err := NewModuleWithUSDT(usdtBPF, nil, u)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if _, err := NewModuleWithUSDT(usdtBPF, nil, u); err == nil {
			t.Fatal("context used by two modules")
		}
		// Two runs of the binary: the probe is on the file, for all
		// processes.
		for run := 0; run < 2; run++ {
			if code := startUSDTChild(t, bin, n).run(t); code != 0 {
				t.Fatalf("program exited %d", code)
			}
			if run == 0 {
				checkTicks(t, m, n)
			}
		}
		if hits := arrayU64(t, m, "stats", 0, 8); hits != 2*n {
			t.Fatalf("two runs: %d hits, want %d", hits, 2*n)
		}
		m.Close()
		// Detached: another run is not seen (the map is gone, so check
		// that the program still exits normally).
		if code := startUSDTChild(t, bin, n).run(t); code != 0 {
			t.Fatalf("program exited %d", code)
		}
		if err := u.EnableProbe("tick", "on_tick"); !errors.Is(err, ErrClosed) {
			t.Fatalf("context after its module closed: err = %v, want ErrClosed", err)
		}
	})

	t.Run("pid", func(t *testing.T) {
		defer testutil.CheckLeaks(t)()
		other := startUSDTChild(t, bin, n) // not traced
		c := startUSDTChild(t, bin, n)
		u, err := NewUSDTContextFromPID(c.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		if err := u.EnableProbe("tick", "on_tick"); err != nil {
			t.Fatal(err)
		}
		m, err := NewModuleWithUSDT(usdtBPF, nil, u)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if code := other.run(t); code != 0 {
			t.Fatalf("untraced program exited %d", code)
		}
		if hits := arrayU64(t, m, "stats", 0, 8); hits != 0 {
			t.Fatalf("probe fired %d times in another process", hits)
		}
		if code := c.run(t); code != 0 {
			t.Fatalf("program exited %d", code)
		}
		checkTicks(t, m, n)
	})

	t.Run("exited", func(t *testing.T) {
		defer testutil.CheckLeaks(t)()
		// newCtx fails the test if NewUSDTContextFromPID hangs.
		newCtx := func(pid int) error {
			t.Helper()
			done := make(chan error, 1)
			go func() {
				u, err := NewUSDTContextFromPID(pid)
				u.Close()
				done <- err
			}()
			select {
			case err := <-done:
				return err
			case <-time.After(60 * time.Second):
				t.Fatalf("NewUSDTContextFromPID(%d) hangs", pid)
				return nil
			}
		}
		c := startUSDTChild(t, bin, n)
		pid := c.cmd.Process.Pid
		if err := unix.Kill(pid, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Wait for the exit without reaping: the process is a zombie.
		var si unix.Siginfo
		if err := unix.Waitid(unix.P_PID, pid, &si, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
			t.Fatal(err)
		}
		err := newCtx(pid)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "exited") {
			t.Errorf("zombie process: err = %v, want ErrNotFound saying it exited", err)
		}
		c.finish() // reaped: the pid is gone
		if err := newCtx(pid); !errors.Is(err, ErrNotFound) {
			t.Errorf("reaped process: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("semaphore", func(t *testing.T) {
		defer testutil.CheckLeaks(t)()
		// A binary's context cannot set a semaphore.
		u, err := NewUSDTContext(semBin)
		if err != nil {
			t.Fatal(err)
		}
		err = u.EnableProbe("sem", "on_tick")
		u.Close()
		if !errors.Is(err, ErrNotSupported) {
			t.Fatalf("semaphore probe on a path: err = %v, want ErrNotSupported", err)
		}
		// Without a tracer the program sees the semaphore clear.
		if code := startUSDTChild(t, semBin, n).run(t); code != 0 {
			t.Fatalf("untraced: semaphore seen set %d times", code)
		}
		c := startUSDTChild(t, semBin, n)
		u, err = NewUSDTContextFromPID(c.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		probes, err := u.Probes()
		if err != nil {
			t.Fatal(err)
		}
		if len(probes) != 1 || probes[0].Semaphore == 0 {
			t.Fatalf("probes = %+v, want one with a semaphore", probes)
		}
		if err := u.EnableProbe("gobpftest:sem", "on_tick"); err != nil {
			t.Fatal(err)
		}
		m, err := NewModuleWithUSDT(usdtBPF, nil, u)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if code := c.run(t); code != n {
			t.Fatalf("traced: semaphore seen set %d times, want %d", code, n)
		}
		checkTicks(t, m, n)
	})

	t.Run("errors", func(t *testing.T) {
		defer testutil.CheckLeaks(t)()
		if _, err := NewUSDTContext("/no/such/binary"); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing binary: err = %v", err)
		}
		if _, err := NewUSDTContext(""); err == nil {
			t.Error("empty path accepted")
		}
		if _, err := NewUSDTContextFromPID(1 << 30); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing pid: err = %v", err)
		}
		if _, err := NewUSDTContextFromPID(0); err == nil {
			t.Error("pid 0 accepted")
		}
		if _, err := NewUSDTContextFromPIDPath(os.Getpid(), "relative/path"); err == nil {
			t.Error("relative path accepted")
		}
		u, err := NewUSDTContext(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		if _, err := NewModuleWithUSDT(usdtBPF, nil, u); err == nil || !strings.Contains(err.Error(), "no enabled probe") {
			t.Errorf("no enabled probe: err = %v", err)
		}
		if err := u.EnableProbe("tick", "no_such_fn"); err != nil {
			t.Fatal(err)
		}
		// The function does not exist in the program: compile or load
		// fails with an error, and nothing stays attached.
		if m, err := NewModuleWithUSDT(usdtBPF, nil, u); !errors.Is(err, ErrNotFound) {
			m.Close()
			t.Errorf("module with a missing probe function: err = %v, want ErrNotFound", err)
		} else {
			t.Log(err)
		}
		if _, err := NewModuleWithUSDT(usdtBPF, nil, nil); err == nil {
			t.Error("nil context accepted")
		}
		u.Close()
		if _, err := NewModuleWithUSDT(usdtBPF, nil, u); !errors.Is(err, ErrClosed) {
			t.Errorf("closed context: err = %v, want ErrClosed", err)
		}
	})
}
