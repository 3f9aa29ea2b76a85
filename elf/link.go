package elf

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/pkg/bpffs"
)

// Links: every Attach* method of Program returns a *Link, one attachment
// that Close detaches. Where the kernel has bpf_link (BPF_LINK_CREATE,
// 5.7+: perf events, tracing, cgroups, XDP, iterators, TCX, sockmaps) the
// Link holds the link's fd and can be pinned to bpffs; on older kernels it
// falls back to the legacy attach (perf ioctl, BPF_PROG_ATTACH, netlink).

var (
	errEPERM    = unix.EPERM
	errEINVAL   = unix.EINVAL
	errENOTSUPP = unix.Errno(524) // the kernel's ENOTSUPP
)

// linkCreateAttr is the BPF_LINK_CREATE member of union bpf_attr.
type linkCreateAttr struct {
	ProgFd     uint32
	TargetFd   uint32 // or target_ifindex
	AttachType uint32
	Flags      uint32
	Extra      [4]uint64 // target_btf_id / iter_info / perf_event / tcx
}

func linkCreate(progFd, target int, typ bpfsys.AttachType, flags uint32) (int, error) {
	attr := linkCreateAttr{ProgFd: uint32(progFd), TargetFd: uint32(target), AttachType: uint32(typ), Flags: flags}
	return bpfsys.Syscall(bpfsys.BPF_LINK_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
}

// rawTPOpen is BPF_RAW_TRACEPOINT_OPEN; name "" passes NULL (tracing
// programs, whose target was set at load by its BTF id).
func rawTPOpen(name string, progFd int) (int, error) {
	var n []byte
	attr := struct {
		Name   unsafe.Pointer
		ProgFd uint32
		_      uint32
	}{ProgFd: uint32(progFd)}
	if name != "" {
		n = append([]byte(name), 0)
		attr.Name = unsafe.Pointer(&n[0])
	}
	fd, err := bpfsys.Syscall(bpfsys.BPF_RAW_TRACEPOINT_OPEN, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(n)
	return fd, err
}

// noLink reports errors that mean "this kernel has no bpf_link for that".
func noLink(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, errENOTSUPP) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.E2BIG)
}

// Link is one attachment of a program.
type Link struct {
	mod     *Module // nil for a link loaded from a pin
	prog    *Program
	fd      int  // bpf_link fd, perf event fd (legacy), or -1
	bpfLink bool // fd is a bpf_link
	what    string
	detach  func() error // legacy detach, run by Close
	pinned  string
}

// Fd returns the link's file descriptor (a bpf_link, or the perf event of
// a legacy attachment), -1 when it has none or is closed.
func (l *Link) Fd() int {
	if l.mod != nil {
		l.mod.mu.Lock()
		defer l.mod.mu.Unlock()
	}
	return l.fd
}

// IsBPFLink reports whether the attachment is a kernel bpf_link (which
// can be pinned).
func (l *Link) IsBPFLink() bool { return l.bpfLink }

// String describes the attachment.
func (l *Link) String() string { return l.what }

// Close detaches this attachment (a pinned bpf_link stays attached until
// its pin is removed too). Close is idempotent.
func (l *Link) Close() error {
	if l.mod == nil {
		return l.closeLocked()
	}
	l.mod.mu.Lock()
	defer l.mod.mu.Unlock()
	return l.closeLocked()
}

func (l *Link) closeLocked() error {
	var errs []error
	if l.detach != nil {
		errs = append(errs, l.detach())
		l.detach = nil
	}
	errs = append(errs, closeFD(&l.fd))
	if l.mod != nil {
		delete(l.mod.x.links, l)
	}
	return errors.Join(errs...)
}

