package elf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/probeevent"
)

var tracefsRoots = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

const pmuDir = "/sys/bus/event_source/devices"

func tracefsRoot() (string, error) {
	for _, r := range tracefsRoots {
		if _, err := os.Stat(filepath.Join(r, "events")); err == nil {
			return r, nil
		}
	}
	return "", fmt.Errorf("tracefs is not mounted (tried %s): %w", strings.Join(tracefsRoots, ", "), ErrNotSupported)
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing %s: %w", path, err)
	}
	return v, nil
}

// tracepointID returns the id of tracefs event category/name.
func tracepointID(root, category, name string) (uint64, error) {
	p := filepath.Join(root, "events", category, name, "id")
	id, err := readUint(p)
	if err != nil {
		return 0, fmt.Errorf("cannot read tracepoint id %q: %w", p, err)
	}
	return id, nil
}

// perfEventOpen opens a perf event of the given PMU type; name (if not
// empty) goes in config1 as a C string, offset in config2.
func perfEventOpen(typ uint32, config uint64, name string, offset uint64, pid int) (int, error) {
	attr := unix.PerfEventAttr{
		Type:        typ,
		Config:      config,
		Sample:      1,
		Sample_type: unix.PERF_SAMPLE_RAW,
		Wakeup:      1,
		Ext2:        offset,
	}
	attr.Size = uint32(unsafe.Sizeof(attr))
	var s []byte
	if name != "" {
		s = append([]byte(name), 0)
		attr.Ext1 = uint64(uintptr(unsafe.Pointer(&s[0])))
	}
	cpu := 0
	if pid >= 0 {
		cpu = -1
	}
	fd, err := unix.PerfEventOpen(&attr, pid, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	runtime.KeepAlive(s)
	if err != nil {
		return -1, fmt.Errorf("perf_event_open: %w", err)
	}
	return fd, nil
}

// attachPerfEvent runs progFd on every hit of perf event efd.
func attachPerfEvent(efd, progFd int) error {
	if err := unix.IoctlSetInt(efd, unix.PERF_EVENT_IOC_SET_BPF, progFd); err != nil {
		return fmt.Errorf("error attaching bpf program to perf event: %w", err)
	}
	if err := unix.IoctlSetInt(efd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
		return fmt.Errorf("error enabling perf event: %w", err)
	}
	return nil
}

// openAttach opens a perf event with open and attaches progFd to it.
func openAttach(progFd int, open func() (int, error)) (int, error) {
	efd, err := open()
	if err != nil {
		return -1, err
	}
	if err := attachPerfEvent(efd, progFd); err != nil {
		unix.Close(efd)
		return -1, err
	}
	return efd, nil
}

// pmuProbe opens a kprobe or uprobe through its dynamic PMU.
func pmuProbe(pmu string, ret bool, target string, offset uint64, pid int) (int, error) {
	typ, err := readUint(filepath.Join(pmuDir, pmu, "type"))
	if err != nil {
		return -1, err
	}
	var config uint64
	if ret {
		b, err := os.ReadFile(filepath.Join(pmuDir, pmu, "format", "retprobe"))
		if err != nil {
			return -1, err
		}
		bit, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(string(b)), "config:"))
		if err != nil || bit < 0 || bit > 63 {
			return -1, fmt.Errorf("unexpected %s retprobe format %q", pmu, b)
		}
		config = 1 << bit
	}
	return perfEventOpen(uint32(typ), config, target, offset, pid)
}

// addProbeEvent writes a kprobe_events/uprobe_events line and returns the
// new event's tracepoint id.
func addProbeEvent(root, file, line, group, event string) (uint64, error) {
	f, err := os.OpenFile(filepath.Join(root, file), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("cannot open %s: %w", file, err)
	}
	_, err = f.WriteString(line + "\n")
	f.Close()
	if err != nil {
		return 0, fmt.Errorf("cannot write %q to %s: %w", line, file, err)
	}
	id, err := tracepointID(root, group, event)
	if err != nil {
		removeProbeEvent(root, file, event)
		return 0, err
	}
	return id, nil
}

func removeProbeEvent(root, file, event string) error {
	f, err := os.OpenFile(filepath.Join(root, file), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("cannot open %s: %w", file, err)
	}
	defer f.Close()
	if _, err := f.WriteString("-:" + event + "\n"); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("cannot remove %s from %s: %w", event, file, err)
	}
	return nil
}

// kprobeSupport reports how kprobes can be created, or why they cannot.
func kprobeSupport() (pmu bool, tracefs string, err error) {
	if _, err := os.Stat(filepath.Join(pmuDir, "kprobe")); err == nil {
		pmu = true
	}
	for _, r := range tracefsRoots {
		if _, err := os.Stat(filepath.Join(r, "kprobe_events")); err == nil {
			tracefs = r
			break
		}
	}
	if !pmu && tracefs == "" {
		return false, "", fmt.Errorf("%w: the kernel has no kprobes (CONFIG_KPROBES is not set: no %s/kprobe PMU and no kprobe_events in %s)",
			ErrNotSupported, pmuDir, strings.Join(tracefsRoots, " or "))
	}
	return pmu, tracefs, nil
}

