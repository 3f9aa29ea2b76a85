package btf

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// COREKind is a CO-RE relocation kind (enum bpf_core_relo_kind).
type COREKind uint32

// CO-RE relocation kinds, numbered as clang emits them.
const (
	FieldByteOffset COREKind = iota
	FieldByteSize
	FieldExists
	FieldSigned
	FieldLShiftU64
	FieldRShiftU64
	TypeIDLocal
	TypeIDTarget
	TypeExists
	TypeSize
	EnumvalExists
	EnumvalValue
	TypeMatches
)

var coreKindNames = [...]string{"byte_off", "byte_sz", "field_exists", "signed", "lshift_u64",
	"rshift_u64", "local_type_id", "target_type_id", "type_exists", "type_size",
	"enumval_exists", "enumval_value", "type_matches"}

func (k COREKind) String() string {
	if int(k) < len(coreKindNames) {
		return coreKindNames[k]
	}
	return fmt.Sprintf("core_kind(%d)", uint32(k))
}

func (k COREKind) fieldBased() bool { return k <= FieldRShiftU64 }
func (k COREKind) typeBased() bool {
	return k == TypeIDLocal || k == TypeIDTarget || k == TypeExists || k == TypeSize || k == TypeMatches
}
func (k COREKind) enumBased() bool { return k == EnumvalExists || k == EnumvalValue }

// PoisonHelper is the helper id a poisoned instruction calls, plus the
// relocation's index in its section (Fixup.Index). The verifier rejects
// it ("invalid func unknown#...") only if the instruction is reachable.
const PoisonHelper = 0xbad2310

// maxSpecLen bounds an access string, like libbpf's BPF_CORE_SPEC_MAX_LEN.
const maxSpecLen = 64

// Fixup is one relocation as applied.
type Fixup struct {
	Relo    CORERelo
	Index   int    // the relocation's index in the section's records
	Program string // the function holding the instruction (from func_info)
	Local   uint64 // value for the object's own types
	Target  uint64 // value patched in
	Poison  bool   // instruction replaced by a call to PoisonHelper+Index
	Type    string // the local root type, e.g. "struct task_struct"
	Field   string // the access resolved to names, e.g. "task_struct.real_parent"
}

// COREError is a CO-RE relocation that cannot be applied.
type COREError struct {
	Program string
	Section string
	Insn    uint32
	Kind    COREKind
	Type    string // local root type, e.g. "struct task_struct"
	Field   string // access resolved to names, e.g. "task_struct.no_such_field"
	Err     error
}

func (e *COREError) Error() string {
	return fmt.Sprintf("btf: CO-RE relocation in program %q (section %s, insn %d): %s of %s (%s): %v",
		e.Program, e.Section, e.Insn, e.Kind, e.Field, e.Type, e.Err)
}

func (e *COREError) Unwrap() error { return e.Err }

// errPoison asks for the instruction to be poisoned.
var errPoison = errors.New("poison")

// acc is one step of a spec: a named member or an array index.
type acc struct {
	typeID TypeID // the composite or array type stepped through
	idx    int
	name   string // member name; "" for an array index
}

// coreSpec is an access path resolved in one BTF.
type coreSpec struct {
	s         *Spec
	rootID    TypeID
	acc       []acc
	raw       []int
	bitOffset uint64
}

// parseAccess parses "0:1:2".
func parseAccess(a string) ([]int, error) {
	if a == "" {
		return nil, invalidf("empty CO-RE access string")
	}
	parts := strings.Split(a, ":")
	if len(parts) > maxSpecLen {
		return nil, invalidf("CO-RE access string %q longer than %d", a, maxSpecLen)
	}
	out := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 31)
		if err != nil {
			return nil, invalidf("CO-RE access string %q", a)
		}
		out[i] = int(n)
	}
	return out, nil
}

