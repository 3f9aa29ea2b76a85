// Package ksym translates between kernel addresses and kernel symbol names
// using /proc/kallsyms.
//
// The package-level functions share a symbol table read from /proc/kallsyms
// on first use and kept afterwards; Reload re-reads it (for example after
// modules or BPF programs were loaded). Reading real addresses needs root
// (or CAP_SYSLOG, depending on kernel.kptr_restrict): otherwise the kernel
// shows every address as zero and lookups fail with ErrAddressesHidden.
package ksym

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// KALLSYMS is the file the package-level functions read.
const KALLSYMS = "/proc/kallsyms"

// ErrAddressesHidden is returned when kallsyms lists every address as zero,
// as it does for readers without the privilege to see kernel addresses.
var ErrAddressesHidden = errors.New("ksym: kallsyms addresses are hidden (need root or CAP_SYSLOG; see kernel.kptr_restrict)")

// ErrNotFound is returned (wrapped) when no symbol matches.
var ErrNotFound = errors.New("ksym: symbol not found")

// Symbol is one line of kallsyms.
type Symbol struct {
	Addr   uint64
	Type   byte // 'T', 't', 'D', ... as in nm(1)
	Name   string
	Module string // "" for the kernel image
}

// Table is a parsed kallsyms: symbols sorted by address, and an index by
// name. It is immutable and safe for concurrent use.
type Table struct {
	syms   []Symbol // by address; equal addresses keep file order
	byName []int32  // indexes into syms, by name; equal names keep file order
}

