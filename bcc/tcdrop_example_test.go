package bcc

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iovisor/gobpf/internal/testutil"
)

// TestExampleTcdrop runs examples/bcc/tcdrop on a veth device, with a
// clsact filter on ingress and a TCX link on egress, and checks what it
// drops and prints, and that it removes its program on SIGINT.
func TestExampleTcdrop(t *testing.T) {
	bin := buildTool(t, "tcdrop")
	n := newTCNet(t, "ex")
	for _, c := range []struct {
		name string
		args []string
		head string
	}{
		{"clsact", []string{"-port", strconv.Itoa(tcInPort)},
			"dropping udp packets to port 9941 at ingress of " + n.dev + " (tc clsact, direct action); Ctrl-C to stop"},
		{"tcx", []string{"-tcx", "-dir", "egress", "-port", strconv.Itoa(tcOutPort)},
			"dropping udp packets to port 9942 at egress of " + n.dev + " (TCX link); Ctrl-C to stop"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "tcx" && !kernelAtLeast(6, 6) {
				t.Skip("kernel before 6.6 lacks TCX links")
			}
			cmd := exec.Command(bin, append([]string{"-dev", n.dev, "-duration", "120s"}, c.args...)...)
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
			next := func(timeout time.Duration) string {
				select {
				case l := <-lines:
					return l
				case <-time.After(timeout):
					return ""
				}
			}
			if l := next(60 * time.Second); l != c.head {
				t.Fatalf("first line %q, want %q; stderr:\n%s", l, c.head, stderr.String())
			}
			in, out := n.exchange(t, 3, "drop")
			dropped, passed := in, out
			if c.name == "tcx" {
				dropped, passed = out, in
			}
			if len(dropped) != 0 {
				t.Errorf("received %q, want them dropped", dropped)
			}
			if len(passed) != 3 {
				t.Errorf("%d datagrams the other way arrived, want 3", len(passed))
			}
			payload := len("drop-in0")
			if c.name == "tcx" {
				payload = len("drop-out0")
			}
			want := fmt.Sprintf(": dropped 3 packets, %d bytes", 3*(14+20+8+payload))
			l := next(5 * time.Second)
			if !strings.HasSuffix(l, want) {
				t.Errorf("line %q, want one ending %q", l, want)
			}
			cmd.Process.Signal(os.Interrupt)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("tcdrop: %v\n%s", err, stderr.String())
			}
			if out := testutil.Run(t, "tc", "qdisc", "show", "dev", n.dev); strings.Contains(out, "clsact") {
				t.Errorf("clsact qdisc left after tcdrop exited:\n%s", out)
			}
			if in, out := n.exchange(t, 2, "pass"); len(in) != 2 || len(out) != 2 {
				t.Errorf("after tcdrop exited: %d and %d arrived, want 2 and 2", len(in), len(out))
			}
		})
	}
}