// localSpec resolves a relocation's access string in the local BTF.
func localSpec(s *Spec, r CORERelo) (*coreSpec, error) {
	raw, err := parseAccess(r.Access)
	if err != nil {
		return nil, err
	}
	sp := &coreSpec{s: s, rootID: r.TypeID, raw: raw}
	if r.Kind.typeBased() {
		if len(raw) != 1 || raw[0] != 0 {
			return nil, invalidf("type relocation with access %q", r.Access)
		}
		return sp, nil
	}
	id, err := s.Resolve(r.TypeID)
	if err != nil {
		return nil, err
	}
	if r.Kind.enumBased() {
		t, err := s.Type(id)
		if err != nil {
			return nil, err
		}
		if (t.Kind != KindEnum && t.Kind != KindEnum64) || len(raw) != 1 || raw[0] >= t.Vlen {
			return nil, invalidf("enum relocation on %s %q with access %q", t.Kind, t.Name, r.Access)
		}
		es, err := s.Enums(id)
		if err != nil {
			return nil, err
		}
		sp.acc = []acc{{typeID: id, idx: raw[0], name: es[raw[0]].Name}}
		return sp, nil
	}
	if !r.Kind.fieldBased() {
		return nil, fmt.Errorf("%w: CO-RE relocation kind %d", ErrNotSupported, uint32(r.Kind))
	}
	sz, err := s.Size(id)
	if err != nil {
		return nil, err
	}
	sp.acc = append(sp.acc, acc{typeID: id, idx: raw[0]})
	sp.bitOffset = uint64(raw[0]) * uint64(sz) * 8
	for _, idx := range raw[1:] {
		id, err = s.Resolve(id)
		if err != nil {
			return nil, err
		}
		t, err := s.Type(id)
		if err != nil {
			return nil, err
		}
		switch t.Kind {
		case KindStruct, KindUnion:
			m, err := s.member(id, idx)
			if err != nil {
				return nil, err
			}
			sp.bitOffset += uint64(m.BitOffset)
			if m.Name != "" {
				sp.acc = append(sp.acc, acc{typeID: id, idx: idx, name: m.Name})
			}
			id = m.Type
		case KindArray:
			a, err := s.Array(id)
			if err != nil {
				return nil, err
			}
			elem, err := s.Resolve(a.Type)
			if err != nil {
				return nil, err
			}
			flex := isFlex(s, sp.acc, a)
			if !flex && idx >= int(a.Nelems) {
				return nil, invalidf("array index %d out of %d", idx, a.Nelems)
			}
			sp.acc = append(sp.acc, acc{typeID: elem, idx: idx})
			esz, err := s.Size(elem)
			if err != nil {
				return nil, err
			}
			sp.bitOffset += uint64(idx) * uint64(esz) * 8
			id = elem
		default:
			return nil, invalidf("access %q steps into %s %q", r.Access, t.Kind, t.Name)
		}
	}
	return sp, nil
}

// isFlex says whether an array is a flexible array member: zero length and
// the last member of its struct.
func isFlex(s *Spec, path []acc, a Array) bool {
	if a.Nelems != 0 || len(path) == 0 {
		return false
	}
	last := path[len(path)-1]
	if last.name == "" {
		return false
	}
	t, err := s.Type(last.typeID)
	return err == nil && t.Kind == KindStruct && last.idx == t.Vlen-1
}

// kindsCompat: same kind, or both enums.
func kindsCompat(a, b Kind) bool {
	if a == b {
		return true
	}
	return (a == KindEnum || a == KindEnum64) && (b == KindEnum || b == KindEnum64)
}

// namesMatch compares essential names; an empty target name matches only
// an empty local one.
func namesMatch(local, targ string) bool {
	if targ == "" {
		return local == ""
	}
	return essential(local) == essential(targ)
}

