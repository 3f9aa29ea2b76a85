package bcc

/*
#include <stdlib.h>
#include <bcc/libbpf.h>
*/
import "C"

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/pkg/cpuonline"
)

// PerfEventAttr mirrors the kernel's struct perf_event_attr
// (include/uapi/linux/perf_event.h, PERF_ATTR_SIZE_VER8), for
// AttachPerfEventRaw. Unions are given their most general name: Sample is
// sample_period, or sample_freq with PerfAttrFreq set; Config1 is also
// bp_addr, kprobe_func and uprobe_path; Config2 bp_len, kprobe_addr and
// probe_offset; Wakeup is wakeup_events or wakeup_watermark.
type PerfEventAttr struct {
	Type             uint32 // PERF_TYPE_*
	Size             uint32 // 0: the size of this struct
	Config           uint64 // PERF_COUNT_* of Type, a tracepoint id, ...
	Sample           uint64 // sample_period, or sample_freq with PerfAttrFreq
	SampleType       uint64 // PERF_SAMPLE_* bits
	ReadFormat       uint64
	Flags            uint64 // PerfAttr* bits (the kernel's bitfield)
	Wakeup           uint32
	BpType           uint32
	Config1          uint64
	Config2          uint64
	BranchSampleType uint64
	SampleRegsUser   uint64
	SampleStackUser  uint32
	ClockID          int32
	SampleRegsIntr   uint64
	AuxWatermark     uint32
	SampleMaxStack   uint16
	_                uint16
	AuxSampleSize    uint32
	_                uint32
	SigData          uint64
	Config3          uint64
}

// Bits of PerfEventAttr.Flags, in the order of the kernel's bitfield.
const (
	PerfAttrDisabled uint64 = 1 << iota
	PerfAttrInherit
	PerfAttrPinned
	PerfAttrExclusive
	PerfAttrExcludeUser
	PerfAttrExcludeKernel
	PerfAttrExcludeHV
	PerfAttrExcludeIdle
	PerfAttrMmap
	PerfAttrComm
	PerfAttrFreq
	PerfAttrInheritStat
	PerfAttrEnableOnExec
	PerfAttrTask
	PerfAttrWatermark
	PerfAttrPreciseIP1 // precise_ip is two bits: this one and the next
	PerfAttrPreciseIP2
	PerfAttrMmapData
	PerfAttrSampleIDAll
	PerfAttrExcludeHost
	PerfAttrExcludeGuest
)

// AttachPerfEventRaw opens a perf event described by attr for process pid
// (-1 for all) on cpu (-1 for every online CPU) and attaches the perf event
// program fd to it (bcc's attach_perf_event_raw). groupFd is the group
// leader (-1 for none) and extraFlags are ORed into perf_event_open's flags.
// The event must sample (a non-zero Sample): the program runs on each
// sample. attr is not modified. Detach it with
// DetachPerfEvent(attr.Type, attr.Config).
func (m *Module) AttachPerfEventRaw(attr *PerfEventAttr, fd, pid, cpu, groupFd int, extraFlags uint) error {
	if m == nil {
		return errorf("attach raw perf event: %w", ErrClosed)
	}
	if attr == nil {
		return errorf("attach raw perf event: nil attr")
	}
	a := *attr
	what := fmt.Sprintf("attach raw perf event %d:%d", a.Type, a.Config)
	if a.Sample == 0 {
		return errorf("%s: Sample (sample_period or sample_freq) is 0: the event would never run the program", what)
	}
	if a.Size == 0 {
		a.Size = uint32(unsafe.Sizeof(a))
	}
	if a.Size < 64 || a.Size > uint32(unsafe.Sizeof(a)) {
		return errorf("%s: Size %d out of range [64, %d]", what, a.Size, unsafe.Sizeof(a))
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
	// A C copy: libbcc keeps no pointer to it, but cgo must not see Go
	// memory that the kernel writes (the size field on E2BIG).
	ca := (*PerfEventAttr)(C.malloc(C.size_t(unsafe.Sizeof(a))))
	defer C.free(unsafe.Pointer(ca))
	var fds []C.int
	for _, c := range cpus {
		*ca = a
		var res C.int
		var err error
		res, err = C.bpf_attach_perf_event_raw(C.int(fd), unsafe.Pointer(ca), C.pid_t(pid), C.int(c), C.int(groupFd), C.ulong(extraFlags))
		if res < 0 {
			for _, f := range fds {
				C.bpf_close_perf_event_fd(f)
			}
			en := errnoOf(err, unix.EINVAL)
			if en == unix.E2BIG {
				return errorf("%s on cpu %d: the kernel does not know some field set in attr (it takes %d bytes): %v", what, c, ca.Size, en)
			}
			return attachFailure(fmt.Sprintf("%s on cpu %d", what, c), en)
		}
		fds = append(fds, res)
	}
	m.addProbe(&attachment{kind: attachPerfEvent, target: perfEventKey(a.Type, a.Config), progFd: fd, undo: func() error {
		for _, f := range fds {
			C.bpf_close_perf_event_fd(f)
		}
		return nil
	}})
	return nil
}
