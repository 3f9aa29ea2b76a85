package elf

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A minimal reader of the BTF that clang emits into eBPF objects, enough to
// read BTF-style map definitions in the ".maps" section:
//
//	struct {
//		__uint(type, BPF_MAP_TYPE_HASH);   // int (*type)[BPF_MAP_TYPE_HASH]
//		__uint(max_entries, 64);
//		__type(key, u32);                  // u32 *key
//		__type(value, struct event);
//	} name SEC(".maps");
//
// Supported members: type, key_size, value_size, max_entries, map_flags,
// numa_node, pinning (via __uint) and key, value (via __type; their size is
// the size of the pointed-to type). Anything else (values, inner maps,
// map_extra...) is rejected with an error naming it.

const (
	btfMagic = 0xeB9F

	btfKindInt      = 1
	btfKindPtr      = 2
	btfKindArray    = 3
	btfKindStruct   = 4
	btfKindUnion    = 5
	btfKindEnum     = 6
	btfKindFwd      = 7
	btfKindTypedef  = 8
	btfKindVolatile = 9
	btfKindConst    = 10
	btfKindRestrict = 11
	btfKindFunc     = 12
	btfKindFuncProt = 13
	btfKindVar      = 14
	btfKindDatasec  = 15
	btfKindFloat    = 16
	btfKindDeclTag  = 17
	btfKindTypeTag  = 18
	btfKindEnum64   = 19

	// maxBTFTypes bounds the work done on hostile input.
	maxBTFTypes = 1 << 20
)

type btfMember struct {
	name string
	typ  uint32
}

type btfType struct {
	name    string
	kind    uint8
	vlen    uint16
	size    uint32 // size, or referenced type for ptr/typedef/cv/var/func
	nelems  uint32 // arrays
	elem    uint32 // arrays
	members []btfMember
	secinfo []btfSecinfo
}

type btfSecinfo struct {
	typ    uint32
	offset uint32
	size   uint32
}

type btfSpec struct {
	types []btfType // index = type id; types[0] is void
}

