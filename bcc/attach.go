package bcc

/*
#cgo LDFLAGS: -lbcc
#include <stdlib.h>
#include <bcc/libbpf.h>
#include <bcc/bcc_proc.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/netlink"
	"github.com/iovisor/gobpf/internal/probeevent"
	"github.com/iovisor/gobpf/pkg/cpuonline"
	"github.com/iovisor/gobpf/pkg/ksym"
)

// XDP attach flags (XDP_FLAGS_* of include/uapi/linux/if_link.h).
const (
	XDP_FLAGS_UPDATE_IF_NOEXIST = uint32(1) << iota
	XDP_FLAGS_SKB_MODE
	XDP_FLAGS_DRV_MODE
	XDP_FLAGS_HW_MODE
	XDP_FLAGS_MODES = XDP_FLAGS_SKB_MODE | XDP_FLAGS_DRV_MODE | XDP_FLAGS_HW_MODE
	XDP_FLAGS_MASK  = XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_MODES
)

// Perf event types (enum perf_type_id), for AttachPerfEvent's evType.
const (
	PERF_TYPE_HARDWARE = iota
	PERF_TYPE_SOFTWARE
	PERF_TYPE_TRACEPOINT
	PERF_TYPE_HW_CACHE
	PERF_TYPE_RAW
	PERF_TYPE_BREAKPOINT
)

// Hardware events (enum perf_hw_id), evConfig of PERF_TYPE_HARDWARE.
const (
	PERF_COUNT_HW_CPU_CYCLES = iota
	PERF_COUNT_HW_INSTRUCTIONS
	PERF_COUNT_HW_CACHE_REFERENCES
	PERF_COUNT_HW_CACHE_MISSES
	PERF_COUNT_HW_BRANCH_INSTRUCTIONS
	PERF_COUNT_HW_BRANCH_MISSES
	PERF_COUNT_HW_BUS_CYCLES
	PERF_COUNT_HW_STALLED_CYCLES_FRONTEND
	PERF_COUNT_HW_STALLED_CYCLES_BACKEND
	PERF_COUNT_HW_REF_CPU_CYCLES
)

// Software events (enum perf_sw_ids), evConfig of PERF_TYPE_SOFTWARE.
const (
	PERF_COUNT_SW_CPU_CLOCK = iota
	PERF_COUNT_SW_TASK_CLOCK
	PERF_COUNT_SW_PAGE_FAULTS
	PERF_COUNT_SW_CONTEXT_SWITCHES
	PERF_COUNT_SW_CPU_MIGRATIONS
	PERF_COUNT_SW_PAGE_FAULTS_MIN
	PERF_COUNT_SW_PAGE_FAULTS_MAJ
	PERF_COUNT_SW_ALIGNMENT_FAULTS
	PERF_COUNT_SW_EMULATION_FAULTS
	PERF_COUNT_SW_DUMMY
)

// begin locks m and returns the libbcc module, or an error wrapping
// ErrClosed naming what was attempted. On success the caller must unlock.
func (m *Module) begin(what string) error {
	if m == nil {
		return errorf("%s: %w", what, ErrClosed)
	}
	m.mu.Lock()
	if _, err := m.ptr(); err != nil {
		m.mu.Unlock()
		return errorf("%s: %w", what, err)
	}
	return nil
}

// checkFd returns an error wrapping EINVAL when fd cannot be a file
// descriptor (negative, or beyond a C int, which would be truncated into
// another descriptor's number).
func checkFd(what string, fd int) error {
	if fd < 0 || fd > math.MaxInt32 {
		return errorf("%s: invalid file descriptor %d: %w", what, fd, unix.EINVAL)
	}
	return nil
}

// checkPid returns an error wrapping EINVAL when pid is neither -1 (every
// process) nor a process id.
func checkPid(what string, pid int) error {
	if pid < -1 || pid > math.MaxInt32 {
		return errorf("%s: invalid pid %d: %w", what, pid, unix.EINVAL)
	}
	return nil
}

// nextEventName returns a new probe event name: "gobpf_<nonce>_<kind>_
// <target>_<n>", unique in the process and, by its random nonce, among
// processes, whatever their pids (a restarted container's program is pid 1
// again). libbcc registers it in kprobe_events or uprobe_events whenever it
// cannot use the perf_kprobe/perf_uprobe PMU (and always for a kretprobe
// with maxActive), appending "_bcc_<pid>"; kernel event names are limited
// to 64 characters. Before the first such name is used in a process,
// entries this library left behind in dead processes are removed.
// file is "kprobe_events" or "uprobe_events".
func (m *Module) nextEventName(file string, kind byte, target string) string {
	if root := probeevent.Root(file); root != "" {
		probeevent.CleanStaleOnce(root, file)
	}
	return probeevent.Name(string(kind), target, probeevent.MaxNameLen-len("_bcc_")-7)
}

// errnoOf returns the errno of a failed cgo call, or fallback.
func errnoOf(err error, fallback unix.Errno) unix.Errno {
	var en unix.Errno
	if errors.As(err, &en) && en != 0 {
		return en
	}
	return fallback
}

// attachFailure builds the error of a failed libbcc attach call from its
// errno. (fd 2 is not captured around attach calls: what libbcc prints
// reaches stderr.)
func attachFailure(what string, errno unix.Errno) error {
	msg := fmt.Sprintf("bcc: %s: %v", what, errno)
	switch errno {
	case unix.ENOENT, unix.ENODEV, unix.ENXIO:
		return fmt.Errorf("%s: %w", msg, ErrNotFound)
	case unix.EOPNOTSUPP:
		return fmt.Errorf("%s: %w", msg, ErrNotSupported)
	}
	return errors.New(msg)
}

func (m *Module) attachProbe(kind byte, attachType int, fnName string, fd, maxActive int) error {
	what := "attach kprobe to " + fnName
	if attachType == BPF_PROBE_RETURN {
		what = "attach kretprobe to " + fnName
	}
	if m == nil {
		return errorf("%s: %w", what, ErrClosed)
	}
	if fnName == "" {
		return errorf("%s: empty function name", what)
	}
	if err := checkFd(what, fd); err != nil {
		return err
	}
	if maxActive > math.MaxInt32 || maxActive < math.MinInt32 {
		return errorf("%s: maxActive %d out of range: %w", what, maxActive, unix.EINVAL)
	}
	fn, off, err := splitKprobeTarget(fnName)
	if err != nil {
		return errorf("%s: %w", what, err)
	}
	if err := m.begin(what); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if !SupportsKprobes() {
		return errorf("%s: kernel lacks kprobes (CONFIG_KPROBES is not set): %w", what, ErrNotSupported)
	}
	cfn := C.CString(fn)
	defer C.free(unsafe.Pointer(cfn))
	var res C.int
	var cev *C.char
	for try := 0; try < 2; try++ {
		// A second try: another process's cleanup may have removed
		// the event between its registration and its opening.
		if cev != nil {
			C.free(unsafe.Pointer(cev))
		}
		cev = C.CString(m.nextEventName("kprobe_events", kind, fnName))
		release := probeevent.Hold(probeevent.Root("kprobe_events"), "kprobe_events")
		res, err = C.bpf_attach_kprobe(C.int(fd), uint32(attachType), cev, cfn, C.uint64_t(off), C.int(maxActive))
		release()
		if res >= 0 || !probeevent.Retry(err) {
			break
		}
	}
	if res < 0 {
		C.free(unsafe.Pointer(cev))
		en := errnoOf(err, unix.EINVAL)
		if en == unix.EINVAL && !kernelHasSymbol(fn) {
			en = unix.ENOENT
		}
		return kprobeAttachFailure(what, en, off)
	}
	pfd := res
	ak := attachKprobe
	if attachType == BPF_PROBE_RETURN {
		ak = attachKretprobe
	}
	m.addProbe(&attachment{kind: ak, target: kprobeTarget(fnName), progFd: fd, undo: func() error {
		C.bpf_close_perf_event_fd(pfd)
		C.bpf_detach_kprobe(cev)
		C.free(unsafe.Pointer(cev))
		return nil
	}})
	return nil
}

// kernelHasSymbol reports whether /proc/kallsyms lists name (true when it
// cannot be read). It re-reads the shared table: a module may have been
// loaded since.
func kernelHasSymbol(name string) bool {
	if err := ksym.Reload(); err != nil {
		return true
	}
	_, err := ksym.Lookup(name)
	return !errors.Is(err, ksym.ErrNotFound)
}

// AttachKprobe attaches the kprobe program fd to the entry of the kernel
// function fnName ("fn+off" probes at a byte offset into it, as
// AttachKprobeOffset). maxActive is ignored for entry probes. On a kernel
// without kprobes the error wraps ErrNotSupported; for an unknown
// function, ErrNotFound.
func (m *Module) AttachKprobe(fnName string, fd int, maxActive int) error {
	return m.attachProbe('p', BPF_PROBE_ENTRY, fnName, fd, maxActive)
}

// AttachKretprobe attaches the kprobe program fd to the return of the
// kernel function fnName; maxActive bounds the concurrently probed
// instances (0 for the kernel's default).
func (m *Module) AttachKretprobe(fnName string, fd int, maxActive int) error {
	return m.attachProbe('r', BPF_PROBE_RETURN, fnName, fd, maxActive)
}

// tracefsDirs are where tracefs may be mounted.
var tracefsDirs = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

// tracepointExists reports whether tracefs lists category:name; true when
// no tracefs is found (libbcc's attach then decides).
func tracepointExists(category, name string) bool {
	for _, d := range tracefsDirs {
		if _, err := os.Stat(filepath.Join(d, "events")); err != nil {
			continue
		}
		_, err := os.Stat(filepath.Join(d, "events", category, name, "id"))
		return err == nil
	}
	return true
}

// AttachTracepoint attaches the tracepoint program fd to the tracepoint
// name, given as "category:name" (e.g. "syscalls:sys_enter_getppid").
func (m *Module) AttachTracepoint(name string, fd int) error {
	what := "attach tracepoint " + name
	if m == nil {
		return errorf("%s: %w", what, ErrClosed)
	}
	if err := checkFd(what, fd); err != nil {
		return err
	}
	category, event, ok := strings.Cut(name, ":")
	if !ok || category == "" || event == "" || strings.ContainsAny(name, "/ ") || strings.Contains(event, ":") {
		return errorf("%s: want \"category:name\"", what)
	}
	if err := m.begin(what); err != nil {
		return err
	}
	defer m.mu.Unlock()
	return m.attachTracepointLocked(what, name, category, event, fd)
}

// attachTracepointLocked attaches fd to category:event. m.mu is held.
func (m *Module) attachTracepointLocked(what, name, category, event string, fd int) error {
	if !tracepointExists(category, event) {
		return errorf("%s: no such tracepoint: %w", what, ErrNotFound)
	}
	cc, ce := C.CString(category), C.CString(event)
	defer C.free(unsafe.Pointer(cc))
	defer C.free(unsafe.Pointer(ce))
	var res C.int
	var err error
	res, err = C.bpf_attach_tracepoint(C.int(fd), cc, ce)
	if res < 0 {
		return attachFailure(what, errnoOf(err, unix.EINVAL))
	}
	pfd := res
	m.addProbe(&attachment{kind: attachTracepoint, target: name, progFd: fd, undo: func() error {
		C.bpf_close_perf_event_fd(pfd)
		return nil
	}})
	return nil
}

// AttachRawTracepoint attaches the raw tracepoint program fd to the
// tracepoint name (no category, e.g. "sys_enter").
func (m *Module) AttachRawTracepoint(name string, fd int) error {
	what := "attach raw tracepoint " + name
	if m == nil {
		return errorf("%s: %w", what, ErrClosed)
	}
	if err := checkFd(what, fd); err != nil {
		return err
	}
	if name == "" {
		return errorf("%s: empty name", what)
	}
	if err := m.begin(what); err != nil {
		return err
	}
	defer m.mu.Unlock()
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	var res C.int
	var err error
	res, err = C.bpf_attach_raw_tracepoint(C.int(fd), cn)
	if res < 0 {
		return attachFailure(what, errnoOf(err, unix.EINVAL))
	}
	afd := int(res)
	m.addProbe(&attachment{kind: attachRawTracepoint, target: name, progFd: fd, undo: func() error { return unix.Close(afd) }})
	return nil
}

// AttachPerfEvent opens a perf event (evType one of PERF_TYPE_*, evConfig
// one of the PERF_COUNT_* of that type) sampling at sampleFreq Hz, or when
// that is 0 every samplePeriod events, for process pid (-1
// for all) on cpu (-1 for every online CPU), and attaches the perf event
// program fd to it.
func (m *Module) AttachPerfEvent(evType, evConfig int, samplePeriod int, sampleFreq int, pid, cpu, groupFd, fd int) error {
	what := fmt.Sprintf("attach perf event %d:%d", evType, evConfig)
	if m == nil {
		return errorf("%s: %w", what, ErrClosed)
	}
	if err := checkFd(what, fd); err != nil {
		return err
	}
	if err := checkPid(what, pid); err != nil {
		return err
	}
	if evType < 0 || evType > math.MaxUint32 || evConfig < 0 || evConfig > math.MaxUint32 {
		return errorf("%s: event type or config out of range: %w", what, unix.EINVAL)
	}
	if cpu < -1 || cpu > math.MaxInt32 || groupFd < -1 || groupFd > math.MaxInt32 {
		return errorf("%s: invalid cpu %d or group fd %d: %w", what, cpu, groupFd, unix.EINVAL)
	}
	if samplePeriod < 0 || sampleFreq < 0 || samplePeriod == 0 && sampleFreq == 0 {
		return errorf("%s: need a positive samplePeriod or sampleFreq", what)
	}
	var cpus []int
	if cpu >= 0 {
		cpus = []int{cpu}
	} else {
		online, err := cpuonline.Get()
		if err != nil {
			return errorf("%s: online CPUs: %w", what, err)
		}
		for _, c := range online {
			cpus = append(cpus, int(c))
		}
	}
	if err := m.begin(what); err != nil {
		return err
	}
	defer m.mu.Unlock()
	var fds []C.int
	for _, c := range cpus {
		var res C.int
		var err error
		res, err = C.bpf_attach_perf_event(C.int(fd), C.uint32_t(evType), C.uint32_t(evConfig),
			C.uint64_t(samplePeriod), C.uint64_t(sampleFreq), C.pid_t(pid), C.int(c), C.int(groupFd))
		if res < 0 {
			for _, f := range fds {
				C.bpf_close_perf_event_fd(f)
			}
			return attachFailure(fmt.Sprintf("%s on cpu %d", what, c), errnoOf(err, unix.EINVAL))
		}
		fds = append(fds, res)
	}
	m.addProbe(&attachment{kind: attachPerfEvent, target: perfEventKey(uint32(evType), uint64(evConfig)), progFd: fd, undo: func() error {
		for _, f := range fds {
			C.bpf_close_perf_event_fd(f)
		}
		return nil
	}})
	return nil
}

// uprobeTarget resolves a uprobe's binary: a path, a library short name
// ("c" for libc) or a program looked up in $PATH.
func uprobeTarget(name string, pid int) (string, error) {
	if name == "" {
		return "", errors.New("empty binary name")
	}
	if strings.Contains(name, "/") {
		if _, err := os.Stat(name); err != nil {
			return "", fmt.Errorf("binary %q: %w", name, ErrNotFound)
		}
		return name, nil
	}
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	if pid < 0 {
		pid = 0
	}
	p := C.bcc_procutils_which_so(cn, C.int(pid))
	if p == nil {
		p = C.bcc_procutils_which(cn)
	}
	if p == nil {
		return "", fmt.Errorf("library or binary %q: %w", name, ErrNotFound)
	}
	defer C.free(unsafe.Pointer(p))
	return C.GoString(p), nil
}

func (m *Module) attachUprobe(attachType int, name, symbol string, fd, pid int) error {
	kind := byte('p')
	what := fmt.Sprintf("attach uprobe to %s in %s", symbol, name)
	if attachType == BPF_PROBE_RETURN {
		kind = 'r'
		what = fmt.Sprintf("attach uretprobe to %s in %s", symbol, name)
	}
	if m == nil {
		return errorf("%s: %w", what, ErrClosed)
	}
	if err := checkFd(what, fd); err != nil {
		return err
	}
	if err := checkPid(what, pid); err != nil {
		return err
	}
	if err := processGone(pid); err != nil {
		return errorf("%s: %w", what, err)
	}
	path, err := uprobeTarget(name, pid)
	if err != nil {
		return errorf("%s: %w", what, err)
	}
	path, off, err := ResolveSymbolAddress(path, symbol, pid)
	if err != nil {
		return errorf("%s: %w", what, err)
	}
	if impl, ok := ifuncImplOffset(path, symbol); ok {
		off = impl
	}
	if err := m.begin(what); err != nil {
		return err
	}
	defer m.mu.Unlock()
	return m.attachUprobeLocked(kind, attachType, what, "", path, off, fd, pid)
}

// attachUprobeLocked places a uprobe at file offset off of path; evPrefix
// starts the target part of its event name. m.mu is held.
func (m *Module) attachUprobeLocked(kind byte, attachType int, what, evPrefix, path string, off uint64, fd, pid int) error {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var res C.int
	var err error
	var cev *C.char
	for try := 0; try < 2; try++ {
		// A second try: see attachProbe.
		if cev != nil {
			C.free(unsafe.Pointer(cev))
		}
		cev = C.CString(m.nextEventName("uprobe_events", kind, fmt.Sprintf("%s%s_%x", evPrefix, filepath.Base(path), off)))
		release := probeevent.Hold(probeevent.Root("uprobe_events"), "uprobe_events")
		res, err = C.bpf_attach_uprobe(C.int(fd), uint32(attachType), cev, cpath, C.uint64_t(off), C.pid_t(pid), 0)
		release()
		if res >= 0 || !probeevent.Retry(err) {
			break
		}
	}
	if res < 0 {
		C.free(unsafe.Pointer(cev))
		return attachFailure(what, errnoOf(err, unix.EINVAL))
	}
	pfd := res
	ak := attachUprobe
	if attachType == BPF_PROBE_RETURN {
		ak = attachUretprobe
	}
	m.addProbe(&attachment{kind: ak, target: uprobeKey(path, off), pid: pid, progFd: fd, undo: func() error {
		C.bpf_close_perf_event_fd(pfd)
		C.bpf_detach_uprobe(cev)
		C.free(unsafe.Pointer(cev))
		return nil
	}})
	return nil
}

// AttachUprobe attaches the uprobe program fd to the entry of symbol in the
// binary or library name: a path (/bin/bash), a library without its "lib"
// prefix ("c"), or a program in $PATH. pid limits the probe to one process
// (-1 for all). An unknown binary or symbol gives an error wrapping
// ErrNotFound.
func (m *Module) AttachUprobe(name, symbol string, fd, pid int) error {
	return m.attachUprobe(BPF_PROBE_ENTRY, name, symbol, fd, pid)
}

// AttachUretprobe is AttachUprobe for the function's return.
func (m *Module) AttachUretprobe(name, symbol string, fd, pid int) error {
	return m.attachUprobe(BPF_PROBE_RETURN, name, symbol, fd, pid)
}

func (m *Module) attachMatching(attachType int, name, match string, fd, pid int) error {
	_, err := m.attachMatchingList(attachType, name, match, fd, pid)
	return err
}

// attachMatchingList is attachMatching returning the names of the
// functions attached (one per address: of aliases, the first listed).
func (m *Module) attachMatchingList(attachType int, name, match string, fd, pid int) ([]string, error) {
	kind := byte('p')
	what := fmt.Sprintf("attach uprobes to /%s/ in %s", match, name)
	if attachType == BPF_PROBE_RETURN {
		kind = 'r'
		what = fmt.Sprintf("attach uretprobes to /%s/ in %s", match, name)
	}
	if m == nil {
		return nil, errorf("%s: %w", what, ErrClosed)
	}
	if err := checkFd(what, fd); err != nil {
		return nil, err
	}
	if err := checkPid(what, pid); err != nil {
		return nil, err
	}
	if err := processGone(pid); err != nil {
		return nil, errorf("%s: %w", what, err)
	}
	path, err := uprobeTarget(name, pid)
	if err != nil {
		return nil, errorf("%s: %w", what, err)
	}
	syms, err := matchUserSymbols(path, match)
	if err != nil {
		return nil, errorf("%s: %w", what, err)
	}
	type target struct {
		sym, path string
		off       uint64
	}
	var targets []target
	seen := map[uint64]bool{}
	for _, s := range syms {
		p, off, err := ResolveSymbolAddress(path, s.name, pid)
		if err != nil {
			return nil, errorf("%s: %w", what, err)
		}
		if impl, ok := ifuncImplOffset(p, s.name); ok {
			off = impl
		}
		if seen[off] { // aliases of one function
			continue
		}
		seen[off] = true
		targets = append(targets, target{s.name, p, off})
	}
	if len(targets) == 0 {
		return nil, errorf("%s: no function matches: %w", what, ErrNotFound)
	}
	if err := m.begin(what); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	n := len(m.probes)
	for _, t := range targets {
		if err := m.attachUprobeLocked(kind, attachType, what+" ("+t.sym+")", "", t.path, t.off, fd, pid); err != nil {
			m.undoProbesFrom(n)
			return nil, err
		}
	}
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.sym
	}
	return names, nil
}

// AttachMatchingUprobes attaches the uprobe program fd to every function of
// the binary or library name whose symbol matches the regular expression
// match (see AttachUprobe for name and pid). Either all attach or none.
func (m *Module) AttachMatchingUprobes(name, match string, fd, pid int) error {
	return m.attachMatching(BPF_PROBE_ENTRY, name, match, fd, pid)
}

// AttachMatchingUretprobes is AttachMatchingUprobes for the functions' returns.
func (m *Module) AttachMatchingUretprobes(name, match string, fd, pid int) error {
	return m.attachMatching(BPF_PROBE_RETURN, name, match, fd, pid)
}

func (m *Module) attachXDP(devName string, fd int, flags uint32) error {
	what := "attach XDP to " + devName
	if fd < 0 {
		what = "remove XDP from " + devName
	}
	if m == nil {
		return errorf("%s: %w", what, ErrClosed)
	}
	if fd > math.MaxInt32 {
		return errorf("%s: invalid file descriptor %d: %w", what, fd, unix.EINVAL)
	}
	if devName == "" {
		return errorf("%s: empty device name", what)
	}
	if flags&^XDP_FLAGS_MASK != 0 {
		return errorf("%s: unknown flags %#x", what, flags&^XDP_FLAGS_MASK)
	}
	if _, err := net.InterfaceByName(devName); err != nil {
		return errorf("%s: no such device: %w", what, ErrNotFound)
	}
	if err := m.begin(what); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if err := xdpSet(devName, fd, flags); err != nil {
		return errorf("%s: %w", what, err)
	}
	if fd < 0 {
		delete(m.xdp, devName)
		return nil
	}
	m.seq++
	token := m.seq
	m.xdp[devName] = token
	mode := flags & XDP_FLAGS_MODES
	m.detach = append(m.detach, func() error {
		if m.xdp[devName] != token {
			return nil // removed already, or replaced by a later attach
		}
		delete(m.xdp, devName)
		return xdpSet(devName, -1, mode)
	})
	return nil
}

// xdpSet sets (fd >= 0) or clears (fd -1) the XDP program of dev over
// netlink (internal/netlink, shared with the elf package).
func xdpSet(dev string, fd int, flags uint32) error {
	ifc, err := net.InterfaceByName(dev)
	if err != nil {
		return fmt.Errorf("no such device: %w", ErrNotFound)
	}
	if err := netlink.SetXDP(ifc.Index, fd, flags); err != nil {
		return netErr(err)
	}
	return nil
}

// AttachXDP attaches the XDP program fd to the network device devName.
func (m *Module) AttachXDP(devName string, fd int) error {
	return m.attachXDP(devName, fd, 0)
}

// AttachXDPWithFlags attaches the XDP program fd to devName with
// XDP_FLAGS_* flags (e.g. XDP_FLAGS_SKB_MODE for generic XDP).
func (m *Module) AttachXDPWithFlags(devName string, fd int, flags uint32) error {
	return m.attachXDP(devName, fd, flags)
}

// RemoveXDP removes any XDP program from devName.
func (m *Module) RemoveXDP(devName string) error {
	return m.attachXDP(devName, -1, 0)
}
