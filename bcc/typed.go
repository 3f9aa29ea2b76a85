package bcc

import (
	"errors"
	"fmt"
	"iter"
	"reflect"
	"sync"
	"unsafe"

	"github.com/iovisor/gobpf/internal/bpfsys"
)

// TypedTable is a Table whose keys and values are Go values of types K and
// V, stored in their binary (in-memory) form: K and V must be fixed-size
// types without pointers (integers, floats, bools, arrays and structs of
// them) laid out as the C types the table was declared with. Values are
// copied to and from the kernel directly, without reflection.
type TypedTable[K, V any] struct {
	t        *Table
	ksz, vsz int

	mu  sync.Mutex
	err error // the error that ended the last All / AllPerCPU
}

// NewTypedTable wraps t. It fails if K or V contains pointers or if their
// sizes differ from t's key and leaf sizes (for per-CPU tables, V is one
// CPU's value).
func NewTypedTable[K, V any](t *Table) (*TypedTable[K, V], error) {
	if t == nil {
		return nil, errors.New("bcc: NewTypedTable: nil table")
	}
	if t.err != nil {
		return nil, t.err
	}
	var k K
	var v V
	kt, vt := reflect.TypeOf(&k).Elem(), reflect.TypeOf(&v).Elem()
	if err := plainType(kt); err != nil {
		return nil, errorf("NewTypedTable %s: key type %v: %w", t.name, kt, err)
	}
	if err := plainType(vt); err != nil {
		return nil, errorf("NewTypedTable %s: value type %v: %w", t.name, vt, err)
	}
	ksz, vsz := int(unsafe.Sizeof(k)), int(unsafe.Sizeof(v))
	if ksz != t.keySize {
		return nil, errorf("NewTypedTable %s: key type %v is %d bytes, the table's keys (%s) are %d",
			t.name, kt, ksz, t.keyDesc, t.keySize)
	}
	if vsz != t.leafSize {
		return nil, errorf("NewTypedTable %s: value type %v is %d bytes, the table's values (%s) are %d",
			t.name, vt, vsz, t.leafDesc, t.leafSize)
	}
	if ksz == 0 || vsz == 0 {
		return nil, errorf("NewTypedTable %s: zero-size keys or values", t.name)
	}
	return &TypedTable[K, V]{t: t, ksz: ksz, vsz: vsz}, nil
}

// plainType accepts types whose values are plain bytes: no pointers,
// strings, slices, maps, channels, functions or interfaces.
func plainType(t reflect.Type) error {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return nil
	case reflect.Array:
		return plainType(t.Elem())
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if err := plainType(t.Field(i).Type); err != nil {
				return fmt.Errorf("field %s: %w", t.Field(i).Name, err)
			}
		}
		return nil
	}
	return fmt.Errorf("%v holds pointers or is not fixed-size", t.Kind())
}

// Table returns the underlying table.
func (tt *TypedTable[K, V]) Table() *Table { return tt.t }

func bytesOf[T any](p *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p))
}

func (tt *TypedTable[K, V]) notPerCPU(op string) error {
	if tt.t.PerCPU() {
		return fmt.Errorf("%s %s: per-CPU table: use the PerCPU variant", op, tt.t.name)
	}
	return nil
}

// Get returns the value stored at key; a missing key gives an error
// wrapping ErrKeyNotExist. Per-CPU tables need GetPerCPU.
func (tt *TypedTable[K, V]) Get(key K) (V, error) {
	var v V
	if err := tt.notPerCPU("TypedTable.Get"); err != nil {
		return v, err
	}
	kp, vp := unsafe.Pointer(&key), unsafe.Pointer(&v)
	if err := tt.t.lookup(kp, vp); err != nil {
		var zero V
		return zero, tt.t.opError("TypedTable.Get", bytesOf(&key), err)
	}
	return v, nil
}

// Set stores value at key (for per-CPU tables, on every CPU).
func (tt *TypedTable[K, V]) Set(key K, value V) error {
	kp := unsafe.Pointer(&key)
	var vp unsafe.Pointer
	if tt.t.PerCPU() {
		vp = bptr(tt.t.replicate(bytesOf(&value)))
	} else {
		vp = unsafe.Pointer(&value)
	}
	if err := tt.t.update(kp, vp, bpfsys.BPF_ANY); err != nil {
		return tt.t.opError("TypedTable.Set", bytesOf(&key), err)
	}
	return nil
}

