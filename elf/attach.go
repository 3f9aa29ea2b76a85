package elf

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/netlink"
)

// lock locks p's module and checks that p is still loaded. On success the
// caller must unlock p.mod.mu.
func (p *CgroupProgram) lock() error {
	if p == nil {
		return fmt.Errorf("elf: nil cgroup program: %w", ErrNotFound)
	}
	p.mod.mu.Lock()
	if p.fd < 0 {
		p.mod.mu.Unlock()
		return fmt.Errorf("elf: cgroup program %q: %w", p.Name, ErrClosed)
	}
	return nil
}

// openCgroup opens the cgroup (v2) directory path.
func openCgroup(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("elf: error opening cgroup %q: %w", path, err)
	}
	return fd, nil
}

// AttachCgroupProgram attaches a cgroup program to the cgroup (v2)
// directory cgroupPath. The module's Close detaches it.
func AttachCgroupProgram(cgroupProg *CgroupProgram, cgroupPath string, attachType AttachType) error {
	if err := cgroupProg.lock(); err != nil {
		return err
	}
	defer cgroupProg.mod.mu.Unlock()
	path := filepath.Clean(cgroupPath)
	for _, a := range cgroupProg.attachs {
		if a.path == path && a.typ == attachType {
			return fmt.Errorf("elf: %q is already attached to cgroup %q", cgroupProg.Name, path)
		}
	}
	fd, err := openCgroup(path)
	if err != nil {
		return err
	}
	if err := bpfsys.ProgAttach(fd, cgroupProg.fd, bpfsys.AttachType(attachType), 0); err != nil {
		unix.Close(fd)
		return fmt.Errorf("elf: failed to attach %q to cgroup %q: %w", cgroupProg.Name, path, err)
	}
	cgroupProg.attachs = append(cgroupProg.attachs, cgroupAttachment{path: path, fd: fd, typ: attachType})
	return nil
}

// AttachCgroupProgramFromFd attaches the program progFd to a cgroup. The
// attachment is not tracked: detach it with bpf(BPF_PROG_DETACH) yourself.
func AttachCgroupProgramFromFd(progFd int, cgroupPath string, attachType AttachType) error {
	fd, err := openCgroup(cgroupPath)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := bpfsys.ProgAttach(fd, progFd, bpfsys.AttachType(attachType), 0); err != nil {
		return fmt.Errorf("elf: failed to attach prog to cgroup %q: %w", cgroupPath, err)
	}
	return nil
}

// DetachCgroupProgram detaches a cgroup program from cgroupPath.
func DetachCgroupProgram(cgroupProg *CgroupProgram, cgroupPath string, attachType AttachType) error {
	if err := cgroupProg.lock(); err != nil {
		return err
	}
	defer cgroupProg.mod.mu.Unlock()
	path := filepath.Clean(cgroupPath)
	fd, err := openCgroup(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := bpfsys.ProgDetach(fd, cgroupProg.fd, bpfsys.AttachType(attachType)); err != nil {
		return fmt.Errorf("elf: failed to detach %q from cgroup %q: %w", cgroupProg.Name, path, err)
	}
	kept := cgroupProg.attachs[:0]
	for _, a := range cgroupProg.attachs {
		if a.path == path && a.typ == attachType {
			unix.Close(a.fd)
			continue
		}
		kept = append(kept, a)
	}
	cgroupProg.attachs = kept
	return nil
}

func (p *CgroupProgram) detachAll() error {
	var errs []error
	for _, a := range p.attachs {
		if err := bpfsys.ProgDetach(a.fd, p.fd, bpfsys.AttachType(a.typ)); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("elf: detaching %q from cgroup %q: %w", p.Name, a.path, err))
		}
		unix.Close(a.fd)
	}
	p.attachs = nil
	return errors.Join(errs...)
}

// AttachSocketFilter attaches a socket filter to socket sockFd
// (SO_ATTACH_BPF). The socket keeps the program until it is closed or
// DetachSocketFilter is called; the module's Close does not detach it.
func AttachSocketFilter(socketFilter *SocketFilter, sockFd int) error {
	if socketFilter == nil {
		return fmt.Errorf("elf: nil socket filter: %w", ErrNotFound)
	}
	if socketFilter.fd < 0 {
		return fmt.Errorf("elf: socket filter %q: %w", socketFilter.Name, ErrClosed)
	}
	if err := unix.SetsockoptInt(sockFd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, socketFilter.fd); err != nil {
		return fmt.Errorf("elf: error attaching BPF socket filter: %w", err)
	}
	return nil
}

