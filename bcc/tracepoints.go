package bcc

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// eventsDir returns tracefs's events directory.
func eventsDir() (string, error) {
	for _, d := range tracefsDirs {
		e := filepath.Join(d, "events")
		if st, err := os.Stat(e); err == nil && st.IsDir() {
			return e, nil
		}
	}
	return "", fmt.Errorf("no tracefs events directory (is tracefs mounted at %s?): %w", tracefsDirs[0], ErrNotFound)
}

// Tracepoints returns, sorted, the tracepoints ("category:name") whose
// name matches the regular expression pattern from its start, as bcc's
// tp_re does: "syscalls:sys_enter_.*" (or bcc's customary
// "syscalls:sys_enter_*") lists every syscall entry. Add "$" to match whole
// names only.
func Tracepoints(pattern string) ([]string, error) {
	rx, err := regexp.Compile("^(?:" + pattern + ")")
	if err != nil {
		return nil, errorf("tracepoints: %w", err)
	}
	dir, err := eventsDir()
	if err != nil {
		return nil, errorf("tracepoints: %w", err)
	}
	cats, err := os.ReadDir(dir)
	if err != nil {
		return nil, errorf("tracepoints: %w", err)
	}
	// A pattern starting with a literal category reads that one only.
	prefix, _ := rx.LiteralPrefix()
	var out []string
	for _, c := range cats {
		if !c.IsDir() {
			continue
		}
		cat := c.Name()
		if cp, _, ok := strings.Cut(prefix, ":"); ok && cp != cat {
			continue
		}
		evs, err := os.ReadDir(filepath.Join(dir, cat))
		if err != nil {
			continue
		}
		for _, e := range evs {
			if !e.IsDir() {
				continue
			}
			tp := cat + ":" + e.Name()
			if !rx.MatchString(tp) {
				continue
			}
			if _, err := os.Stat(filepath.Join(dir, cat, e.Name(), "id")); err != nil {
				continue
			}
			out = append(out, tp)
		}
	}
	slices.Sort(out)
	return out, nil
}

// TracepointExists reports whether the kernel has the tracepoint
// "category:name".
func TracepointExists(name string) bool {
	category, event, ok := strings.Cut(name, ":")
	if !ok || category == "" || event == "" || strings.ContainsAny(name, "/ ") || strings.Contains(event, ":") {
		return false
	}
	dir, err := eventsDir()
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, category, event, "id"))
	return err == nil
}

// AttachMatchingTracepoints attaches the tracepoint program fd to every
// tracepoint Tracepoints(pattern) lists (bcc's attach_tracepoint with
// tp_re) and returns them. Either all attach or none. More than
// MaxMatchingProbes matches is an error; none, an error wrapping
// ErrNotFound. Detach each with DetachTracepoint.
func (m *Module) AttachMatchingTracepoints(pattern string, fd int) ([]string, error) {
	what := fmt.Sprintf("attach tracepoints /%s/", pattern)
	if m == nil {
		return nil, errorf("%s: %w", what, ErrClosed)
	}
	tps, err := Tracepoints(pattern)
	if err != nil {
		return nil, err
	}
	if len(tps) == 0 {
		return nil, errorf("%s: no tracepoint matches: %w", what, ErrNotFound)
	}
	if len(tps) > MaxMatchingProbes {
		return nil, errorf("%s: %d tracepoints match, more than MaxMatchingProbes (%d)", what, len(tps), MaxMatchingProbes)
	}
	if err := m.begin(what); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	n := len(m.probes)
	for _, tp := range tps {
		category, event, _ := strings.Cut(tp, ":")
		if err := m.attachTracepointLocked(what+" ("+tp+")", tp, category, event, fd); err != nil {
			m.undoProbesFrom(n)
			return nil, err
		}
	}
	return tps, nil
}
