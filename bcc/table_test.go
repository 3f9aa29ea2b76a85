package bcc

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"github.com/iovisor/gobpf/internal/testutil"
	"github.com/iovisor/gobpf/pkg/cpupossible"
	"golang.org/x/sys/unix"
)

// tablesSource declares one table of each kind the tests exercise, and a
// tracepoint program counting this process's getppid calls.
const tablesSource = `
struct k2 { u32 a; u32 b; };
BPF_HASH(hash, struct k2, u64, 64);
BPF_ARRAY(arr, u64, 8);
BPF_PERCPU_HASH(pchash, u32, u64, 64);
BPF_PERCPU_ARRAY(pcarr, u32, 4);
BPF_TABLE("lru_hash", u32, u64, lru, 8);
BPF_HASH(calls, u32, u64, 16);
BPF_PERCPU_ARRAY(pccalls, u64, 1);
BPF_HASH(batchh, u32, u64, 4096);
BPF_ARRAY(batcha, u64, 1024);
BPF_PERCPU_HASH(batchpc, u32, u32, 256);

TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid != TEST_TGID)
		return 0;
	u64 zero = 0;
	u64 *n = calls.lookup_or_try_init(&tgid, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
	int idx = 0;
	u64 *c = pccalls.lookup(&idx);
	if (c)
		(*c)++;
	return 0;
}
`

var tablesOnce struct {
	sync.Once
	m   *Module
	err error
}

// tablesModule returns the tests' shared module (compiled and attached
// once per test binary, never closed). Call it before CheckLeaks.
func tablesModule(t testing.TB) *Module {
	t.Helper()
	tablesOnce.Do(func() {
		m, err := NewModuleWithError(tablesSource, []string{fmt.Sprintf("-DTEST_TGID=%d", os.Getpid())})
		if err != nil {
			tablesOnce.err = err
			return
		}
		fd, err := m.LoadTracepoint("tracepoint__syscalls__sys_enter_getppid")
		if err == nil {
			err = m.AttachTracepoint("syscalls:sys_enter_getppid", fd)
		}
		if err != nil {
			m.Close()
			tablesOnce.err = err
			return
		}
		tablesOnce.m = m
	})
	if tablesOnce.err != nil {
		t.Fatal(tablesOnce.err)
	}
	return tablesOnce.m
}

// tbl returns the shared module's table name, emptied.
func tTable(t testing.TB, name string) *Table {
	t.Helper()
	m := tablesModule(t)
	tb := NewTable(m.TableId(name), m)
	if tb.Name() != name {
		t.Fatalf("NewTable(%q): name %q", name, tb.Name())
	}
	if err := tb.DeleteAll(); err != nil {
		t.Fatalf("%s.DeleteAll: %v", name, err)
	}
	return tb
}

func tU32(v uint32) []byte {
	b := make([]byte, 4)
	hostOrder.PutUint32(b, v)
	return b
}

func tU64(v uint64) []byte {
	b := make([]byte, 8)
	hostOrder.PutUint64(b, v)
	return b
}

func tK2b(a, b uint32) []byte { return append(tU32(a), tU32(b)...) }

// dump reads a table with Iter into a map from hex key to value.
func tDump(t testing.TB, tb *Table) map[string][]byte {
	t.Helper()
	return tCollect(t, tb.Iter())
}

func tCollect(t testing.TB, it *TableIterator) map[string][]byte {
	t.Helper()
	got := map[string][]byte{}
	for it.Next() {
		k := fmt.Sprintf("%x", it.Key())
		if _, dup := got[k]; dup {
			t.Fatalf("iteration returned key %s twice", k)
		}
		got[k] = append([]byte(nil), it.Leaf()...)
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iteration: %v", err)
	}
	return got
}

func tSame(t testing.TB, what string, got, want map[string][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d entries, want %d", what, len(got), len(want))
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Fatalf("%s: key %s missing", what, k)
		}
		if !bytes.Equal(g, w) {
			t.Fatalf("%s: key %s = %x, want %x", what, k, g, w)
		}
	}
}

func tNumCPU(t testing.TB) int {
	t.Helper()
	cpus, err := cpupossible.Get()
	if err != nil {
		t.Fatal(err)
	}
	return len(cpus)
}

