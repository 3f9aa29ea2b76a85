package bcc

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/netlink"
)

// TCDirection is the hook of a tc or TCX attachment: packets a device
// receives (ingress) or sends (egress).
type TCDirection int

// tc hooks.
const (
	TCIngress TCDirection = iota
	TCEgress
)

func (d TCDirection) String() string {
	switch d {
	case TCIngress:
		return "ingress"
	case TCEgress:
		return "egress"
	}
	return fmt.Sprintf("TCDirection(%d)", int(d))
}

func (d TCDirection) valid() bool { return d == TCIngress || d == TCEgress }

// tcKey identifies a tc filter attachment for DetachTC.
type tcKey struct {
	dev string
	dir TCDirection
	fd  int
}

// progName returns the function name behind the loaded fd, or "gobpf".
// m.mu is held.
func (m *Module) progName(fd int) string {
	for n, f := range m.funcs {
		if f == fd {
			return n
		}
	}
	return "gobpf"
}

// deviceIndex returns the ifindex of devName, or an error wrapping ErrNotFound.
func deviceIndex(devName string) (int, error) {
	if devName == "" {
		return 0, errors.New("empty device name")
	}
	ifc, err := net.InterfaceByName(devName)
	if err != nil {
		return 0, fmt.Errorf("no such device: %w", ErrNotFound)
	}
	return ifc.Index, nil
}

// AttachTC attaches the BPF_PROG_TYPE_SCHED_CLS program fd (LoadSchedCLS)
// to the ingress or egress hook of devName as a tc filter in direct-action
// mode (the program's return value is the verdict: TC_ACT_OK, TC_ACT_SHOT
// ...), adding a clsact qdisc to the device when it has none. This is
// `tc qdisc add dev DEV clsact; tc filter add dev DEV DIR bpf da fd FD`,
// done over netlink. DetachTC or Module.Close removes the filter, and the
// qdisc when this module added it and no filter is left on it.
func (m *Module) AttachTC(devName string, fd int, dir TCDirection) error {
	what := fmt.Sprintf("attach tc %s filter to %s", dir, devName)
	if !dir.valid() {
		return fmt.Errorf("bcc: %s: invalid direction", what)
	}
	ifindex, err := deviceIndex(devName)
	if err != nil {
		return fmt.Errorf("bcc: %s: %w", what, err)
	}
	if err := m.begin(what); err != nil {
		return err
	}
	defer m.mu.Unlock()
	created, err := netlink.AddClsact(ifindex)
	if err != nil {
		return fmt.Errorf("bcc: %s: adding clsact qdisc: %w", what, netErr(err))
	}
	parent := uint32(netlink.TCHClsact&0xFFFF0000 | netlink.TCHMinIngress)
	if dir == TCEgress {
		parent = netlink.TCHClsact&0xFFFF0000 | netlink.TCHMinEgress
	}
	f, err := netlink.AddBPFFilter(ifindex, parent, 0, 0, fd, m.progName(fd))
	if err != nil {
		if created {
			netlink.DelClsact(ifindex)
		}
		return fmt.Errorf("bcc: %s: %w", what, netErr(err))
	}
	nets := m.nets()
	if created {
		if nets.clsact == nil {
			nets.clsact = map[int]bool{}
		}
		nets.clsact[ifindex] = true
	}
	m.addNet(tcKey{devName, dir, fd}, func() error {
		err := netlink.DelFilter(f)
		if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) && !deviceExists(ifindex) {
			return nil // the device, or its qdisc, is gone with the filter
		}
		if err != nil {
			return err
		}
		if nets.clsact[ifindex] && !clsactHasFilters(ifindex) {
			delete(nets.clsact, ifindex)
			if err := netlink.DelClsact(ifindex); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
				return err
			}
		}
		return nil
	})
	return nil
}

// DetachTC removes the tc filter that AttachTC(devName, fd, dir) added.
func (m *Module) DetachTC(devName string, fd int, dir TCDirection) error {
	what := fmt.Sprintf("detach tc %s filter from %s", dir, devName)
	if err := m.begin(what); err != nil {
		return err
	}
	defer m.mu.Unlock()
	return m.removeNet(what, tcKey{devName, dir, fd})
}

// clsactHasFilters reports whether either clsact hook of ifindex has a
// filter (true when it cannot tell).
func clsactHasFilters(ifindex int) bool {
	for _, minor := range []uint32{netlink.TCHMinIngress, netlink.TCHMinEgress} {
		fs, err := netlink.Filters(ifindex, netlink.TCHClsact&0xFFFF0000|minor)
		if err != nil || len(fs) > 0 {
			return true
		}
	}
	return false
}

func deviceExists(ifindex int) bool {
	_, err := net.InterfaceByIndex(ifindex)
	return err == nil
}

// netErr classifies a netlink or bpf(2) errno.
func netErr(err error) error {
	switch {
	case errors.Is(err, unix.ENODEV):
		return fmt.Errorf("%w: %w", err, ErrNotFound)
	case errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("%w: %w", err, ErrNotSupported)
	}
	return err
}
