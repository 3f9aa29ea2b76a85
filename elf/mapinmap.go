package elf

import (
	"debug/elf"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/btf"
)

// Map-in-map and program arrays with initial values, as libbpf's
// bpf_helpers.h writes them:
//
//	struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); ... } in_a SEC(".maps"), in_b SEC(".maps");
//	struct {
//		__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
//		__uint(max_entries, 2);
//		__type(key, __u32);
//		__array(values, struct inner);
//	} outer SEC(".maps") = { .values = { &in_a, &in_b } };
//
//	struct {
//		__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
//		__uint(max_entries, 2);
//		__type(key, __u32);
//		__array(values, int (void *));
//	} jmp SEC(".maps") = { .values = { [1] = &tail_prog } };
//
// The inner definition gives the template map the kernel wants at the
// outer map's creation; the initial values (R_BPF_64_ABS64 relocations in
// .rel.maps) are stored once every map (or, for program arrays, every
// program) exists, so tail calls are wired when Load returns.

const rBPF64Abs64 = 2

// maxMapSlots bounds the initial values read from an object.
const maxMapSlots = 1 << 16

// innerSpec is what mapSpec.Inner holds.
type innerSpec struct {
	def   *mapSpec          // inner map template (nil for program arrays)
	slots map[uint32]string // initial values: slot -> map or program name
}

// btfMapValues decodes __array(values, T): an array of pointers to an
// inner map definition (map-in-map) or to a function prototype (program
// arrays). It returns the inner definition, nil for functions.
func (s *btfSpec) btfMapValues(typ uint32) (*mapSpec, error) {
	at, err := s.skipMods(typ)
	if err != nil {
		return nil, err
	}
	if at.kind != btfKindArray {
		return nil, errors.New("member values is not an array (use __array)")
	}
	pt, err := s.skipMods(at.elem)
	if err != nil {
		return nil, err
	}
	if pt.kind != btfKindPtr {
		return nil, errors.New("member values is not an array of pointers (use __array)")
	}
	tt, err := s.skipMods(pt.size)
	if err != nil {
		return nil, err
	}
	switch tt.kind {
	case btfKindFuncProt:
		return nil, nil
	case btfKindStruct:
		inner, err := s.btfMapDef("inner", pt.size)
		if err != nil {
			return nil, fmt.Errorf("inner map definition: %w", err)
		}
		if inner.Inner != nil {
			return nil, errors.New("inner map definitions cannot nest")
		}
		return inner, nil
	}
	return nil, fmt.Errorf("member values points to BTF kind %d, want a map definition or a function", tt.kind)
}

// mapInitialValues reads .rel.maps: which slot of which outer map points
// at which map or program.
func (p *parser) mapInitialValues(mapsIdx int) error {
	if len(p.rels[mapsIdx]) == 0 {
		return nil
	}
	syms, err := p.symbols()
	if err != nil {
		return err
	}
	var local *btf.Spec
	byName := map[string]*mapSpec{}
	for _, m := range p.spec.Maps {
		if m.Section == ".maps" {
			byName[m.Name] = m
		}
	}
	for _, ri := range p.rels[mapsIdx] {
		rs := p.f.Sections[ri]
		if rs.Type != elf.SHT_REL {
			return fmt.Errorf("relocation section %q: only SHT_REL is supported", rs.Name)
		}
		d, err := p.data(ri)
		if err != nil {
			return err
		}
		if len(d)%16 != 0 {
			return fmt.Errorf("relocation section %q size %d is not a multiple of 16", rs.Name, len(d))
		}
		for off := 0; off < len(d); off += 16 {
			roff := p.bo.Uint64(d[off:])
			info := p.bo.Uint64(d[off+8:])
			symIdx, rtype := info>>32, uint32(info)
			if rtype != rBPF64Abs64 {
				return fmt.Errorf(".maps relocation at %#x: unsupported type %d", roff, rtype)
			}
			if symIdx == 0 || symIdx > uint64(len(syms)) {
				return fmt.Errorf(".maps relocation at %#x: bad symbol index %d", roff, symIdx)
			}
			target := syms[symIdx-1]
			var outer *elf.Symbol
			for k := range p.bySec[mapsIdx] {
				s := &p.bySec[mapsIdx][k]
				if elf.ST_TYPE(s.Info) == elf.STT_OBJECT && roff >= s.Value && roff < s.Value+s.Size {
					outer = s
				}
			}
			if outer == nil {
				return fmt.Errorf(".maps relocation at %#x is in no map definition", roff)
			}
			m := byName[outer.Name]
			if m == nil || m.Inner == nil {
				return fmt.Errorf("map %q has initial values but no __array(values, ...) member", outer.Name)
			}
			if local == nil {
				if local, err = btf.Parse(p.spec.BTF); err != nil {
					return err
				}
			}
			voff, err := valuesOffset(local, outer.Name)
			if err != nil {
				return fmt.Errorf("map %q: %w", outer.Name, err)
			}
			rel := roff - outer.Value
			if rel < uint64(voff) || (rel-uint64(voff))%8 != 0 {
				return fmt.Errorf("map %q: initial value at offset %d is not a values[] slot", outer.Name, rel)
			}
			slot := (rel - uint64(voff)) / 8
			if slot >= maxMapSlots || slot >= uint64(m.MaxEntries) && m.MaxEntries != 0 {
				return fmt.Errorf("map %q: initial value for slot %d beyond max_entries %d", outer.Name, slot, m.MaxEntries)
			}
			if m.Inner.slots == nil {
				m.Inner.slots = map[uint32]string{}
			}
			name := target.Name
			if m.Inner.def == nil {
				if elf.ST_TYPE(target.Info) != elf.STT_FUNC {
					return fmt.Errorf("program array %q: slot %d points to %q, not a program", outer.Name, slot, name)
				}
			} else if int(target.Section) >= len(p.f.Sections) || p.f.Sections[target.Section].Name != ".maps" {
				return fmt.Errorf("map %q: slot %d points to %q, not a map", outer.Name, slot, name)
			}
			m.Inner.slots[uint32(slot)] = name
		}
	}
	return nil
}

