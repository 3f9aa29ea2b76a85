package elf

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
)

// Global data: .data, .rodata (and .rodata.str1.1, custom .rodata.*),
// .bss (and .data.*, .bss.*) become single-entry array maps holding the
// section, as libbpf makes them. Programs address them with ld_imm64
// BPF_PSEUDO_MAP_VALUE + offset. .rodata is frozen before the programs
// load, so the verifier sees its values as constants; SetConstant changes
// them first. .data and .bss are created BPF_F_MMAPABLE and mapped, so
// that ReadVariable and WriteVariable access them without a syscall.

const pseudoMapValue = 2 // BPF_PSEUDO_MAP_VALUE

// maxGlobalSize bounds a global data section (the kernel's array value
// limit is KMALLOC_MAX_SIZE; objects bigger than this are suspect).
const maxGlobalSize = 1 << 26

func isGlobalSection(s *elf.Section) bool {
	if s.Flags&elf.SHF_ALLOC == 0 || s.Flags&elf.SHF_EXECINSTR != 0 {
		return false
	}
	if s.Type != elf.SHT_PROGBITS && s.Type != elf.SHT_NOBITS {
		return false
	}
	return globalDataSection(s.Name)
}

func isReadOnlySection(name string) bool {
	return name == ".rodata" || strings.HasPrefix(name, ".rodata.")
}

// globalSpec is a global data section's initial value.
type globalSpec struct {
	Init   []byte
	Freeze bool              // .rodata: frozen once initialised
	Vars   map[string]uint32 // variable offsets, from the ELF symbols
}

// globalData reads a global data section into a map spec (nil if empty).
func (p *parser) globalData(i int) (*mapSpec, error) {
	s := p.f.Sections[i]
	if s.Size == 0 {
		return nil, nil
	}
	if s.Size > maxGlobalSize {
		return nil, fmt.Errorf("%d bytes is too large (max %d)", s.Size, maxGlobalSize)
	}
	var init []byte
	if s.Type == elf.SHT_NOBITS {
		init = make([]byte, s.Size)
	} else {
		d, err := p.data(i)
		if err != nil {
			return nil, err
		}
		init = append([]byte(nil), d...)
	}
	m := &mapSpec{
		Name: s.Name, Section: s.Name, Type: uint32(bpfsys.BPF_MAP_TYPE_ARRAY),
		KeySize: 4, ValueSize: uint32(len(init)), MaxEntries: 1, Global: &globalSpec{Init: init},
	}
	// BTF DATASECs in objects have offsets 0 (libbpf fixes them up from
	// the symbol table): the symbols say where each variable is.
	m.Global.Vars = map[string]uint32{}
	if _, err := p.symbols(); err == nil {
		for _, sym := range p.bySec[i] {
			if elf.ST_TYPE(sym.Info) == elf.STT_OBJECT && sym.Value+sym.Size <= s.Size {
				m.Global.Vars[sym.Name] = uint32(sym.Value)
			}
		}
	}
	if isReadOnlySection(s.Name) {
		m.Flags, m.Global.Freeze = bpfsys.BPF_F_RDONLY_PROG, true
	} else {
		m.Flags = bpfsys.BPF_F_MMAPABLE
	}
	return m, nil
}

// globalMap is a loaded global data map, mmap'd when it can be.
type globalMap struct {
	m       *Map
	mem     []byte // the value, within mapping
	mapping []byte
	ro      bool
}

func (g *globalMap) unmap() error {
	if g.mapping == nil {
		return nil
	}
	err := unix.Munmap(g.mapping)
	g.mem, g.mapping = nil, nil
	return err
}

// initGlobal stores a global data map's initial value, freezes .rodata
// and maps .data/.bss. Called by Load with b.mu held.
func (b *Module) initGlobal(m *Map, ms *mapSpec) error {
	if ms.Global == nil {
		return nil
	}
	gs := ms.Global
	var key uint32
	if err := bpfsys.MapUpdateElem(m.fd, unsafe.Pointer(&key), unsafe.Pointer(&gs.Init[0]), 0); err != nil {
		return fmt.Errorf("elf: initialising %s: %w", ms.Name, err)
	}
	g := &globalMap{m: m, ro: gs.Freeze}
	if gs.Freeze {
		if err := bpfsys.MapFreeze(m.fd); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("elf: freezing %s: %w", ms.Name, err)
		}
	} else if ms.Flags&bpfsys.BPF_F_MMAPABLE != 0 {
		size := (len(gs.Init) + os.Getpagesize() - 1) &^ (os.Getpagesize() - 1)
		mem, err := unix.Mmap(m.fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return fmt.Errorf("elf: mapping %s: %w", ms.Name, err)
		}
		g.mem, g.mapping = mem[:len(gs.Init)], mem
	}
	b.x.globals[ms.Name] = g
	return nil
}

