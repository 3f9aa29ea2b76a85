// Compile-time check that this package keeps the exported API of upstream
// github.com/iovisor/gobpf's elf package (latest master): every function
// and method (as a method expression assigned to a variable of upstream's
// type), the constants, and the struct fields users set or read
// (SectionParams, CloseOptions, the Name of maps and programs, the perf
// record structs). A signature that drifts from upstream breaks the build of
// this test. It is written as user code (package elf_test), so it only
// relies on what an importer can see. Behaviour is not checked here, and
// additions beyond upstream are not listed.
package elf_test

import (
	"io"
	"sort"
	"testing"
	"unsafe"

	"github.com/iovisor/gobpf/elf"
)

// Package-level functions.
var (
	_ func(fileName string) *elf.Module                        = elf.NewModule
	_ func(fileReader io.ReaderAt) *elf.Module                 = elf.NewModuleFromReader
	_ func(fileName string, logSize uint32) *elf.Module        = elf.NewModuleWithLog
	_ func(fileReader io.ReaderAt, logSize uint32) *elf.Module = elf.NewModuleFromReaderWithLog

	_ func(uprobe *elf.Uprobe, path string, offset uint64) error                              = elf.AttachUprobe
	_ func(cgroupProg *elf.CgroupProgram, cgroupPath string, t elf.AttachType) error          = elf.AttachCgroupProgram
	_ func(progFd int, cgroupPath string, t elf.AttachType) error                             = elf.AttachCgroupProgramFromFd
	_ func(cgroupProg *elf.CgroupProgram, cgroupPath string, t elf.AttachType) error          = elf.DetachCgroupProgram
	_ func(socketFilter *elf.SocketFilter, sockFd int) error                                  = elf.AttachSocketFilter
	_ func(socketFilter *elf.SocketFilter, sockFd int) error                                  = elf.DetachSocketFilter
	_ func(b *elf.Module, mapName string, r chan []byte, l chan uint64) (*elf.PerfMap, error) = elf.InitPerfMap

	_ func(pinPath string) int                   = elf.GetProgFd
	_ func(fd int, namespace, name string) error = elf.PinObjectGlobal
	_ func(fd int, pinPath string) error         = elf.PinObject
	_ func() uint64                              = elf.NowNanoseconds
	_ func(releaseString string) (uint32, error) = elf.KernelVersionFromReleaseString
	_ func() (uint32, error)                     = elf.CurrentKernelVersion
	_ func(name string) (string, error)          = elf.GetSyscallFnName
)

// Module methods.
var (
	_ func(*elf.Module, map[string]elf.SectionParams) error    = (*elf.Module).Load
	_ func(*elf.Module, string) error                          = (*elf.Module).PerfMapStop
	_ func(*elf.Module) []byte                                 = (*elf.Module).Log
	_ func(*elf.Module)                                        = (*elf.Module).EnableOptionCompatProbe
	_ func(b *elf.Module, secName string, maxactive int) error = (*elf.Module).EnableKprobe
	_ func(b *elf.Module, maxactive int) error                 = (*elf.Module).EnableKprobes
	_ func(b *elf.Module, secName string) error                = (*elf.Module).EnableTracepoint

	_ func(*elf.Module) <-chan *elf.Map               = (*elf.Module).IterMaps
	_ func(*elf.Module) <-chan *elf.Kprobe            = (*elf.Module).IterKprobes
	_ func(*elf.Module) <-chan *elf.Uprobe            = (*elf.Module).IterUprobes
	_ func(*elf.Module) <-chan *elf.CgroupProgram     = (*elf.Module).IterCgroupProgram
	_ func(*elf.Module) <-chan *elf.TracepointProgram = (*elf.Module).IterTracepointProgram
	_ func(*elf.Module) <-chan *elf.XDPProgram        = (*elf.Module).IterXDPProgram
	_ func(*elf.Module) <-chan *elf.SocketFilter      = (*elf.Module).IterSocketFilter
	_ func(*elf.Module) <-chan *elf.SchedProgram      = (*elf.Module).IterSchedProgram

	_ func(*elf.Module, string) *elf.Map           = (*elf.Module).Map
	_ func(*elf.Module, string) *elf.Kprobe        = (*elf.Module).Kprobe
	_ func(*elf.Module, string) *elf.Uprobe        = (*elf.Module).Uprobe
	_ func(*elf.Module, string) *elf.CgroupProgram = (*elf.Module).CgroupProgram
	_ func(*elf.Module, string) *elf.SocketFilter  = (*elf.Module).SocketFilter
	_ func(*elf.Module, string) *elf.SchedProgram  = (*elf.Module).SchedProgram
	_ func(*elf.Module, string) *elf.XDPProgram    = (*elf.Module).XDPProgram

	_ func(b *elf.Module, devName string, secName string) error               = (*elf.Module).AttachXDP
	_ func(b *elf.Module, devName string, secName string, flags uint32) error = (*elf.Module).AttachXDPWithFlags
	_ func(b *elf.Module, devName string) error                               = (*elf.Module).RemoveXDP

	_ func(*elf.Module) error                                                            = (*elf.Module).Close
	_ func(*elf.Module, map[string]elf.CloseOptions) error                               = (*elf.Module).CloseExt
	_ func(b *elf.Module, mp *elf.Map, key, value unsafe.Pointer, flags uint64) error    = (*elf.Module).UpdateElement
	_ func(b *elf.Module, mp *elf.Map, key, value unsafe.Pointer) error                  = (*elf.Module).LookupElement
	_ func(b *elf.Module, mp *elf.Map, value unsafe.Pointer) error                       = (*elf.Module).LookupAndDeleteElement
	_ func(b *elf.Module, mp *elf.Map, key unsafe.Pointer) error                         = (*elf.Module).DeleteElement
	_ func(b *elf.Module, mp *elf.Map, key, nextKey, value unsafe.Pointer) (bool, error) = (*elf.Module).LookupNextElement
)

