package bcc

import (
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const benchSource = `
BPF_HASH(small, u32, u64, 1024);
BPF_HASH(big, u32, u64, 1000000);
`

const bigEntries = 1000000

var benchOnce struct {
	sync.Once
	m   *Module
	err error
}

// benchModule compiles the benchmarks' module once and fills "big" with
// 1,000,000 entries (and "small" with 1024) using BatchUpdate.
func benchModule(b *testing.B) *Module {
	b.Helper()
	benchOnce.Do(func() {
		m, err := NewModuleWithError(benchSource, nil)
		if err != nil {
			benchOnce.err = err
			return
		}
		fill := func(name string, n int) error {
			tb := NewTable(m.TableId(name), m)
			keys, values := make([]byte, 4*n), make([]byte, 8*n)
			for i := 0; i < n; i++ {
				hostOrder.PutUint32(keys[4*i:], uint32(i))
				hostOrder.PutUint64(values[8*i:], uint64(i)*3)
			}
			_, err := tb.BatchUpdate(keys, values)
			return err
		}
		if err = fill("small", 1024); err == nil {
			err = fill("big", bigEntries)
		}
		if err != nil {
			m.Close()
			benchOnce.err = err
			return
		}
		benchOnce.m = m
	})
	if benchOnce.err != nil {
		b.Fatal(benchOnce.err)
	}
	return benchOnce.m
}

func benchTable(b *testing.B, name string) *Table {
	m := benchModule(b)
	return NewTable(m.TableId(name), m)
}

func BenchmarkTableGet(b *testing.B) {
	tb := benchTable(b, "small")
	key := tU32(42)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tb.Get(key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTableSet(b *testing.B) {
	tb := benchTable(b, "small")
	key, val := tU32(42), tU64(126)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := tb.Set(key, val); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTypedGet(b *testing.B) {
	tt, err := NewTypedTable[uint32, uint64](benchTable(b, "small"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tt.Get(42); err != nil {
			b.Fatal(err)
		}
	}
}

// rawElemAttr is the element member of union bpf_attr.
type rawElemAttr struct {
	fd    uint32
	_     uint32
	key   uint64
	value uint64
	flags uint64
}

// benchRaw issues bpf(cmd) on "small"'s fd directly, the floor Get and
// Set are measured against.
func benchRaw(b *testing.B, cmd uintptr) {
	tb := benchTable(b, "small")
	key, val := tU32(42), tU64(126)
	attr := &rawElemAttr{
		fd:    uint32(tb.FD()),
		key:   uint64(uintptr(unsafe.Pointer(&key[0]))),
		value: uint64(uintptr(unsafe.Pointer(&val[0]))),
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(unsafe.Pointer(attr)), unsafe.Sizeof(*attr)); errno != 0 {
			b.Fatal(errno)
		}
	}
	b.StopTimer()
	_ = key[0] + val[0] // keep the buffers alive
}

func BenchmarkRawBPFLookup(b *testing.B) { benchRaw(b, 1 /* BPF_MAP_LOOKUP_ELEM */) }
func BenchmarkRawBPFUpdate(b *testing.B) { benchRaw(b, 2 /* BPF_MAP_UPDATE_ELEM */) }

func BenchmarkIterate1M(b *testing.B) {
	tb := benchTable(b, "big")
	run := func(b *testing.B, iter func() *TableIterator) {
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			it := iter()
			n := 0
			var sum uint64
			for it.Next() {
				sum += hostOrder.Uint64(it.Leaf())
				n++
			}
			if it.Err() != nil || n != bigEntries {
				b.Fatalf("iterated %d entries: %v", n, it.Err())
			}
			if want := uint64(bigEntries) * (bigEntries - 1) / 2 * 3; sum != want {
				b.Fatalf("sum %d, want %d", sum, want)
			}
		}
	}
	b.Run("perkey", func(b *testing.B) { run(b, tb.Iter) })
	b.Run("batch", func(b *testing.B) { run(b, func() *TableIterator { return tb.BatchIter(4096) }) })
}

// BenchmarkTableVsRaw interleaves short runs of Get/Set and of the bare
// syscall, so that load from elsewhere on the machine hits both alike, and
// reports their ratios (get/raw, set/raw).
func BenchmarkTableVsRaw(b *testing.B) {
	tb := benchTable(b, "small")
	key, val := tU32(42), tU64(126)
	attr := &rawElemAttr{
		fd:    uint32(tb.FD()),
		key:   uint64(uintptr(unsafe.Pointer(&key[0]))),
		value: uint64(uintptr(unsafe.Pointer(&val[0]))),
	}
	raw := func(cmd uintptr) {
		if _, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(unsafe.Pointer(attr)), unsafe.Sizeof(*attr)); errno != 0 {
			b.Fatal(errno)
		}
	}
	const block = 64
	var tRawGet, tGet, tRawSet, tSet time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; done += block {
		t0 := time.Now()
		for i := 0; i < block; i++ {
			raw(1)
		}
		t1 := time.Now()
		for i := 0; i < block; i++ {
			if _, err := tb.Get(key); err != nil {
				b.Fatal(err)
			}
		}
		t2 := time.Now()
		for i := 0; i < block; i++ {
			raw(2)
		}
		t3 := time.Now()
		for i := 0; i < block; i++ {
			if err := tb.Set(key, val); err != nil {
				b.Fatal(err)
			}
		}
		t4 := time.Now()
		tRawGet += t1.Sub(t0)
		tGet += t2.Sub(t1)
		tRawSet += t3.Sub(t2)
		tSet += t4.Sub(t3)
	}
	b.StopTimer()
	b.ReportMetric(float64(tGet)/float64(tRawGet), "get/raw")
	b.ReportMetric(float64(tSet)/float64(tRawSet), "set/raw")
	_ = key[0] + val[0]
}