// Pin pins a bpf_link at path (below /sys/fs/bpf): it then stays attached
// after Close and after the process exits, until Unpin.
func (l *Link) Pin(path string) error {
	if l.mod != nil {
		l.mod.mu.Lock()
		defer l.mod.mu.Unlock()
	}
	if l.fd < 0 {
		return fmt.Errorf("elf: pin link: %w", ErrClosed)
	}
	if !l.bpfLink {
		return fmt.Errorf("elf: pin %s: a legacy attachment is no bpf_link: %w", l.what, ErrNotSupported)
	}
	if !validPinPath(path) {
		return fmt.Errorf("elf: pin %s: invalid path %q (must be below %s)", l.what, path, BPFFSPath)
	}
	if err := bpffs.Mount(); err != nil {
		return fmt.Errorf("elf: pin %s: %w", l.what, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("elf: pin %s: %w", l.what, err)
	}
	if err := bpfsys.ObjPin(l.fd, path); err != nil {
		return fmt.Errorf("elf: pin %s at %s: %w", l.what, path, err)
	}
	l.pinned = path
	return nil
}

// Unpin removes the link's pin.
func (l *Link) Unpin() error {
	if l.pinned == "" {
		return fmt.Errorf("elf: unpin %s: not pinned", l.what)
	}
	if err := os.Remove(l.pinned); err != nil {
		return fmt.Errorf("elf: unpin %s: %w", l.what, err)
	}
	l.pinned = ""
	return nil
}

// LoadPinnedLink opens the bpf_link pinned at path. Closing it does not
// detach the program; Unpin (or removing the file) and Close do.
func LoadPinnedLink(path string) (*Link, error) {
	fd, err := bpfsys.ObjGet(path)
	if err != nil {
		return nil, fmt.Errorf("elf: pinned link %s: %w", path, err)
	}
	info, err := GetLinkInfo(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("elf: pinned %s is not a bpf_link: %w", path, err)
	}
	return &Link{fd: fd, bpfLink: true, pinned: path, what: fmt.Sprintf("link %d (type %d) from %s", info.ID, info.Type, path)}, nil
}

// LinkInfo is the start of struct bpf_link_info.
type LinkInfo struct {
	Type   uint32 // enum bpf_link_type
	ID     uint32
	ProgID uint32
}

// GetLinkInfo returns what the kernel says about bpf_link fd.
func GetLinkInfo(fd int) (LinkInfo, error) {
	var buf [64]byte
	attr := struct {
		Fd      uint32
		InfoLen uint32
		Info    unsafe.Pointer
	}{Fd: uint32(fd), InfoLen: uint32(len(buf)), Info: unsafe.Pointer(&buf[0])}
	_, err := bpfsys.Syscall(bpfsys.BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(&buf)
	if err != nil {
		return LinkInfo{}, err
	}
	li := (*LinkInfo)(unsafe.Pointer(&buf[0]))
	return *li, nil
}

// Info returns the kernel's view of a bpf_link.
func (l *Link) Info() (LinkInfo, error) {
	if l.mod != nil {
		l.mod.mu.Lock()
		defer l.mod.mu.Unlock()
	}
	if l.fd < 0 || !l.bpfLink {
		return LinkInfo{}, fmt.Errorf("elf: link info of %s: %w", l.what, ErrNotSupported)
	}
	return GetLinkInfo(l.fd)
}

// lock locks the module and returns the program's fd.
func (p *Program) lock() (int, error) {
	p.mod.mu.Lock()
	if p.mod.closed || *p.fdp < 0 {
		p.mod.mu.Unlock()
		return -1, fmt.Errorf("elf: program %q: %w", p.Section, ErrClosed)
	}
	return *p.fdp, nil
}

func (p *Program) newLink(fd int, bpfLink bool, what string, detach func() error) *Link {
	l := &Link{mod: p.mod, prog: p, fd: fd, bpfLink: bpfLink, what: p.Section + " " + what, detach: detach}
	p.mod.x.links[l] = struct{}{}
	return l
}

func (p *Program) wrongKind(op string) error {
	return fmt.Errorf("elf: %s: program %q (section family %q) cannot be attached that way", op, p.Section, p.family())
}

func (p *Program) family() string {
	if p.info.def != nil {
		return p.info.def.name
	}
	return p.Section
}

// Attach attaches a program whose section names its target: tp/ and
// tracepoint/ (CATEGORY/NAME), raw_tp/ and raw_tracepoint/, tp_btf/,
// fentry/, fexit/, fmod_ret/, lsm/, iter/, kprobe/ and kretprobe/
// (FUNCTION[+OFFSET]), ksyscall/ and kretsyscall/ (SYSCALL), uprobe/ and
// uretprobe/ (BINARY:FUNCTION[+OFFSET]).
func (p *Program) Attach() (*Link, error) {
	switch p.info.kind {
	case attachKindTracepoint:
		return p.AttachTracepoint(p.info.target)
	case attachKindRawTracepoint:
		return p.AttachRawTracepoint(p.info.target)
	case attachKindTracing, attachKindIter:
		return p.attachTracing()
	case attachKindKprobe:
		return p.AttachKprobe(p.info.target)
	case attachKindKsyscall:
		fn, err := GetSyscallFnName(p.info.target)
		if err != nil {
			return nil, fmt.Errorf("elf: ksyscall %q: %w", p.info.target, err)
		}
		return p.AttachKprobe(fn)
	case attachKindUprobe:
		bin, sym, ok := strings.Cut(p.info.target, ":")
		if !ok {
			return nil, fmt.Errorf("elf: uprobe section %q does not name BINARY:FUNCTION; use AttachUprobe", p.Section)
		}
		return p.AttachUprobe(bin, sym, -1)
	case attachKindUSDT:
		return nil, fmt.Errorf("elf: usdt program %q: attaching USDT probes: %w", p.Section, ErrNotSupported)
	}
	return nil, p.wrongKind("Attach")
}

// AttachTracepoint attaches a tracepoint program to tracefs event
// "CATEGORY/NAME" through a perf link.
func (p *Program) AttachTracepoint(event string) (*Link, error) {
	if p.info.kind != attachKindTracepoint {
		return nil, p.wrongKind("AttachTracepoint")
	}
	cat, name, ok := strings.Cut(event, "/")
	if !ok || cat == "" || name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("elf: tracepoint %q: want CATEGORY/NAME", event)
	}
	root, err := tracefsRoot()
	if err != nil {
		return nil, fmt.Errorf("elf: %w", err)
	}
	id, err := tracepointID(root, cat, name)
	if err != nil {
		return nil, fmt.Errorf("elf: %w", err)
	}
	return p.attachPerf("tracepoint "+event, func() (int, error) {
		return perfEventOpen(unix.PERF_TYPE_TRACEPOINT, id, "", 0, -1)
	})
}

// AttachKprobe attaches a kprobe/kretprobe program to kernel function fn
// (FUNCTION or FUNCTION+OFFSET) through the kprobe PMU and a perf link.
// On a kernel without kprobes the error wraps ErrNotSupported.
func (p *Program) AttachKprobe(fn string) (*Link, error) {
	if p.info.kind != attachKindKprobe && p.info.kind != attachKindKsyscall {
		return nil, p.wrongKind("AttachKprobe")
	}
	if _, _, err := kprobeSupport(); err != nil {
		return nil, fmt.Errorf("elf: kprobe %s: %w", fn, err)
	}
	sym, off, err := splitOffset(fn)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(pmuDir, "kprobe")); err != nil {
		return nil, fmt.Errorf("elf: kprobe %s: no kprobe PMU: %w", fn, ErrNotSupported)
	}
	return p.attachPerf("kprobe "+fn, func() (int, error) {
		return pmuProbe("kprobe", p.info.ret, sym, off, -1)
	})
}

