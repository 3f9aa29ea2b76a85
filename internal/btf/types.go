package btf

import (
	"fmt"
)

// Kind is a BTF type kind (BTF_KIND_*).
type Kind uint8

// BTF kinds, numbered as in include/uapi/linux/btf.h.
const (
	KindUnknown Kind = iota
	KindInt
	KindPtr
	KindArray
	KindStruct
	KindUnion
	KindEnum
	KindFwd
	KindTypedef
	KindVolatile
	KindConst
	KindRestrict
	KindFunc
	KindFuncProto
	KindVar
	KindDatasec
	KindFloat
	KindDeclTag
	KindTypeTag
	KindEnum64
)

var kindNames = [...]string{"void", "int", "ptr", "array", "struct", "union", "enum", "fwd",
	"typedef", "volatile", "const", "restrict", "func", "func_proto", "var", "datasec",
	"float", "decl_tag", "type_tag", "enum64"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Int encodings.
const (
	IntSigned = 1 << 0
	IntChar   = 1 << 1
	IntBool   = 1 << 2
)

// Linkage of a FUNC or VAR.
const (
	LinkageStatic = 0
	LinkageGlobal = 1
	LinkageExtern = 2
)

// Type is the common part of a BTF type.
type Type struct {
	ID       TypeID
	Kind     Kind
	Name     string
	KindFlag bool
	Vlen     int    // members, enumerators, params, secinfos; FUNC: linkage
	Size     uint32 // INT, STRUCT, UNION, ENUM, ENUM64, DATASEC, FLOAT
	Ref      TypeID // PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG, FUNC, FUNC_PROTO (return), VAR, DECL_TAG
}

// Member is a STRUCT or UNION member.
type Member struct {
	Name         string
	Type         TypeID
	BitOffset    uint32
	BitfieldSize uint32 // 0 unless a bitfield
}

// EnumValue is an ENUM or ENUM64 enumerator. Value holds the bits; Signed
// (the enum's kind_flag) says how to read them.
type EnumValue struct {
	Name   string
	Value  uint64
	Signed bool
}

// Param is a FUNC_PROTO parameter (Type 0 and no name: variadic "...").
type Param struct {
	Name string
	Type TypeID
}

// Array is an ARRAY's element type, index type and length.
type Array struct {
	Type, Index TypeID
	Nelems      uint32
}

// Int describes an INT.
type Int struct {
	Encoding uint8 // IntSigned, IntChar, IntBool
	Offset   uint8
	Bits     uint8
}

// Var is a VAR's linkage.
type Var struct {
	Linkage uint32
}

// SecInfo is one variable of a DATASEC.
type SecInfo struct {
	Type   TypeID
	Offset uint32
	Size   uint32
}

// locate returns the Spec holding id and id's offset in its type section.
func (s *Spec) locate(id TypeID) (*Spec, uint32, error) {
	for id < s.firstID {
		if s.base == nil || id == 0 {
			return nil, 0, fmt.Errorf("%w: type id %d (void or out of range)", ErrNotFound, id)
		}
		s = s.base
	}
	i := id - s.firstID
	if uint64(i) >= uint64(len(s.offs)) {
		return nil, 0, fmt.Errorf("%w: type id %d (have %d types)", ErrNotFound, id, s.NumTypes())
	}
	return s, s.offs[i], nil
}

// kindOf is the kind of id, KindUnknown for void or a bad id.
func (s *Spec) kindOf(id TypeID) Kind {
	o, off, err := s.locate(id)
	if err != nil {
		return KindUnknown
	}
	return Kind(o.order.Uint32(o.types[off+4:]) >> 24 & 0x1f)
}

// Type returns the common part of type id. Void (0) is a Type of kind
// KindUnknown.
func (s *Spec) Type(id TypeID) (Type, error) {
	if id == 0 {
		return Type{}, nil
	}
	o, off, err := s.locate(id)
	if err != nil {
		return Type{}, err
	}
	b := o.types[off:]
	info := o.order.Uint32(b[4:])
	t := Type{
		ID:       id,
		Kind:     Kind(info >> 24 & 0x1f),
		Name:     o.name(o.order.Uint32(b)),
		KindFlag: info>>31 == 1,
		Vlen:     int(info & 0xffff),
	}
	v := o.order.Uint32(b[8:])
	switch t.Kind {
	case KindInt, KindStruct, KindUnion, KindEnum, KindEnum64, KindDatasec, KindFloat:
		t.Size = v
	case KindPtr, KindTypedef, KindVolatile, KindConst, KindRestrict, KindTypeTag, KindFunc, KindFuncProto, KindVar, KindDeclTag:
		t.Ref = TypeID(v)
	}
	return t, nil
}

// extra returns the bytes after type id's header, checking its kind.
func (s *Spec) extra(id TypeID, kinds ...Kind) (*Spec, []byte, Type, error) {
	t, err := s.Type(id)
	if err != nil {
		return nil, nil, t, err
	}
	ok := false
	for _, k := range kinds {
		ok = ok || t.Kind == k
	}
	if !ok {
		return nil, nil, t, fmt.Errorf("btf: type %d %q is %s, not %v", id, t.Name, t.Kind, kinds)
	}
	o, off, _ := s.locate(id)
	n, _ := extraSize(t.Kind, t.Vlen)
	return o, o.types[off+12 : off+12+uint32(n)], t, nil
}

// Members returns a STRUCT's or UNION's members.
func (s *Spec) Members(id TypeID) ([]Member, error) {
	o, b, t, err := s.extra(id, KindStruct, KindUnion)
	if err != nil {
		return nil, err
	}
	ms := make([]Member, t.Vlen)
	for i := range ms {
		r := b[12*i:]
		m := Member{Name: o.name(o.order.Uint32(r)), Type: TypeID(o.order.Uint32(r[4:]))}
		off := o.order.Uint32(r[8:])
		if t.KindFlag {
			m.BitfieldSize, m.BitOffset = off>>24, off&0xffffff
		} else {
			m.BitOffset = off
		}
		ms[i] = m
	}
	return ms, nil
}

// member returns member i of a STRUCT or UNION without allocating a slice.
func (s *Spec) member(id TypeID, i int) (Member, error) {
	o, b, t, err := s.extra(id, KindStruct, KindUnion)
	if err != nil {
		return Member{}, err
	}
	if i < 0 || i >= t.Vlen {
		return Member{}, fmt.Errorf("%w: member %d of %s %q (%d members)", ErrNotFound, i, t.Kind, t.Name, t.Vlen)
	}
	r := b[12*i:]
	m := Member{Name: o.name(o.order.Uint32(r)), Type: TypeID(o.order.Uint32(r[4:]))}
	off := o.order.Uint32(r[8:])
	if t.KindFlag {
		m.BitfieldSize, m.BitOffset = off>>24, off&0xffffff
	} else {
		m.BitOffset = off
	}
	return m, nil
}

// Enums returns an ENUM's or ENUM64's enumerators.
func (s *Spec) Enums(id TypeID) ([]EnumValue, error) {
	o, b, t, err := s.extra(id, KindEnum, KindEnum64)
	if err != nil {
		return nil, err
	}
	es := make([]EnumValue, t.Vlen)
	for i := range es {
		e := EnumValue{Signed: t.KindFlag}
		if t.Kind == KindEnum {
			r := b[8*i:]
			e.Name = o.name(o.order.Uint32(r))
			v := o.order.Uint32(r[4:])
			if t.KindFlag {
				e.Value = uint64(int64(int32(v)))
			} else {
				e.Value = uint64(v)
			}
		} else {
			r := b[12*i:]
			e.Name = o.name(o.order.Uint32(r))
			e.Value = uint64(o.order.Uint32(r[4:])) | uint64(o.order.Uint32(r[8:]))<<32
		}
		es[i] = e
	}
	return es, nil
}

// enumValue is enumerator i of an ENUM or ENUM64 (sign-extended if signed).
func (s *Spec) enumValue(id TypeID, i int) (uint64, error) {
	o, b, t, err := s.extra(id, KindEnum, KindEnum64)
	if err != nil {
		return 0, err
	}
	if i < 0 || i >= t.Vlen {
		return 0, fmt.Errorf("%w: enumerator %d of %q", ErrNotFound, i, t.Name)
	}
	if t.Kind == KindEnum64 {
		r := b[12*i:]
		return uint64(o.order.Uint32(r[4:])) | uint64(o.order.Uint32(r[8:]))<<32, nil
	}
	v := o.order.Uint32(b[8*i+4:])
	if t.KindFlag {
		return uint64(int64(int32(v))), nil
	}
	return uint64(v), nil
}

// Params returns a FUNC_PROTO's parameters.
func (s *Spec) Params(id TypeID) ([]Param, error) {
	o, b, t, err := s.extra(id, KindFuncProto)
	if err != nil {
		return nil, err
	}
	ps := make([]Param, t.Vlen)
	for i := range ps {
		r := b[8*i:]
		ps[i] = Param{Name: o.name(o.order.Uint32(r)), Type: TypeID(o.order.Uint32(r[4:]))}
	}
	return ps, nil
}

// Array returns an ARRAY's description.
func (s *Spec) Array(id TypeID) (Array, error) {
	o, b, _, err := s.extra(id, KindArray)
	if err != nil {
		return Array{}, err
	}
	return Array{Type: TypeID(o.order.Uint32(b)), Index: TypeID(o.order.Uint32(b[4:])), Nelems: o.order.Uint32(b[8:])}, nil
}

// Int returns an INT's encoding, bit offset and bit count.
func (s *Spec) Int(id TypeID) (Int, error) {
	o, b, _, err := s.extra(id, KindInt)
	if err != nil {
		return Int{}, err
	}
	v := o.order.Uint32(b)
	return Int{Encoding: uint8(v >> 24 & 0xf), Offset: uint8(v >> 16), Bits: uint8(v)}, nil
}

// Var returns a VAR's linkage.
func (s *Spec) Var(id TypeID) (Var, error) {
	o, b, _, err := s.extra(id, KindVar)
	if err != nil {
		return Var{}, err
	}
	return Var{Linkage: o.order.Uint32(b)}, nil
}

// SecInfos returns a DATASEC's variables.
func (s *Spec) SecInfos(id TypeID) ([]SecInfo, error) {
	o, b, t, err := s.extra(id, KindDatasec)
	if err != nil {
		return nil, err
	}
	vs := make([]SecInfo, t.Vlen)
	for i := range vs {
		r := b[12*i:]
		vs[i] = SecInfo{Type: TypeID(o.order.Uint32(r)), Offset: o.order.Uint32(r[4:]), Size: o.order.Uint32(r[8:])}
	}
	return vs, nil
}

// DeclTag returns a DECL_TAG's component index (-1: the declaration itself).
func (s *Spec) DeclTag(id TypeID) (int32, error) {
	o, b, _, err := s.extra(id, KindDeclTag)
	if err != nil {
		return 0, err
	}
	return int32(o.order.Uint32(b)), nil
}

// Resolve skips typedefs, const/volatile/restrict and type tags.
func (s *Spec) Resolve(id TypeID) (TypeID, error) {
	for i := 0; i < maxResolveDep; i++ {
		t, err := s.Type(id)
		if err != nil {
			return 0, err
		}
		switch t.Kind {
		case KindTypedef, KindVolatile, KindConst, KindRestrict, KindTypeTag:
			id = t.Ref
		default:
			return id, nil
		}
	}
	return 0, invalidf("type %d: modifier chain deeper than %d", id, maxResolveDep)
}

// Size returns the size in bytes of type id.
func (s *Spec) Size(id TypeID) (uint32, error) {
	var nelems uint64 = 1
	for i := 0; i < maxResolveDep; i++ {
		t, err := s.Type(id)
		if err != nil {
			return 0, err
		}
		switch t.Kind {
		case KindInt, KindStruct, KindUnion, KindEnum, KindEnum64, KindDatasec, KindFloat:
			n := nelems * uint64(t.Size)
			if n > 1<<32-1 {
				return 0, invalidf("type %d: size overflows", id)
			}
			return uint32(n), nil
		case KindPtr:
			n := nelems * 8
			if n > 1<<32-1 {
				return 0, invalidf("type %d: size overflows", id)
			}
			return uint32(n), nil
		case KindTypedef, KindVolatile, KindConst, KindRestrict, KindTypeTag, KindVar:
			id = t.Ref
		case KindArray:
			a, err := s.Array(id)
			if err != nil {
				return 0, err
			}
			nelems *= uint64(a.Nelems)
			if nelems > 1<<32 {
				return 0, invalidf("type %d: size overflows", id)
			}
			id = a.Type
		default:
			return 0, fmt.Errorf("btf: type %d %q (%s) has no size", id, t.Name, t.Kind)
		}
	}
	return 0, invalidf("type %d: chain deeper than %d", id, maxResolveDep)
}