func TestTableModuleDescriptions(t *testing.T) {
	m := tablesModule(t)
	if n := m.TableSize(); n != 10 {
		t.Fatalf("TableSize = %d, want 10", n)
	}
	names := map[string]map[string]interface{}{}
	for d := range m.TableIter() {
		names[d["name"].(string)] = d
	}
	if len(names) != 10 {
		t.Fatalf("TableIter gave %d tables: %v", len(names), names)
	}
	h := names["hash"]
	if h["key_size"] != uint64(8) || h["leaf_size"] != uint64(8) || h["max_entries"] != uint64(64) ||
		h["type"] != 1 || h["fd"].(int) < 0 || h["leaf_desc"] != `"unsigned long long"` {
		t.Fatalf("hash desc = %v", h)
	}
	id := m.TableId("pcarr")
	tb := NewTable(id, m)
	if d := m.TableDesc(uint64(id)); fmt.Sprint(d) != fmt.Sprint(tb.Config()) {
		t.Fatalf("TableDesc %v != Config %v", d, tb.Config())
	}
	if tb.ID() != "pcarr" || tb.KeySize() != 4 || tb.LeafSize() != 4 || !tb.PerCPU() ||
		tb.NumCPU() != tNumCPU(t) || tb.ValueSize() != 8*tNumCPU(t) || tb.MaxEntries() != 4 {
		t.Fatalf("pcarr: id %q key %d leaf %d percpu %v ncpu %d value %d max %d", tb.ID(), tb.KeySize(),
			tb.LeafSize(), tb.PerCPU(), tb.NumCPU(), tb.ValueSize(), tb.MaxEntries())
	}
	if m.TableDesc(1000) != nil {
		t.Fatal("TableDesc of a bad id is not nil")
	}
}

func TestTableHash(t *testing.T) {
	tb := tTable(t, "hash")
	want := map[string][]byte{}
	for i := uint32(1); i <= 10; i++ {
		k, v := tK2b(i, i*100), tU64(uint64(i)*1000+7)
		if err := tb.Set(k, v); err != nil {
			t.Fatal(err)
		}
		want[fmt.Sprintf("%x", k)] = v
	}
	got, err := tb.Get(tK2b(3, 300))
	if err != nil || !bytes.Equal(got, tU64(3007)) {
		t.Fatalf("Get = %x, %v", got, err)
	}
	tSame(t, "Iter", tDump(t, tb), want)

	// Overwrite, delete, and missing keys.
	if err := tb.Set(tK2b(3, 300), tU64(42)); err != nil {
		t.Fatal(err)
	}
	want[fmt.Sprintf("%x", tK2b(3, 300))] = tU64(42)
	if err := tb.Delete(tK2b(5, 500)); err != nil {
		t.Fatal(err)
	}
	delete(want, fmt.Sprintf("%x", tK2b(5, 500)))
	tSame(t, "after Set/Delete", tDump(t, tb), want)
	if _, err := tb.Get(tK2b(5, 500)); !errors.Is(err, ErrKeyNotExist) {
		t.Fatalf("Get of a deleted key: %v", err)
	}
	if err := tb.Delete(tK2b(5, 500)); !errors.Is(err, ErrKeyNotExist) {
		t.Fatalf("Delete of a missing key: %v", err)
	}

	// Pointer variants.
	k := [2]uint32{7, 700}
	p, err := tb.GetP(unsafe.Pointer(&k))
	if err != nil || *(*uint64)(p) != 7007 {
		t.Fatalf("GetP: %v", err)
	}
	v := uint64(99)
	if err := tb.SetP(unsafe.Pointer(&k), unsafe.Pointer(&v)); err != nil {
		t.Fatal(err)
	}
	if got, _ := tb.Get(tK2b(7, 700)); !bytes.Equal(got, tU64(99)) {
		t.Fatalf("after SetP: %x", got)
	}
	if err := tb.DeleteP(unsafe.Pointer(&k)); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.GetP(unsafe.Pointer(&k)); !errors.Is(err, ErrKeyNotExist) {
		t.Fatalf("GetP of a deleted key: %v", err)
	}

	// Size mismatches are errors, not crashes.
	if _, err := tb.Get(tU32(1)); err == nil {
		t.Fatal("Get with a 4-byte key on 8-byte keys succeeded")
	}
	if err := tb.Set(tK2b(1, 1), tU32(1)); err == nil {
		t.Fatal("Set with a 4-byte leaf on 8-byte values succeeded")
	}
	if err := tb.Delete(nil); err == nil {
		t.Fatal("Delete(nil) succeeded")
	}
	if _, err := tb.KeyBytesToStr([]byte{1}); err == nil {
		t.Fatal("KeyBytesToStr of a short key succeeded")
	}

	// A full hash refuses new keys.
	for i := uint32(0); i < 64; i++ {
		tb.Set(tK2b(1000+i, 0), tU64(1))
	}
	if err := tb.Set(tK2b(5000, 0), tU64(1)); !errors.Is(err, unix.E2BIG) {
		t.Fatalf("Set on a full hash: %v", err)
	}

	if err := tb.DeleteAll(); err != nil {
		t.Fatal(err)
	}
	if n := len(tDump(t, tb)); n != 0 {
		t.Fatalf("%d entries after DeleteAll", n)
	}
}