// File descriptors and names of maps and programs. The Name fields are read
// through selectors: here they are promoted from an embedded struct, so
// unlike upstream they cannot be set in a composite literal (elf.Kprobe{Name:
// ...}), which only matters to code that builds these values itself.
var (
	_ func(*elf.Map) int               = (*elf.Map).Fd
	_ func(*elf.Kprobe) int            = (*elf.Kprobe).Fd
	_ func(*elf.Uprobe) int            = (*elf.Uprobe).Fd
	_ func(*elf.CgroupProgram) int     = (*elf.CgroupProgram).Fd
	_ func(*elf.TracepointProgram) int = (*elf.TracepointProgram).Fd
	_ func(*elf.SocketFilter) int      = (*elf.SocketFilter).Fd
	_ func(*elf.SchedProgram) int      = (*elf.SchedProgram).Fd
	_ func(*elf.XDPProgram) int        = (*elf.XDPProgram).Fd

	_ = func(m *elf.Map) string { return m.Name }
	_ = func(p *elf.Kprobe) string { return p.Name }
	_ = func(p *elf.Uprobe) string { return p.Name }
	_ = func(p *elf.CgroupProgram) string { return p.Name }
	_ = func(p *elf.TracepointProgram) string { return p.Name }
	_ = func(p *elf.SocketFilter) string { return p.Name }
	_ = func(p *elf.SchedProgram) string { return p.Name }
	_ = func(p *elf.XDPProgram) string { return p.Name }
)

// PerfMap methods and the perf record types.
var (
	_ func(*elf.PerfMap) [][]byte                  = (*elf.PerfMap).SwapAndDumpBackward
	_ func(*elf.PerfMap) [][]byte                  = (*elf.PerfMap).DumpBackward
	_ func(*elf.PerfMap, func(*[]byte) uint64)     = (*elf.PerfMap).SetTimestampFunc
	_ func(*elf.PerfMap)                           = (*elf.PerfMap).PollStart
	_ func(*elf.PerfMap)                           = (*elf.PerfMap).PollStop
	_ sort.Interface                               = elf.OrderedBytesArray{}
	_ func(elf.OrderedBytesArray) int              = elf.OrderedBytesArray.Len
	_ func(a elf.OrderedBytesArray, i, j int)      = elf.OrderedBytesArray.Swap
	_ func(a elf.OrderedBytesArray, i, j int) bool = elf.OrderedBytesArray.Less

	_ = elf.PerfEventLost{
		PerfEventHeader: elf.PerfEventHeader{Type: u32, Misc: u16, TotalSize: u16},
		Id:              u64,
		Lost:            u64,
	}
	_ = elf.PerfEventSample{PerfEventHeader: elf.PerfEventHeader{}, Size: u32}

	// The record structs mirror kernel layouts.
	_ [8]struct{}  = [unsafe.Sizeof(elf.PerfEventHeader{})]struct{}{}
	_ [24]struct{} = [unsafe.Sizeof(elf.PerfEventLost{})]struct{}{}
)

var (
	u16 uint16
	u32 uint32
	u64 uint64
	s   string
	b   bool
	i   int
)

// Struct fields users set.
var (
	_ = elf.SectionParams{
		PerfRingBufferPageCount:    i,
		SkipPerfMapInitialization:  b,
		PinPath:                    s,
		MapMaxEntries:              i,
		PerfRingBufferBackward:     b,
		PerfRingBufferOverwritable: b,
	}
	_ = elf.CloseOptions{Unpin: b, PinPath: s}
)

// Constants: upstream's types and values.
var (
	// Untyped, as upstream: usable as int and as uint32.
	_ int    = elf.PIN_NONE
	_ uint32 = elf.PIN_NONE
	_ int    = elf.PIN_OBJECT_NS
	_ uint32 = elf.PIN_OBJECT_NS
	_ int    = elf.PIN_GLOBAL_NS
	_ uint32 = elf.PIN_GLOBAL_NS
	_ int    = elf.PIN_CUSTOM_NS
	_ uint32 = elf.PIN_CUSTOM_NS

	_ [1]struct{} = [1 + elf.PIN_NONE]struct{}{}
	_ [1]struct{} = [elf.PIN_OBJECT_NS]struct{}{}
	_ [2]struct{} = [elf.PIN_GLOBAL_NS]struct{}{}
	_ [3]struct{} = [elf.PIN_CUSTOM_NS]struct{}{}

	_ elf.AttachType = elf.IngressType
	_ elf.AttachType = elf.EgressType
	_ elf.AttachType = elf.SockCreateType
	_ int            = int(elf.AttachType(0)) // AttachType is an int type

	_ [1]struct{} = [1 + elf.IngressType]struct{}{}
	_ [1]struct{} = [elf.EgressType]struct{}{}
	_ [2]struct{} = [elf.SockCreateType]struct{}{}

	_ string = elf.BPFDirGlobals
	_ string = elf.BPFFSPath
)

// TestUpstreamAPICompat checks the values of the string constants, which
// cannot be compared at compile time; the rest of the file is checked when
// the test binary compiles.
func TestUpstreamAPICompat(t *testing.T) {
	if elf.BPFDirGlobals != "globals" || elf.BPFFSPath != "/sys/fs/bpf/" {
		t.Fatalf("BPFDirGlobals = %q, BPFFSPath = %q; upstream has \"globals\" and \"/sys/fs/bpf/\"", elf.BPFDirGlobals, elf.BPFFSPath)
	}
}
