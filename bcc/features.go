package bcc

/*
#cgo LDFLAGS: -lbcc
#include <stdlib.h>
#include <bcc/bcc_syms.h>
*/
import "C"

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
)

// Each Supports* function answers by trying the feature once (creating a
// probe, a map or a program and removing it at once) and caches the answer.

var (
	kprobesOnce, uprobesOnce, ringBufOnce, batchOnce, rawTPOnce sync.Once
	haveKprobes, haveUprobes, haveRingBuf, haveBatch, haveRawTP bool
)

// SupportsKprobes reports whether the kernel can attach kprobes (it was
// built with CONFIG_KPROBES).
func SupportsKprobes() bool {
	kprobesOnce.Do(func() { haveKprobes = probeKprobes() })
	return haveKprobes
}

// SupportsUprobes reports whether the kernel can attach uprobes.
func SupportsUprobes() bool {
	uprobesOnce.Do(func() { haveUprobes = probeUprobes() })
	return haveUprobes
}

// SupportsRingBuf reports whether the kernel has BPF ring buffers
// (BPF_MAP_TYPE_RINGBUF, Linux 5.8).
func SupportsRingBuf() bool {
	ringBufOnce.Do(func() {
		fd, err := bpfsys.MapCreate(&bpfsys.MapCreateAttr{
			MapType: bpfsys.BPF_MAP_TYPE_RINGBUF, MaxEntries: uint32(os.Getpagesize()),
		})
		if err == nil {
			unix.Close(fd)
			haveRingBuf = true
		}
	})
	return haveRingBuf
}

// SupportsBatchOps reports whether the kernel has batched map operations
// (BPF_MAP_LOOKUP_BATCH and friends, Linux 5.6) for hash maps.
func SupportsBatchOps() bool {
	batchOnce.Do(func() {
		fd, err := bpfsys.MapCreate(&bpfsys.MapCreateAttr{
			MapType: bpfsys.BPF_MAP_TYPE_HASH, KeySize: 4, ValueSize: 4, MaxEntries: 1,
		})
		if err != nil {
			return
		}
		defer unix.Close(fd)
		var k, v, out uint32
		count := uint32(1)
		err = bpfsys.MapLookupBatch(fd, nil, unsafe.Pointer(&out), unsafe.Pointer(&k), unsafe.Pointer(&v), &count)
		// An empty map answers ENOENT when the command exists.
		haveBatch = err == nil || errors.Is(err, unix.ENOENT)
	})
	return haveBatch
}

// SupportsRawTracepoints reports whether the kernel can attach raw
// tracepoint programs (BPF_RAW_TRACEPOINT_OPEN, Linux 4.17).
func SupportsRawTracepoints() bool {
	rawTPOnce.Do(func() {
		fd, err := bpfsys.ProgLoad(&bpfsys.ProgLoadAttr{
			Type:    bpfsys.BPF_PROG_TYPE_RAW_TRACEPOINT,
			Insns:   []bpfsys.Insn{bpfsys.MovImm(0, 0), bpfsys.Exit()},
			License: "GPL",
		})
		if err != nil {
			return
		}
		defer unix.Close(fd)
		afd, err := bpfsys.RawTracepointOpen("sys_enter", fd)
		if err == nil {
			unix.Close(afd)
		}
		// ENOENT: the command works, this kernel just has no such tracepoint.
		haveRawTP = err == nil || errors.Is(err, unix.ENOENT)
	})
	return haveRawTP
}

// pmuType reads the perf PMU type of a dynamic PMU ("kprobe", "uprobe").
func pmuType(name string) (uint32, bool) {
	b, err := os.ReadFile("/sys/bus/event_source/devices/" + name + "/type")
	if err != nil {
		return 0, false
	}
	t, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	return uint32(t), err == nil
}

// probePerfEvent opens and closes a disabled perf event for a dynamic PMU
// probe; name and offset go in config1 (a C string) and config2.
func probePerfEvent(typ uint32, name string, offset uint64, pid, cpu int) bool {
	cs := append([]byte(name), 0)
	attr := unix.PerfEventAttr{
		Type:   typ,
		Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Bits:   unix.PerfBitDisabled,
		Ext1:   uint64(uintptr(unsafe.Pointer(&cs[0]))),
		Ext2:   offset,
		Sample: 1,
	}
	fd, err := unix.PerfEventOpen(&attr, pid, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	runtime.KeepAlive(cs)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

func probeKprobes() bool {
	if typ, ok := pmuType("kprobe"); ok {
		return probePerfEvent(typ, GetSyscallFnName("getppid"), 0, -1, 0)
	}
	// Kernels before 4.17: the tracefs interface alone.
	for _, d := range tracefsDirs {
		if _, err := os.Stat(d + "/kprobe_events"); err == nil {
			return true
		}
	}
	return false
}

func probeUprobes() bool {
	typ, ok := pmuType("uprobe")
	if !ok {
		for _, d := range tracefsDirs {
			if _, err := os.Stat(d + "/uprobe_events"); err == nil {
				return true
			}
		}
		return false
	}
	// A uprobe on libc's getpid, for this process only, never enabled.
	lib, sym := C.CString("c"), C.CString("getpid")
	defer C.free(unsafe.Pointer(lib))
	defer C.free(unsafe.Pointer(sym))
	var s C.struct_bcc_symbol
	if C.bcc_resolve_symname(lib, sym, 0, 0, nil, &s) < 0 {
		if s.module != nil {
			C.free(unsafe.Pointer(s.module))
		}
		return true // the PMU exists; no libc to try it on
	}
	path := C.GoString(s.module)
	C.free(unsafe.Pointer(s.module))
	return probePerfEvent(typ, path, uint64(s.offset), os.Getpid(), -1)
}