// AttachUprobe attaches a uprobe/uretprobe program to function symbol
// (SYMBOL or SYMBOL+OFFSET) of the executable or library binary (a path, or
// a name looked up in $PATH and the usual library folders), for process
// pid (-1: every process). The symbol's file offset is read from the
// binary's ELF symbols.
func (p *Program) AttachUprobe(binary, symbol string, pid int) (*Link, error) {
	if p.info.kind != attachKindUprobe {
		return nil, p.wrongKind("AttachUprobe")
	}
	path, err := findBinary(binary)
	if err != nil {
		return nil, err
	}
	off, err := symbolOffset(path, symbol)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(pmuDir, "uprobe")); err != nil {
		return nil, fmt.Errorf("elf: uprobe %s:%s: no uprobe PMU: %w", path, symbol, ErrNotSupported)
	}
	return p.attachPerf(fmt.Sprintf("uprobe %s:%s", path, symbol), func() (int, error) {
		return pmuProbe("uprobe", p.info.ret, path, off, pid)
	})
}

// AttachPerfEvent attaches a perf_event program to the perf event efd
// (which the caller opened and keeps owning).
func (p *Program) AttachPerfEvent(efd int) (*Link, error) {
	if p.info.kind != attachKindPerfEvent {
		return nil, p.wrongKind("AttachPerfEvent")
	}
	dup, err := unix.FcntlInt(uintptr(efd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("elf: perf event fd %d: %w", efd, err)
	}
	return p.attachPerf(fmt.Sprintf("perf event %d", efd), func() (int, error) { return dup, nil })
}

// attachPerf opens a perf event and attaches the program to it with a
// perf link (5.15+), or PERF_EVENT_IOC_SET_BPF on older kernels.
func (p *Program) attachPerf(what string, open func() (int, error)) (*Link, error) {
	pfd, err := p.lock()
	if err != nil {
		return nil, err
	}
	defer p.mod.mu.Unlock()
	efd, err := open()
	if err != nil {
		return nil, fmt.Errorf("elf: attach %s to %s: %w", p.Section, what, err)
	}
	lfd, err := linkCreate(pfd, efd, attachTypePerfEvent, 0)
	if err == nil {
		unix.Close(efd) // the link holds the event
		return p.newLink(lfd, true, what, nil), nil
	}
	if !noLink(err) {
		unix.Close(efd)
		return nil, fmt.Errorf("elf: attach %s to %s: %w", p.Section, what, err)
	}
	if err := attachPerfEvent(efd, pfd); err != nil {
		unix.Close(efd)
		return nil, fmt.Errorf("elf: attach %s to %s: %w", p.Section, what, err)
	}
	return p.newLink(efd, false, what, nil), nil
}

// AttachRawTracepoint attaches a raw tracepoint program to raw tracepoint
// name (a bpf_link on 5.7+).
func (p *Program) AttachRawTracepoint(name string) (*Link, error) {
	if p.info.kind != attachKindRawTracepoint {
		return nil, p.wrongKind("AttachRawTracepoint")
	}
	pfd, err := p.lock()
	if err != nil {
		return nil, err
	}
	defer p.mod.mu.Unlock()
	fd, err := rawTPOpen(name, pfd)
	if err != nil {
		return nil, fmt.Errorf("elf: attach %s to raw tracepoint %s: %w", p.Section, name, err)
	}
	_, ierr := GetLinkInfo(fd)
	return p.newLink(fd, ierr == nil, "raw tracepoint "+name, nil), nil
}

func (p *Program) attachTracing() (*Link, error) {
	pfd, err := p.lock()
	if err != nil {
		return nil, err
	}
	defer p.mod.mu.Unlock()
	what := p.family() + " " + p.info.target
	fd, err := linkCreate(pfd, 0, p.info.attach, 0)
	if err != nil && noLink(err) && p.info.kind != attachKindIter {
		fd, err = rawTPOpen("", pfd)
	}
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			err = fmt.Errorf("%w (%w)", err, ErrNotSupported)
		}
		return nil, fmt.Errorf("elf: attach %s: %w", what, err)
	}
	return p.newLink(fd, true, what, nil), nil
}

