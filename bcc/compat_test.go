// Compile-time check that this package keeps the exported API of upstream
// github.com/iovisor/gobpf's bcc package (latest master): every function and method (as a method expression assigned to a variable
// of upstream's type), the constants and the types users name. A signature
// that drifts from upstream breaks the build of this test. Only the API is
// checked here, not behaviour; additions beyond upstream are not listed.
//
// The package clause is bcc, as upstream's, and this file imports it
// plainly (no alias), as exporters and gobpf's own integration test do;
// gobpf's examples import it under the alias bpf (see examples/).
package bcc_test

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/iovisor/gobpf/bcc"
)

// Package-level functions.
var (
	_ func(code string, cflags []string) *bcc.Module                        = bcc.NewModule
	_ func() binary.ByteOrder                                               = bcc.GetHostByteOrder
	_ func(*bcc.Table, chan []byte, chan uint64) (*bcc.PerfMap, error)      = bcc.InitPerfMap
	_ func(*bcc.Table, chan []byte, chan uint64, int) (*bcc.PerfMap, error) = bcc.InitPerfMapWithPageCnt
	_ func(name string) string                                              = bcc.GetSyscallFnName
	_ func() string                                                         = bcc.GetSyscallPrefix
	_ func(*bcc.Table) bool                                                 = bcc.IsQueueStack
	_ func(*bcc.Table) *bcc.QueueStack                                      = bcc.NewQueueStack
)

// Module methods.
var (
	_ func(*bcc.Module)                                                                                = (*bcc.Module).Close
	_ func(*bcc.Module, int) (uint64, error)                                                           = (*bcc.Module).GetProgramTag
	_ func(*bcc.Module, string) (int, error)                                                           = (*bcc.Module).LoadNet
	_ func(*bcc.Module, string) (int, error)                                                           = (*bcc.Module).LoadKprobe
	_ func(*bcc.Module, string) (int, error)                                                           = (*bcc.Module).LoadTracepoint
	_ func(*bcc.Module, string) (int, error)                                                           = (*bcc.Module).LoadRawTracepoint
	_ func(*bcc.Module, string) (int, error)                                                           = (*bcc.Module).LoadPerfEvent
	_ func(*bcc.Module, string) (int, error)                                                           = (*bcc.Module).LoadUprobe
	_ func(*bcc.Module, string, int, uint, uint) (int, error)                                          = (*bcc.Module).Load
	_ func(*bcc.Module, string, int, int) error                                                        = (*bcc.Module).AttachKprobe
	_ func(*bcc.Module, string, int, int) error                                                        = (*bcc.Module).AttachKretprobe
	_ func(*bcc.Module, string, int) error                                                             = (*bcc.Module).AttachTracepoint
	_ func(*bcc.Module, string, int) error                                                             = (*bcc.Module).AttachRawTracepoint
	_ func(m *bcc.Module, evType, evConfig, samplePeriod, sampleFreq, pid, cpu, groupFd, fd int) error = (*bcc.Module).AttachPerfEvent
	_ func(m *bcc.Module, name, symbol string, fd, pid int) error                                      = (*bcc.Module).AttachUprobe
	_ func(m *bcc.Module, name, match string, fd, pid int) error                                       = (*bcc.Module).AttachMatchingUprobes
	_ func(m *bcc.Module, name, symbol string, fd, pid int) error                                      = (*bcc.Module).AttachUretprobe
	_ func(m *bcc.Module, name, match string, fd, pid int) error                                       = (*bcc.Module).AttachMatchingUretprobes
	_ func(*bcc.Module) uint64                                                                         = (*bcc.Module).TableSize
	_ func(*bcc.Module, uint64) map[string]interface{}                                                 = (*bcc.Module).TableDesc
	_ func(*bcc.Module) <-chan map[string]interface{}                                                  = (*bcc.Module).TableIter
	_ func(m *bcc.Module, devName string, fd int) error                                                = (*bcc.Module).AttachXDP
	_ func(m *bcc.Module, devName string, fd int, flags uint32) error                                  = (*bcc.Module).AttachXDPWithFlags
	_ func(m *bcc.Module, devName string) error                                                        = (*bcc.Module).RemoveXDP
	_ func(m *bcc.Module, addr uint64, pid int) string                                                 = (*bcc.Module).GetSymbolByAddr
	_ func(m *bcc.Module, addr uint64, pid int) string                                                 = (*bcc.Module).GetDemangleSymbolByAddr
)