// EnableKprobe attaches the kprobe or kretprobe loaded from section secName
// to the kernel function its name gives. For kretprobes, maxactive (when
// > 0) is the maximum number of simultaneously probed instances. On a
// kernel without kprobes it returns an error wrapping ErrNotSupported.
func (b *Module) EnableKprobe(secName string, maxactive int) error {
	if err := b.lockOpen("enable kprobe", secName); err != nil {
		return err
	}
	defer b.mu.Unlock()
	probe, ok := b.probes[secName]
	if !ok {
		return fmt.Errorf("elf: no such kprobe %q: %w", secName, ErrNotFound)
	}
	if probe.efd >= 0 {
		return fmt.Errorf("elf: kprobe %q is already enabled", secName)
	}
	isRet := strings.HasPrefix(probe.Name, "kretprobe/")
	fn := strings.TrimPrefix(strings.TrimPrefix(probe.Name, "kretprobe/"), "kprobe/")
	if fn == "" {
		return fmt.Errorf("elf: kprobe section %q names no function", probe.Name)
	}
	pmu, root, err := kprobeSupport()
	if err != nil {
		return fmt.Errorf("elf: enabling %s: %w", probe.Name, err)
	}
	var pmuErr error
	if pmu && !(isRet && maxactive > 0) {
		efd, err := openAttach(probe.fd, func() (int, error) { return pmuProbe("kprobe", isRet, fn, 0, -1) })
		if err == nil {
			probe.efd = efd
			return nil
		}
		pmuErr = err
	}
	if root == "" {
		return fmt.Errorf("elf: enabling %s: %w", probe.Name, pmuErr)
	}
	typ := "p"
	if isRet {
		typ = "r"
		if maxactive > 0 {
			typ += strconv.Itoa(maxactive)
		}
	}
	event := probeevent.Name(typ[:1], fn, probeevent.MaxNameLen) // unique across restarts; removes stale entries first
	probeevent.CleanStaleOnce(root, "kprobe_events")
	defer probeevent.Hold(root, "kprobe_events")() // until the entry is opened
	id, err := addProbeEvent(root, "kprobe_events", fmt.Sprintf("%s:%s %s", typ, event, fn), "kprobes", event)
	if err != nil && isRet && maxactive > 0 {
		// Older kernels reject maxactive: retry without it.
		id, err = addProbeEvent(root, "kprobe_events", fmt.Sprintf("r:%s %s", event, fn), "kprobes", event)
	}
	if err != nil {
		return fmt.Errorf("elf: enabling %s: %w", probe.Name, err)
	}
	efd, err := openAttach(probe.fd, func() (int, error) { return perfEventOpen(unix.PERF_TYPE_TRACEPOINT, id, "", 0, -1) })
	if err != nil {
		removeProbeEvent(root, "kprobe_events", event)
		return fmt.Errorf("elf: enabling %s: %w", probe.Name, err)
	}
	probe.efd, probe.event, probe.tracer = efd, event, root
	return nil
}

// EnableKprobes enables all kprobes/kretprobes of the module. maxactive
// applies to all the kretprobes.
func (b *Module) EnableKprobes(maxactive int) error {
	if err := b.rlockOpen("enable kprobes", ""); err != nil {
		return err
	}
	handlers := sortedKeys(b.probes)
	byFunc := map[string]string{}
	for _, handler := range handlers {
		name := b.probes[handler].Name
		if h, ok := byFunc[name]; ok {
			b.mu.RUnlock()
			return fmt.Errorf("elf: found two handlers (%s and %s) mapping to the same kprobe function %s", h, handler, name)
		}
		byFunc[name] = handler
	}
	b.mu.RUnlock()
	for _, handler := range handlers {
		if err := b.EnableKprobe(handler, maxactive); err != nil {
			return err
		}
	}
	return nil
}

func (p *Kprobe) close() error {
	errs := []error{closeFD(&p.efd)}
	if p.event != "" {
		errs = append(errs, removeProbeEvent(p.tracer, "kprobe_events", p.event))
		p.event = ""
	}
	errs = append(errs, closeFD(&p.fd))
	return errors.Join(errs...)
}

// EnableTracepoint attaches the program of section secName:
// tracepoint/CATEGORY/NAME programs to that tracefs event, and
// raw_tracepoint/NAME programs to raw tracepoint NAME.
func (b *Module) EnableTracepoint(secName string) error {
	if err := b.lockOpen("enable tracepoint", secName); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if _, ok := b.rawTracepointPrograms[secName]; ok {
		return b.enableRawTracepoint(secName)
	}
	prog, ok := b.tracepointPrograms[secName]
	if !ok {
		return fmt.Errorf("elf: no such tracepoint program %q: %w", secName, ErrNotFound)
	}
	if prog.efd >= 0 {
		return fmt.Errorf("elf: tracepoint %q is already enabled", secName)
	}
	parts := strings.SplitN(secName, "/", 3)
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return fmt.Errorf("elf: invalid section name %q, expected tracepoint/category/name", secName)
	}
	root, err := tracefsRoot()
	if err != nil {
		return fmt.Errorf("elf: %w", err)
	}
	id, err := tracepointID(root, parts[1], parts[2])
	if err != nil {
		return fmt.Errorf("elf: %w", err)
	}
	efd, err := openAttach(prog.fd, func() (int, error) { return perfEventOpen(unix.PERF_TYPE_TRACEPOINT, id, "", 0, -1) })
	if err != nil {
		return fmt.Errorf("elf: enabling %s: %w", secName, err)
	}
	prog.efd = efd
	return nil
}

