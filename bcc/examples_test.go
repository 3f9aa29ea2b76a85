package bcc

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/iovisor/gobpf/internal/testutil"
)

func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no go tool found: %v", err)
	}
	return p
}

// TestExamples builds every example (or takes the VM lane's) and runs chrootsnoop against a real
// chroot(2) call.
func TestExamples(t *testing.T) {
	// The VM lane builds the examples on the host (GOBPF_EXAMPLES_BIN):
	// building them under emulation takes minutes.
	dir := os.Getenv("GOBPF_EXAMPLES_BIN")
	if dir == "" {
		dir = t.TempDir()
		build := exec.Command(goTool(t), "build", "-o", dir+"/", "./examples/...")
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build ./examples/...: %v\n%s", err, out)
		}
	}
	for _, ex := range []string{"chrootsnoop", "execsnoop", "strlen_count", "perf", "xdp", "bash_readline"} {
		if _, err := os.Stat(filepath.Join(dir, ex)); err != nil {
			t.Errorf("example %s was not built: %v", ex, err)
		}
	}

	// chrootsnoop takes its kprobe path where the kernel has kprobes (the
	// VM lane), its tracepoint path otherwise: each subtest checks one.
	t.Run("ChrootsnoopKprobe", func(t *testing.T) {
		testutil.RequireKprobes(t)
		runChrootsnoop(t, dir, "tracing chroot(2) with a kprobe on "+GetSyscallFnName("chroot"))
	})
	t.Run("ChrootsnoopTracepoint", func(t *testing.T) {
		if testutil.HaveKprobes() {
			t.Skip("the kernel has kprobes: chrootsnoop takes its kprobe path (ChrootsnoopKprobe)")
		}
		runChrootsnoop(t, dir, "tracing chroot(2) with the tracepoint syscalls:sys_enter_chroot (no kprobes in this kernel)")
	})
}

// runChrootsnoop runs the chrootsnoop example built in dir, checks that its
// first line is firstLine, and that it reports a real chroot(2) call.
func runChrootsnoop(t *testing.T, dir, firstLine string) {
	cmd := exec.Command(filepath.Join(dir, "chrootsnoop"), "-duration", "90s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var seen []string
	// next returns the next line, "" after timeout.
	next := func(timeout time.Duration) string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("chrootsnoop ended early; output %q; stderr:\n%s", seen, stderr.String())
			}
			seen = append(seen, l)
			return l
		case <-time.After(timeout):
			return ""
		}
	}
	if l := next(60 * time.Second); l != firstLine {
		t.Fatalf("first line %q, want %q; stderr:\n%s", l, firstLine, stderr.String())
	}
	if out, err := exec.Command("chroot", "/", "/bin/true").CombinedOutput(); err != nil {
		t.Fatalf("chroot / /bin/true: %v\n%s", err, out)
	}
	// Other processes may chroot too: look for our line.
	want := "(chroot) called chroot(2) on /"
	deadline := time.Now().Add(10 * time.Second)
	found := false
	for !found && time.Now().Before(deadline) {
		l := next(time.Until(deadline))
		found = strings.HasPrefix(l, "pid ") && strings.HasSuffix(l, want)
	}
	if !found {
		t.Errorf("no \"pid N %s\" line; output %q; stderr:\n%s", want, seen, stderr.String())
	}
	cmd.Process.Signal(os.Interrupt)
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("chrootsnoop after SIGINT: %v; stderr:\n%s", err, stderr.String())
	}
}
