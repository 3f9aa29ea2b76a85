package bcc

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inNetns runs f on an OS thread moved into the network namespace ns (as
// `ip netns` names it): sockets f creates live in that namespace.
func inNetns(t testing.TB, ns string, f func()) {
	t.Helper()
	target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(target)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		f()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			done <- err // the thread stays locked and exits with the goroutine
			return
		}
		runtime.UnlockOSThread()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// udpRecv returns the datagrams that arrive on c until want of them have
// or timeout passes (want 0: until timeout).
func udpRecv(c *net.UDPConn, want int, timeout time.Duration) []string {
	var got []string
	buf := make([]byte, 256)
	deadline := time.Now().Add(timeout)
	for want == 0 || len(got) < want {
		c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil {
			return got
		}
		got = append(got, string(buf[:n]))
	}
	return got
}

// netName returns a name unique to this test process for global objects
// (namespaces, devices: at most 15 bytes).
func netName(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, os.Getpid()%100000)
}