// Parse reads kallsyms-format text ("ffffffff81000000 T _text" lines, with
// an optional "\t[module]" field) into a Table. A line that does not have
// that shape is an error. Addresses that are all zero give
// ErrAddressesHidden.
func Parse(r io.Reader) (*Table, error) {
	var (
		syms    []Symbol
		nameEnd []int                 // end of each symbol's name in names
		names   strings.Builder       // all names, to allocate them at once
		modules = map[string]string{} // interned module names
		nonZero bool
	)
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 4096), 1<<20)
	for lineNo := 1; s.Scan(); lineNo++ {
		line := s.Bytes()
		if len(line) == 0 {
			continue
		}
		var buf [4][]byte
		f, ok := fields(line, buf[:0])
		if !ok || len(f) < 3 {
			return nil, fmt.Errorf("ksym: line %d: %q: want \"address type name [module]\"", lineNo, line)
		}
		addr, ok := parseHexBytes(f[0])
		if !ok {
			return nil, fmt.Errorf("ksym: line %d: bad address %q", lineNo, f[0])
		}
		if len(f[1]) != 1 {
			return nil, fmt.Errorf("ksym: line %d: bad symbol type %q", lineNo, f[1])
		}
		sym := Symbol{Addr: addr, Type: f[1][0]}
		if len(f) == 4 {
			m := f[3]
			if len(m) < 3 || m[0] != '[' || m[len(m)-1] != ']' {
				return nil, fmt.Errorf("ksym: line %d: bad module field %q", lineNo, m)
			}
			m = m[1 : len(m)-1]
			name, ok := modules[string(m)] // no allocation for the lookup
			if !ok {
				name = string(m)
				modules[name] = name
			}
			sym.Module = name
		}
		names.Write(f[2])
		nameEnd = append(nameEnd, names.Len())
		nonZero = nonZero || addr != 0
		syms = append(syms, sym)
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("ksym: reading kallsyms: %w", err)
	}
	if len(syms) == 0 {
		return nil, errors.New("ksym: no symbols in kallsyms")
	}
	if !nonZero {
		return nil, ErrAddressesHidden
	}
	all, prev := names.String(), 0
	for i, end := range nameEnd {
		syms[i].Name = all[prev:end]
		prev = end
	}
	// Stable, so that symbols sharing an address keep kallsyms order.
	slices.SortStableFunc(syms, func(a, b Symbol) int { return cmp.Compare(a.Addr, b.Addr) })
	t := &Table{syms: syms, byName: make([]int32, len(syms))}
	for i := range t.byName {
		t.byName[i] = int32(i)
	}
	// By name, then by address, so that the lowest address of a name comes
	// first.
	slices.SortFunc(t.byName, func(a, b int32) int {
		if c := strings.Compare(syms[a].Name, syms[b].Name); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return t, nil
}

// fields splits line at spaces and tabs into at most cap(dst) fields,
// reporting false if there are more.
func fields(line []byte, dst [][]byte) ([][]byte, bool) {
	for {
		i := 0
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		line = line[i:]
		if len(line) == 0 {
			return dst, true
		}
		if len(dst) == cap(dst) {
			return dst, false
		}
		j := 0
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		dst = append(dst, line[:j])
		line = line[j:]
	}
}

// parseHexBytes parses 1 to 16 hexadecimal digits.
func parseHexBytes(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	return v, true
}

// Len returns the number of symbols in the table.
func (t *Table) Len() int { return len(t.syms) }

// Resolve returns the symbol containing addr, that is, the one with the
// greatest address not above addr, and addr's offset into it. When several
// symbols share that address, the first global one (upper-case type) in
// kallsyms order wins, or the first one if none is global. An
// address below every symbol is an error wrapping ErrNotFound. kallsyms
// records no sizes, so an address past the end of the last symbol still
// resolves to it.
func (t *Table) Resolve(addr uint64) (Symbol, uint64, error) {
	// First index whose address is above addr; the one before contains addr.
	i := sort.Search(len(t.syms), func(i int) bool { return t.syms[i].Addr > addr })
	if i == 0 {
		return Symbol{}, 0, fmt.Errorf("%w at address %#x (below the first symbol)", ErrNotFound, addr)
	}
	// Among the symbols at that address (aliases), prefer the first global
	// one, else the first.
	a := t.syms[i-1].Addr
	j := sort.Search(i, func(k int) bool { return t.syms[k].Addr >= a })
	for k := j; k < i; k++ {
		if c := t.syms[k].Type; c >= 'A' && c <= 'Z' {
			return t.syms[k], addr - a, nil
		}
	}
	return t.syms[j], addr - a, nil
}

// All iterates over the symbols in address order; symbols sharing an
// address come in kallsyms order.
func (t *Table) All() iter.Seq[Symbol] {
	return func(yield func(Symbol) bool) {
		for _, s := range t.syms {
			if !yield(s) {
				return
			}
		}
	}
}

// Lookup returns the symbol called name. When several symbols share the
// name (static functions of different files, for example), the one with the
// lowest address wins. A missing name is an error wrapping ErrNotFound.
func (t *Table) Lookup(name string) (Symbol, error) {
	i := sort.Search(len(t.byName), func(i int) bool { return t.syms[t.byName[i]].Name >= name })
	if i == len(t.byName) || t.syms[t.byName[i]].Name != name {
		return Symbol{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return t.syms[t.byName[i]], nil
}

var cache struct {
	sync.Mutex
	t *Table
}

// Load returns the shared table of /proc/kallsyms, reading it on first use.
// A failed read is not cached.
func Load() (*Table, error) {
	cache.Lock()
	defer cache.Unlock()
	if cache.t != nil {
		return cache.t, nil
	}
	t, err := loadFile(KALLSYMS)
	if err != nil {
		return nil, err
	}
	cache.t = t
	return t, nil
}

// Reload re-reads /proc/kallsyms into the shared table.
func Reload() error {
	t, err := loadFile(KALLSYMS)
	if err != nil {
		return err
	}
	cache.Lock()
	cache.t = t
	cache.Unlock()
	return nil
}

func loadFile(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ksym: %w", err)
	}
	defer f.Close()
	return Parse(f)
}

// Resolve returns the name of the kernel symbol containing addr and addr's
// offset into it (see Table.Resolve).
func Resolve(addr uint64) (name string, offset uint64, err error) {
	t, err := Load()
	if err != nil {
		return "", 0, err
	}
	sym, off, err := t.Resolve(addr)
	if err != nil {
		return "", 0, err
	}
	return sym.Name, off, nil
}

// Lookup returns the address of the kernel symbol called name (see
// Table.Lookup).
func Lookup(name string) (uint64, error) {
	t, err := Load()
	if err != nil {
		return 0, err
	}
	sym, err := t.Lookup(name)
	if err != nil {
		return 0, err
	}
	return sym.Addr, nil
}

// Ksym translates a kernel address, written in hexadecimal with or without
// a "0x" prefix (as kallsyms prints it, e.g. "ffffffff81377c60"), into the
// name of the kernel symbol containing it. Unlike the original gobpf, which
// matched the address text exactly, an address inside a function resolves
// to that function; use Resolve to get the offset too.
func Ksym(addr string) (string, error) {
	a, err := parseHex(addr)
	if err != nil {
		return "", err
	}
	name, _, err := Resolve(a)
	return name, err
}

// Kaddr translates a kernel symbol name into its address, as 16 lowercase
// hexadecimal digits (the way kallsyms prints it).
func Kaddr(name string) (string, error) {
	a, err := Lookup(name)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%016x", a), nil
}

func parseHex(s string) (uint64, error) {
	h := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0x"), "0X")
	a, err := strconv.ParseUint(h, 16, 64)
	if err != nil || h == "" {
		return 0, fmt.Errorf("ksym: bad address %q: want hexadecimal", s)
	}
	return a, nil
}
