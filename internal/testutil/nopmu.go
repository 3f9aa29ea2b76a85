package testutil

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// CommandWithoutPMU returns a command re-executing this test binary to run
// the test named run, as pid 1 of a new pid namespace (like a program in a
// container) in a private mount namespace where /sys/devices/<pmu>
// ("uprobe" or "kprobe") is masked by an empty tmpfs: probes then go
// through tracefs's uprobe_events/kprobe_events. env is added to the
// environment. Killing the command (unshare) kills the child with SIGKILL.
func CommandWithoutPMU(pmu, run string, env ...string) *exec.Cmd {
	script := `mount -t tmpfs gobpf-mask /sys/devices/` + pmu + ` && exec "$0" "$@"`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
		"sh", "-c", script, os.Args[0], "-test.run=^"+run+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	return cmd
}

// ChildReport starts cmd and collects the "KEY value" lines it prints on
// stdout until a line "READY" or its exit; it fails the test after 2
// minutes.
func ChildReport(t testing.TB, cmd *exec.Cmd) map[string]string {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l := sc.Text()
			if l == "READY" {
				got["READY"] = "1"
				go io.Copy(io.Discard, out)
				return
			}
			if k, v, ok := strings.Cut(l, " "); ok && k == strings.ToUpper(k) && k != "" {
				got[k] = v
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("child did not report in 2 minutes")
	}
	return got
}

// KillWithoutPMU kills a command of CommandWithoutPMU with SIGKILL: the
// re-executed test binary (unshare's child) first, then unshare, and
// waits until the child is dead (its files, perf events included, closed).
func KillWithoutPMU(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	pid := cmd.Process.Pid
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	kids := strings.Fields(string(b))
	for _, k := range kids {
		if n, err := strconv.Atoi(k); err == nil {
			syscall.Kill(n, syscall.SIGKILL)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for _, k := range kids {
		for time.Now().Before(deadline) && !exited(k) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	// The last thread's exit closes the files; releasing a probe's perf
	// event (uprobe_unregister waits for RCU) may take a moment more.
	time.Sleep(200 * time.Millisecond)
}

// exited reports whether process pid is reaped, or a zombie whose other
// threads have all exited (the files they shared are closed).
func exited(pid string) bool {
	st, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return true // reaped
	}
	// "pid (comm) S ...": Z once the leader exited.
	i := strings.LastIndexByte(string(st), ')')
	if i < 0 || len(st) <= i+2 || st[i+2] != 'Z' {
		return false
	}
	tasks, err := os.ReadDir("/proc/" + pid + "/task")
	return err != nil || len(tasks) <= 1
}