// globalVar is a variable of a global data section, found in BTF.
type globalVar struct {
	section string
	off     uint32
	size    uint32
	typ     *btfType
	btf     *btfSpec
}

// findVar looks variable name up in the object's BTF DATASECs.
func findVar(spec *objectSpec, name string) (*globalVar, error) {
	if spec.BTF == nil {
		return nil, fmt.Errorf("elf: variable %q: the object has no BTF (compile with -g)", name)
	}
	bt, err := readBTF(spec.BTF, binary.NativeEndian)
	if err != nil {
		return nil, fmt.Errorf("elf: variable %q: %w", name, err)
	}
	for i := range bt.types {
		t := &bt.types[i]
		if t.kind != btfKindDatasec {
			continue
		}
		for _, si := range t.secinfo {
			v, err := bt.get(si.typ)
			if err != nil || v.kind != btfKindVar || v.name != name {
				continue
			}
			vt, err := bt.skipMods(v.size)
			if err != nil {
				return nil, fmt.Errorf("elf: variable %q: %w", name, err)
			}
			size, err := bt.sizeof(v.size)
			if err != nil {
				return nil, fmt.Errorf("elf: variable %q: %w", name, err)
			}
			for _, ms := range spec.Maps {
				if ms.Name != t.name || ms.Global == nil {
					continue
				}
				off, ok := ms.Global.Vars[name]
				if !ok || uint64(off)+uint64(size) > uint64(len(ms.Global.Init)) {
					return nil, fmt.Errorf("elf: variable %q: no symbol for it in %s", name, t.name)
				}
				return &globalVar{section: t.name, off: off, size: size, typ: vt, btf: bt}, nil
			}
			return nil, fmt.Errorf("elf: variable %q: section %s: %w", name, t.name, ErrNotFound)
		}
	}
	return nil, fmt.Errorf("elf: variable %q: no such global variable in the object's BTF: %w", name, ErrNotFound)
}

// encodeVar checks value against the variable's BTF type and size and
// returns its bytes.
func (v *globalVar) encode(name string, value any) ([]byte, error) {
	rv := reflect.ValueOf(value)
	if !rv.IsValid() {
		return nil, fmt.Errorf("elf: variable %q: nil value", name)
	}
	var buf bytes.Buffer
	kind := rv.Kind()
	switch v.typ.kind {
	case btfKindInt, btfKindEnum, btfKindEnum64:
		switch kind {
		case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Bool:
		default:
			return nil, fmt.Errorf("elf: variable %q is a %d-byte integer in the object; cannot set it from a Go %T", name, v.size, value)
		}
	case btfKindPtr:
		if kind != reflect.Uint64 && kind != reflect.Uintptr {
			return nil, fmt.Errorf("elf: variable %q is a pointer; set it from a uint64, not %T", name, value)
		}
		value = rv.Convert(reflect.TypeOf(uint64(0))).Interface()
	case btfKindArray:
		if s, ok := value.(string); ok {
			if uint32(len(s)) >= v.size {
				return nil, fmt.Errorf("elf: variable %q holds %d bytes; string %q (and its NUL) does not fit", name, v.size, s)
			}
			b := make([]byte, v.size)
			copy(b, s)
			return b, nil
		}
		if kind != reflect.Array && kind != reflect.Slice {
			return nil, fmt.Errorf("elf: variable %q is an array in the object; cannot set it from a Go %T", name, value)
		}
	case btfKindStruct, btfKindUnion, btfKindFloat:
		if kind != reflect.Struct && kind != reflect.Float32 && kind != reflect.Float64 {
			return nil, fmt.Errorf("elf: variable %q (BTF kind %d) cannot be set from a Go %T", name, v.typ.kind, value)
		}
	default:
		return nil, fmt.Errorf("elf: variable %q has BTF kind %d, which cannot be set from Go", name, v.typ.kind)
	}
	if err := binary.Write(&buf, binary.NativeEndian, value); err != nil {
		return nil, fmt.Errorf("elf: variable %q: cannot encode %T: %w", name, value, err)
	}
	if uint32(buf.Len()) != v.size {
		return nil, fmt.Errorf("elf: variable %q is %d bytes in the object; a Go %T is %d bytes", name, v.size, value, buf.Len())
	}
	return buf.Bytes(), nil
}

