package bcc

/*
#include <stdlib.h>
#include <bcc/bcc_common.h>
*/
import "C"

import (
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"unsafe"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/pkg/cpupossible"
	"golang.org/x/sys/unix"
)

// noTable is what libbcc's bpf_table_id returns for an unknown name.
const noTable = ^C.size_t(0)

// cTableID and noTableID let tests build table ids.
func cTableID(i uint64) C.size_t { return C.size_t(i) }
func noTableID() C.size_t        { return noTable }

// TableSize returns the number of tables in the module (0 once closed).
func (m *Module) TableSize() uint64 {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.ptr()
	if err != nil {
		return 0
	}
	return uint64(C.bpf_num_tables(p))
}

// TableId returns the id of the table called name. For an unknown name it
// returns an id beyond the module's tables which remembers name (so that
// errors can name it), or libbcc's "no table" id; NewTable gives for it a
// Table whose operations fail with ErrNotFound naming the table. For a
// closed module it returns the "no table" id (operations: ErrClosed).
func (m *Module) TableId(name string) C.size_t {
	if m == nil {
		return noTable
	}
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.ptr()
	if err != nil {
		return noTable
	}
	id := C.bpf_table_id(p, cs)
	if id < C.bpf_num_tables(p) {
		return id
	}
	for i, n := range m.missing {
		if n == name {
			return noTable - 1 - C.size_t(i)
		}
	}
	if len(m.missing) >= maxMissingTables {
		return noTable
	}
	m.missing = append(m.missing, name)
	return noTable - C.size_t(len(m.missing))
}

// maxMissingTables bounds the unknown table names a module remembers.
const maxMissingTables = 1024

// missingName returns the name TableId was asked for when it returned id,
// or "". The caller holds m.mu.
func (m *Module) missingName(id C.size_t) (string, bool) {
	i := uint64(noTable - id)
	if i == 0 || i > uint64(len(m.missing)) {
		return "", false
	}
	return m.missing[i-1], true
}

// Table returns the table called name, or an error wrapping ErrNotFound
// naming it (ErrClosed for a closed module).
func (m *Module) Table(name string) (*Table, error) {
	t := NewTable(m.TableId(name), m)
	if t.err != nil {
		if errors.Is(t.err, ErrClosed) {
			return nil, errorf("table %q: %w", name, ErrClosed)
		}
		return nil, t.err
	}
	return t, nil
}

// TableDesc returns the properties of table id: name, fd, key_size,
// leaf_size, key_desc, leaf_desc (as gobpf), plus type, max_entries and
// flags. It returns nil for an unknown id or a closed module.
func (m *Module) TableDesc(id uint64) map[string]interface{} {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.ptr()
	if err != nil || id >= uint64(C.bpf_num_tables(p)) {
		return nil
	}
	return tableDesc(p, C.size_t(id))
}

// tableDesc describes table id of module p; the caller holds the module lock.
func tableDesc(p unsafe.Pointer, id C.size_t) map[string]interface{} {
	return map[string]interface{}{
		"name":        C.GoString(C.bpf_table_name(p, id)),
		"fd":          int(C.bpf_table_fd_id(p, id)),
		"key_size":    uint64(C.bpf_table_key_size_id(p, id)),
		"leaf_size":   uint64(C.bpf_table_leaf_size_id(p, id)),
		"key_desc":    C.GoString(C.bpf_table_key_desc_id(p, id)),
		"leaf_desc":   C.GoString(C.bpf_table_leaf_desc_id(p, id)),
		"type":        int(C.bpf_table_type_id(p, id)),
		"max_entries": uint64(C.bpf_table_max_entries_id(p, id)),
		"flags":       int(C.bpf_table_flags_id(p, id)),
	}
}

// TableIter returns a channel yielding TableDesc of every table, then
// closed. It holds all descriptions already, so abandoning it leaks nothing.
func (m *Module) TableIter() <-chan map[string]interface{} {
	var descs []map[string]interface{}
	if m != nil {
		m.mu.Lock()
		if p, err := m.ptr(); err == nil {
			n := C.bpf_num_tables(p)
			for i := C.size_t(0); i < n; i++ {
				descs = append(descs, tableDesc(p, i))
			}
		}
		m.mu.Unlock()
	}
	ch := make(chan map[string]interface{}, len(descs))
	for _, d := range descs {
		ch <- d
	}
	close(ch)
	return ch
}