func TestTableStrings(t *testing.T) {
	tb := tTable(t, "hash")
	k, err := tb.KeyStrToBytes("{ 1 2 }")
	if err != nil || !bytes.Equal(k, tK2b(1, 2)) {
		t.Fatalf("KeyStrToBytes = %x, %v", k, err)
	}
	s, err := tb.KeyBytesToStr(k)
	if err != nil || s != "{ 0x1 0x2 }" {
		t.Fatalf("KeyBytesToStr = %q, %v", s, err)
	}
	if kBack, err := tb.KeyStrToBytes(s); err != nil || !bytes.Equal(kBack, k) {
		t.Fatalf("round trip: %x, %v", kBack, err)
	}
	l, err := tb.LeafStrToBytes("0x1")
	if err != nil || !bytes.Equal(l, tU64(1)) {
		t.Fatalf("LeafStrToBytes = %x, %v", l, err)
	}
	if s, err := tb.LeafBytesToStr(l); err != nil || s != "0x1" {
		t.Fatalf("LeafBytesToStr = %q, %v", s, err)
	}
	if err := tb.Set(k, l); err != nil {
		t.Fatal(err)
	}
	if got, err := tb.Get(k); err != nil || !bytes.Equal(got, tU64(1)) {
		t.Fatalf("Get = %x, %v", got, err)
	}
	if _, err := tb.KeyStrToBytes("not a key"); err == nil {
		t.Fatal("KeyStrToBytes of garbage succeeded")
	} else {
		t.Logf("KeyStrToBytes of garbage: %v", err)
	}

	arr := tTable(t, "arr")
	if k, err := arr.KeyStrToBytes("0x3"); err != nil || !bytes.Equal(k, tU32(3)) {
		t.Fatalf("arr KeyStrToBytes = %x, %v", k, err)
	}
	pc := tTable(t, "pcarr")
	if s, err := pc.LeafBytesToStr(append(tU64(5), tU64(6)[:pc.ValueSize()-8]...)); err != nil {
		t.Fatal(err)
	} else if tNumCPU(t) == 2 && s != "[ 0x5 0x6 ]" {
		t.Fatalf("per-CPU LeafBytesToStr = %q", s)
	}
	if GetHostByteOrder().Uint16([]byte{1, 0}) != uint16(*(*byte)(unsafe.Pointer(&[]uint16{1}[0]))) {
		t.Fatal("GetHostByteOrder is not the host's")
	}
}

