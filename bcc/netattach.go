package bcc

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// netAttachment is one tc, TCX, cgroup, socket map or socket filter
// attachment of a module: key identifies it for its Detach method, undo
// removes it.
type netAttachment struct {
	key  any
	undo func() error
}

// netAttachments are a module's live network and cgroup attachments.
type netAttachments struct {
	list   []*netAttachment
	clsact map[int]bool // ifindexes of the clsact qdiscs this module added
}

// nets returns the module's attachment list, creating it (and its undo at
// Close) on first use. m.mu is held.
func (m *Module) nets() *netAttachments {
	if m.net == nil {
		m.net = &netAttachments{}
		n := m.net
		m.detach = append(m.detach, func() error {
			var errs []error
			for i := len(n.list) - 1; i >= 0; i-- {
				errs = append(errs, n.list[i].undo())
			}
			n.list = nil
			return errors.Join(errs...)
		})
	}
	return m.net
}

// addNet records an attachment; Close undoes what is still attached, in
// reverse order. m.mu is held.
func (m *Module) addNet(key any, undo func() error) {
	n := m.nets()
	n.list = append(n.list, &netAttachment{key: key, undo: undo})
}

// findNet reports whether an attachment with key is recorded. m.mu is held.
func (m *Module) findNet(key any) bool {
	if m.net == nil {
		return false
	}
	for _, a := range m.net.list {
		if a.key == key {
			return true
		}
	}
	return false
}

// removeNet undoes and forgets the attachment with key (the latest one
// when there are several), or returns an error wrapping ErrNotFound.
// m.mu is held.
func (m *Module) removeNet(what string, key any) error {
	if m.net != nil {
		for i := len(m.net.list) - 1; i >= 0; i-- {
			a := m.net.list[i]
			if a.key != key {
				continue
			}
			m.net.list = append(m.net.list[:i], m.net.list[i+1:]...)
			if err := a.undo(); err != nil {
				return fmt.Errorf("bcc: %s: %w", what, err)
			}
			return nil
		}
	}
	return fmt.Errorf("bcc: %s: not attached by this module: %w", what, ErrNotFound)
}

// dupFd duplicates fd (close-on-exec), so that an attachment can be undone
// through its own descriptor even after the caller closed or reused fd.
func dupFd(fd int) (int, error) {
	if fd < 0 {
		return -1, unix.EBADF
	}
	return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
}
