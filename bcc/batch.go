package bcc

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"unsafe"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"golang.org/x/sys/unix"
)

// ErrBatchTooSmall is returned by BatchLookup and BatchLookupAndDelete on
// hash tables when one hash bucket holds more entries than the buffers
// passed have room for; retry with larger buffers (BatchIter does so).
var ErrBatchTooSmall = errors.New("bcc: batch buffers smaller than a hash bucket")

// errENOTSUPP is the kernel-internal ENOTSUPP (524) that bpf(2) returns for
// batch commands a map type does not implement.
const errENOTSUPP = unix.Errno(524)

type batchOp int

const (
	opLookup batchOp = iota
	opLookupAndDelete
	opUpdate
	opDelete
	numBatchOps
)

var batchCmds = [numBatchOps]bpfsys.Cmd{
	bpfsys.BPF_MAP_LOOKUP_BATCH, bpfsys.BPF_MAP_LOOKUP_AND_DELETE_BATCH,
	bpfsys.BPF_MAP_UPDATE_BATCH, bpfsys.BPF_MAP_DELETE_BATCH,
}

// Whether the kernel implements each batch command for each map type,
// learnt by trying: 0 unknown, 1 yes, -1 no.
var batchSupport [numBatchOps][64]atomic.Int32

// batchGrowths counts BatchIter chunk growths (for tests).
var batchGrowths atomic.Int64

// forceBatchFallback makes every batch operation use per-key syscalls
// (for tests comparing both paths).
var forceBatchFallback atomic.Bool

func batchState(op batchOp, typ bpfsys.MapType) int32 {
	if forceBatchFallback.Load() {
		return -1
	}
	if int(typ) >= len(batchSupport[op]) {
		return -1
	}
	return batchSupport[op][typ].Load()
}

func setBatchState(op batchOp, typ bpfsys.MapType, v int32) {
	if int(typ) < len(batchSupport[op]) {
		batchSupport[op][typ].Store(v)
	}
}

// batchUnsupported reports whether err means the kernel lacks the command
// (EINVAL from kernels before 5.6) or the map type lacks it (ENOTSUPP).
func batchUnsupported(err error) bool {
	return errors.Is(err, errENOTSUPP) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)
}

// BatchCursor records where a BatchLookup or BatchLookupAndDelete stopped.
// The zero value starts at the beginning of the table. Use a cursor with
// one table and one kind of operation only.
type BatchCursor struct {
	mode    uint8  // cursorNew, cursorKernel or cursorFallback
	done    bool   // the end of the table was reached
	token   []byte // kernel mode: the kernel's opaque position
	last    []byte // fallback mode: the last key returned / the next key to return
	hasLast bool
}

const (
	cursorNew = iota
	cursorKernel
	cursorFallback
)

// Done reports whether the cursor reached the end of the table.
func (c *BatchCursor) Done() bool { return c.done }

// Reset makes the cursor start over from the beginning.
func (c *BatchCursor) Reset() {
	c.mode, c.done, c.hasLast = cursorNew, false, false
}

// batchCount checks that keys (and values, unless nil) hold the same
// whole number of entries, and returns it.
func (t *Table) batchCount(op string, keys, values []byte, withValues bool) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	if t.keySize == 0 || len(keys)%t.keySize != 0 {
		return 0, fmt.Errorf("%s %s: keys buffer is %d bytes, not a multiple of the key size %d", op, t.name, len(keys), t.keySize)
	}
	n := len(keys) / t.keySize
	if withValues && len(values) != n*t.valueSize {
		return 0, fmt.Errorf("%s %s: values buffer is %d bytes, want %d for %d keys of %d-byte values",
			op, t.name, len(values), n*t.valueSize, n, t.valueSize)
	}
	if n > math.MaxUint32 {
		return 0, fmt.Errorf("%s %s: %d entries is too many for one batch", op, t.name, n)
	}
	return n, nil
}

// BatchLookup copies up to len(keys)/KeySize entries, starting where c
// stopped, into keys and values (ValueSize bytes per entry: for per-CPU
// tables every CPU's value, as Get returns it). It returns how many it
// copied; once the end of the table is reached c.Done() is true (the last
// call may still have copied entries). It uses BPF_MAP_LOOKUP_BATCH, or
// per-key syscalls where the kernel lacks it for this map type.
//
// For hash tables the buffers must be larger than the largest hash bucket
// (a few entries), or it fails with ErrBatchTooSmall, c unchanged.
func (t *Table) BatchLookup(c *BatchCursor, keys, values []byte) (int, error) {
	return t.batchLookup("Table.BatchLookup", opLookup, c, keys, values)
}

// BatchLookupAndDelete is BatchLookup that also deletes the entries it
// returns (array elements are zeroed instead), using
// BPF_MAP_LOOKUP_AND_DELETE_BATCH where the kernel has it.
func (t *Table) BatchLookupAndDelete(c *BatchCursor, keys, values []byte) (int, error) {
	return t.batchLookup("Table.BatchLookupAndDelete", opLookupAndDelete, c, keys, values)
}

