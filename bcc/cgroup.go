package bcc

import (
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
)

// cgroupKey identifies an AttachCgroup attachment for DetachCgroup.
type cgroupKey struct {
	path string
	fd   int
	typ  AttachType
}

// funcKey identifies an AttachFunc attachment for DetachFunc.
type funcKey struct {
	fd, target int
	typ        AttachType
}

// AttachCgroup attaches the program fd to the cgroup (v2) directory
// cgroupPath for attachType (BPF_CGROUP_INET_INGRESS ... see AttachType),
// with flags 0, BPF_F_ALLOW_OVERRIDE or BPF_F_ALLOW_MULTI as
// bpf(BPF_PROG_ATTACH) takes them. The program must have been loaded for
// that hook (LoadCgroupSkb, LoadCgroupSock, LoadCgroupSockAddr,
// LoadCgroupSockopt, LoadCgroupSysctl, LoadCgroupDevice, LoadSockops or
// LoadWithOptions). It then runs for the processes of the cgroup and of
// its descendants. DetachCgroup or Module.Close detaches it.
func (m *Module) AttachCgroup(cgroupPath string, fd int, attachType AttachType, flags uint32) error {
	what := fmt.Sprintf("attach %v program to cgroup %s", attachType, cgroupPath)
	if flags&^(BPF_F_ALLOW_OVERRIDE|BPF_F_ALLOW_MULTI) != 0 {
		return fmt.Errorf("bcc: %s: unknown flags %#x", what, flags)
	}
	cg, err := openCgroup(cgroupPath)
	if err != nil {
		return fmt.Errorf("bcc: %s: %w", what, err)
	}
	if err := m.begin(what); err != nil {
		unix.Close(cg)
		return err
	}
	defer m.mu.Unlock()
	return m.progAttach(what, cgroupKey{filepath.Clean(cgroupPath), fd, attachType}, cg, fd, attachType, flags)
}

// DetachCgroup detaches the program fd that AttachCgroup attached to
// cgroupPath for attachType.
func (m *Module) DetachCgroup(cgroupPath string, fd int, attachType AttachType) error {
	what := fmt.Sprintf("detach %v program from cgroup %s", attachType, cgroupPath)
	if err := m.begin(what); err != nil {
		return err
	}
	defer m.mu.Unlock()
	return m.removeNet(what, cgroupKey{filepath.Clean(cgroupPath), fd, attachType})
}

// AttachFunc attaches the program fd to the object attachableFd refers to
// (a cgroup directory, a sockmap or sockhash: Table.FD()) for attachType,
// with bpf(BPF_PROG_ATTACH), as bcc Python's attach_func does. The module
// keeps its own duplicate of attachableFd until DetachFunc or Close.
func (m *Module) AttachFunc(fd, attachableFd int, attachType AttachType, flags uint32) error {
	what := fmt.Sprintf("attach %v program to fd %d", attachType, attachableFd)
	if err := m.begin(what); err != nil {
		return err
	}
	defer m.mu.Unlock()
	target, err := dupFd(attachableFd)
	if err != nil {
		return fmt.Errorf("bcc: %s: %w", what, err)
	}
	return m.progAttach(what, funcKey{fd, attachableFd, attachType}, target, fd, attachType, flags)
}

// DetachFunc detaches the program fd that AttachFunc attached to
// attachableFd for attachType, as bcc Python's detach_func does.
func (m *Module) DetachFunc(fd, attachableFd int, attachType AttachType) error {
	what := fmt.Sprintf("detach %v program from fd %d", attachType, attachableFd)
	if err := m.begin(what); err != nil {
		return err
	}
	defer m.mu.Unlock()
	return m.removeNet(what, funcKey{fd, attachableFd, attachType})
}

// progAttach attaches prog to target (an fd the module owns from now on,
// closed here on failure) and records the attachment under key. m.mu is
// held.
func (m *Module) progAttach(what string, key any, target, prog int, typ AttachType, flags uint32) error {
	progDup, err := dupFd(prog)
	if err != nil {
		unix.Close(target)
		return fmt.Errorf("bcc: %s: program fd: %w", what, err)
	}
	if err := bpfsys.ProgAttach(target, progDup, bpfsys.AttachType(typ), flags); err != nil {
		unix.Close(target)
		unix.Close(progDup)
		if errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("bcc: %s: %w (was the program loaded for this attach type?)", what, err)
		}
		return fmt.Errorf("bcc: %s: %w", what, netErr(err))
	}
	m.addNet(key, func() error {
		err := bpfsys.ProgDetach(target, progDup, bpfsys.AttachType(typ))
		unix.Close(target)
		unix.Close(progDup)
		if errors.Is(err, unix.ENOENT) {
			return nil // gone with its cgroup
		}
		return err
	})
	return nil
}

// openCgroup opens a cgroup v2 directory, or returns an error wrapping
// ErrNotFound when there is none at path.
func openCgroup(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return -1, fmt.Errorf("no such cgroup directory: %w", ErrNotFound)
		}
		return -1, err
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		unix.Close(fd)
		return -1, errors.New("not a cgroup v2 directory")
	}
	return fd, nil
}