// matchSpec matches a local spec against target candidate id. It returns
// nil, nil when the candidate does not match.
func matchSpec(local *coreSpec, kind COREKind, t *Spec, candID TypeID) (*coreSpec, error) {
	ts := &coreSpec{s: t, rootID: candID}
	switch {
	case kind.typeBased():
		var ok bool
		var err error
		if kind == TypeMatches {
			ok, err = typesMatch(local.s, local.rootID, t, candID, false, maxResolveDep)
		} else {
			ok, err = typesCompat(local.s, local.rootID, t, candID, maxResolveDep)
		}
		if err != nil || !ok {
			return nil, err
		}
		return ts, nil
	case kind.enumBased():
		id, err := t.Resolve(candID)
		if err != nil {
			return nil, err
		}
		tt, err := t.Type(id)
		if err != nil {
			return nil, err
		}
		if tt.Kind != KindEnum && tt.Kind != KindEnum64 {
			return nil, nil
		}
		o, b, _, err := t.extra(id, KindEnum, KindEnum64)
		if err != nil {
			return nil, err
		}
		want := essential(local.acc[0].name)
		step := 8
		if tt.Kind == KindEnum64 {
			step = 12
		}
		for i := 0; i < tt.Vlen; i++ {
			name := o.name(o.order.Uint32(b[step*i:]))
			if name != "" && essential(name) == want {
				ts.acc = []acc{{typeID: id, idx: i, name: name}}
				ts.raw = []int{i}
				return ts, nil
			}
		}
		return nil, nil
	}
	// Field relocations.
	id, err := t.Resolve(candID)
	if err != nil {
		return nil, err
	}
	first := local.acc[0]
	sz, err := t.Size(id)
	if err != nil {
		return nil, nil // a target type without size (e.g. FWD) does not match
	}
	ts.acc = append(ts.acc, acc{typeID: id, idx: first.idx})
	ts.raw = append(ts.raw, first.idx)
	ts.bitOffset = uint64(first.idx) * uint64(sz) * 8
	for i := 1; i < len(local.acc); i++ {
		la := local.acc[i]
		id, err = t.Resolve(id)
		if err != nil {
			return nil, err
		}
		if la.name != "" {
			next, found, err := matchMember(local.s, la, t, id, ts, maxResolveDep)
			if err != nil || !found {
				return nil, err
			}
			id = next
			continue
		}
		tt, err := t.Type(id)
		if err != nil {
			return nil, err
		}
		if tt.Kind != KindArray {
			return nil, nil
		}
		a, err := t.Array(id)
		if err != nil {
			return nil, err
		}
		if !isFlex(t, ts.acc, a) && la.idx >= int(a.Nelems) {
			return nil, nil
		}
		elem, err := t.Resolve(a.Type)
		if err != nil {
			return nil, err
		}
		if len(ts.raw) >= maxSpecLen {
			return nil, invalidf("access deeper than %d", maxSpecLen)
		}
		ts.acc = append(ts.acc, acc{typeID: elem, idx: la.idx})
		ts.raw = append(ts.raw, la.idx)
		esz, err := t.Size(elem)
		if err != nil {
			return nil, err
		}
		ts.bitOffset += uint64(la.idx) * uint64(esz) * 8
		id = elem
	}
	return ts, nil
}

// matchMember finds the local member la names in target composite id,
// descending into anonymous members. It returns the member's type.
func matchMember(ls *Spec, la acc, t *Spec, id TypeID, ts *coreSpec, depth int) (TypeID, bool, error) {
	if depth == 0 {
		return 0, false, invalidf("anonymous members nested deeper than %d", maxResolveDep)
	}
	id, err := t.Resolve(id)
	if err != nil {
		return 0, false, err
	}
	tt, err := t.Type(id)
	if err != nil {
		return 0, false, err
	}
	if tt.Kind != KindStruct && tt.Kind != KindUnion {
		return 0, false, nil
	}
	lm, err := ls.member(la.typeID, la.idx)
	if err != nil {
		return 0, false, err
	}
	// Walk the raw members: no slice, and names compared in place.
	o, b, _, err := t.extra(id, KindStruct, KindUnion)
	if err != nil {
		return 0, false, err
	}
	for i := 0; i < tt.Vlen; i++ {
		if len(ts.raw) >= maxSpecLen {
			return 0, false, invalidf("access deeper than %d", maxSpecLen)
		}
		r := b[12*i:]
		nameOff, mtype, off := o.order.Uint32(r), TypeID(o.order.Uint32(r[4:])), o.order.Uint32(r[8:])
		if tt.KindFlag {
			off &= 0xffffff
		}
		ts.bitOffset += uint64(off)
		ts.raw = append(ts.raw, i)
		if nameOff == 0 || o.nameIs(nameOff, "") {
			next, found, err := matchMember(ls, la, t, mtype, ts, depth-1)
			if err != nil || found {
				return next, found, err
			}
		} else if o.nameIs(nameOff, lm.Name) {
			ok, err := fieldsCompat(ls, lm.Type, t, mtype, maxResolveDep)
			if err != nil || !ok {
				return 0, false, err
			}
			ts.acc = append(ts.acc, acc{typeID: id, idx: i, name: lm.Name})
			return mtype, true, nil
		}
		ts.bitOffset -= uint64(off)
		ts.raw = ts.raw[:len(ts.raw)-1]
	}
	return 0, false, nil
}