func TestTableArray(t *testing.T) {
	tb := tTable(t, "arr")
	want := map[string][]byte{}
	for i := uint32(0); i < 8; i++ {
		want[fmt.Sprintf("%x", tU32(i))] = tU64(0)
	}
	tSame(t, "empty array", tDump(t, tb), want)
	for i := uint32(0); i < 8; i += 2 {
		if err := tb.Set(tU32(i), tU64(uint64(i)+10)); err != nil {
			t.Fatal(err)
		}
		want[fmt.Sprintf("%x", tU32(i))] = tU64(uint64(i) + 10)
	}
	tSame(t, "array", tDump(t, tb), want)
	// Deleting an array element zeroes it.
	if err := tb.Delete(tU32(2)); err != nil {
		t.Fatal(err)
	}
	want[fmt.Sprintf("%x", tU32(2))] = tU64(0)
	tSame(t, "after Delete", tDump(t, tb), want)
	if _, err := tb.Get(tU32(8)); !errors.Is(err, ErrKeyNotExist) {
		t.Fatalf("Get past the end: %v", err)
	}
	if err := tb.Delete(tU32(8)); !errors.Is(err, ErrKeyNotExist) {
		t.Fatalf("Delete past the end: %v", err)
	}
	if err := tb.DeleteAll(); err != nil {
		t.Fatal(err)
	}
	for k := range want {
		want[k] = tU64(0)
	}
	tSame(t, "after DeleteAll", tDump(t, tb), want)
}