func (t *Table) batchLookup(op string, bop batchOp, c *BatchCursor, keys, values []byte) (int, error) {
	n, err := t.batchCount(op, keys, values, true)
	if err != nil {
		return 0, err
	}
	if c == nil {
		return 0, fmt.Errorf("%s %s: nil cursor", op, t.name)
	}
	if c.done || n == 0 {
		return 0, nil
	}
	if c.mode == cursorNew {
		if bop == opLookupAndDelete && isArray(t.mapType) || batchState(bop, t.mapType) < 0 {
			c.mode = cursorFallback
		}
	}
	if c.mode != cursorFallback {
		if c.token == nil {
			c.token = make([]byte, max(t.keySize, 8))
		}
		var in unsafe.Pointer
		if c.mode == cursorKernel {
			in = bptr(c.token)
		}
		count := uint32(n)
		if err := t.begin(); err != nil {
			return 0, err
		}
		err := bpfsys.MapBatch(batchCmds[bop], t.fd, in, bptr(c.token), bptr(keys), bptr(values), &count, 0)
		t.end()
		switch {
		case err == nil:
			setBatchState(bop, t.mapType, 1)
			c.mode = cursorKernel
			return int(count), nil
		case errors.Is(err, unix.ENOENT):
			setBatchState(bop, t.mapType, 1)
			c.mode = cursorKernel
			c.done = true
			return int(count), nil
		case errors.Is(err, unix.ENOSPC):
			return 0, fmt.Errorf("%s %s: room for %d entries: %w (%w)", op, t.name, n, ErrBatchTooSmall, err)
		case c.mode == cursorNew && count == 0 && batchUnsupported(err) && batchState(bop, t.mapType) == 0:
			setBatchState(bop, t.mapType, -1)
			c.mode = cursorFallback
		default:
			return int(count), fmt.Errorf("%s %s: %w", op, t.name, err)
		}
	}
	if bop == opLookupAndDelete {
		return t.fallbackLookupAndDelete(op, c, keys, values, n)
	}
	return t.fallbackLookup(op, c, keys, values, n)
}

// fallbackLookup is BatchLookup with BPF_MAP_GET_NEXT_KEY and
// BPF_MAP_LOOKUP_ELEM; c.last is the last key returned.
func (t *Table) fallbackLookup(op string, c *BatchCursor, keys, values []byte, n int) (int, error) {
	ks, vs := t.keySize, t.valueSize
	if c.last == nil {
		c.last = make([]byte, ks)
	}
	i := 0
	for i < n {
		var prev unsafe.Pointer
		if c.hasLast {
			prev = bptr(c.last)
		}
		k := keys[i*ks : (i+1)*ks]
		err := t.nextKey(prev, bptr(k))
		if errors.Is(err, unix.ENOENT) {
			c.done = true
			break
		}
		if err != nil {
			return i, t.opError(op, nil, err)
		}
		copy(c.last, k)
		c.hasLast = true
		err = t.lookup(bptr(k), bptr(values[i*vs:(i+1)*vs]))
		if errors.Is(err, unix.ENOENT) {
			continue // deleted meanwhile
		}
		if err != nil {
			return i, t.opError(op, k, err)
		}
		i++
	}
	return i, nil
}

// fallbackLookupAndDelete fetches the key after each entry before deleting
// it, so deleting never makes the walk restart; c.last is the next key to
// return.
func (t *Table) fallbackLookupAndDelete(op string, c *BatchCursor, keys, values []byte, n int) (int, error) {
	ks, vs := t.keySize, t.valueSize
	if c.last == nil {
		c.last = make([]byte, ks)
	}
	i := 0
	for i < n && !c.done {
		k := keys[i*ks : (i+1)*ks]
		if c.hasLast {
			copy(k, c.last)
		} else {
			err := t.nextKey(nil, bptr(k))
			if errors.Is(err, unix.ENOENT) {
				c.done = true
				break
			}
			if err != nil {
				return i, t.opError(op, nil, err)
			}
		}
		err := t.nextKey(bptr(k), bptr(c.last))
		switch {
		case errors.Is(err, unix.ENOENT):
			c.hasLast = false
			c.done = true
		case err != nil:
			return i, t.opError(op, k, err)
		default:
			c.hasLast = true
		}
		err = t.lookup(bptr(k), bptr(values[i*vs:(i+1)*vs]))
		if errors.Is(err, unix.ENOENT) {
			continue // deleted meanwhile
		}
		if err != nil {
			return i, t.opError(op, k, err)
		}
		if err := t.remove(bptr(k)); err != nil && !errors.Is(err, unix.ENOENT) {
			return i, t.opError(op, k, err)
		}
		i++
	}
	return i, nil
}

