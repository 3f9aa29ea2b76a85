package bcc

import (
	"fmt"
	"strings"
)

// attachKind is what an attachment is, for the Detach* calls and the
// NumOpen* counts.
type attachKind uint8

const (
	attachKprobe attachKind = iota + 1
	attachKretprobe
	attachKprobeMulti
	attachUprobe
	attachUretprobe
	attachTracepoint
	attachRawTracepoint
	attachPerfEvent
	attachKfunc
	attachKretfunc
	attachLSM
)

// attachment is one probe (or link) a module attached: Close undoes every
// one, a Detach* call the ones it names.
type attachment struct {
	kind   attachKind
	target string // what it is attached to, as the Detach* call names it
	pid    int    // uprobes: the process it is limited to (-1 for all)
	progFd int    // the program attached
	probes int    // kernel probes it holds (kprobe.multi: its functions)
	undo   func() error
}

// addProbe records an attachment that Close or a Detach* call undoes.
// m.mu is held.
func (m *Module) addProbe(a *attachment) {
	if a.probes == 0 {
		a.probes = 1
	}
	m.probes = append(m.probes, a)
}

// undoProbesFrom detaches the attachments recorded after the first n, in
// reverse order (rolling back a partly done attach). m.mu is held.
func (m *Module) undoProbesFrom(n int) {
	for i := len(m.probes) - 1; i >= n; i-- {
		m.probes[i].undo()
	}
	m.probes = m.probes[:n]
}

// detachProbes undoes, newest first, the attachments of kind for which
// match is true and forgets them. With none, the error wraps ErrNotFound.
// They are taken off the list under m.mu but undone after it is released:
// closing a probe waits for an RCU grace period (tens of milliseconds),
// which must not hold up the module's other calls; Close waits for them.
func (m *Module) detachProbes(what string, kind attachKind, match func(*attachment) bool) error {
	if err := m.begin(what); err != nil {
		return err
	}
	var undo []*attachment
	kept := m.probes[:0]
	for _, a := range m.probes {
		if a.kind == kind && match(a) {
			undo = append(undo, a)
		} else {
			kept = append(kept, a)
		}
	}
	// kept shares m.probes' array: clear the tail so that the removed
	// attachments can be collected.
	clear(m.probes[len(kept):])
	m.probes = kept
	if len(undo) == 0 {
		m.mu.Unlock()
		return errorf("%s: nothing attached there by this module: %w", what, ErrNotFound)
	}
	m.undoing.Add(1)
	m.mu.Unlock()
	defer m.undoing.Done()
	var firstErr error
	for i := len(undo) - 1; i >= 0; i-- {
		if err := undo[i].undo(); err != nil && firstErr == nil {
			firstErr = errorf("%s: %w", what, err)
		}
	}
	return firstErr
}

// numProbes counts the kernel probes of the given kinds attached by m.
func (m *Module) numProbes(kinds ...attachKind) int {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, a := range m.probes {
		for _, k := range kinds {
			if a.kind == k {
				n += a.probes
			}
		}
	}
	return n
}

// DetachKprobe detaches the kprobes this module attached to the entry of
// the kernel function fnName (a "fn+offset" name detaches the probe at that
// offset), including those placed by AttachMatchingKprobes. The program
// stays loaded and can be attached again. If none is attached there the
// error wraps ErrNotFound.
func (m *Module) DetachKprobe(fnName string) error {
	return m.detachProbes("detach kprobe from "+fnName, attachKprobe, targetIs(kprobeTarget(fnName)))
}

// DetachKretprobe is DetachKprobe for kretprobes.
func (m *Module) DetachKretprobe(fnName string) error {
	return m.detachProbes("detach kretprobe from "+fnName, attachKretprobe, targetIs(kprobeTarget(fnName)))
}

// DetachUprobe detaches the uprobes this module attached to symbol in the
// binary or library name (resolved as AttachUprobe does) for pid (-1: the
// probes for every process). The error wraps ErrNotFound if none is there.
func (m *Module) DetachUprobe(name, symbol string, pid int) error {
	return m.detachUprobe(attachUprobe, "detach uprobe", name, symbol, pid)
}