// resolvePair skips the modifiers and typedefs of a local and a target
// type and returns both resolved ids and types.
func resolvePair(ls *Spec, lid TypeID, t *Spec, tid TypeID) (TypeID, Type, TypeID, Type, error) {
	lid, err := ls.Resolve(lid)
	if err != nil {
		return 0, Type{}, 0, Type{}, err
	}
	if tid, err = t.Resolve(tid); err != nil {
		return 0, Type{}, 0, Type{}, err
	}
	lt, err := ls.Type(lid)
	if err != nil {
		return 0, Type{}, 0, Type{}, err
	}
	tt, err := t.Type(tid)
	if err != nil {
		return 0, Type{}, 0, Type{}, err
	}
	return lid, lt, tid, tt, nil
}

// fieldsCompat is libbpf's field compatibility: composites match any
// composite, scalars by kind, enums and fwds by essential name.
func fieldsCompat(ls *Spec, lid TypeID, t *Spec, tid TypeID, depth int) (bool, error) {
	for ; depth > 0; depth-- {
		var err error
		var lt, tt Type
		if lid, lt, tid, tt, err = resolvePair(ls, lid, t, tid); err != nil {
			return false, err
		}
		lc := lt.Kind == KindStruct || lt.Kind == KindUnion
		tc := tt.Kind == KindStruct || tt.Kind == KindUnion
		if lc && tc {
			return true, nil
		}
		if !kindsCompat(lt.Kind, tt.Kind) {
			return false, nil
		}
		switch lt.Kind {
		case KindPtr, KindFloat:
			return true, nil
		case KindFwd, KindEnum, KindEnum64:
			return essential(lt.Name) == essential(tt.Name), nil
		case KindInt:
			li, err := ls.Int(lid)
			if err != nil {
				return false, err
			}
			ti, err := t.Int(tid)
			if err != nil {
				return false, err
			}
			return li.Offset == 0 && ti.Offset == 0, nil
		case KindArray:
			la, err := ls.Array(lid)
			if err != nil {
				return false, err
			}
			ta, err := t.Array(tid)
			if err != nil {
				return false, err
			}
			lid, tid = la.Type, ta.Type
		default:
			return false, nil
		}
	}
	return false, invalidf("type nesting deeper than %d", maxResolveDep)
}

// typesCompat is libbpf's type compatibility (TYPE_EXISTS, TYPE_SIZE,
// TYPE_ID_TARGET).
func typesCompat(ls *Spec, lid TypeID, t *Spec, tid TypeID, depth int) (bool, error) {
	for ; depth > 0; depth-- {
		var err error
		var lt, tt Type
		if lid, lt, tid, tt, err = resolvePair(ls, lid, t, tid); err != nil {
			return false, err
		}
		if !kindsCompat(lt.Kind, tt.Kind) {
			return false, nil
		}
		switch lt.Kind {
		case KindUnknown, KindStruct, KindUnion, KindEnum, KindEnum64, KindFwd:
			return true, nil
		case KindInt:
			li, err := ls.Int(lid)
			if err != nil {
				return false, err
			}
			ti, err := t.Int(tid)
			if err != nil {
				return false, err
			}
			return li.Offset == 0 && ti.Offset == 0, nil
		case KindPtr:
			lid, tid = lt.Ref, tt.Ref
		case KindArray:
			la, err := ls.Array(lid)
			if err != nil {
				return false, err
			}
			ta, err := t.Array(tid)
			if err != nil {
				return false, err
			}
			lid, tid = la.Type, ta.Type
		case KindFuncProto:
			lp, err := ls.Params(lid)
			if err != nil {
				return false, err
			}
			tp, err := t.Params(tid)
			if err != nil {
				return false, err
			}
			if len(lp) != len(tp) {
				return false, nil
			}
			for i := range lp {
				ok, err := typesCompat(ls, lp[i].Type, t, tp[i].Type, depth-1)
				if err != nil || !ok {
					return false, err
				}
			}
			lid, tid = lt.Ref, tt.Ref
		default:
			return false, nil
		}
	}
	return false, invalidf("type nesting deeper than %d", maxResolveDep)
}