// tableGuard makes table operations and Module.Close exclusive: table
// operations hold it shared while they use the map fd (owned by libbcc),
// and closing the module takes it exclusively and marks it closed before
// libbcc closes the fds, so a table never touches a recycled fd number.
type tableGuard struct {
	mu     sync.RWMutex
	closed bool
}

// guards maps each open *Module that has tables to its tableGuard.
var guards sync.Map

// guardFor returns m's table guard, creating it and arranging for it to be
// closed by m.Close. The caller holds m.mu and has checked m.ptr().
func guardFor(m *Module) *tableGuard {
	if g, ok := guards.Load(m); ok {
		return g.(*tableGuard)
	}
	g := &tableGuard{}
	guards.Store(m, g)
	// Close runs m.detach under m.mu while the module (and so its map
	// fds) still exists: registering here cannot race with Close.
	m.detach = append(m.detach, func() error {
		g.mu.Lock()
		g.closed = true
		g.mu.Unlock()
		guards.Delete(m)
		return nil
	})
	return g
}

// Table is a BPF map declared by a bcc module. Its fd, sizes and type are
// read once by NewTable; Get/Set/Delete then issue the bpf(2) syscall
// directly (no cgo). A Table is safe for concurrent use; once its module
// is closed every operation returns ErrClosed.
type Table struct {
	id      C.size_t
	module  *Module
	g       *tableGuard
	err     error  // set when the table is unusable from the start
	missing string // the unknown name NewTable was asked for

	name       string
	keyDesc    string
	leafDesc   string
	fd         int
	mapType    bpfsys.MapType
	maxEntries int
	flags      int
	keySize    int // bytes per key
	leafSize   int // bytes per value, as declared (one CPU's value)
	valueSize  int // bytes per value as the kernel copies it (all CPUs)
	stride     int // per-CPU: leafSize rounded up to 8
	ncpu       int // per-CPU: number of possible CPUs; else 1
}

// NewTable returns the table with the given id (from Module.TableId). An
// unknown id gives a Table whose operations return ErrNotFound; a closed
// module gives one whose operations return ErrClosed.
func NewTable(id C.size_t, module *Module) *Table {
	t := &Table{id: id, module: module, fd: -1, ncpu: 1}
	if module == nil {
		t.err = errorf("table of a nil module: %w", ErrClosed)
		return t
	}
	module.mu.Lock()
	defer module.mu.Unlock()
	p, err := module.ptr()
	if err != nil {
		t.err = errorf("table: %w", err)
		return t
	}
	if id >= C.bpf_num_tables(p) {
		if name, ok := module.missingName(id); ok {
			// Named in errors (perf reader on table NAME, ...), but
			// Config and Name still report an unknown table.
			t.missing = name
			t.err = errorf("no table %q in the module: %w", name, ErrNotFound)
		} else if id == noTable {
			t.err = errorf("no such table: %w", ErrNotFound)
		} else {
			t.err = errorf("no table with id %d: %w", uint64(id), ErrNotFound)
		}
		return t
	}
	t.name = C.GoString(C.bpf_table_name(p, id))
	t.keyDesc = C.GoString(C.bpf_table_key_desc_id(p, id))
	t.leafDesc = C.GoString(C.bpf_table_leaf_desc_id(p, id))
	t.fd = int(C.bpf_table_fd_id(p, id))
	t.mapType = bpfsys.MapType(C.bpf_table_type_id(p, id))
	t.maxEntries = int(C.bpf_table_max_entries_id(p, id))
	t.flags = int(C.bpf_table_flags_id(p, id))
	t.keySize = int(C.bpf_table_key_size_id(p, id))
	t.leafSize = int(C.bpf_table_leaf_size_id(p, id))
	t.valueSize = t.leafSize
	t.stride = t.leafSize
	if t.fd < 0 {
		t.err = errorf("table %s has no map fd (not loaded?): %w", t.name, ErrNotFound)
		return t
	}
	if isPerCPU(t.mapType) {
		cpus, err := cpupossible.Get()
		if err != nil {
			t.err = errorf("table %s is per-CPU: %w", t.name, err)
			return t
		}
		t.ncpu = len(cpus)
		t.stride = (t.leafSize + 7) &^ 7
		t.valueSize = t.stride * t.ncpu
	}
	t.g = guardFor(module)
	return t
}