// OpenIter starts one pass of an iterator link (iter/ programs): read the
// returned file to the end for the program's output, then close it.
func (l *Link) OpenIter() (*os.File, error) {
	if l.mod != nil {
		l.mod.mu.Lock()
		defer l.mod.mu.Unlock()
	}
	if l.fd < 0 {
		return nil, fmt.Errorf("elf: iterator: %w", ErrClosed)
	}
	attr := struct{ LinkFd, Flags uint32 }{LinkFd: uint32(l.fd)}
	fd, err := bpfsys.Syscall(bpfsys.BPF_ITER_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return nil, fmt.Errorf("elf: iterator %s: %w", l.what, err)
	}
	return os.NewFile(uintptr(fd), "bpf_iter"), nil
}

// AttachInterface attaches an xdp or tc/tcx program to network device
// ifname (in the calling thread's network namespace): XDP through an XDP
// link (netlink on old kernels), tc through a TCX link (6.6+; before, a
// direct-action cls_bpf filter under a clsact qdisc). tcx/egress and
// tc/egress sections attach on egress, the others on ingress.
func (p *Program) AttachInterface(ifname string) (*Link, error) {
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("elf: interface %q: %w", ifname, err)
	}
	switch p.info.kind {
	case attachKindXDP:
		pfd, err := p.lock()
		if err != nil {
			return nil, err
		}
		defer p.mod.mu.Unlock()
		fd, err := linkCreate(pfd, ifc.Index, attachXDP, 0)
		if err == nil {
			return p.newLink(fd, true, "xdp "+ifname, nil), nil
		}
		if !noLink(err) {
			return nil, fmt.Errorf("elf: attach %s to %s: %w", p.Section, ifname, err)
		}
		if err := setXDPIndex(ifc.Index, pfd, XDPFlagsUpdateIfNoExist); err != nil {
			return nil, fmt.Errorf("elf: attach %s to %s: %w", p.Section, ifname, err)
		}
		idx := ifc.Index
		return p.newLink(-1, false, "xdp "+ifname, func() error { return setXDPIndex(idx, -1, 0) }), nil
	case attachKindTC:
		typ := p.info.attach
		if typ == 0 {
			typ = attachTCXIngress
		}
		pfd, err := p.lock()
		if err != nil {
			return nil, err
		}
		defer p.mod.mu.Unlock()
		fd, err := linkCreate(pfd, ifc.Index, typ, 0)
		if err == nil {
			return p.newLink(fd, true, "tcx "+ifname, nil), nil
		}
		if !noLink(err) {
			return nil, fmt.Errorf("elf: attach %s to %s: %w", p.Section, ifname, err)
		}
		// No TCX (before 6.6): a cls_bpf filter under clsact.
		detach, lerr := attachTCLegacy(ifc.Index, pfd, p.FuncName, typ == attachTCXEgress)
		if lerr != nil {
			return nil, fmt.Errorf("elf: attach %s to %s: no TCX (%v), and tc: %w", p.Section, ifname, err, lerr)
		}
		return p.newLink(-1, false, "tc "+ifname, detach), nil
	}
	return nil, p.wrongKind("AttachInterface")
}