// typesMatch is libbpf's stricter TYPE_MATCHES relation.
func typesMatch(ls *Spec, lid TypeID, t *Spec, tid TypeID, behindPtr bool, depth int) (bool, error) {
	for ; depth > 0; depth-- {
		var err error
		// Names are compared after skipping typedefs (root typedefs were
		// matched by name already, when picking candidates).
		var lt, tt Type
		if lid, lt, tid, tt, err = resolvePair(ls, lid, t, tid); err != nil {
			return false, err
		}
		if !namesMatch(lt.Name, tt.Name) {
			return false, nil
		}
		switch lt.Kind {
		case KindUnknown:
			return tt.Kind == KindUnknown, nil
		case KindFwd:
			if tt.Kind == KindFwd {
				return lt.KindFlag == tt.KindFlag, nil
			}
			return (lt.KindFlag && tt.Kind == KindUnion) || (!lt.KindFlag && tt.Kind == KindStruct), nil
		case KindEnum, KindEnum64:
			if tt.Kind != KindEnum && tt.Kind != KindEnum64 {
				return false, nil
			}
			return enumsMatch(ls, lid, lt, t, tid, tt)
		case KindStruct, KindUnion:
			if behindPtr {
				if lt.Kind == tt.Kind {
					return true, nil
				}
				return tt.Kind == KindFwd && (lt.Kind == KindUnion) == tt.KindFlag, nil
			}
			if lt.Kind != tt.Kind {
				return false, nil
			}
			return compositesMatch(ls, lid, t, tid, behindPtr, depth-1)
		case KindInt:
			if tt.Kind != KindInt {
				return false, nil
			}
			li, err := ls.Int(lid)
			if err != nil {
				return false, err
			}
			ti, err := t.Int(tid)
			if err != nil {
				return false, err
			}
			return lt.Size == tt.Size && li.Encoding&IntSigned == ti.Encoding&IntSigned, nil
		case KindPtr:
			if tt.Kind != KindPtr {
				return false, nil
			}
			behindPtr = true
			lid, tid = lt.Ref, tt.Ref
		case KindArray:
			if tt.Kind != KindArray {
				return false, nil
			}
			la, err := ls.Array(lid)
			if err != nil {
				return false, err
			}
			ta, err := t.Array(tid)
			if err != nil {
				return false, err
			}
			if la.Nelems != ta.Nelems {
				return false, nil
			}
			lid, tid = la.Type, ta.Type
		case KindFuncProto:
			if tt.Kind != KindFuncProto {
				return false, nil
			}
			lp, err := ls.Params(lid)
			if err != nil {
				return false, err
			}
			tp, err := t.Params(tid)
			if err != nil {
				return false, err
			}
			if len(lp) != len(tp) {
				return false, nil
			}
			for i := range lp {
				ok, err := typesMatch(ls, lp[i].Type, t, tp[i].Type, behindPtr, depth-1)
				if err != nil || !ok {
					return false, err
				}
			}
			lid, tid = lt.Ref, tt.Ref
		default:
			return false, nil
		}
	}
	return false, invalidf("type nesting deeper than %d", maxResolveDep)
}

func enumsMatch(ls *Spec, lid TypeID, lt Type, t *Spec, tid TypeID, tt Type) (bool, error) {
	if lt.Size != tt.Size {
		return false, nil
	}
	le, err := ls.Enums(lid)
	if err != nil {
		return false, err
	}
	te, err := t.Enums(tid)
	if err != nil {
		return false, err
	}
	for _, l := range le {
		found := false
		for _, x := range te {
			if namesMatch(l.Name, x.Name) {
				found = true
				break
			}
		}
		if !found {
			return false, nil
		}
	}
	return true, nil
}

func compositesMatch(ls *Spec, lid TypeID, t *Spec, tid TypeID, behindPtr bool, depth int) (bool, error) {
	lm, err := ls.Members(lid)
	if err != nil {
		return false, err
	}
	tm, err := t.Members(tid)
	if err != nil {
		return false, err
	}
	if len(lm) > len(tm) {
		return false, nil
	}
	for _, l := range lm {
		found := false
		for _, x := range tm {
			if !namesMatch(l.Name, x.Name) {
				continue
			}
			ok, err := typesMatch(ls, l.Type, t, x.Type, behindPtr, depth)
			if err != nil {
				return false, err
			}
			if ok {
				found = true
				break
			}
		}
		if !found {
			return false, nil
		}
	}
	return true, nil
}