func isPerCPU(typ bpfsys.MapType) bool {
	switch typ {
	case bpfsys.BPF_MAP_TYPE_PERCPU_HASH, bpfsys.BPF_MAP_TYPE_PERCPU_ARRAY,
		bpfsys.BPF_MAP_TYPE_LRU_PERCPU_HASH, bpfsys.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
		return true
	}
	return false
}

// isArray reports whether the map's elements cannot be deleted, only
// zeroed (plain and per-CPU arrays).
func isArray(typ bpfsys.MapType) bool {
	return typ == bpfsys.BPF_MAP_TYPE_ARRAY || typ == bpfsys.BPF_MAP_TYPE_PERCPU_ARRAY
}

// ID returns the table's name (as gobpf does).
func (t *Table) ID() string { return t.name }

// Name returns the table's name ("" for an unknown table).
func (t *Table) Name() string { return t.name }

// Config returns the table's properties: name, fd, key_size, leaf_size,
// key_desc, leaf_desc, type, max_entries and flags (nil for an unknown
// table). leaf_size is one CPU's value size for per-CPU tables.
func (t *Table) Config() map[string]interface{} {
	if t.name == "" {
		return nil
	}
	return map[string]interface{}{
		"name":        t.name,
		"fd":          t.fd,
		"key_size":    uint64(t.keySize),
		"leaf_size":   uint64(t.leafSize),
		"key_desc":    t.keyDesc,
		"leaf_desc":   t.leafDesc,
		"type":        int(t.mapType),
		"max_entries": uint64(t.maxEntries),
		"flags":       t.flags,
	}
}

// KeySize returns the size of a key in bytes.
func (t *Table) KeySize() int { return t.keySize }

// LeafSize returns the size of a value in bytes; for per-CPU tables, the
// size of one CPU's value.
func (t *Table) LeafSize() int { return t.leafSize }

// ValueSize returns the size in bytes of the values Get returns: LeafSize,
// or for per-CPU tables LeafSize rounded up to 8 times NumCPU.
func (t *Table) ValueSize() int { return t.valueSize }

// PerCPU reports whether the table holds one value per possible CPU.
func (t *Table) PerCPU() bool { return isPerCPU(t.mapType) }

// NumCPU returns the number of values per key: the number of possible CPUs
// for per-CPU tables, 1 otherwise.
func (t *Table) NumCPU() int { return t.ncpu }

// MaxEntries returns the table's capacity.
func (t *Table) MaxEntries() int { return t.maxEntries }

// FD returns the map's file descriptor (owned by the module).
func (t *Table) FD() int { return t.fd }

// begin starts an operation on the map fd: it fails if the table is
// unusable or its module closed, and otherwise must be paired with end.
func (t *Table) begin() error {
	if t.err != nil {
		return t.err
	}
	if t.g == nil {
		return errZeroTable
	}
	t.g.mu.RLock()
	if t.g.closed {
		t.g.mu.RUnlock()
		return errorf("table %s: %w", t.name, ErrClosed)
	}
	return nil
}

func (t *Table) end() { t.g.mu.RUnlock() }

var errZeroTable = errorf("Table not made by NewTable: %w", ErrNotFound)

// bptr returns a pointer to b's first byte (nil for an empty slice).
func bptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func (t *Table) checkKey(op string, key []byte) error {
	if t.err != nil {
		return t.err
	}
	if len(key) != t.keySize {
		return errorf("%s %s: key is %d bytes, want %d", op, t.name, len(key), t.keySize)
	}
	return nil
}

// opError turns a failed syscall into the error of operation op on key.
func (t *Table) opError(op string, key []byte, err error) error {
	if errors.Is(err, unix.ENOENT) || (isArray(t.mapType) && errors.Is(err, unix.E2BIG)) {
		if key == nil { // a pointer API: the key's bytes are not at hand
			return errorf("%s %s: %w", op, t.name, ErrKeyNotExist)
		}
		return errorf("%s %s: key %x: %w", op, t.name, key, ErrKeyNotExist)
	}
	if key == nil {
		return errorf("%s %s: %w", op, t.name, err)
	}
	return errorf("%s %s: key %x: %w", op, t.name, key, err)
}