func TestTablePerCPUHash(t *testing.T) {
	tb := tTable(t, "pchash")
	ncpu := tNumCPU(t)
	// One value per CPU, in the kernel's layout.
	var all []byte
	for c := 0; c < ncpu; c++ {
		all = append(all, tU64(uint64(100+c))...)
	}
	if err := tb.Set(tU32(1), all); err != nil {
		t.Fatal(err)
	}
	got, err := tb.Get(tU32(1))
	if err != nil || !bytes.Equal(got, all) {
		t.Fatalf("Get = %x, %v; want %x", got, err, all)
	}
	per, err := tb.GetPerCPU(tU32(1))
	if err != nil || len(per) != ncpu {
		t.Fatalf("GetPerCPU = %d values, %v", len(per), err)
	}
	for c, v := range per {
		if !bytes.Equal(v, tU64(uint64(100+c))) {
			t.Fatalf("cpu %d: %x", c, v)
		}
	}
	// One CPU's worth is stored on every CPU.
	if err := tb.Set(tU32(2), tU64(7)); err != nil {
		t.Fatal(err)
	}
	per, _ = tb.GetPerCPU(tU32(2))
	for c, v := range per {
		if !bytes.Equal(v, tU64(7)) {
			t.Fatalf("replicated value on cpu %d: %x", c, v)
		}
	}
	vals := make([][]byte, ncpu)
	for c := range vals {
		vals[c] = tU64(uint64(c * 3))
	}
	if err := tb.SetPerCPU(tU32(3), vals); err != nil {
		t.Fatal(err)
	}
	if err := tb.SetPerCPU(tU32(3), vals[:1]); ncpu > 1 && err == nil {
		t.Fatal("SetPerCPU with one value succeeded")
	}
	want := map[string][]byte{
		fmt.Sprintf("%x", tU32(1)): all,
		fmt.Sprintf("%x", tU32(2)): tb.replicate(tU64(7)),
		fmt.Sprintf("%x", tU32(3)): bytes.Join(vals, nil),
	}
	tSame(t, "per-CPU hash", tDump(t, tb), want)
	if err := tb.Delete(tU32(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.GetPerCPU(tU32(2)); !errors.Is(err, ErrKeyNotExist) {
		t.Fatalf("GetPerCPU of a deleted key: %v", err)
	}
	if err := tb.Set(tU32(4), make([]byte, 12)); err == nil {
		t.Fatal("Set with a 12-byte leaf succeeded")
	}
	if _, err := tTable(t, "hash").GetPerCPU(tK2b(1, 1)); err == nil {
		t.Fatal("GetPerCPU on a plain hash succeeded")
	}
	if err := tb.DeleteAll(); err != nil || len(tDump(t, tb)) != 0 {
		t.Fatalf("DeleteAll: %v, %d left", err, len(tDump(t, tb)))
	}
}

func TestTablePerCPUArray(t *testing.T) {
	tb := tTable(t, "pcarr") // u32 values: padded to 8 bytes per CPU
	ncpu := tNumCPU(t)
	if tb.ValueSize() != 8*ncpu {
		t.Fatalf("ValueSize = %d", tb.ValueSize())
	}
	vals := make([][]byte, ncpu)
	for c := range vals {
		vals[c] = tU32(uint32(0xa0 + c))
	}
	if err := tb.SetPerCPU(tU32(1), vals); err != nil {
		t.Fatal(err)
	}
	per, err := tb.GetPerCPU(tU32(1))
	if err != nil {
		t.Fatal(err)
	}
	for c := range per {
		if !bytes.Equal(per[c], vals[c]) {
			t.Fatalf("cpu %d: %x, want %x", c, per[c], vals[c])
		}
	}
	got := tDump(t, tb)
	if len(got) != 4 {
		t.Fatalf("%d entries, want 4", len(got))
	}
	for k, v := range got {
		if len(v) != 8*ncpu {
			t.Fatalf("key %s: %d bytes", k, len(v))
		}
	}
	if err := tb.Delete(tU32(1)); err != nil {
		t.Fatal(err)
	}
	per, _ = tb.GetPerCPU(tU32(1))
	for c := range per {
		if !bytes.Equal(per[c], tU32(0)) {
			t.Fatalf("cpu %d after Delete: %x", c, per[c])
		}
	}
}

func TestTableLRU(t *testing.T) {
	tb := tTable(t, "lru")
	// An LRU hash evicts instead of refusing once max_entries are in use.
	for i := uint32(0); i < 3*8; i++ {
		if err := tb.Set(tU32(i), tU64(uint64(i))); err != nil {
			t.Fatalf("Set %d into a full LRU hash: %v", i, err)
		}
	}
	got := tDump(t, tb)
	if len(got) == 0 || len(got) > 8 {
		t.Fatalf("LRU hash holds %d entries, want 1..8", len(got))
	}
	for k, v := range got {
		kb, _ := hex.DecodeString(k)
		if hostOrder.Uint64(v) != uint64(hostOrder.Uint32(kb)) {
			t.Fatalf("key %s = %x", k, v)
		}
	}
	if v, err := tb.Get(tU32(23)); err != nil || !bytes.Equal(v, tU64(23)) {
		t.Fatalf("most recent key: %x, %v", v, err)
	}
	if _, err := tb.Get(tU32(0)); !errors.Is(err, ErrKeyNotExist) {
		t.Fatalf("oldest key was not evicted: %v", err)
	}
}

func TestTableKernelFilled(t *testing.T) {
	calls := tTable(t, "calls")
	pc := tTable(t, "pccalls")
	const n = 37
	for i := 0; i < n; i++ {
		syscall.Getppid()
	}
	key := tU32(uint32(os.Getpid()))
	v, err := calls.Get(key)
	if err != nil {
		t.Fatalf("calls[%d]: %v", os.Getpid(), err)
	}
	if got := hostOrder.Uint64(v); got != n {
		t.Fatalf("calls[%d] = %d, want %d", os.Getpid(), got, n)
	}
	if got := tDump(t, calls); len(got) != 1 {
		t.Fatalf("calls has %d entries, want 1", len(got))
	}
	per, err := pc.GetPerCPU(tU32(0))
	if err != nil {
		t.Fatal(err)
	}
	if len(per) != tNumCPU(t) {
		t.Fatalf("%d per-CPU values, want %d", len(per), tNumCPU(t))
	}
	var sum uint64
	for _, v := range per {
		sum += hostOrder.Uint64(v)
	}
	if sum != n {
		t.Fatalf("per-CPU counts %x sum to %d, want %d", per, sum, n)
	}
}

func TestTableNotFound(t *testing.T) {
	m := tablesModule(t)
	defer testutil.CheckLeaks(t)()
	id := m.TableId("no_such_table")
	tb := NewTable(id, m)
	for name, err := range map[string]error{
		"Get":       func() error { _, err := tb.Get(tU32(1)); return err }(),
		"Set":       tb.Set(tU32(1), tU64(1)),
		"Delete":    tb.Delete(tU32(1)),
		"DeleteAll": tb.DeleteAll(),
		"GetP":      func() error { _, err := tb.GetP(nil); return err }(),
		"SetP":      tb.SetP(nil, nil),
		"DeleteP":   tb.DeleteP(nil),
		"Iter":      func() error { it := tb.Iter(); it.Next(); return it.Err() }(),
		"BatchIter": func() error { it := tb.BatchIter(0); it.Next(); return it.Err() }(),
		"BatchLookup": func() error {
			_, err := tb.BatchLookup(&BatchCursor{}, make([]byte, 4), make([]byte, 8))
			return err
		}(),
		"KeyStrToBytes":  func() error { _, err := tb.KeyStrToBytes("1"); return err }(),
		"LeafBytesToStr": func() error { _, err := tb.LeafBytesToStr(tU64(1)); return err }(),
		"NewTypedTable":  func() error { _, err := NewTypedTable[uint32, uint64](tb); return err }(),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s on a missing table: %v, want ErrNotFound", name, err)
		}
	}
	if tb.Config() != nil || tb.Name() != "" {
		t.Fatalf("missing table: config %v name %q", tb.Config(), tb.Name())
	}
	if _, err := NewTable(cTableID(9999), m).Get(tU32(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bad id: %v", err)
	}
}

func TestTableClosed(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	m, err := NewModuleWithError(`BPF_HASH(h, u32, u64, 16);`, nil)
	if err != nil {
		t.Fatal(err)
	}
	tb := NewTable(m.TableId("h"), m)
	if err := tb.Set(tU32(1), tU64(2)); err != nil {
		t.Fatal(err)
	}
	tt, err := NewTypedTable[uint32, uint64](tb)
	if err != nil {
		t.Fatal(err)
	}
	// Readers racing with Close see a value or ErrClosed, nothing else.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				v, err := tb.Get(tU32(1))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil || !bytes.Equal(v, tU64(2)) {
					errs <- fmt.Errorf("Get during Close: %x, %v", v, err)
					return
				}
			}
		}()
	}
	m.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checks := map[string]error{
		"Get":       func() error { _, err := tb.Get(tU32(1)); return err }(),
		"Set":       tb.Set(tU32(1), tU64(1)),
		"Delete":    tb.Delete(tU32(1)),
		"DeleteAll": tb.DeleteAll(),
		"Iter":      func() error { it := tb.Iter(); it.Next(); return it.Err() }(),
		"BatchIter": func() error { it := tb.BatchIter(0); it.Next(); return it.Err() }(),
		"BatchUpdate": func() error {
			_, err := tb.BatchUpdate(tU32(1), tU64(1))
			return err
		}(),
		"KeyStrToBytes": func() error { _, err := tb.KeyStrToBytes("1"); return err }(),
		"KeyBytesToStr": func() error { _, err := tb.KeyBytesToStr(tU32(1)); return err }(),
		"TypedGet":      func() error { _, err := tt.Get(1); return err }(),
		"TypedSet":      tt.Set(1, 1),
		"NewTable":      func() error { _, err := NewTable(0, m).Get(tU32(1)); return err }(),
	}
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if m.TableSize() != 0 || m.TableDesc(0) != nil || m.TableId("h") != noTableID() {
		t.Fatal("closed module still describes tables")
	}
	for range m.TableIter() {
		t.Fatal("TableIter of a closed module yielded a table")
	}
	if _, ok := guards.Load(m); ok {
		t.Fatal("closed module's table guard is still registered")
	}
}

