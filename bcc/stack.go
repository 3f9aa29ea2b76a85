package bcc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"golang.org/x/sys/unix"
)

// PERF_MAX_STACK_DEPTH is the number of frames a BPF_STACK_TRACE table's
// value holds by default.
const PERF_MAX_STACK_DEPTH = 127

// Flags of bpf_get_stackid, for BPF C programs and documentation.
const (
	BPF_F_SKIP_FIELD_MASK = 0xff
	BPF_F_USER_STACK      = 1 << 8
	BPF_F_FAST_STACK_CMP  = 1 << 9
	BPF_F_REUSE_STACKID   = 1 << 10
)

// StackTable reads a BPF_STACK_TRACE table: each stack id a program got
// from bpf_get_stackid maps to the stack's instruction addresses.
type StackTable struct {
	t *Table
}

// NewStackTable wraps t, which must be a BPF_STACK_TRACE table.
func NewStackTable(t *Table) (*StackTable, error) {
	if t == nil {
		return nil, errorf("stack table: nil table")
	}
	if t.err != nil {
		return nil, t.err
	}
	if t.mapType != bpfsys.BPF_MAP_TYPE_STACK_TRACE {
		return nil, errorf("table %s is not a BPF_STACK_TRACE table (map type %d)", t.name, t.mapType)
	}
	if t.keySize != 4 || t.leafSize == 0 || t.leafSize%8 != 0 {
		return nil, errorf("stack table %s: unexpected key/value sizes %d/%d", t.name, t.keySize, t.leafSize)
	}
	return &StackTable{t: t}, nil
}

// StackTable returns the BPF_STACK_TRACE table called name.
func (m *Module) StackTable(name string) (*StackTable, error) {
	t := NewTable(m.TableId(name), m)
	if t.err != nil {
		return nil, errorf("stack table %q: %w", name, t.err)
	}
	return NewStackTable(t)
}

// StackTrace returns the addresses of stack stackID in the BPF_STACK_TRACE
// table called tableName, innermost frame first.
func (m *Module) StackTrace(tableName string, stackID int) ([]uint64, error) {
	st, err := m.StackTable(tableName)
	if err != nil {
		return nil, err
	}
	return st.Addresses(stackID)
}

// Table returns the underlying table.
func (s *StackTable) Table() *Table { return s.t }

// StackIDError reports that a program's bpf_get_stackid call failed: the
// negative stack id it stored is -errno.
type StackIDError struct {
	ID    int
	Errno unix.Errno
}

func (e *StackIDError) Error() string {
	why := ""
	switch e.Errno {
	case unix.EFAULT:
		why = ": the stack could not be walked (no user stack, e.g. a kernel thread, or frame pointers missing)"
	case unix.EEXIST:
		why = ": hash collision with another stack (BPF_F_REUSE_STACKID not set)"
	case unix.ENOMEM:
		why = ": the stack table is full"
	case unix.EINVAL:
		why = ": invalid flags"
	}
	return fmt.Sprintf("bcc: stack id %d: bpf_get_stackid failed with %v%s", e.ID, e.Errno, why)
}

func (e *StackIDError) Unwrap() error { return e.Errno }

// checkStackID rejects the negative ids bpf_get_stackid returns on error.
func checkStackID(id int) error {
	if id < 0 {
		return &StackIDError{ID: id, Errno: unix.Errno(-id)}
	}
	if int64(id) > int64(^uint32(0)>>1) {
		return errorf("stack id %d out of range", id)
	}
	return nil
}