func (t *Table) lookup(key, value unsafe.Pointer) error {
	if err := t.begin(); err != nil {
		return err
	}
	err := bpfsys.MapLookupElem(t.fd, key, value)
	t.end()
	return err
}

func (t *Table) update(key, value unsafe.Pointer, flags uint64) error {
	if err := t.begin(); err != nil {
		return err
	}
	err := bpfsys.MapUpdateElem(t.fd, key, value, flags)
	t.end()
	return err
}

// remove deletes key; for arrays, whose elements cannot be deleted, it
// zeroes the element instead (as bcc's Python Array does).
func (t *Table) remove(key unsafe.Pointer) error {
	if isArray(t.mapType) {
		zero := make([]byte, t.valueSize)
		return t.update(key, bptr(zero), bpfsys.BPF_EXIST)
	}
	if err := t.begin(); err != nil {
		return err
	}
	err := bpfsys.MapDeleteElem(t.fd, key)
	t.end()
	return err
}

func (t *Table) nextKey(key, next unsafe.Pointer) error {
	if err := t.begin(); err != nil {
		return err
	}
	err := bpfsys.MapGetNextKey(t.fd, key, next)
	t.end()
	return err
}

// Get returns a copy of the value stored at key. For per-CPU tables it
// holds every possible CPU's value, each padded to 8 bytes, one after the
// other (see GetPerCPU). A missing key gives an error wrapping
// ErrKeyNotExist.
func (t *Table) Get(key []byte) ([]byte, error) {
	if err := t.checkKey("Table.Get", key); err != nil {
		return nil, err
	}
	leaf := make([]byte, t.valueSize)
	if err := t.lookup(bptr(key), bptr(leaf)); err != nil {
		return nil, t.opError("Table.Get", key, err)
	}
	return leaf, nil
}

// GetPerCPU returns the value stored at key in a per-CPU table, one slice
// of LeafSize bytes per possible CPU.
func (t *Table) GetPerCPU(key []byte) ([][]byte, error) {
	if t.err == nil && !isPerCPU(t.mapType) {
		return nil, errorf("Table.GetPerCPU %s: not a per-CPU table", t.name)
	}
	all, err := t.Get(key)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, t.ncpu)
	for i := range out {
		out[i] = all[i*t.stride : i*t.stride+t.leafSize : i*t.stride+t.leafSize]
	}
	return out, nil
}

// GetP looks up the key at key (KeySize bytes) and returns a pointer to a
// fresh copy of its value (ValueSize bytes).
func (t *Table) GetP(key unsafe.Pointer) (unsafe.Pointer, error) {
	if t.err != nil {
		return nil, t.err
	}
	leaf := make([]byte, t.valueSize+1) // +1: never a zero-size buffer
	if err := t.lookup(key, unsafe.Pointer(&leaf[0])); err != nil {
		return nil, t.opError("Table.GetP", nil, err)
	}
	return unsafe.Pointer(&leaf[0]), nil
}

// Set stores leaf at key. For per-CPU tables leaf is either ValueSize
// bytes (every CPU's value, as Get returns them) or LeafSize bytes, which
// are stored for every CPU.
func (t *Table) Set(key, leaf []byte) error {
	if err := t.checkKey("Table.Set", key); err != nil {
		return err
	}
	if len(leaf) != t.valueSize {
		if len(leaf) != t.leafSize || !isPerCPU(t.mapType) {
			return errorf("Table.Set %s: leaf is %d bytes, want %d", t.name, len(leaf), t.valueSize)
		}
		leaf = t.replicate(leaf)
	}
	if err := t.update(bptr(key), bptr(leaf), bpfsys.BPF_ANY); err != nil {
		return t.opError("Table.Set", key, err)
	}
	return nil
}

// replicate lays out one CPU's value for every CPU.
func (t *Table) replicate(leaf []byte) []byte {
	all := make([]byte, t.valueSize)
	for i := 0; i < t.ncpu; i++ {
		copy(all[i*t.stride:], leaf)
	}
	return all
}