// DetachSocketFilter removes the BPF filter of socket sockFd.
func DetachSocketFilter(socketFilter *SocketFilter, sockFd int) error {
	if err := unix.SetsockoptInt(sockFd, unix.SOL_SOCKET, unix.SO_DETACH_BPF, 0); err != nil {
		return fmt.Errorf("elf: error detaching BPF socket filter: %w", err)
	}
	return nil
}

// XDP attach flags (IFLA_XDP_FLAGS).
const (
	XDPFlagsUpdateIfNoExist = unix.XDP_FLAGS_UPDATE_IF_NOEXIST
	XDPFlagsSKBMode         = unix.XDP_FLAGS_SKB_MODE
	XDPFlagsDrvMode         = unix.XDP_FLAGS_DRV_MODE
	XDPFlagsHWMode          = unix.XDP_FLAGS_HW_MODE
)

// Attach attaches the XDP program to network device devName (in the
// calling thread's network namespace), letting the kernel pick the mode.
// The module's Close detaches it.
func (xdpp *XDPProgram) Attach(devName string) error {
	return xdpp.AttachWithFlags(devName, 0)
}

// AttachWithFlags is Attach with XDP flags (XDPFlagsSKBMode, ...).
func (xdpp *XDPProgram) AttachWithFlags(devName string, flags uint32) error {
	b := xdpp.mod
	b.mu.Lock()
	defer b.mu.Unlock()
	if xdpp.fd < 0 {
		return fmt.Errorf("elf: XDP program %q: %w", xdpp.Name, ErrClosed)
	}
	if err := setXDP(devName, xdpp.fd, flags); err != nil {
		return fmt.Errorf("elf: failed to attach BPF xdp %q to device %s: %w", xdpp.Name, devName, err)
	}
	xdpp.attachs[devName] = flags
	return nil
}

// Detach detaches the XDP program from every device it was attached to.
func (xdpp *XDPProgram) Detach() error {
	b := xdpp.mod
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(xdpp.attachs) == 0 {
		return fmt.Errorf("elf: XDP program %q isn't attached", xdpp.Name)
	}
	return xdpp.detachAll()
}

func (xdpp *XDPProgram) detachAll() error {
	var errs []error
	for _, dev := range sortedKeys(xdpp.attachs) {
		flags := xdpp.attachs[dev] &^ XDPFlagsUpdateIfNoExist
		if err := setXDP(dev, -1, flags); err != nil {
			errs = append(errs, fmt.Errorf("elf: failed to remove BPF xdp %q from device %s: %w", xdpp.Name, dev, err))
		}
		delete(xdpp.attachs, dev)
	}
	return errors.Join(errs...)
}

// AttachXDP attaches the XDP program of section secName to devName.
func (b *Module) AttachXDP(devName string, secName string) error {
	return b.AttachXDPWithFlags(devName, secName, 0)
}

// AttachXDPWithFlags attaches an xdp section to a device with flags.
func (b *Module) AttachXDPWithFlags(devName string, secName string, flags uint32) error {
	p, ok := b.xdpPrograms[secName]
	if !ok {
		return fmt.Errorf("elf: no such XDP hook %q: %w", secName, ErrNotFound)
	}
	return p.AttachWithFlags(devName, flags)
}

// RemoveXDP removes the XDP program attached to devName (whichever it is).
func (b *Module) RemoveXDP(devName string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var flags uint32
	for _, p := range b.xdpPrograms {
		if f, ok := p.attachs[devName]; ok {
			flags = f &^ XDPFlagsUpdateIfNoExist
			delete(p.attachs, devName)
		}
	}
	if err := setXDP(devName, -1, flags); err != nil {
		return fmt.Errorf("elf: failed to remove BPF xdp from device %s: %w", devName, err)
	}
	return nil
}

// setXDP sets (fd >= 0) or clears (fd -1) the XDP program of a device with
// an RTM_SETLINK netlink request carrying IFLA_XDP{IFLA_XDP_FD, IFLA_XDP_FLAGS}.
func setXDP(devName string, fd int, flags uint32) error {
	ifc, err := net.InterfaceByName(devName)
	if err != nil {
		return err
	}
	return setXDPIndex(ifc.Index, fd, flags)
}

func setXDPIndex(ifindex, fd int, flags uint32) error {
	return netlink.SetXDP(ifindex, fd, flags)
}
