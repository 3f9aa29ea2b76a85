// Package testutil holds helpers shared by gobpf's tests: leak checks,
// feature skips, building small C programs, and network namespaces.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// CountFDs returns how many file descriptors this process has open.
func CountFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("reading /proc/self/fd: %v", err)
	}
	return len(ents)
}

// CheckLeaks records the fd and goroutine counts now and returns a function
// that fails the test if, after a short grace period, either has grown.
// Use it as: defer testutil.CheckLeaks(t)()
func CheckLeaks(t testing.TB) func() {
	t.Helper()
	pollerOnce.Do(startPoller)
	before, gs := fdLinks(t), runtime.NumGoroutine()
	return func() {
		t.Helper()
		var after map[string]string
		var ng int
		for i := 0; i < 100; i++ {
			after, ng = fdLinks(t), runtime.NumGoroutine()
			if len(after) <= len(before) && ng <= gs {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(after) > len(before) {
			t.Errorf("fd leak: %d open before, %d after\n%s", len(before), len(after), diffFDs(before, after))
		}
		if ng > gs {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutine leak: %d before, %d after\n%s", gs, ng, buf)
		}
	}
}

var pollerOnce sync.Once

// startPoller makes the Go runtime open its network poller (an epoll fd and
// an eventfd, kept for the life of the process) now: it opens it lazily,
// and under load it may do so while a checked test runs, which would
// count as a leak.
func startPoller() {
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
}

// fdLinks maps each open fd to what it refers to.
func fdLinks(t testing.TB) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("reading /proc/self/fd: %v", err)
	}
	links := make(map[string]string, len(ents))
	for _, e := range ents {
		// The directory's own fd is closed by now: Readlink fails.
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil {
			links[e.Name()] = l
		}
	}
	return links
}

// diffFDs lists the fds open after and not before (or now referring to
// something else), then the ones open in both.
func diffFDs(before, after map[string]string) string {
	var added, kept []string
	for fd, l := range after {
		if before[fd] == l {
			kept = append(kept, fd+" -> "+l)
		} else {
			added = append(added, fd+" -> "+l)
		}
	}
	sort.Strings(added)
	sort.Strings(kept)
	return "  new: " + strings.Join(added, ", ") + "\n  open before too: " + strings.Join(kept, ", ")
}

// HaveKprobes reports whether the running kernel can create kprobes.
func HaveKprobes() bool {
	for _, p := range []string{
		"/sys/bus/event_source/devices/kprobe",
		"/sys/kernel/tracing/kprobe_events",
		"/sys/kernel/debug/tracing/kprobe_events",
	} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// RequireKprobes skips the test when the kernel has no kprobes. When the
// environment sets GOBPF_REQUIRE_KPROBES=1 (the VM lane), it fails instead,
// so that a lane meant to run kprobe tests cannot pass by skipping them.
func RequireKprobes(t testing.TB) {
	t.Helper()
	if HaveKprobes() {
		return
	}
	if os.Getenv("GOBPF_REQUIRE_KPROBES") == "1" {
		t.Fatal("kernel lacks kprobes (CONFIG_KPROBES) but GOBPF_REQUIRE_KPROBES=1")
	}
	t.Skip("kernel lacks kprobes (CONFIG_KPROBES is not set)")
}

// BuildC compiles a C program (source text) with gcc into a temporary
// directory and returns the binary's path. extra are extra gcc flags.
func BuildC(t testing.TB, src string, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	c := filepath.Join(dir, "prog.c")
	bin := filepath.Join(dir, "prog")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-O0", "-g", "-fno-omit-frame-pointer", "-fno-inline", "-o", bin, c}, extra...)
	out, err := exec.Command("gcc", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}

// Run runs a command and fails the test with its output if it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// VethPair creates network namespace ns with one end of a veth pair inside
// it (name peer, address peerAddr/24) and the other end (name dev, address
// devAddr/24) in the current namespace, and removes both at test cleanup.
// Names must be unique per test package (packages' tests run in parallel).
func VethPair(t testing.TB, ns, dev, peer, devAddr, peerAddr string) {
	t.Helper()
	exec.Command("ip", "netns", "del", ns).Run()
	exec.Command("ip", "link", "del", dev).Run()
	Run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", dev).Run()
		exec.Command("ip", "netns", "del", ns).Run()
	})
	Run(t, "ip", "link", "add", dev, "type", "veth", "peer", "name", peer)
	Run(t, "ip", "link", "set", peer, "netns", ns)
	Run(t, "ip", "addr", "add", devAddr+"/24", "dev", dev)
	Run(t, "ip", "link", "set", dev, "up")
	Run(t, "ip", "netns", "exec", ns, "ip", "addr", "add", peerAddr+"/24", "dev", peer)
	Run(t, "ip", "netns", "exec", ns, "ip", "link", "set", peer, "up")
	Run(t, "ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
}