// SetPerCPU stores one value per possible CPU (each LeafSize bytes) at key
// in a per-CPU table.
func (t *Table) SetPerCPU(key []byte, leaves [][]byte) error {
	if err := t.checkKey("Table.SetPerCPU", key); err != nil {
		return err
	}
	if !isPerCPU(t.mapType) {
		return errorf("Table.SetPerCPU %s: not a per-CPU table", t.name)
	}
	if len(leaves) != t.ncpu {
		return errorf("Table.SetPerCPU %s: %d values, want one per possible CPU (%d)", t.name, len(leaves), t.ncpu)
	}
	all := make([]byte, t.valueSize)
	for i, l := range leaves {
		if len(l) != t.leafSize {
			return errorf("Table.SetPerCPU %s: value %d is %d bytes, want %d", t.name, i, len(l), t.leafSize)
		}
		copy(all[i*t.stride:], l)
	}
	if err := t.update(bptr(key), bptr(all), bpfsys.BPF_ANY); err != nil {
		return t.opError("Table.SetPerCPU", key, err)
	}
	return nil
}

// SetP stores the value at leaf (ValueSize bytes) at the key at key
// (KeySize bytes).
func (t *Table) SetP(key, leaf unsafe.Pointer) error {
	if t.err != nil {
		return t.err
	}
	if err := t.update(key, leaf, bpfsys.BPF_ANY); err != nil {
		return t.opError("Table.SetP", nil, err)
	}
	return nil
}

// Delete removes key. Array elements cannot be removed; Delete zeroes
// them instead. A missing key gives an error wrapping ErrKeyNotExist.
func (t *Table) Delete(key []byte) error {
	if err := t.checkKey("Table.Delete", key); err != nil {
		return err
	}
	if err := t.remove(bptr(key)); err != nil {
		return t.opError("Table.Delete", key, err)
	}
	return nil
}

// DeleteP is Delete with the key at key (KeySize bytes).
func (t *Table) DeleteP(key unsafe.Pointer) error {
	if t.err != nil {
		return t.err
	}
	if err := t.remove(key); err != nil {
		return t.opError("Table.DeleteP", nil, err)
	}
	return nil
}

// DeleteAll removes every entry (zeroes every element of an array).
func (t *Table) DeleteAll() error {
	if t.err != nil {
		return t.err
	}
	if isArray(t.mapType) {
		return t.zeroAll()
	}
	const chunk = 4096
	keys := make([]byte, chunk*t.keySize+1)
	// Collect a chunk of keys from the start, delete them, repeat: the
	// deleted keys are gone, so each round starts afresh. Bound the rounds
	// in case BPF programs keep adding entries.
	for round := 0; round <= t.maxEntries/chunk+1; round++ {
		n := 0
		var prev unsafe.Pointer
		for n < chunk {
			k := unsafe.Pointer(&keys[n*t.keySize])
			err := t.nextKey(prev, k)
			if errors.Is(err, unix.ENOENT) {
				break
			}
			if err != nil {
				return t.opError("Table.DeleteAll", nil, err)
			}
			prev = k
			n++
		}
		if n == 0 {
			return nil
		}
		_, err := t.deleteKeys(keys[:n*t.keySize], n)
		if err != nil && !errors.Is(err, ErrKeyNotExist) {
			return errorf("Table.DeleteAll: %w", err)
		}
		if n < chunk && err == nil {
			return nil
		}
	}
	return nil
}

// zeroAll sets every element of an array to zero.
func (t *Table) zeroAll() error {
	const chunk = 4096
	n := min(chunk, t.maxEntries)
	keys := make([]byte, n*t.keySize)
	values := make([]byte, n*t.valueSize)
	for start := 0; start < t.maxEntries; start += n {
		c := min(n, t.maxEntries-start)
		for i := 0; i < c; i++ {
			t.putIndex(keys[i*t.keySize:(i+1)*t.keySize], uint32(start+i))
		}
		if _, err := t.BatchUpdate(keys[:c*t.keySize], values[:c*t.valueSize]); err != nil {
			return errorf("Table.DeleteAll %s: %w", t.name, err)
		}
	}
	return nil
}

// putIndex writes array index i as a key.
func (t *Table) putIndex(key []byte, i uint32) {
	clear(key)
	if len(key) >= 4 {
		hostOrder.PutUint32(key, i)
	}
}

