package bcc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/pkg/ksym"
)

// MaxMatchingProbes bounds how many probes one AttachMatchingKprobes (or
// AttachMatchingTracepoints) call may create, as bcc's probe quota does: a
// loose expression must not place thousands of probes by accident.
const MaxMatchingProbes = 1000

// splitKprobeTarget splits "fn" or "fn+off" (off decimal or 0x-hex).
func splitKprobeTarget(s string) (string, uint64, error) {
	fn, offs, ok := strings.Cut(s, "+")
	if fn == "" || strings.ContainsAny(fn, " \t\n/:") {
		return "", 0, fmt.Errorf("bad kernel function name %q", s)
	}
	if !ok {
		return fn, 0, nil
	}
	off, err := strconv.ParseUint(offs, 0, 64)
	if err != nil {
		return "", 0, fmt.Errorf("bad offset in %q (want fn+offset)", s)
	}
	return fn, off, nil
}

// kprobeTarget is the identity of a kprobe: "fn" or "fn+0xoff".
func kprobeTarget(s string) string {
	fn, off, err := splitKprobeTarget(s)
	if err != nil {
		return s
	}
	if off == 0 {
		return fn
	}
	return fmt.Sprintf("%s+%#x", fn, off)
}

// kprobeAttachFailure is attachFailure with kprobe-specific explanations.
func kprobeAttachFailure(what string, errno unix.Errno, off uint64) error {
	if errno == unix.EILSEQ && off != 0 {
		return errorf("%s: offset %#x is not on an instruction boundary (EILSEQ)", what, off)
	}
	return attachFailure(what, errno)
}

// AttachKprobeOffset attaches the kprobe program fd at byte offset off of
// the kernel function fnName (bcc's attach_kprobe with event_off). The
// offset must fall on an instruction; AttachKprobe("fn+off", ...) is the
// same. Detach it with DetachKprobe(fmt.Sprintf("%s+%#x", fnName, off)).
func (m *Module) AttachKprobeOffset(fnName string, off uint64, fd int) error {
	if strings.Contains(fnName, "+") {
		return errorf("attach kprobe to %s at offset %#x: name already has an offset", fnName, off)
	}
	return m.attachProbe('p', BPF_PROBE_ENTRY, fmt.Sprintf("%s+%#x", fnName, off), fd, 0)
}

// AttachMatchingKprobes attaches the kprobe program fd to the entry of
// every traceable kernel function whose whole name matches the regular
// expression re (bcc's attach_kprobe(event_re=...)), and returns the
// functions it attached to. As in bcc, functions that cannot be probed are
// skipped; it fails only if none could be, or if more than
// MaxMatchingProbes match. Detach each with DetachKprobe.
func (m *Module) AttachMatchingKprobes(re string, fd, maxActive int) ([]string, error) {
	return m.attachMatchingKprobes('p', BPF_PROBE_ENTRY, re, fd, maxActive)
}

// AttachMatchingKretprobes is AttachMatchingKprobes for the functions'
// returns.
func (m *Module) AttachMatchingKretprobes(re string, fd, maxActive int) ([]string, error) {
	return m.attachMatchingKprobes('r', BPF_PROBE_RETURN, re, fd, maxActive)
}

