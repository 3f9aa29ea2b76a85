package bcc

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// toolRun is a running example tool whose output lines the test reads.
type toolRun struct {
	t      *testing.T
	cmd    *exec.Cmd
	lines  chan string
	seen   []string
	stderr syncBuffer
}

// syncBuffer collects a process's stderr; the test may read it while the
// process still writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// buildTool builds examples/bcc/<name> into a temporary folder, or returns
// the binary the VM lane built on the host (GOBPF_EXAMPLES_BIN: building
// under emulation takes minutes).
func buildTool(t *testing.T, name string) string {
	t.Helper()
	if dir := os.Getenv("GOBPF_EXAMPLES_BIN"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		t.Logf("%s not in GOBPF_EXAMPLES_BIN (%s): building it", name, dir)
	}
	out := filepath.Join(t.TempDir(), name)
	build := exec.Command(goTool(t), "build", "-o", out, "./examples/bcc/"+name)
	build.Dir = ".."
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/bcc/%s: %v\n%s", name, err, b)
	}
	return out
}

func startTool(t *testing.T, path string, args ...string) *toolRun {
	t.Helper()
	r := &toolRun{t: t, cmd: exec.Command(path, args...), lines: make(chan string, 256)}
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stderr = &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
			r.cmd.Wait()
		}
	})
	go func() {
		defer close(r.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
	}()
	return r
}

// next returns the next line; it fails the test after timeout or at EOF.
func (r *toolRun) next(timeout time.Duration) string {
	r.t.Helper()
	select {
	case l, ok := <-r.lines:
		if !ok {
			r.t.Fatalf("%s ended early; output %q; stderr:\n%s", r.cmd.Path, r.seen, r.stderr.String())
		}
		r.seen = append(r.seen, l)
		return l
	case <-time.After(timeout):
		r.t.Fatalf("%s printed nothing for %v; output %q; stderr:\n%s", r.cmd.Path, timeout, r.seen, r.stderr.String())
	}
	return ""
}

// stop interrupts the tool and returns the rest of its output.
func (r *toolRun) stop() []string {
	r.t.Helper()
	r.cmd.Process.Signal(os.Interrupt)
	var rest []string
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-r.lines:
			if !ok {
				if err := r.cmd.Wait(); err != nil {
					r.t.Errorf("%s after SIGINT: %v; stderr:\n%s", r.cmd.Path, err, r.stderr.String())
				}
				return rest
			}
			rest = append(rest, l)
		case <-deadline:
			r.t.Fatalf("%s did not end after SIGINT; output %q", r.cmd.Path, rest)
		}
	}
}

func selfComm(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestExampleSyslatency runs examples/bcc/syslatency on clock_nanosleep(2)
// for this process, sleeps 260, 260 and 520 ms, interrupts it, and checks
// the per-command log2 histogram it prints, line for line. (A sleep never
// ends early; each may overrun by about 250 ms before it leaves its row,
// which a loaded machine or an emulated guest can afford.)
func TestExampleSyslatency(t *testing.T) {
	bin := buildTool(t, "syslatency")
	r := startTool(t, bin, "-syscall", "clock_nanosleep", "-pid", fmt.Sprint(os.Getpid()), "-m", "-C")
	if l := r.next(180 * time.Second); l != "Tracing clock_nanosleep(2) latency... Hit Ctrl-C to end." {
		t.Fatalf("first line %q", l)
	}
	for _, d := range []time.Duration{260 * time.Millisecond, 260 * time.Millisecond, 520 * time.Millisecond} {
		ts := unix.NsecToTimespec(d.Nanoseconds())
		if err := unix.ClockNanosleep(unix.CLOCK_MONOTONIC, 0, &ts, nil); err != nil {
			t.Fatal(err)
		}
	}
	got := strings.Join(r.stop(), "\n") + "\n"
	want := "\n\ncomm = " + selfComm(t) + `
     msecs               : count     distribution
         0 -> 1          : 0        |                                        |
         2 -> 3          : 0        |                                        |
         4 -> 7          : 0        |                                        |
         8 -> 15         : 0        |                                        |
        16 -> 31         : 0        |                                        |
        32 -> 63         : 0        |                                        |
        64 -> 127        : 0        |                                        |
       128 -> 255        : 0        |                                        |
       256 -> 511        : 2        |****************************************|
       512 -> 1023       : 1        |********************                    |
`
	histCompare(t, "syslatency output", got, want)

	// A name that is no system call: a clear error, no histogram.
	out, err := exec.Command(bin, "-syscall", "no_such_call").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no tracepoints syscalls:sys_enter_no_such_call") {
		t.Errorf("syslatency -syscall no_such_call: %v\n%s", err, out)
	}
}

// TestExampleTcpconnect runs examples/bcc/tcpconnect for this process,
// connects to listeners on 127.0.0.1 and ::1, and checks bcc's header and
// the lines for both connections, byte for byte.
func TestExampleTcpconnect(t *testing.T) {
	bin := buildTool(t, "tcpconnect")
	r := startTool(t, bin, "-p", fmt.Sprint(os.Getpid()), "-duration", "10m")
	if l := r.next(180 * time.Second); l != "Tracing connect ... Hit Ctrl-C to end" {
		t.Fatalf("first line %q", l)
	}
	if l := r.next(10 * time.Second); l != "PID    COMM         IP SADDR            DADDR            DPORT " {
		t.Fatalf("header %q", l)
	}
	comm := selfComm(t)
	if len(comm) > 12 {
		comm = comm[:12]
	}
	for _, c := range []struct{ network, addr string }{{"tcp4", "127.0.0.1"}, {"tcp6", "::1"}} {
		l, err := net.Listen(c.network, net.JoinHostPort(c.addr, "0"))
		if err != nil {
			if c.network == "tcp6" && strings.Contains(err.Error(), "address not available") {
				t.Logf("no IPv6 loopback: %v", err)
				continue
			}
			t.Fatal(err)
		}
		defer l.Close()
		port := l.Addr().(*net.TCPAddr).Port
		conn, err := net.Dial(c.network, l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
		ip := 4
		if c.network == "tcp6" {
			ip = 6
		}
		want := fmt.Sprintf("%-6d %-12s %-2d %-16s %-16s %-6d ", os.Getpid(), comm, ip, c.addr, c.addr, port)
		if got := r.next(30 * time.Second); got != want {
			t.Errorf("connection to %s port %d:\n got %q\nwant %q", c.addr, port, got, want)
		}
	}
	if rest := r.stop(); len(rest) != 0 {
		t.Errorf("unexpected lines: %q", rest)
	}

	// The port filter: a connection to another port prints nothing.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r = startTool(t, bin, "-p", fmt.Sprint(os.Getpid()), "-P", "1", "-4", "-U")
	r.next(180 * time.Second)
	if h := r.next(10 * time.Second); !strings.HasPrefix(h, "UID   PID    COMM ") {
		t.Fatalf("-U header %q", h)
	}
	conn, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	time.Sleep(500 * time.Millisecond)
	if rest := r.stop(); len(rest) != 0 {
		t.Errorf("-P 1 printed %q for a connection to port %d", rest, l.Addr().(*net.TCPAddr).Port)
	}
}