func TestTableBatch(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		t.Run(fmt.Sprintf("fallback=%v", fallback), func(t *testing.T) {
			forceBatchFallback.Store(fallback)
			defer forceBatchFallback.Store(false)
			testBatchHash(t, "batchh")
			testBatchHash(t, "batchpc")
			testBatchArray(t)
		})
	}
}

// entries builds n sequential keys (u32) and values for tb.
func tEntries(tb *Table, n, seed int) (keys, values []byte) {
	for i := 0; i < n; i++ {
		keys = append(keys, tU32(uint32(i*7+seed))...)
		v := make([]byte, tb.ValueSize())
		for j := 0; j < len(v); j += 4 {
			hostOrder.PutUint32(v[j:], uint32(i*1000+j+seed))
		}
		if tb.PerCPU() {
			for c := 0; c < tb.NumCPU(); c++ { // the padding reads back as zeros
				clear(v[c*8+tb.LeafSize() : (c+1)*8])
			}
		}
		values = append(values, v...)
	}
	return keys, values
}

func tAsMap(tb *Table, keys, values []byte, n int) map[string][]byte {
	m := map[string][]byte{}
	ks, vs := tb.KeySize(), tb.ValueSize()
	for i := 0; i < n; i++ {
		m[fmt.Sprintf("%x", keys[i*ks:(i+1)*ks])] = append([]byte(nil), values[i*vs:(i+1)*vs]...)
	}
	return m
}

