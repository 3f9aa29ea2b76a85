package elf

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/netlink"
)

// Legacy tc attachment, for kernels without TCX links (before 6.6): a
// clsact qdisc on the device and a direct-action cls_bpf filter whose
// priority the kernel chooses, deleted again by Link.Close. The qdisc is
// left in place: other filters may use it.

// attachTCLegacy attaches progFd as a direct-action cls_bpf filter on
// ifindex (egress or ingress) and returns the function that removes it.
func attachTCLegacy(ifindex, progFd int, name string, egress bool) (func() error, error) {
	if _, err := netlink.AddClsact(ifindex); err != nil {
		return nil, fmt.Errorf("adding the clsact qdisc: %w", err)
	}
	parent := uint32(netlink.TCHClsact&0xFFFF0000 | netlink.TCHMinIngress)
	if egress {
		parent = netlink.TCHClsact&0xFFFF0000 | netlink.TCHMinEgress
	}
	f, err := netlink.AddBPFFilter(ifindex, parent, 0, 0, progFd, name)
	if err != nil {
		return nil, fmt.Errorf("adding the bpf filter: %w", err)
	}
	return func() error {
		err := netlink.DelFilter(f)
		if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
			return nil // the device or its qdisc is gone, and the filter with it
		}
		return err
	}, nil
}