// BatchUpdate stores len(keys)/KeySize entries: keys one after the other
// in keys, values (ValueSize bytes each) in values. It returns how many
// were stored, using BPF_MAP_UPDATE_BATCH where the kernel has it.
func (t *Table) BatchUpdate(keys, values []byte) (int, error) {
	const op = "Table.BatchUpdate"
	n, err := t.batchCount(op, keys, values, true)
	if err != nil || n == 0 {
		return 0, err
	}
	if k, done, err := t.writeBatch(op, opUpdate, keys, values, n); done {
		return k, err
	}
	ks, vs := t.keySize, t.valueSize
	for i := 0; i < n; i++ {
		k := keys[i*ks : (i+1)*ks]
		if err := t.update(bptr(k), bptr(values[i*vs:(i+1)*vs]), bpfsys.BPF_ANY); err != nil {
			return i, t.opError(op, k, err)
		}
	}
	return n, nil
}

// writeBatch issues the batch command bop (opUpdate, or opDelete with nil
// values) for the n keys in keys unless the kernel is known to lack it.
// done is false when the caller must fall back to per-key syscalls.
func (t *Table) writeBatch(op string, bop batchOp, keys, values []byte, n int) (k int, done bool, err error) {
	if batchState(bop, t.mapType) < 0 {
		return 0, false, nil
	}
	count := uint32(n)
	if err := t.begin(); err != nil {
		return 0, true, err
	}
	err = bpfsys.MapBatch(batchCmds[bop], t.fd, nil, nil, bptr(keys), bptr(values), &count, bpfsys.BPF_ANY)
	t.end()
	switch {
	case err == nil:
		setBatchState(bop, t.mapType, 1)
		return int(count), true, nil
	case count == 0 && batchUnsupported(err) && batchState(bop, t.mapType) == 0:
		setBatchState(bop, t.mapType, -1)
		return 0, false, nil
	}
	return int(count), true, t.batchElemError(op, keys, int(count), err)
}

// batchElemError describes a batch that failed at entry i.
func (t *Table) batchElemError(op string, keys []byte, i int, err error) error {
	if errors.Is(err, ErrClosed) {
		return err
	}
	if (i+1)*t.keySize <= len(keys) {
		return t.opError(op, keys[i*t.keySize:(i+1)*t.keySize], err)
	}
	return t.opError(op, nil, err)
}

// BatchDelete deletes the len(keys)/KeySize keys in keys (array elements
// are zeroed instead) and returns how many it deleted, using
// BPF_MAP_DELETE_BATCH where the kernel has it. A missing key stops it
// with an error wrapping ErrKeyNotExist.
func (t *Table) BatchDelete(keys []byte) (int, error) {
	const op = "Table.BatchDelete"
	n, err := t.batchCount(op, keys, nil, false)
	if err != nil || n == 0 {
		return 0, err
	}
	if isArray(t.mapType) {
		return t.BatchUpdate(keys, make([]byte, n*t.valueSize))
	}
	return t.deleteKeys(keys, n)
}

func (t *Table) deleteKeys(keys []byte, n int) (int, error) {
	const op = "Table.BatchDelete"
	if k, done, err := t.writeBatch(op, opDelete, keys, nil, n); done {
		return k, err
	}
	ks := t.keySize
	for i := 0; i < n; i++ {
		k := keys[i*ks : (i+1)*ks]
		if err := t.remove(bptr(k)); err != nil {
			return i, t.opError(op, k, err)
		}
	}
	return n, nil
}

// defaultBatchChunk is BatchIter's chunk when given 0.
const defaultBatchChunk = 256

// BatchIter returns an iterator over the table's entries that fetches up
// to chunk of them per syscall (BPF_MAP_LOOKUP_BATCH; per-key syscalls
// where the kernel lacks it). chunk <= 0 picks a default; it grows by
// itself when a hash bucket does not fit.
func (t *Table) BatchIter(chunk int) *TableIterator {
	if chunk <= 0 {
		chunk = defaultBatchChunk
	}
	if t.err == nil && t.maxEntries > 0 {
		chunk = min(chunk, t.maxEntries)
	}
	return &TableIterator{t: t, err: t.err, batch: true, chunk: chunk}
}

func (it *TableIterator) nextBatch() bool {
	if it.pos+1 < it.n {
		it.pos++
		return true
	}
	it.n, it.pos = 0, 0
	t := it.t
	for !it.cursor.done {
		if len(it.keys) != it.chunk*t.keySize {
			it.keys = make([]byte, it.chunk*t.keySize)
			it.values = make([]byte, it.chunk*t.valueSize)
		}
		n, err := t.batchLookup("Table.BatchIter", opLookup, &it.cursor, it.keys, it.values)
		if errors.Is(err, ErrBatchTooSmall) && it.chunk < 2*max(t.maxEntries, 1) {
			batchGrowths.Add(1)
			it.chunk *= 2
			continue
		}
		if err != nil {
			it.err = err
			return false
		}
		if n > 0 {
			it.n = n
			return true
		}
	}
	return false
}