// TableIterator walks a table's entries: for it.Next() { it.Key(); it.Leaf() }
// then check it.Err().
type TableIterator struct {
	t   *Table
	err error

	// per-key iteration
	key, next, leaf []byte
	started         bool

	// batch iteration
	batch        bool
	chunk        int
	cursor       BatchCursor
	keys, values []byte
	n, pos       int
}

// Iter returns an iterator over the table's entries, fetching them one at
// a time (BPF_MAP_GET_NEXT_KEY then BPF_MAP_LOOKUP_ELEM). See BatchIter
// for a faster one.
func (t *Table) Iter() *TableIterator {
	it := &TableIterator{t: t, err: t.err}
	if it.err == nil {
		it.key = make([]byte, t.keySize+1)[:t.keySize]
		it.next = make([]byte, t.keySize+1)[:t.keySize]
		it.leaf = make([]byte, t.valueSize+1)[:t.valueSize]
	}
	return it
}

// Next advances to the next entry and reports whether there is one.
func (it *TableIterator) Next() bool {
	if it.err != nil {
		return false
	}
	if it.batch {
		return it.nextBatch()
	}
	t := it.t
	for {
		var prev unsafe.Pointer
		if it.started {
			prev = unsafe.Pointer(&it.key[:1][0])
		}
		err := t.nextKey(prev, unsafe.Pointer(&it.next[:1][0]))
		if errors.Is(err, unix.ENOENT) {
			return false
		}
		if err != nil {
			it.err = t.opError("Table.Iter", nil, err)
			return false
		}
		it.started = true
		it.key, it.next = it.next, it.key
		err = t.lookup(unsafe.Pointer(&it.key[:1][0]), unsafe.Pointer(&it.leaf[:1][0]))
		if errors.Is(err, unix.ENOENT) {
			continue // deleted meanwhile
		}
		if err != nil {
			it.err = t.opError("Table.Iter", it.key, err)
			return false
		}
		return true
	}
}

// Key returns the current entry's key; it is valid until the next call to Next.
func (it *TableIterator) Key() []byte {
	if it.batch {
		if it.pos >= it.n {
			return nil
		}
		ks := it.t.keySize
		return it.keys[it.pos*ks : (it.pos+1)*ks : (it.pos+1)*ks]
	}
	return it.key
}

// Leaf returns the current entry's value (for per-CPU tables, every CPU's,
// as Get returns it); it is valid until the next call to Next.
func (it *TableIterator) Leaf() []byte {
	if it.batch {
		if it.pos >= it.n {
			return nil
		}
		vs := it.t.valueSize
		return it.values[it.pos*vs : (it.pos+1)*vs : (it.pos+1)*vs]
	}
	return it.leaf
}

// Err returns the error that ended the iteration, if any.
func (it *TableIterator) Err() error { return it.err }

// strBuf calls f with growing buffers until it formats successfully.
func strBuf(size int, f func(buf *C.char, n C.size_t) C.int) (string, error) {
	n := max(64, size*8)
	for ; n <= 1<<20; n *= 4 {
		buf := (*C.char)(C.malloc(C.size_t(n)))
		r := f(buf, C.size_t(n))
		s := C.GoStringN(buf, C.int(n))
		C.free(unsafe.Pointer(buf))
		if r == 0 {
			if i := strings.IndexByte(s, 0); i >= 0 {
				s = s[:i]
			}
			return s, nil
		}
	}
	return "", errors.New("cannot format value")
}

// withModule runs f with the module's libbcc pointer, under its lock.
func (t *Table) withModule(f func(p unsafe.Pointer) error) error {
	if t.err != nil {
		return t.err
	}
	if t.module == nil {
		return errZeroTable
	}
	t.module.mu.Lock()
	defer t.module.mu.Unlock()
	p, err := t.module.ptr()
	if err != nil {
		return err
	}
	return f(p)
}

// KeyStrToBytes parses a key written the way libbcc prints it ("0x1",
// "{ 1 2 }" for a struct) into its binary form.
func (t *Table) KeyStrToBytes(keyStr string) ([]byte, error) {
	return t.scan("key", keyStr, t.keySize, func(p unsafe.Pointer, cs *C.char, out unsafe.Pointer) C.int {
		return C.bpf_table_key_sscanf(p, t.id, cs, out)
	})
}