func testBatchHash(t *testing.T, name string) {
	tb := tTable(t, name)
	n := min(3000, tb.MaxEntries()-10)
	keys, values := tEntries(tb, n, 1)
	if got, err := tb.BatchUpdate(keys, values); err != nil || got != n {
		t.Fatalf("%s BatchUpdate = %d, %v", name, got, err)
	}
	want := tAsMap(tb, keys, values, n)
	tSame(t, name+" Iter after BatchUpdate", tDump(t, tb), want)

	// BatchLookup in chunks of 100 gives what per-key iteration gives.
	var c BatchCursor
	got := map[string][]byte{}
	kb, vb := make([]byte, 100*tb.KeySize()), make([]byte, 100*tb.ValueSize())
	for calls := 0; !c.Done(); calls++ {
		if calls > n {
			t.Fatal("BatchLookup does not finish")
		}
		k, err := tb.BatchLookup(&c, kb, vb)
		if err != nil {
			t.Fatalf("%s BatchLookup: %v", name, err)
		}
		for kk, v := range tAsMap(tb, kb, vb, k) {
			if _, dup := got[kk]; dup {
				t.Fatalf("BatchLookup returned %s twice", kk)
			}
			got[kk] = v
		}
	}
	tSame(t, name+" BatchLookup", got, want)
	if wantMode := uint8(cursorKernel); c.mode != wantMode && !forceBatchFallback.Load() ||
		c.mode != cursorFallback && forceBatchFallback.Load() {
		t.Fatalf("%s: cursor mode %d (fallback forced: %v)", name, c.mode, forceBatchFallback.Load())
	}
	if k, err := tb.BatchLookup(&c, kb, vb); k != 0 || err != nil {
		t.Fatalf("BatchLookup after the end: %d, %v", k, err)
	}
	// The iterator, including with chunks too small for a hash bucket.
	grown := batchGrowths.Load()
	for _, chunk := range []int{0, 1, 64, 100000} {
		tSame(t, fmt.Sprintf("%s BatchIter(%d)", name, chunk), tCollect(t, tb.BatchIter(chunk)), want)
	}
	if g := batchGrowths.Load() - grown; (g == 0) != forceBatchFallback.Load() {
		t.Fatalf("%s: BatchIter grew its chunk %d times (fallback forced: %v)", name, g, forceBatchFallback.Load())
	}
	// Buffers smaller than a bucket: ErrBatchTooSmall (kernel), or fine (fallback).
	c.Reset()
	if k, err := tb.BatchLookup(&c, kb[:tb.KeySize()], vb[:tb.ValueSize()]); err != nil && !errors.Is(err, ErrBatchTooSmall) {
		t.Fatalf("one-entry BatchLookup: %d, %v", k, err)
	}

	// BatchDelete the first third of the keys.
	del := n / 3
	if k, err := tb.BatchDelete(keys[:del*4]); err != nil || k != del {
		t.Fatalf("BatchDelete = %d, %v", k, err)
	}
	for i := 0; i < del; i++ {
		delete(want, fmt.Sprintf("%x", keys[i*4:i*4+4]))
	}
	tSame(t, name+" after BatchDelete", tDump(t, tb), want)
	if _, err := tb.BatchDelete(keys[:4]); !errors.Is(err, ErrKeyNotExist) {
		t.Fatalf("BatchDelete of a missing key: %v", err)
	}

	// BatchLookupAndDelete drains the rest, returning exactly what was there.
	c = BatchCursor{}
	got = map[string][]byte{}
	for !c.Done() {
		k, err := tb.BatchLookupAndDelete(&c, kb, vb)
		if err != nil {
			t.Fatalf("BatchLookupAndDelete: %v", err)
		}
		for kk, v := range tAsMap(tb, kb, vb, k) {
			got[kk] = v
		}
	}
	tSame(t, name+" BatchLookupAndDelete", got, want)
	if left := tDump(t, tb); len(left) != 0 {
		t.Fatalf("%d entries left after BatchLookupAndDelete", len(left))
	}

	// Size checks.
	if _, err := tb.BatchUpdate(keys[:8], values[:tb.ValueSize()]); err == nil {
		t.Fatal("BatchUpdate with 2 keys and 1 value succeeded")
	}
	if _, err := tb.BatchLookup(&c, kb[:3], vb); err == nil {
		t.Fatal("BatchLookup with a partial key succeeded")
	}
}