func readBTF(data []byte, bo binary.ByteOrder) (*btfSpec, error) {
	if len(data) < 24 {
		return nil, errors.New("BTF header truncated")
	}
	if bo.Uint16(data[0:2]) != btfMagic {
		return nil, fmt.Errorf("bad BTF magic %#x", bo.Uint16(data[0:2]))
	}
	hdrLen := bo.Uint32(data[4:8])
	typeOff, typeLen := bo.Uint32(data[8:12]), bo.Uint32(data[12:16])
	strOff, strLen := bo.Uint32(data[16:20]), bo.Uint32(data[20:24])
	if hdrLen < 24 || uint64(hdrLen) > uint64(len(data)) {
		return nil, fmt.Errorf("bad BTF header length %d", hdrLen)
	}
	body := data[hdrLen:]
	if uint64(typeOff)+uint64(typeLen) > uint64(len(body)) || uint64(strOff)+uint64(strLen) > uint64(len(body)) {
		return nil, errors.New("BTF type or string section out of bounds")
	}
	strs := body[strOff : strOff+strLen]
	str := func(off uint32) (string, error) {
		if off == 0 {
			return "", nil
		}
		if off >= uint32(len(strs)) {
			return "", fmt.Errorf("BTF string offset %d out of bounds", off)
		}
		s := strs[off:]
		for i, c := range s {
			if c == 0 {
				return string(s[:i]), nil
			}
		}
		return "", errors.New("BTF string not NUL-terminated")
	}
	tb := body[typeOff : typeOff+typeLen]
	spec := &btfSpec{types: []btfType{{kind: 0}}}
	for off := 0; off < len(tb); {
		if len(spec.types) > maxBTFTypes {
			return nil, errors.New("too many BTF types")
		}
		if len(tb)-off < 12 {
			return nil, errors.New("BTF type truncated")
		}
		nameOff, info, sz := bo.Uint32(tb[off:]), bo.Uint32(tb[off+4:]), bo.Uint32(tb[off+8:])
		off += 12
		t := btfType{kind: uint8((info >> 24) & 0x1f), vlen: uint16(info & 0xffff), size: sz}
		var err error
		if t.name, err = str(nameOff); err != nil {
			return nil, err
		}
		need := func(n int) error {
			if len(tb)-off < n {
				return fmt.Errorf("BTF type %d (kind %d) truncated", len(spec.types), t.kind)
			}
			return nil
		}
		vlen := int(t.vlen)
		switch t.kind {
		case btfKindInt, btfKindVar, btfKindDeclTag:
			if err := need(4); err != nil {
				return nil, err
			}
			off += 4
		case btfKindPtr, btfKindFwd, btfKindTypedef, btfKindVolatile, btfKindConst,
			btfKindRestrict, btfKindFunc, btfKindFloat, btfKindTypeTag:
		case btfKindArray:
			if err := need(12); err != nil {
				return nil, err
			}
			t.elem, t.nelems = bo.Uint32(tb[off:]), bo.Uint32(tb[off+8:])
			off += 12
		case btfKindStruct, btfKindUnion:
			if err := need(12 * vlen); err != nil {
				return nil, err
			}
			for i := 0; i < vlen; i++ {
				name, err := str(bo.Uint32(tb[off:]))
				if err != nil {
					return nil, err
				}
				t.members = append(t.members, btfMember{name: name, typ: bo.Uint32(tb[off+4:])})
				off += 12
			}
		case btfKindEnum, btfKindFuncProt:
			if err := need(8 * vlen); err != nil {
				return nil, err
			}
			off += 8 * vlen
		case btfKindEnum64:
			if err := need(12 * vlen); err != nil {
				return nil, err
			}
			off += 12 * vlen
		case btfKindDatasec:
			if err := need(12 * vlen); err != nil {
				return nil, err
			}
			for i := 0; i < vlen; i++ {
				t.secinfo = append(t.secinfo, btfSecinfo{typ: bo.Uint32(tb[off:]), offset: bo.Uint32(tb[off+4:]), size: bo.Uint32(tb[off+8:])})
				off += 12
			}
		default:
			return nil, fmt.Errorf("unknown BTF kind %d", t.kind)
		}
		spec.types = append(spec.types, t)
	}
	return spec, nil
}

func (s *btfSpec) get(id uint32) (*btfType, error) {
	if int64(id) >= int64(len(s.types)) {
		return nil, fmt.Errorf("BTF type id %d out of range", id)
	}
	return &s.types[id], nil
}

// skipMods follows typedefs and cv-qualifiers.
func (s *btfSpec) skipMods(id uint32) (*btfType, error) {
	for i := 0; i < 64; i++ {
		t, err := s.get(id)
		if err != nil {
			return nil, err
		}
		switch t.kind {
		case btfKindTypedef, btfKindVolatile, btfKindConst, btfKindRestrict, btfKindTypeTag:
			id = t.size
		default:
			return t, nil
		}
	}
	return nil, errors.New("BTF type chain too long")
}

// sizeof returns the size in bytes of type id.
func (s *btfSpec) sizeof(id uint32) (uint32, error) {
	var mul uint64 = 1
	for i := 0; i < 64; i++ {
		t, err := s.get(id)
		if err != nil {
			return 0, err
		}
		switch t.kind {
		case btfKindInt, btfKindStruct, btfKindUnion, btfKindEnum, btfKindEnum64, btfKindFloat, btfKindDatasec:
			n := mul * uint64(t.size)
			if n > 1<<31 {
				return 0, errors.New("BTF type too large")
			}
			return uint32(n), nil
		case btfKindPtr:
			return uint32(mul * 8), nil
		case btfKindArray:
			mul *= uint64(t.nelems)
			if mul > 1<<31 {
				return 0, errors.New("BTF array too large")
			}
			id = t.elem
		case btfKindTypedef, btfKindVolatile, btfKindConst, btfKindRestrict, btfKindTypeTag, btfKindVar:
			id = t.size
		default:
			return 0, fmt.Errorf("BTF type %d (kind %d) has no size", id, t.kind)
		}
	}
	return 0, errors.New("BTF type chain too long")
}