// SetConstant sets global variable name (a `const volatile` in .rodata, or
// a .data variable's initial value) before Load. The value's Go type must
// match the variable's BTF type kind and size: an int32 for an int, a
// [16]byte or a shorter string for a char[16], a struct of the same size...
func (b *Module) SetConstant(name string, value any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("elf: set constant %q: %w", name, ErrClosed)
	}
	if b.loaded {
		return fmt.Errorf("elf: set constant %q: the module is already loaded (set constants between NewModule and Load)", name)
	}
	spec, err := b.parse()
	if err != nil {
		return err
	}
	v, err := findVar(spec, name)
	if err != nil {
		return err
	}
	if !isReadOnlySection(v.section) && !strings.HasPrefix(v.section, ".data") {
		return fmt.Errorf("elf: set constant %q: it lives in %s, which has no initial value", name, v.section)
	}
	data, err := v.encode(name, value)
	if err != nil {
		return err
	}
	for _, ms := range spec.Maps {
		if ms.Name == v.section && ms.Global != nil {
			if uint64(v.off)+uint64(len(data)) > uint64(len(ms.Global.Init)) {
				return fmt.Errorf("elf: set constant %q: offset %d outside %s", name, v.off, v.section)
			}
			copy(ms.Global.Init[v.off:], data)
			return nil
		}
	}
	return fmt.Errorf("elf: set constant %q: section %s: %w", name, v.section, ErrNotFound)
}

// loadedVar finds a variable of a loaded module. Called with b.mu held.
func (b *Module) loadedVar(name string) (*globalVar, *globalMap, error) {
	if b.closed {
		return nil, nil, fmt.Errorf("elf: variable %q: %w", name, ErrClosed)
	}
	if !b.loaded {
		return nil, nil, fmt.Errorf("elf: variable %q: %w", name, ErrNotLoaded)
	}
	v, ok := b.x.vars[name]
	if !ok {
		var err error
		if v, err = findVar(b.spec, name); err != nil {
			return nil, nil, err
		}
		b.x.vars[name] = v
	}
	g, ok := b.x.globals[v.section]
	if !ok || g.m.fd < 0 {
		return nil, nil, fmt.Errorf("elf: variable %q: section %s: %w", name, v.section, ErrNotFound)
	}
	return v, g, nil
}

// ReadVariable reads global variable name (in .data, .bss or .rodata) of a
// loaded module into out, a pointer to a value of the variable's size.
func (b *Module) ReadVariable(name string, out any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, g, err := b.loadedVar(name)
	if err != nil {
		return err
	}
	if n := binary.Size(out); n != int(v.size) {
		return fmt.Errorf("elf: read variable %q: it is %d bytes; %T is %d", name, v.size, out, n)
	}
	var val []byte
	if g.mem != nil {
		val = make([]byte, v.size)
		copy(val, g.mem[v.off:v.off+v.size])
	} else {
		all := make([]byte, g.m.def.ValueSize)
		var key uint32
		if err := bpfsys.MapLookupElem(g.m.fd, unsafe.Pointer(&key), unsafe.Pointer(&all[0])); err != nil {
			return fmt.Errorf("elf: read variable %q: %w", name, err)
		}
		val = all[v.off : v.off+v.size]
	}
	if err := binary.Read(bytes.NewReader(val), binary.NativeEndian, out); err != nil {
		return fmt.Errorf("elf: read variable %q: %w", name, err)
	}
	return nil
}

// WriteVariable writes global variable name (in .data or .bss) of a loaded
// module; the programs see the new value at once. .rodata is frozen.
func (b *Module) WriteVariable(name string, value any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, g, err := b.loadedVar(name)
	if err != nil {
		return err
	}
	if g.ro {
		return fmt.Errorf("elf: write variable %q: %s is read-only (frozen); use SetConstant before Load", name, v.section)
	}
	data, err := v.encode(name, value)
	if err != nil {
		return err
	}
	if g.mem != nil {
		copy(g.mem[v.off:], data)
		return nil
	}
	all := make([]byte, g.m.def.ValueSize)
	var key uint32
	if err := bpfsys.MapLookupElem(g.m.fd, unsafe.Pointer(&key), unsafe.Pointer(&all[0])); err != nil {
		return fmt.Errorf("elf: write variable %q: %w", name, err)
	}
	copy(all[v.off:], data)
	if err := bpfsys.MapUpdateElem(g.m.fd, unsafe.Pointer(&key), unsafe.Pointer(&all[0]), 0); err != nil {
		return fmt.Errorf("elf: write variable %q: %w", name, err)
	}
	return nil
}