// Table, TableIterator, PerfMap and QueueStack methods.
var (
	_ func(*bcc.Table) string                                  = (*bcc.Table).ID
	_ func(*bcc.Table) string                                  = (*bcc.Table).Name
	_ func(*bcc.Table) map[string]interface{}                  = (*bcc.Table).Config
	_ func(*bcc.Table, string) ([]byte, error)                 = (*bcc.Table).LeafStrToBytes
	_ func(*bcc.Table, string) ([]byte, error)                 = (*bcc.Table).KeyStrToBytes
	_ func(*bcc.Table, []byte) (string, error)                 = (*bcc.Table).KeyBytesToStr
	_ func(*bcc.Table, []byte) (string, error)                 = (*bcc.Table).LeafBytesToStr
	_ func(*bcc.Table, []byte) ([]byte, error)                 = (*bcc.Table).Get
	_ func(*bcc.Table, unsafe.Pointer) (unsafe.Pointer, error) = (*bcc.Table).GetP
	_ func(t *bcc.Table, key, leaf []byte) error               = (*bcc.Table).Set
	_ func(t *bcc.Table, key, leaf unsafe.Pointer) error       = (*bcc.Table).SetP
	_ func(*bcc.Table, []byte) error                           = (*bcc.Table).Delete
	_ func(*bcc.Table, unsafe.Pointer) error                   = (*bcc.Table).DeleteP
	_ func(*bcc.Table) error                                   = (*bcc.Table).DeleteAll
	_ func(*bcc.Table) *bcc.TableIterator                      = (*bcc.Table).Iter
	_ func(*bcc.TableIterator) bool                            = (*bcc.TableIterator).Next
	_ func(*bcc.TableIterator) []byte                          = (*bcc.TableIterator).Key
	_ func(*bcc.TableIterator) []byte                          = (*bcc.TableIterator).Leaf
	_ func(*bcc.TableIterator) error                           = (*bcc.TableIterator).Err
	_ func(*bcc.PerfMap)                                       = (*bcc.PerfMap).Start
	_ func(*bcc.PerfMap)                                       = (*bcc.PerfMap).Stop
	_ func(q *bcc.QueueStack, leaf []byte, flags int) error    = (*bcc.QueueStack).Push
	_ func(*bcc.QueueStack) ([]byte, error)                    = (*bcc.QueueStack).Pop
	_ func(*bcc.QueueStack) (unsafe.Pointer, error)            = (*bcc.QueueStack).PopP
	_ func(*bcc.QueueStack) ([]byte, error)                    = (*bcc.QueueStack).Peek
	_ func(*bcc.QueueStack) (unsafe.Pointer, error)            = (*bcc.QueueStack).PeekP
	_ func(q bcc.QueueStack) *bcc.Table                        = func(q bcc.QueueStack) *bcc.Table { return q.Table } // embeds *Table
	_ func(q *bcc.QueueStack, k []byte) ([]byte, error)        = func(q *bcc.QueueStack, k []byte) ([]byte, error) { return q.Get(k) }
)

// TableId returns a C.size_t, the type NewTable takes. A C type of this
// package cannot be named from outside it (nor in a test file, which cannot
// use cgo), so check what users can do: pass TableId's result straight to
// NewTable, and convert it to an integer.
func sameTableIDType[ID any](func(*bcc.Module, string) ID, func(ID, *bcc.Module) *bcc.Table) {}

func _() {
	sameTableIDType((*bcc.Module).TableId, bcc.NewTable)
	var m *bcc.Module
	_ = uint64(m.TableId("events"))
	_ = bcc.NewTable(m.TableId("events"), m)
}

// The plain-import usage of gobpf's integration test (bpf_test.go, build
// tag integration), which compiles unchanged against this package (checked
// by building it in a module replacing github.com/iovisor/gobpf with this
// tree): tables filled from strings and from host-order bytes, iterated,
// and used through pointers.
func _() {
	m := bcc.NewModule("BPF_HASH(t, int, int, 10);", []string{})
	defer m.Close()
	_, _ = m.LoadKprobe("f")
	table := bcc.NewTable(m.TableId("t"), m)
	key, _ := table.KeyStrToBytes("1")
	leaf, _ := table.LeafStrToBytes("11")
	_ = table.Set(key, leaf)
	key, leaf = make([]byte, 4), make([]byte, 4)
	bcc.GetHostByteOrder().PutUint32(key, 2)
	bcc.GetHostByteOrder().PutUint32(leaf, 22)
	_ = table.Set(key, leaf)
	iter := table.Iter()
	for iter.Next() {
		k, l := iter.Key(), iter.Leaf()
		_, _ = table.KeyBytesToStr(k)
		_, _ = table.LeafBytesToStr(l)
	}
	_ = iter.Err()
	for it := table.Iter(); it.Next(); {
	}
	var k, v uint32
	_ = table.SetP(unsafe.Pointer(&k), unsafe.Pointer(&v))
	p, _ := table.GetP(unsafe.Pointer(&k))
	_ = (*uint32)(p)
	_ = table.DeleteP(unsafe.Pointer(&k))
	_ = table.DeleteAll()
}

// Constants: upstream's types, and values where they are part of the API.
var (
	_ int = bcc.BPF_PROBE_ENTRY
	_ int = bcc.BPF_PROBE_RETURN

	_ [1]struct{} = [1 + bcc.BPF_PROBE_ENTRY]struct{}{} // == 0
	_ [1]struct{} = [bcc.BPF_PROBE_RETURN]struct{}{}    // == 1

	// XDP flags are uint32 constants, as in upstream (uint32(1) << iota).
	_ uint32 = bcc.XDP_FLAGS_UPDATE_IF_NOEXIST
	_ uint32 = bcc.XDP_FLAGS_SKB_MODE
	_ uint32 = bcc.XDP_FLAGS_DRV_MODE
	_ uint32 = bcc.XDP_FLAGS_HW_MODE
	_ uint32 = bcc.XDP_FLAGS_MODES
	_ uint32 = bcc.XDP_FLAGS_MASK

	_ [1]struct{}  = [bcc.XDP_FLAGS_UPDATE_IF_NOEXIST]struct{}{}
	_ [2]struct{}  = [bcc.XDP_FLAGS_SKB_MODE]struct{}{}
	_ [4]struct{}  = [bcc.XDP_FLAGS_DRV_MODE]struct{}{}
	_ [8]struct{}  = [bcc.XDP_FLAGS_HW_MODE]struct{}{}
	_ [14]struct{} = [bcc.XDP_FLAGS_MODES]struct{}{}
	_ [15]struct{} = [bcc.XDP_FLAGS_MASK]struct{}{}

	// Untyped int in both; the default differs (upstream 8 pages, here
	// 64), which only changes the ring size, not what compiles.
	_ int = bcc.BPF_PERF_READER_PAGE_CNT
)

// TestUpstreamAPICompat only marks this file in test output: everything
// it guards is checked when the test binary compiles.
func TestUpstreamAPICompat(t *testing.T) {}