// LeafStrToBytes parses a value written the way libbcc prints it into its
// binary form (for per-CPU tables, one CPU's value: Set stores it on all).
func (t *Table) LeafStrToBytes(leafStr string) ([]byte, error) {
	return t.scan("leaf", leafStr, t.leafSize, func(p unsafe.Pointer, cs *C.char, out unsafe.Pointer) C.int {
		return C.bpf_table_leaf_sscanf(p, t.id, cs, out)
	})
}

func (t *Table) scan(what, s string, size int, f func(p unsafe.Pointer, cs *C.char, out unsafe.Pointer) C.int) ([]byte, error) {
	var out []byte
	err := t.withModule(func(p unsafe.Pointer) error {
		if size == 0 {
			return errorf("table %s has zero-size %ss", t.name, what)
		}
		cs := C.CString(s)
		defer C.free(unsafe.Pointer(cs))
		buf := C.calloc(1, C.size_t(size))
		defer C.free(buf)
		var r C.int
		// libbcc explains a failure on stderr: put that in the error.
		printed := captureStderr(func() { r = f(p, cs, buf) })
		if r != 0 {
			msg := strings.TrimSpace(printed)
			if msg != "" {
				msg = ": " + msg
			}
			return errorf("cannot parse %s %q for table %s (%s)%s", what, s, t.name, t.descOf(what), msg)
		}
		out = C.GoBytes(buf, C.int(size))
		return nil
	})
	if err != nil {
		return nil, errorf("Table.%sStrToBytes: %w", strings.ToUpper(what[:1])+what[1:], err)
	}
	return out, nil
}

func (t *Table) descOf(what string) string {
	if what == "key" {
		return t.keyDesc
	}
	return t.leafDesc
}

// KeyBytesToStr formats a key (KeySize bytes) the way libbcc prints it.
func (t *Table) KeyBytesToStr(key []byte) (string, error) {
	if err := t.checkKey("Table.KeyBytesToStr", key); err != nil {
		return "", err
	}
	return t.format("Table.KeyBytesToStr", key, func(p unsafe.Pointer, buf *C.char, n C.size_t, v unsafe.Pointer) C.int {
		return C.bpf_table_key_snprintf(p, t.id, buf, n, v)
	})
}

// LeafBytesToStr formats a value the way libbcc prints it. For per-CPU
// tables leaf is one CPU's value (LeafSize bytes) or all of them
// (ValueSize bytes, formatted as "[ v0 v1 ... ]").
func (t *Table) LeafBytesToStr(leaf []byte) (string, error) {
	if t.err != nil {
		return "", t.err
	}
	f := func(p unsafe.Pointer, buf *C.char, n C.size_t, v unsafe.Pointer) C.int {
		return C.bpf_table_leaf_snprintf(p, t.id, buf, n, v)
	}
	switch {
	case len(leaf) == t.leafSize:
		return t.format("Table.LeafBytesToStr", leaf, f)
	case len(leaf) == t.valueSize && isPerCPU(t.mapType):
		parts := make([]string, t.ncpu)
		for i := range parts {
			s, err := t.format("Table.LeafBytesToStr", leaf[i*t.stride:i*t.stride+t.leafSize], f)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return "[ " + strings.Join(parts, " ") + " ]", nil
	}
	return "", errorf("Table.LeafBytesToStr %s: leaf is %d bytes, want %d", t.name, len(leaf), t.leafSize)
}

func (t *Table) format(op string, v []byte, f func(p unsafe.Pointer, buf *C.char, n C.size_t, v unsafe.Pointer) C.int) (string, error) {
	var s string
	err := t.withModule(func(p unsafe.Pointer) error {
		if len(v) == 0 {
			return errors.New("nothing to format")
		}
		cv := C.CBytes(v)
		defer C.free(cv)
		var err error
		s, err = strBuf(len(v), func(buf *C.char, n C.size_t) C.int { return f(p, buf, n, cv) })
		return err
	})
	if err != nil {
		return "", errorf("%s %s: %w", op, t.name, err)
	}
	return s, nil
}

// GetHostByteOrder returns the byte order of the machine, which BPF maps
// use for their keys and values.
func GetHostByteOrder() binary.ByteOrder {
	return hostOrder
}

var hostOrder = func() binary.ByteOrder {
	x := uint16(1)
	if *(*byte)(unsafe.Pointer(&x)) == 1 {
		return binary.LittleEndian
	}
	return binary.BigEndian
}()