func (m *Module) attachMatchingKprobes(kind byte, attachType int, re string, fd, maxActive int) ([]string, error) {
	what := fmt.Sprintf("attach kprobes to /%s/", re)
	if attachType == BPF_PROBE_RETURN {
		what = fmt.Sprintf("attach kretprobes to /%s/", re)
	}
	if err := m.begin(what); err != nil {
		return nil, err
	}
	m.mu.Unlock()
	if !SupportsKprobes() {
		return nil, errorf("%s: kernel lacks kprobes (CONFIG_KPROBES is not set): %w", what, ErrNotSupported)
	}
	fns, err := KprobeFunctions(re)
	if err != nil {
		return nil, errorf("%s: %w", what, err)
	}
	if len(fns) == 0 {
		return nil, errorf("%s: no traceable kernel function matches: %w", what, ErrNotFound)
	}
	if len(fns) > MaxMatchingProbes {
		return nil, errorf("%s: %d functions match, more than MaxMatchingProbes (%d)", what, len(fns), MaxMatchingProbes)
	}
	var attached []string
	var firstErr error
	for _, fn := range fns {
		err := m.attachProbe(kind, attachType, fn, fd, maxActive)
		if errors.Is(err, ErrClosed) {
			return attached, err
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		attached = append(attached, fn)
	}
	if len(attached) == 0 {
		return nil, errorf("%s: none of the %d matching functions could be probed (inlined, notrace or blacklisted?): %w", what, len(fns), firstErr)
	}
	return attached, nil
}

// kprobeBlacklistPrefixes are name prefixes of functions kprobes refuse
// (NOKPROBE_SYMBOL markers, perf internals, static call trampolines).
var kprobeBlacklistPrefixes = []string{"_kbl_addr_", "__perf", "perf_", "__SCT__"}

// coldRe matches the split-off cold parts gcc emits (fn.cold, fn.cold.12).
var coldRe = regexp.MustCompile(`\.cold(\.\d+)?$`)

// KprobeFunctions returns, sorted, the kernel functions a kprobe can be
// placed on whose whole name matches the regular expression re (bcc's
// get_kprobe_functions). It reads tracefs's available_filter_functions;
// where that is unreadable (a locked-down kernel) it falls back to the text
// symbols of /proc/kallsyms, leaving out the kprobe blacklist, init and
// irq-entry code, gcc's .cold parts and the prefixes bcc skips. Functions
// known by several names appear under the one ftrace lists (on x86-64 the
// wrappers of argument-less syscalls, __x64_sys_getppid for one, are
// aliases listed as __do_sys_getppid), though a kprobe takes any of them.
func KprobeFunctions(re string) ([]string, error) {
	rx, err := regexp.Compile("^(?:" + re + ")$")
	if err != nil {
		return nil, errorf("kprobe functions: %w", err)
	}
	black := kprobeBlacklist()
	avail, availErr := availableFilterFunctions()
	seen := map[string]bool{}
	var out []string
	add := func(fn string) {
		if seen[fn] || black[fn] || !rx.MatchString(fn) || coldRe.MatchString(fn) {
			return
		}
		for _, p := range kprobeBlacklistPrefixes {
			if strings.HasPrefix(fn, p) {
				return
			}
		}
		seen[fn] = true
		out = append(out, fn)
	}
	if availErr == nil {
		for _, fn := range avail {
			add(fn)
		}
		slices.Sort(out)
		return out, nil
	}
	t, err := ksym.Load()
	if err != nil {
		return nil, errorf("kprobe functions: %s unreadable (%v) and kallsyms too: %w", "available_filter_functions", availErr, err)
	}
	addr := func(names ...string) uint64 {
		for _, n := range names {
			if s, err := t.Lookup(n); err == nil {
				return s.Addr
			}
		}
		return 0
	}
	// Init code is gone after boot; irq entry code may not be probed.
	initStart, initEnd := addr("_sinittext", "__init_begin"), addr("_einittext", "__init_end")
	irqStart, irqEnd := addr("__irqentry_text_start"), addr("__irqentry_text_end")
	for s := range t.All() {
		if s.Type != 't' && s.Type != 'T' && s.Type != 'w' && s.Type != 'W' {
			continue
		}
		if s.Module == "" && (s.Addr >= initStart && s.Addr < initEnd || s.Addr >= irqStart && s.Addr < irqEnd) {
			continue
		}
		add(s.Name)
	}
	slices.Sort(out)
	return out, nil
}

// availableFilterFunctions reads the functions ftrace (and so kprobes) can
// trace, without their "[module]" suffix.
func availableFilterFunctions() ([]string, error) {
	var lastErr error = os.ErrNotExist
	for _, d := range tracefsDirs {
		f, err := os.Open(filepath.Join(d, "available_filter_functions"))
		if err != nil {
			lastErr = err
			continue
		}
		var fns []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if fn, _, _ := bytes.Cut(sc.Bytes(), []byte{' '}); len(fn) > 0 {
				fns = append(fns, string(fn))
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil { // EPERM shows on the first read on a locked-down kernel
			lastErr = err
			continue
		}
		return fns, nil
	}
	return nil, lastErr
}

// kprobeBlacklist reads the functions the kernel refuses kprobes on
// (debugfs kprobes/blacklist: "0xstart-0xend\tname" lines); empty when
// unreadable.
func kprobeBlacklist() map[string]bool {
	black := map[string]bool{}
	b, err := os.ReadFile("/sys/kernel/debug/kprobes/blacklist")
	if err != nil {
		return black
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			black[f[1]] = true
		}
	}
	return black
}