// valuesOffset finds the byte offset of member "values" in the definition
// of map name.
func valuesOffset(s *btf.Spec, name string) (uint32, error) {
	sec, err := s.TypeByName(".maps", btf.KindDatasec)
	if err != nil {
		return 0, err
	}
	sis, err := s.SecInfos(sec)
	if err != nil {
		return 0, err
	}
	for _, si := range sis {
		v, err := s.Type(si.Type)
		if err != nil || v.Kind != btf.KindVar || v.Name != name {
			continue
		}
		st, err := s.Resolve(v.Ref)
		if err != nil {
			return 0, err
		}
		ms, err := s.Members(st)
		if err != nil {
			return 0, err
		}
		for _, m := range ms {
			if m.Name == "values" {
				return m.BitOffset / 8, nil
			}
		}
	}
	return 0, errors.New("no values member")
}

// innerTemplate creates the inner map template an outer map is created
// with; the caller closes it.
func innerTemplate(ms *mapSpec) (int, error) {
	in := ms.Inner.def
	attr := &bpfsys.MapCreateAttr{
		MapType: bpfsys.MapType(in.Type), KeySize: in.KeySize, ValueSize: in.ValueSize,
		MaxEntries: in.MaxEntries, MapFlags: in.Flags,
	}
	if attr.MaxEntries == 0 {
		attr.MaxEntries = 1
	}
	attr.SetName(ms.Name + "_inner")
	fd, err := bpfsys.MapCreate(attr)
	if err != nil {
		return -1, fmt.Errorf("elf: inner map template of %q: %w", ms.Name, err)
	}
	return fd, nil
}

// fillSlots stores the initial values of map-in-map maps (what ==
// "maps") or program arrays (what == "progs").
func (b *Module) fillSlots(spec *objectSpec, progs bool) error {
	for _, ms := range spec.Maps {
		if ms.Inner == nil || (ms.Inner.def == nil) != progs || len(ms.Inner.slots) == 0 {
			continue
		}
		m := b.maps[ms.Name]
		for slot, name := range ms.Inner.slots {
			var fd int
			if progs {
				p, ok := b.x.programs[name]
				if !ok {
					return fmt.Errorf("elf: program array %q slot %d: program %q: %w", ms.Name, slot, name, ErrNotFound)
				}
				fd = *p.fdp
			} else {
				in, ok := b.maps[name]
				if !ok {
					return fmt.Errorf("elf: map %q slot %d: map %q: %w", ms.Name, slot, name, ErrNotFound)
				}
				fd = in.fd
			}
			k, v := slot, uint32(fd)
			if err := bpfsys.MapUpdateElem(m.fd, unsafe.Pointer(&k), unsafe.Pointer(&v), 0); err != nil {
				return fmt.Errorf("elf: map %q slot %d = %s: %w", ms.Name, slot, name, err)
			}
		}
	}
	return nil
}

// createMapInner is createMap with the inner map template a map-in-map
// needs, and with the object's BTF types (core.go).
func (b *Module) createMapInner(ms *mapSpec, spec *objectSpec, params SectionParams) (*Map, error) {
	def := *ms
	b.mapBTF(&def)
	if ms.Inner == nil || ms.Inner.def == nil {
		return createMap(&def, spec, params)
	}
	tfd, err := innerTemplate(ms)
	if err != nil {
		return nil, err
	}
	defer unix.Close(tfd)
	def.innerFD = tfd
	return createMap(&def, spec, params)
}
