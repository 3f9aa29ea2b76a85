package bcc

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
)

// tcxKey identifies a TCX attachment for DetachTCX.
type tcxKey struct {
	dev string
	dir TCDirection
	fd  int
}

// AttachTCX attaches the BPF_PROG_TYPE_SCHED_CLS program fd to the ingress
// or egress hook of devName with a TCX link (Linux 6.6+; no qdisc is
// involved, and several programs may share a hook). The program's return
// value is the verdict (TCX_NEXT/TC_ACT_UNSPEC, TCX_PASS/TC_ACT_OK,
// TCX_DROP/TC_ACT_SHOT, TCX_REDIRECT). On older kernels the error wraps
// ErrNotSupported. DetachTCX or Module.Close closes the link.
func (m *Module) AttachTCX(devName string, fd int, dir TCDirection) error {
	what := fmt.Sprintf("attach TCX %s program to %s", dir, devName)
	if !dir.valid() {
		return fmt.Errorf("bcc: %s: invalid direction", what)
	}
	ifindex, err := deviceIndex(devName)
	if err != nil {
		return fmt.Errorf("bcc: %s: %w", what, err)
	}
	typ := BPF_TCX_INGRESS
	if dir == TCEgress {
		typ = BPF_TCX_EGRESS
	}
	if err := m.begin(what); err != nil {
		return err
	}
	defer m.mu.Unlock()
	link, err := bpfsys.LinkCreateTarget(fd, uint32(ifindex), bpfsys.AttachType(typ), 0)
	if err != nil {
		if errors.Is(err, unix.EINVAL) && !kernelAtLeast(6, 6) {
			return fmt.Errorf("bcc: %s: %v: kernel before 6.6 lacks TCX links: %w", what, err, ErrNotSupported)
		}
		return fmt.Errorf("bcc: %s: %w", what, netErr(err))
	}
	m.addNet(tcxKey{devName, dir, fd}, func() error { return unix.Close(link) })
	return nil
}

// DetachTCX removes the TCX link AttachTCX(devName, fd, dir) created.
func (m *Module) DetachTCX(devName string, fd int, dir TCDirection) error {
	what := fmt.Sprintf("detach TCX %s program from %s", dir, devName)
	if err := m.begin(what); err != nil {
		return err
	}
	defer m.mu.Unlock()
	return m.removeNet(what, tcxKey{devName, dir, fd})
}

// kernelAtLeast reports whether the running kernel's release is at least
// major.minor (true when uname cannot be parsed).
func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return true
	}
	var a, b int
	if n, _ := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &a, &b); n != 2 {
		return true
	}
	return a > major || a == major && b >= minor
}