// Delete removes key (zeroes it in arrays); a missing key gives an error
// wrapping ErrKeyNotExist.
func (tt *TypedTable[K, V]) Delete(key K) error {
	kp := unsafe.Pointer(&key)
	if err := tt.t.remove(kp); err != nil {
		return tt.t.opError("TypedTable.Delete", bytesOf(&key), err)
	}
	return nil
}

// GetPerCPU returns the values stored at key in a per-CPU table, one per
// possible CPU.
func (tt *TypedTable[K, V]) GetPerCPU(key K) ([]V, error) {
	if !tt.t.PerCPU() {
		return nil, fmt.Errorf("TypedTable.GetPerCPU %s: not a per-CPU table", tt.t.name)
	}
	all, err := tt.t.Get(bytesOf(&key))
	if err != nil {
		return nil, err
	}
	return tt.splitCPUs(all), nil
}

func (tt *TypedTable[K, V]) splitCPUs(all []byte) []V {
	out := make([]V, tt.t.ncpu)
	for i := range out {
		copy(bytesOf(&out[i]), all[i*tt.t.stride:])
	}
	return out
}

// SetPerCPU stores one value per possible CPU at key in a per-CPU table.
func (tt *TypedTable[K, V]) SetPerCPU(key K, values []V) error {
	if !tt.t.PerCPU() {
		return fmt.Errorf("TypedTable.SetPerCPU %s: not a per-CPU table", tt.t.name)
	}
	if len(values) != tt.t.ncpu {
		return fmt.Errorf("TypedTable.SetPerCPU %s: %d values, want one per possible CPU (%d)", tt.t.name, len(values), tt.t.ncpu)
	}
	all := make([]byte, tt.t.valueSize)
	for i := range values {
		copy(all[i*tt.t.stride:], bytesOf(&values[i]))
	}
	if err := tt.t.update(bptr(bytesOf(&key)), bptr(all), bpfsys.BPF_ANY); err != nil {
		return tt.t.opError("TypedTable.SetPerCPU", bytesOf(&key), err)
	}
	return nil
}

// All iterates over the table's entries (using batch lookups). An error
// ends the iteration early; Err returns it. Per-CPU tables need AllPerCPU.
func (tt *TypedTable[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		tt.setErr(tt.walk(yield))
	}
}

// AllErr is All that stores the error ending the iteration (or nil) in
// *errp, for concurrent iterations where Err would be ambiguous.
func (tt *TypedTable[K, V]) AllErr(errp *error) iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		err := tt.walk(yield)
		if errp != nil {
			*errp = err
		}
	}
}

// AllPerCPU iterates over a per-CPU table's entries, one value per
// possible CPU. An error ends the iteration early; Err returns it.
func (tt *TypedTable[K, V]) AllPerCPU() iter.Seq2[K, []V] {
	return func(yield func(K, []V) bool) {
		if !tt.t.PerCPU() {
			tt.setErr(fmt.Errorf("TypedTable.AllPerCPU %s: not a per-CPU table", tt.t.name))
			return
		}
		it := tt.t.BatchIter(0)
		for it.Next() {
			var k K
			copy(bytesOf(&k), it.Key())
			if !yield(k, tt.splitCPUs(it.Leaf())) {
				break
			}
		}
		tt.setErr(it.Err())
	}
}

// Err returns the error that ended the last All or AllPerCPU iteration.
func (tt *TypedTable[K, V]) Err() error {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.err
}

func (tt *TypedTable[K, V]) setErr(err error) {
	tt.mu.Lock()
	tt.err = err
	tt.mu.Unlock()
}

func (tt *TypedTable[K, V]) walk(yield func(K, V) bool) error {
	if err := tt.notPerCPU("TypedTable.All"); err != nil {
		return err
	}
	it := tt.t.BatchIter(0)
	for it.Next() {
		var k K
		var v V
		copy(bytesOf(&k), it.Key())
		copy(bytesOf(&v), it.Leaf())
		if !yield(k, v) {
			return nil
		}
	}
	return it.Err()
}