// AttachCgroup attaches a cgroup program (cgroup_skb/, cgroup/..., sockops)
// to the cgroup v2 directory path, with its expected attach type: a cgroup
// link, or BPF_PROG_ATTACH with BPF_F_ALLOW_MULTI on kernels before 5.7.
func (p *Program) AttachCgroup(path string) (*Link, error) {
	if p.info.kind != attachKindCgroup {
		return nil, p.wrongKind("AttachCgroup")
	}
	typ := p.info.attach
	if p.info.def == nil && p.info.typ == bpfsys.BPF_PROG_TYPE_CGROUP_SKB {
		return nil, fmt.Errorf("elf: %q does not say ingress or egress; use AttachCgroupProgram or a cgroup_skb/ingress|egress section", p.Section)
	}
	pfd, err := p.lock()
	if err != nil {
		return nil, err
	}
	defer p.mod.mu.Unlock()
	cfd, err := openCgroup(path)
	if err != nil {
		return nil, err
	}
	fd, err := linkCreate(pfd, cfd, typ, 0)
	if err == nil {
		unix.Close(cfd)
		return p.newLink(fd, true, "cgroup "+path, nil), nil
	}
	if !noLink(err) {
		unix.Close(cfd)
		return nil, fmt.Errorf("elf: attach %s to cgroup %s: %w", p.Section, path, err)
	}
	if err := bpfsys.ProgAttach(cfd, pfd, typ, bpfsys.BPF_F_ALLOW_MULTI); err != nil {
		unix.Close(cfd)
		return nil, fmt.Errorf("elf: attach %s to cgroup %s: %w", p.Section, path, err)
	}
	return p.newLink(cfd, false, "cgroup "+path, func() error { return bpfsys.ProgDetach(cfd, pfd, typ) }), nil
}

// AttachSocket attaches a socket filter to socket fd (SO_ATTACH_BPF); Close
// detaches it (SO_DETACH_BPF). The link holds a duplicate of the socket fd
// until then.
func (p *Program) AttachSocket(sockFd int) (*Link, error) {
	if p.info.kind != attachKindSocket {
		return nil, p.wrongKind("AttachSocket")
	}
	pfd, err := p.lock()
	if err != nil {
		return nil, err
	}
	defer p.mod.mu.Unlock()
	// The link keeps its own reference to the socket, so that detaching
	// never hits another socket that reused the caller's fd number.
	dup, err := unix.FcntlInt(uintptr(sockFd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("elf: attach %s to socket %d: %w", p.Section, sockFd, err)
	}
	if err := unix.SetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, pfd); err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("elf: attach %s to socket %d: %w", p.Section, sockFd, err)
	}
	return p.newLink(dup, false, fmt.Sprintf("socket %d", sockFd), func() error {
		err := unix.SetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_DETACH_BPF, 0)
		if errors.Is(err, unix.ENOENT) {
			return nil // already detached
		}
		return err
	}), nil
}

// AttachMap attaches an sk_msg or sk_skb program to a sockmap or sockhash
// of the module: a sockmap link (6.10+) or BPF_PROG_ATTACH.
func (p *Program) AttachMap(m *Map) (*Link, error) {
	if p.info.kind != attachKindSockMap {
		return nil, p.wrongKind("AttachMap")
	}
	pfd, err := p.lock()
	if err != nil {
		return nil, err
	}
	defer p.mod.mu.Unlock()
	if m == nil || m.fd < 0 {
		return nil, fmt.Errorf("elf: attach %s: map: %w", p.Section, ErrClosed)
	}
	mfd, typ := m.fd, p.info.attach
	fd, err := linkCreate(pfd, mfd, typ, 0)
	if err == nil {
		return p.newLink(fd, true, "map "+m.Name, nil), nil
	}
	if !noLink(err) {
		return nil, fmt.Errorf("elf: attach %s to map %s: %w", p.Section, m.Name, err)
	}
	if err := bpfsys.ProgAttach(mfd, pfd, typ, 0); err != nil {
		return nil, fmt.Errorf("elf: attach %s to map %s: %w", p.Section, m.Name, err)
	}
	return p.newLink(-1, false, "map "+m.Name, func() error {
		if m.fd < 0 {
			return nil // the map is closed: the attachment went with it
		}
		return bpfsys.ProgDetach(mfd, pfd, typ)
	}), nil
}
