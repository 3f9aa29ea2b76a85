package bcc

/*
#include <stdlib.h>
#include <unistd.h>
#include <bcc/libbpf.h>
*/
import "C"

import (
	"errors"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
)

var (
	kfuncOnce, lsmOnce, iterOnce, kmultiOnce sync.Once
	kfuncErr, lsmErr, iterErr, kmultiErr     error
)

// returnZero is "r0 = 0; exit".
var returnZero = []bpfsys.Insn{bpfsys.MovImm(0, 0), bpfsys.Exit()}

// tryTracingProg loads "r0 = 0; exit" as a program of progType named name
// (libbcc derives its BTF target from the name), runs attach on it and
// closes everything.
func tryTracingProg(what string, progType int, name string, attach func(fd C.int) (C.int, error)) error {
	cname, lic := C.CString(name), C.CString("GPL")
	defer C.free(unsafe.Pointer(cname))
	defer C.free(unsafe.Pointer(lic))
	insns := C.malloc(C.size_t(len(returnZero)) * 8)
	defer C.free(insns)
	copy(unsafe.Slice((*bpfsys.Insn)(insns), len(returnZero)), returnZero)
	var fd C.int
	var err error
	fd, err = C.bcc_prog_load(uint32(progType), cname, (*C.struct_bpf_insn)(insns), C.int(len(returnZero)*8), lic, 0, 0, nil, 0)
	if fd < 0 {
		en := errnoOf(err, unix.EINVAL)
		if en == unix.EPERM {
			return tracingRefused(what, en)
		}
		return &LoadError{Name: name, Err: en}
	}
	defer C.close(fd)
	var afd C.int
	afd, err = attach(fd)
	if afd < 0 {
		en := errnoOf(err, unix.EINVAL)
		if en == unix.EPERM {
			return tracingRefused(what, en)
		}
		return en
	}
	C.close(afd)
	return nil
}

// SupportsKfunc reports whether the kernel loads and attaches fentry/fexit
// programs (KFUNC_PROBE, KRETFUNC_PROBE: Linux 5.5 with BTF, and not
// refused by lockdown), by attaching one to bpf_fentry_test1.
func SupportsKfunc() bool {
	kfuncOnce.Do(func() {
		kfuncErr = tryTracingProg("try fentry", progTypeTracing, kfuncPrefix+"bpf_fentry_test1",
			func(fd C.int) (C.int, error) {
				r, err := C.bpf_attach_kfunc(fd)
				return r, err
			})
	})
	return kfuncErr == nil
}

// SupportsLSM reports whether BPF LSM programs (LSM_PROBE) load and attach:
// CONFIG_BPF_LSM, "bpf" among the active LSMs, and no lockdown refusal.
func SupportsLSM() bool {
	lsmOnce.Do(func() {
		lsmErr = tryTracingProg("try BPF LSM", progTypeLSM, lsmPrefix+"task_setnice",
			func(fd C.int) (C.int, error) {
				r, err := C.bpf_attach_lsm(fd)
				return r, err
			})
	})
	return lsmErr == nil
}

// SupportsIterators reports whether BPF iterators (BPF_ITER, Linux 5.8)
// load and attach, trying a bpf_map iterator.
func SupportsIterators() bool {
	iterOnce.Do(func() {
		iterErr = tryTracingProg("try iterator", progTypeTracing, iterPrefix+"bpf_map",
			func(fd C.int) (C.int, error) {
				r, err := C.bcc_iter_attach(fd, nil, 0)
				return r, err
			})
	})
	return iterErr == nil
}

// SupportsKprobeMulti reports whether the kernel has kprobe.multi links
// (Linux 5.18 built with CONFIG_FPROBE), trying one on the getppid
// syscall's function.
func SupportsKprobeMulti() bool {
	kmultiOnce.Do(func() { kmultiErr = tryKprobeMulti() })
	return kmultiErr == nil
}

func tryKprobeMulti() error {
	fd, err := bpfsys.ProgLoad(&bpfsys.ProgLoadAttr{
		Type: bpfsys.BPF_PROG_TYPE_KPROBE, Insns: returnZero, License: "GPL",
		ExpectedAttachType: bpfsys.BPF_TRACE_KPROBE_MULTI,
	})
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	lfd, err := bpfsys.KprobeMultiLinkCreate(fd, []string{GetSyscallFnName("getppid")}, 0)
	if err != nil {
		return err
	}
	unix.Close(lfd)
	return nil
}

// kprobeMultiUnsupported explains why kprobe.multi is unavailable.
func kprobeMultiUnsupported() string {
	switch {
	case !SupportsKprobes():
		return "kernel lacks kprobes (CONFIG_KPROBES is not set), so kprobe.multi too"
	case errors.Is(kmultiErr, unix.EINVAL) || errors.Is(kmultiErr, unix.E2BIG):
		return "kernel has no kprobe.multi links (Linux 5.18+)"
	}
	return "kernel has no kprobe.multi links (Linux 5.18 with CONFIG_FPROBE)"
}