// EnableRawTracepoint attaches the raw_tracepoint/NAME program of section
// secName to raw tracepoint NAME.
func (b *Module) EnableRawTracepoint(secName string) error {
	if err := b.lockOpen("enable raw tracepoint", secName); err != nil {
		return err
	}
	defer b.mu.Unlock()
	return b.enableRawTracepoint(secName)
}

func (b *Module) enableRawTracepoint(secName string) error {
	prog, ok := b.rawTracepointPrograms[secName]
	if !ok {
		return fmt.Errorf("elf: no such raw tracepoint program %q: %w", secName, ErrNotFound)
	}
	if prog.efd >= 0 {
		return fmt.Errorf("elf: raw tracepoint %q is already enabled", secName)
	}
	name := strings.TrimPrefix(secName, "raw_tracepoint/")
	fd, err := bpfsys.RawTracepointOpen(name, prog.fd)
	if err != nil {
		return fmt.Errorf("elf: enabling %s: %w", secName, err)
	}
	prog.efd = fd
	return nil
}

// AttachUprobe attaches the uprobe's program to the program or library at
// path, at file offset offset, in every process.
func AttachUprobe(uprobe *Uprobe, path string, offset uint64) error {
	return AttachUprobePid(uprobe, -1, path, offset)
}

// AttachUprobePid is AttachUprobe for process pid only (-1: all processes).
func AttachUprobePid(uprobe *Uprobe, pid int, path string, offset uint64) error {
	if uprobe == nil || uprobe.mod == nil {
		return fmt.Errorf("elf: nil uprobe: %w", ErrNotFound)
	}
	if err := uprobe.mod.lockOpen("uprobe", uprobe.Name); err != nil {
		return err
	}
	defer uprobe.mod.mu.Unlock()
	if uprobe.fd < 0 {
		return fmt.Errorf("elf: uprobe %q: %w", uprobe.Name, ErrClosed)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("elf: uprobe path %q: %w", path, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("elf: uprobe target: %w", err)
	}
	isRet := strings.HasPrefix(uprobe.Name, "uretprobe/")
	key := fmt.Sprintf("%s:%#x:%d", abs, offset, pid)
	if _, ok := uprobe.efds[key]; ok {
		return fmt.Errorf("elf: uprobe %q already attached to %s", uprobe.Name, key)
	}
	var pmuErr error
	if _, err := os.Stat(filepath.Join(pmuDir, "uprobe")); err == nil {
		efd, err := openAttach(uprobe.fd, func() (int, error) { return pmuProbe("uprobe", isRet, abs, offset, pid) })
		if err == nil {
			uprobe.efds[key] = efd
			return nil
		}
		pmuErr = err
	}
	root, err := tracefsRoot()
	if err != nil {
		return fmt.Errorf("elf: attaching uprobe %q: %w", uprobe.Name, errors.Join(pmuErr, err))
	}
	typ := "p"
	if isRet {
		typ = "r"
	}
	event := probeevent.Name(typ, fmt.Sprintf("%s_%x", filepath.Base(abs), offset), probeevent.MaxNameLen) // unique across restarts
	probeevent.CleanStaleOnce(root, "uprobe_events")
	defer probeevent.Hold(root, "uprobe_events")() // until the entry is opened
	id, err := addProbeEvent(root, "uprobe_events", fmt.Sprintf("%s:%s %s:%#x", typ, event, abs, offset), "uprobes", event)
	if err != nil {
		return fmt.Errorf("elf: attaching uprobe %q: %w", uprobe.Name, errors.Join(pmuErr, err))
	}
	efd, err := openAttach(uprobe.fd, func() (int, error) { return perfEventOpen(unix.PERF_TYPE_TRACEPOINT, id, "", 0, pid) })
	if err != nil {
		removeProbeEvent(root, "uprobe_events", event)
		return fmt.Errorf("elf: attaching uprobe %q: %w", uprobe.Name, err)
	}
	uprobe.efds[key] = efd
	uprobe.events[key] = root + "\x00" + event
	return nil
}

func (p *Uprobe) close() error {
	var errs []error
	for _, k := range sortedKeys(p.efds) {
		fd := p.efds[k]
		errs = append(errs, closeFD(&fd))
		if ev, ok := p.events[k]; ok {
			root, event, _ := strings.Cut(ev, "\x00")
			errs = append(errs, removeProbeEvent(root, "uprobe_events", event))
		}
	}
	p.efds, p.events = map[string]int{}, map[string]string{}
	errs = append(errs, closeFD(&p.fd))
	return errors.Join(errs...)
}