// btfMapDefs reads the map definitions of the DATASEC named secName.
func (s *btfSpec) btfMapDefs(secName string) ([]*mapSpec, error) {
	var sec *btfType
	for i := range s.types {
		if s.types[i].kind == btfKindDatasec && s.types[i].name == secName {
			sec = &s.types[i]
			break
		}
	}
	if sec == nil {
		return nil, fmt.Errorf("no BTF DATASEC %q (compile with clang -g)", secName)
	}
	var out []*mapSpec
	for _, vi := range sec.secinfo {
		v, err := s.get(vi.typ)
		if err != nil {
			return nil, err
		}
		if v.kind != btfKindVar {
			return nil, fmt.Errorf("BTF %s entry %d is not a variable", secName, vi.typ)
		}
		m, err := s.btfMapDef(v.name, v.size)
		if err != nil {
			return nil, fmt.Errorf("map %q: %w", v.name, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func (s *btfSpec) btfMapDef(name string, typ uint32) (*mapSpec, error) {
	st, err := s.skipMods(typ)
	if err != nil {
		return nil, err
	}
	if st.kind != btfKindStruct {
		return nil, fmt.Errorf("definition is not a struct (BTF kind %d)", st.kind)
	}
	m := &mapSpec{Name: name, Section: ".maps", BTF: true}
	var keyFromType, valueFromType bool
	for _, mem := range st.members {
		switch mem.name {
		case "type", "key_size", "value_size", "max_entries", "map_flags", "numa_node", "pinning":
			n, err := s.uintMember(mem.typ)
			if err != nil {
				return nil, fmt.Errorf("member %s: %w", mem.name, err)
			}
			switch mem.name {
			case "type":
				m.Type = n
			case "key_size":
				if keyFromType && m.KeySize != n {
					return nil, fmt.Errorf("key_size %d disagrees with key type size %d", n, m.KeySize)
				}
				m.KeySize = n
			case "value_size":
				if valueFromType && m.ValueSize != n {
					return nil, fmt.Errorf("value_size %d disagrees with value type size %d", n, m.ValueSize)
				}
				m.ValueSize = n
			case "max_entries":
				m.MaxEntries = n
			case "map_flags":
				m.Flags = n
			case "numa_node":
				// accepted, not used
			case "pinning":
				m.Pinning = n
			}
		case "key", "value":
			pt, err := s.skipMods(mem.typ)
			if err != nil {
				return nil, err
			}
			if pt.kind != btfKindPtr {
				return nil, fmt.Errorf("member %s is not a pointer (use __type)", mem.name)
			}
			n, err := s.sizeof(pt.size)
			if err != nil {
				return nil, fmt.Errorf("member %s: %w", mem.name, err)
			}
			if mem.name == "key" {
				m.btfKey = pt.size
				if m.KeySize != 0 && m.KeySize != n {
					return nil, fmt.Errorf("key type size %d disagrees with key_size %d", n, m.KeySize)
				}
				m.KeySize, keyFromType = n, true
			} else {
				m.btfValue = pt.size
				if m.ValueSize != 0 && m.ValueSize != n {
					return nil, fmt.Errorf("value type size %d disagrees with value_size %d", n, m.ValueSize)
				}
				m.ValueSize, valueFromType = n, true
			}
		case "values":
			inner, err := s.btfMapValues(mem.typ)
			if err != nil {
				return nil, err
			}
			m.Inner = &innerSpec{def: inner}
		default:
			return nil, fmt.Errorf("unsupported BTF map member %q", mem.name)
		}
	}
	if m.Inner != nil && m.ValueSize == 0 {
		m.ValueSize = 4 // a map or program fd
	}
	return m, nil
}

// uintMember decodes __uint(name, val): a pointer to an array of val ints.
func (s *btfSpec) uintMember(typ uint32) (uint32, error) {
	pt, err := s.skipMods(typ)
	if err != nil {
		return 0, err
	}
	if pt.kind != btfKindPtr {
		return 0, errors.New("not a pointer (use __uint)")
	}
	at, err := s.skipMods(pt.size)
	if err != nil {
		return 0, err
	}
	if at.kind != btfKindArray {
		return 0, errors.New("not a pointer to an array (use __uint)")
	}
	return at.nelems, nil
}