// Addresses returns the instruction addresses of stack stackID, innermost
// frame first. A negative id (a failed bpf_get_stackid) gives a
// *StackIDError; an id the table does not hold gives an error wrapping
// ErrKeyNotExist.
func (s *StackTable) Addresses(stackID int) ([]uint64, error) {
	if err := checkStackID(stackID); err != nil {
		return nil, err
	}
	key := make([]byte, 4)
	binary.NativeEndian.PutUint32(key, uint32(stackID))
	leaf, err := s.t.Get(key)
	if err != nil {
		return nil, err
	}
	addrs := make([]uint64, 0, 16)
	for i := 0; i+8 <= len(leaf); i += 8 {
		a := binary.NativeEndian.Uint64(leaf[i:])
		if a == 0 {
			break
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// Delete removes stack stackID from the table, freeing its slot.
func (s *StackTable) Delete(stackID int) error {
	if err := checkStackID(stackID); err != nil {
		return err
	}
	key := make([]byte, 4)
	binary.NativeEndian.PutUint32(key, uint32(stackID))
	return s.t.Delete(key)
}

// Clear removes every stack from the table.
func (s *StackTable) Clear() error {
	var ids []uint32
	it := s.t.Iter()
	for it.Next() {
		ids = append(ids, binary.NativeEndian.Uint32(it.Key()))
	}
	if err := it.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		if err := s.Delete(int(id)); err != nil && !errors.Is(err, ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

// Symbolizer turns kernel and user stack addresses into symbol strings,
// keeping one SymbolCache for the kernel and one per process. It is safe
// for concurrent use; Close frees every cache.
type Symbolizer struct {
	mu     sync.Mutex
	closed bool
	kernel *SymbolCache
	procs  map[int]*SymbolCache
}

// NewSymbolizer returns an empty Symbolizer; caches load on first use.
func NewSymbolizer() *Symbolizer {
	return &Symbolizer{procs: map[int]*SymbolCache{}}
}

// cache returns the cache of pid (-1: kernel), creating it.
func (s *Symbolizer) cache(pid int) (*SymbolCache, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errorf("symbolizer: %w", ErrClosed)
	}
	if pid < 0 {
		if s.kernel == nil {
			c, err := NewSymbolCache(-1)
			if err != nil {
				return nil, err
			}
			s.kernel = c
		}
		return s.kernel, nil
	}
	c := s.procs[pid]
	if c == nil {
		var err error
		if c, err = NewSymbolCache(pid); err != nil {
			return nil, err
		}
		s.procs[pid] = c
	}
	return c, nil
}

// Resolve resolves addr in process pid, or in the kernel when pid is -1.
func (s *Symbolizer) Resolve(pid int, addr uint64) (Symbol, error) {
	c, err := s.cache(pid)
	if err != nil {
		return Symbol{}, err
	}
	return c.Resolve(addr)
}

// format gives the frame string for addr: the symbol, "binary+0xoff" for
// an address in a binary without symbols, or "[unknown] 0xaddr".
func (s *Symbolizer) format(pid int, addr uint64) string {
	sym, err := s.Resolve(pid, addr)
	if err == nil || (sym.Module != "" && !sym.Kernel) {
		return sym.String()
	}
	return fmt.Sprintf("[unknown] 0x%x", addr)
}

// Kernel returns kernel address addr as "function+0xoff".
func (s *Symbolizer) Kernel(addr uint64) string { return s.format(-1, addr) }

// User returns addr of process pid as "binary:function+0xoff".
func (s *Symbolizer) User(pid int, addr uint64) string { return s.format(pid, addr) }

// KernelStack symbolizes kernel stack addresses, innermost first.
func (s *Symbolizer) KernelStack(addrs []uint64) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = s.Kernel(a)
	}
	return out
}

// UserStack symbolizes user stack addresses of process pid.
func (s *Symbolizer) UserStack(pid int, addrs []uint64) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = s.User(pid, a)
	}
	return out
}

// Forget frees the cache of pid (for example once the process exited).
func (s *Symbolizer) Forget(pid int) {
	s.mu.Lock()
	c := s.procs[pid]
	delete(s.procs, pid)
	s.mu.Unlock()
	c.Close()
}

// Close frees every cache. It is safe to call more than once.
func (s *Symbolizer) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.kernel.Close()
	s.kernel = nil
	for pid, c := range s.procs {
		c.Close()
		delete(s.procs, pid)
	}
}
