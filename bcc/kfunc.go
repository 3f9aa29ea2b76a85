package bcc

/*
#include <stdlib.h>
#include <bcc/libbpf.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Program and attach types of BTF-based tracing (enum bpf_prog_type, enum
// bpf_attach_type).
const (
	progTypeTracing = 26 // BPF_PROG_TYPE_TRACING
	progTypeLSM     = 29 // BPF_PROG_TYPE_LSM

	attachTraceFentry  = 24 // BPF_TRACE_FENTRY
	attachTraceFexit   = 25 // BPF_TRACE_FEXIT
	attachLSMMac       = 27 // BPF_LSM_MAC
	attachTraceIter    = 28 // BPF_TRACE_ITER
	attachKprobeMultiT = 42 // BPF_TRACE_KPROBE_MULTI
)

// Function name prefixes of bcc's KFUNC_PROBE, KRETFUNC_PROBE, LSM_PROBE and
// BPF_ITER macros: libbcc finds the program's BTF attach target (the kernel
// function, LSM hook or iterator) from what follows them.
const (
	kfuncPrefix    = "kfunc__"
	kretfuncPrefix = "kretfunc__"
	lsmPrefix      = "lsm__"
	iterPrefix     = "bpf_iter__"
)

// tracingProgName returns the module function for a KFUNC_PROBE-style
// program given as "kfunc__vfs_read" or "vfs_read", and the kernel target.
func tracingProgName(name, prefix string, others ...string) (prog, target string, err error) {
	for _, o := range others {
		if strings.HasPrefix(name, o) {
			return "", "", fmt.Errorf("%q is a %s program, not a %s one", name, strings.TrimSuffix(o, "__"), strings.TrimSuffix(prefix, "__"))
		}
	}
	target = strings.TrimPrefix(name, prefix)
	if target == "" {
		return "", "", fmt.Errorf("empty target in %q", name)
	}
	return prefix + target, target, nil
}

// lockdownMode returns the kernel lockdown mode ("none", "integrity",
// "confidentiality"), or "" when securityfs does not say.
func lockdownMode() string {
	b, err := os.ReadFile("/sys/kernel/security/lockdown")
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.IndexByte(s, '['); i >= 0 {
		if j := strings.IndexByte(s[i:], ']'); j > 0 {
			return s[i+1 : i+j]
		}
	}
	return ""
}

// tracingRefused explains an EPERM from loading or attaching a BTF tracing
// program (fentry/fexit, LSM, iterator) as root: the kernel refuses such
// programs, which is not a missing privilege the caller could fix.
func tracingRefused(what string, cause error) error {
	if os.Geteuid() != 0 {
		return errorf("%s: permission denied: tracing programs need CAP_BPF and CAP_PERFMON (or root): %w", what, cause)
	}
	why := "the kernel refuses tracing programs (fentry/fexit, LSM, some iterators) even to root"
	switch mode := lockdownMode(); mode {
	case "":
		why += " (EPERM; kernel lockdown would do this, /sys/kernel/security/lockdown does not say)"
	case "none":
		why += " (EPERM although the kernel is not locked down)"
	default:
		why = fmt.Sprintf("the kernel is locked down (%s) and refuses tracing programs (fentry/fexit, LSM, some iterators) with EPERM", mode)
	}
	return errorf("%s: %s: %w (%w)", what, why, ErrNotSupported, cause)
}

// loadTracing loads a BTF-targeted program; libbcc derives the target from
// the function name's prefix.
func (m *Module) loadTracing(what, prog string, progType, attachType int) (int, error) {
	fd, err := m.load(prog, progType, attachType, 0, 0)
	if err == nil {
		return fd, nil
	}
	var le *LoadError
	if errors.As(err, &le) {
		switch {
		case errors.Is(le.Err, unix.EPERM):
			return -1, tracingRefused(what, err)
		case strings.Contains(le.Log, "is not found in vmlinux BTF"), strings.Contains(le.Log, "vmlinux BTF is not found"):
			return -1, errorf("%s: target not in the kernel's BTF: %w (%w)", what, ErrNotFound, err)
		case errors.Is(le.Err, unix.EINVAL) && !haveKernelBTF():
			return -1, errorf("%s: kernel has no BTF (CONFIG_DEBUG_INFO_BTF): %w (%w)", what, ErrNotSupported, err)
		case errors.Is(le.Err, errENOTSUPP), errors.Is(le.Err, unix.EOPNOTSUPP):
			return -1, errorf("%s: %w (%w)", what, ErrNotSupported, err)
		}
	}
	return -1, err
}

func haveKernelBTF() bool {
	_, err := os.Stat("/sys/kernel/btf/vmlinux")
	return err == nil
}

// LoadKfunc loads a KFUNC_PROBE(fn, args...) program (fentry: it runs at
// the entry of the kernel function fn) with its BTF attach target. name is
// the macro's function, "kfunc__fn", or just "fn". On a kernel that refuses
// tracing programs (lockdown) the error wraps ErrNotSupported.
func (m *Module) LoadKfunc(name string) (int, error) {
	prog, _, err := tracingProgName(name, kfuncPrefix, kretfuncPrefix, lsmPrefix, iterPrefix)
	if err != nil {
		return -1, errorf("load kfunc %q: %w", name, err)
	}
	return m.loadTracing(fmt.Sprintf("load kfunc %q", prog), prog, progTypeTracing, attachTraceFentry)
}

// LoadKretfunc loads a KRETFUNC_PROBE(fn, args..., ret) program (fexit: it
// runs when the kernel function fn returns, seeing its arguments and return
// value). name is "kretfunc__fn" or "fn".
func (m *Module) LoadKretfunc(name string) (int, error) {
	prog, _, err := tracingProgName(name, kretfuncPrefix, kfuncPrefix, lsmPrefix, iterPrefix)
	if err != nil {
		return -1, errorf("load kretfunc %q: %w", name, err)
	}
	return m.loadTracing(fmt.Sprintf("load kretfunc %q", prog), prog, progTypeTracing, attachTraceFexit)
}

// LoadLSM loads an LSM_PROBE(hook, args...) program (BPF LSM: it runs in
// the LSM hook and may deny the operation by returning a negative errno).
// name is "lsm__hook" or "hook".
func (m *Module) LoadLSM(name string) (int, error) {
	prog, _, err := tracingProgName(name, lsmPrefix, kfuncPrefix, kretfuncPrefix, iterPrefix)
	if err != nil {
		return -1, errorf("load LSM program %q: %w", name, err)
	}
	return m.loadTracing(fmt.Sprintf("load LSM program %q", prog), prog, progTypeLSM, attachLSMMac)
}

// progName returns the module function loaded as fd, or "". m.mu is held.
func (m *Module) progName(fd int) string {
	for n, f := range m.funcs {
		if f == fd {
			return n
		}
	}
	return ""
}

// attachBTF attaches a program loaded with LoadKfunc, LoadKretfunc or
// LoadLSM: its target was fixed at load time.
func (m *Module) attachBTF(kind attachKind, verb, prefix string, fd int) error {
	what := fmt.Sprintf("%s program fd %d", verb, fd)
	if err := m.begin(what); err != nil {
		return err
	}
	defer m.mu.Unlock()
	name := m.progName(fd)
	if name == "" || !strings.HasPrefix(name, prefix) {
		return errorf("%s: not a program this module loaded with the %s prefix (use Load%s first)", what, prefix, map[string]string{kfuncPrefix: "Kfunc", kretfuncPrefix: "Kretfunc", lsmPrefix: "LSM"}[prefix])
	}
	target := strings.TrimPrefix(name, prefix)
	what = fmt.Sprintf("%s %s", verb, target)
	var res C.int
	var err error
	if kind == attachLSM {
		res, err = C.bpf_attach_lsm(C.int(fd))
	} else {
		res, err = C.bpf_attach_kfunc(C.int(fd))
	}
	if res < 0 {
		en := errnoOf(err, unix.EINVAL)
		switch {
		case en == unix.EPERM:
			return tracingRefused(what, en)
		case kind == attachLSM && (en == unix.EOPNOTSUPP || en == unix.EINVAL) && !bpfLSMActive():
			return errorf("%s: the BPF LSM is not active (boot with lsm=...,bpf; /sys/kernel/security/lsm lists the active ones): %w", what, ErrNotSupported)
		case en == errENOTSUPP || en == unix.EOPNOTSUPP:
			return errorf("%s: %v: %w", what, en, ErrNotSupported)
		}
		return attachFailure(what, en)
	}
	afd := int(res)
	m.addProbe(&attachment{kind: kind, target: target, progFd: fd, undo: func() error { return unix.Close(afd) }})
	return nil
}

// bpfLSMActive reports whether the BPF LSM is among the active LSMs (true
// when securityfs does not say).
func bpfLSMActive() bool {
	b, err := os.ReadFile("/sys/kernel/security/lsm")
	if err != nil {
		return true
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), ",") {
		if l == "bpf" {
			return true
		}
	}
	return false
}

// AttachKfunc attaches a program loaded with LoadKfunc (bcc's attach_kfunc).
// Detach it with DetachKfunc.
func (m *Module) AttachKfunc(fd int) error {
	return m.attachBTF(attachKfunc, "attach kfunc", kfuncPrefix, fd)
}

// AttachKretfunc attaches a program loaded with LoadKretfunc. Detach it
// with DetachKretfunc.
func (m *Module) AttachKretfunc(fd int) error {
	return m.attachBTF(attachKretfunc, "attach kretfunc", kretfuncPrefix, fd)
}

// AttachLSM attaches a program loaded with LoadLSM to its LSM hook (bcc's
// attach_lsm). The BPF LSM must be active (lsm= on the kernel command line
// includes "bpf"). Detach it with DetachLSM.
func (m *Module) AttachLSM(fd int) error {
	return m.attachBTF(attachLSM, "attach LSM program", lsmPrefix, fd)
}