func testBatchArray(t *testing.T) {
	tb := tTable(t, "batcha")
	const n = 1024
	var keys, values []byte
	for i := 0; i < n; i++ {
		keys = append(keys, tU32(uint32(n-1-i))...)
		values = append(values, tU64(uint64(i)*3+1)...)
	}
	if k, err := tb.BatchUpdate(keys, values); err != nil || k != n {
		t.Fatalf("BatchUpdate = %d, %v", k, err)
	}
	want := tAsMap(tb, keys, values, n)
	tSame(t, "array Iter", tDump(t, tb), want)
	tSame(t, "array BatchIter", tCollect(t, tb.BatchIter(100)), want)
	// Out-of-range index.
	if _, err := tb.BatchUpdate(tU32(n), tU64(1)); err == nil {
		t.Fatal("BatchUpdate past the end succeeded")
	}
	// BatchDelete zeroes.
	if k, err := tb.BatchDelete(keys[:10*4]); err != nil || k != 10 {
		t.Fatalf("BatchDelete = %d, %v", k, err)
	}
	for i := 0; i < 10; i++ {
		want[fmt.Sprintf("%x", keys[i*4:i*4+4])] = tU64(0)
	}
	tSame(t, "array after BatchDelete", tDump(t, tb), want)
	// BatchLookupAndDelete reads everything and zeroes it.
	var c BatchCursor
	got := map[string][]byte{}
	kb, vb := make([]byte, 300*4), make([]byte, 300*8)
	for !c.Done() {
		k, err := tb.BatchLookupAndDelete(&c, kb, vb)
		if err != nil {
			t.Fatal(err)
		}
		for kk, v := range tAsMap(tb, kb, vb, k) {
			got[kk] = v
		}
	}
	tSame(t, "array BatchLookupAndDelete", got, want)
	for k := range want {
		want[k] = tU64(0)
	}
	tSame(t, "array after BatchLookupAndDelete", tDump(t, tb), want)
}

// TestTableBatchSupportCache checks that the kernel path was really used
// for hash maps (the cache learnt it) on this kernel.
func TestTableBatchSupportCache(t *testing.T) {
	tb := tTable(t, "batchh")
	keys, values := tEntries(tb, 10, 3)
	if _, err := tb.BatchUpdate(keys, values); err != nil {
		t.Fatal(err)
	}
	tCollect(t, tb.BatchIter(0))
	if batchState(opLookup, tb.mapType) != 1 || batchState(opUpdate, tb.mapType) != 1 {
		t.Fatalf("batch support for hash maps: lookup %d update %d, want 1 (kernel 5.6+)",
			batchState(opLookup, tb.mapType), batchState(opUpdate, tb.mapType))
	}
	var keysSorted []string
	for k := range tDump(t, tb) {
		keysSorted = append(keysSorted, k)
	}
	sort.Strings(keysSorted)
	if len(keysSorted) != 10 {
		t.Fatalf("%d keys", len(keysSorted))
	}
}

func TestTableZeroValue(t *testing.T) {
	var tb Table
	if _, err := tb.Get(nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get on a zero Table: %v", err)
	}
	if _, err := tb.KeyStrToBytes("1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("KeyStrToBytes on a zero Table: %v", err)
	}
	if it := tb.Iter(); it.Next() || !errors.Is(it.Err(), ErrNotFound) {
		t.Fatalf("Iter on a zero Table: %v", it.Err())
	}
	if err := tb.DeleteAll(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeleteAll on a zero Table: %v", err)
	}
}
