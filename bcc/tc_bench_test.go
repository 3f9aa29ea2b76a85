package bcc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/testutil"
)

// BenchmarkTCAttach measures one attach plus detach of a direct-action
// program on a veth's ingress: AttachTC/DetachTC (pure-Go netlink, clsact
// qdisc added and removed each time), AttachTCX/DetachTCX (a BPF link),
// and as the reference what a program shelling out to iproute2 does
// (`tc filter add ... bpf da object-pinned` then `tc filter del`, on a
// clsact qdisc kept in place).
func BenchmarkTCAttach(b *testing.B) {
	n := newTCNet(b, "bn")
	m := newTCModule(b)
	defer m.Close()
	fd, err := m.LoadSchedCLS("tc_ingress")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("AttachTC", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := m.AttachTC(n.dev, fd, TCIngress); err != nil {
				b.Fatal(err)
			}
			if err := m.DetachTC(n.dev, fd, TCIngress); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AttachTCX", func(b *testing.B) {
		if !kernelAtLeast(6, 6) {
			b.Skip("kernel before 6.6 lacks TCX links")
		}
		for i := 0; i < b.N; i++ {
			if err := m.AttachTCX(n.dev, fd, TCIngress); err != nil {
				b.Fatal(err)
			}
			if err := m.DetachTCX(n.dev, fd, TCIngress); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tc-cli-reference", func(b *testing.B) {
		pin := filepath.Join("/sys/fs/bpf", fmt.Sprintf("gobpf-bench-%d", os.Getpid()))
		if err := bpfsys.ObjPin(fd, pin); err != nil {
			b.Skip("cannot pin to /sys/fs/bpf:", err)
		}
		defer os.Remove(pin)
		testutil.Run(b, "tc", "qdisc", "add", "dev", n.dev, "clsact")
		defer exec.Command("tc", "qdisc", "del", "dev", n.dev, "clsact").Run()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			testutil.Run(b, "tc", "filter", "add", "dev", n.dev, "ingress", "bpf", "da", "object-pinned", pin)
			testutil.Run(b, "tc", "filter", "del", "dev", n.dev, "ingress")
		}
	})
}