// DetachUretprobe is DetachUprobe for uretprobes.
func (m *Module) DetachUretprobe(name, symbol string, pid int) error {
	return m.detachUprobe(attachUretprobe, "detach uretprobe", name, symbol, pid)
}

func (m *Module) detachUprobe(kind attachKind, verb, name, symbol string, pid int) error {
	what := fmt.Sprintf("%s from %s in %s", verb, symbol, name)
	if m == nil {
		return errorf("%s: %w", what, ErrClosed)
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
	target := uprobeKey(path, off)
	return m.detachProbes(what, kind, func(a *attachment) bool {
		return a.target == target && (pid < 0 || a.pid == pid)
	})
}

// uprobeKey identifies a uprobe location.
func uprobeKey(path string, off uint64) string { return fmt.Sprintf("%s:%#x", path, off) }

// DetachTracepoint detaches the programs this module attached to the
// tracepoint name ("category:name").
func (m *Module) DetachTracepoint(name string) error {
	return m.detachProbes("detach tracepoint "+name, attachTracepoint, targetIs(name))
}

// DetachRawTracepoint detaches the programs this module attached to the
// raw tracepoint name.
func (m *Module) DetachRawTracepoint(name string) error {
	return m.detachProbes("detach raw tracepoint "+name, attachRawTracepoint, targetIs(name))
}

// DetachPerfEvent detaches the programs this module attached to perf
// events of type evType and config evConfig, by AttachPerfEvent or
// AttachPerfEventRaw, on every CPU.
func (m *Module) DetachPerfEvent(evType, evConfig int) error {
	key := perfEventKey(uint32(evType), uint64(evConfig))
	return m.detachProbes("detach perf event "+key, attachPerfEvent, targetIs(key))
}

func perfEventKey(typ uint32, config uint64) string { return fmt.Sprintf("%d:%d", typ, config) }

// DetachKfunc detaches the fentry programs attached to the kernel function
// fnName, given as the function ("vfs_read") or as the program
// ("kfunc__vfs_read").
func (m *Module) DetachKfunc(fnName string) error {
	t := strings.TrimPrefix(fnName, kfuncPrefix)
	return m.detachProbes("detach kfunc "+fnName, attachKfunc, targetIs(t))
}

// DetachKretfunc detaches the fexit programs attached to the kernel
// function fnName ("vfs_read" or "kretfunc__vfs_read").
func (m *Module) DetachKretfunc(fnName string) error {
	t := strings.TrimPrefix(fnName, kretfuncPrefix)
	return m.detachProbes("detach kretfunc "+fnName, attachKretfunc, targetIs(t))
}

// DetachLSM detaches the BPF LSM programs attached to the hook ("file_open"
// or the program's name "lsm__file_open").
func (m *Module) DetachLSM(hook string) error {
	t := strings.TrimPrefix(hook, lsmPrefix)
	return m.detachProbes("detach LSM program from "+hook, attachLSM, targetIs(t))
}

// DetachKprobeMulti detaches the kprobe.multi links of the program fd
// (every function of each link).
func (m *Module) DetachKprobeMulti(fd int) error {
	return m.detachProbes(fmt.Sprintf("detach kprobe.multi links of program fd %d", fd), attachKprobeMulti,
		func(a *attachment) bool { return a.progFd == fd })
}

func targetIs(t string) func(*attachment) bool {
	return func(a *attachment) bool { return a.target == t }
}

// NumOpenKprobes returns how many kprobes and kretprobes the module has
// attached (a kprobe.multi link counts each of its functions).
func (m *Module) NumOpenKprobes() int {
	return m.numProbes(attachKprobe, attachKretprobe, attachKprobeMulti)
}

// NumOpenUprobes returns how many uprobes and uretprobes (USDT probes
// included) the module has attached.
func (m *Module) NumOpenUprobes() int {
	return m.numProbes(attachUprobe, attachUretprobe)
}

// NumOpenTracepoints returns how many tracepoints the module has attached
// programs to (raw tracepoints not included, as in bcc).
func (m *Module) NumOpenTracepoints() int {
	return m.numProbes(attachTracepoint)
}
