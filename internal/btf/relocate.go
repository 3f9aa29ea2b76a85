package btf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// result is a relocation's computed value for one spec.
type result struct {
	val      uint64
	size     uint32 // field size, for load/store size adjustment
	typeID   TypeID // field type, for the same
	validate bool   // the instruction must hold the local value
	poison   bool
}

// calcField computes a field relocation's value on sp (nil: no match).
func calcField(k COREKind, sp *coreSpec) (result, error) {
	if k == FieldExists {
		if sp == nil {
			return result{val: 0, validate: true}, nil
		}
		return result{val: 1, validate: true}, nil
	}
	if sp == nil {
		return result{}, errPoison
	}
	s := sp.s
	last := sp.acc[len(sp.acc)-1]
	if last.name == "" { // array element (or root) access: typeID is the element's
		elemID := last.typeID
		sz, err := s.Size(elemID)
		if err != nil {
			return result{}, err
		}
		switch k {
		case FieldByteOffset:
			return result{val: sp.bitOffset / 8, size: sz, typeID: elemID, validate: true}, nil
		case FieldByteSize:
			return result{val: uint64(sz), validate: true}, nil
		}
		return result{}, fmt.Errorf("%s relocation cannot be applied to an array access", k)
	}
	m, err := s.member(last.typeID, last.idx)
	if err != nil {
		return result{}, err
	}
	fieldID, err := s.Resolve(m.Type)
	if err != nil {
		return result{}, err
	}
	mt, err := s.Type(fieldID)
	if err != nil {
		return result{}, err
	}
	bitOff := sp.bitOffset
	bitSz := uint64(m.BitfieldSize)
	bitfield := bitSz > 0
	var byteSz, byteOff uint64
	if bitfield {
		byteSz = uint64(mt.Size)
		if byteSz == 0 {
			return result{}, fmt.Errorf("bitfield of zero-sized type")
		}
		byteOff = bitOff / 8 / byteSz * byteSz
		for bitOff+bitSz-byteOff*8 > byteSz*8 {
			if byteSz >= 8 {
				return result{}, fmt.Errorf("bitfield cannot be read with a 64-bit load")
			}
			byteSz *= 2
			byteOff = bitOff / 8 / byteSz * byteSz
		}
	} else {
		sz, err := s.Size(fieldID)
		if err != nil {
			return result{}, err
		}
		byteSz = uint64(sz)
		byteOff = bitOff / 8
		bitSz = byteSz * 8
	}
	r := result{validate: !bitfield}
	switch k {
	case FieldByteOffset:
		r.val = byteOff
		if !bitfield {
			r.size, r.typeID = uint32(byteSz), fieldID
		}
	case FieldByteSize:
		r.val = byteSz
	case FieldSigned:
		r.val = 0
		if ((mt.Kind == KindEnum || mt.Kind == KindEnum64) && mt.KindFlag) || (mt.Kind == KindInt && isSignedInt(s, fieldID)) {
			r.val = 1
		}
		r.validate = true
	case FieldLShiftU64:
		if s.order == binary.LittleEndian {
			r.val = 64 - (bitOff + bitSz - byteOff*8)
		} else {
			r.val = (8-byteSz)*8 + (bitOff - byteOff*8)
		}
	case FieldRShiftU64:
		r.val = 64 - bitSz
		r.validate = true
	default:
		return result{}, fmt.Errorf("%w: %s", ErrNotSupported, k)
	}
	return r, nil
}

func isSignedInt(s *Spec, id TypeID) bool {
	i, err := s.Int(id)
	return err == nil && i.Encoding&IntSigned != 0
}

// calc computes a relocation's value on sp (nil: no candidate matched).
func calc(k COREKind, sp *coreSpec) (result, error) {
	switch {
	case k.fieldBased():
		return calcField(k, sp)
	case k.typeBased():
		if sp == nil {
			return result{val: 0, validate: true}, nil
		}
		switch k {
		case TypeIDTarget:
			return result{val: uint64(sp.rootID)}, nil
		case TypeExists, TypeMatches:
			return result{val: 1, validate: true}, nil
		case TypeSize:
			sz, err := sp.s.Size(sp.rootID)
			return result{val: uint64(sz), validate: true}, err
		}
	case k.enumBased():
		if k == EnumvalExists {
			if sp == nil {
				return result{val: 0, validate: true}, nil
			}
			return result{val: 1, validate: true}, nil
		}
		if sp == nil {
			return result{}, errPoison
		}
		v, err := sp.s.enumValue(sp.acc[0].typeID, sp.acc[0].idx)
		return result{val: v, validate: true}, err
	}
	return result{}, fmt.Errorf("%w: CO-RE relocation kind %d", ErrNotSupported, uint32(k))
}

// relocation is the decision for one record.
type relocation struct {
	local, target result
	memszFail     bool
	// localEnum32: the object's enum is a 32-bit ENUM (clang < 15 writes
	// 64-bit enums that way), so only the immediate's low 32 bits can be
	// checked against it.
	localEnum32 bool
}

// compute resolves one record against the targets.
func compute(local *Spec, r CORERelo, targets []*Spec) (relocation, *coreSpec, error) {
	ls, err := localSpec(local, r)
	if err != nil {
		return relocation{}, nil, err
	}
	if r.Kind == TypeIDLocal {
		v := uint64(r.TypeID)
		return relocation{local: result{val: v}, target: result{val: v}}, ls, nil
	}
	var rel relocation
	if rel.local, err = calc(r.Kind, ls); err != nil {
		return relocation{}, ls, err
	}
	if r.Kind == EnumvalValue {
		rel.localEnum32 = local.kindOf(ls.acc[0].typeID) == KindEnum
	}
	root, err := local.Type(r.TypeID)
	if err != nil {
		return relocation{}, ls, err
	}
	if root.Name == "" {
		return relocation{}, ls, fmt.Errorf("%w: relocation against an anonymous %s", ErrNotSupported, root.Kind)
	}
	ess := essential(root.Name)
	var best *coreSpec
	found := false
	for _, t := range targets {
		if t == nil {
			continue
		}
		for _, id := range t.candidates(ess) {
			if !kindsCompat(t.kindOf(id), root.Kind) {
				continue
			}
			ts, err := matchSpec(ls, r.Kind, t, id)
			if err != nil {
				return relocation{}, ls, err
			}
			if ts == nil {
				continue
			}
			res, err := calc(r.Kind, ts)
			if errors.Is(err, errPoison) {
				res, err = result{poison: true}, nil
			}
			if err != nil {
				return relocation{}, ls, err
			}
			memszFail := false
			if r.Kind.fieldBased() && rel.local.size != res.size {
				memszFail = !sizeAdjustable(local, rel.local.typeID, t, res.typeID)
			}
			if !found {
				found, best, rel.target, rel.memszFail = true, ts, res, memszFail
				continue
			}
			if ts.bitOffset != best.bitOffset {
				return relocation{}, ls, fmt.Errorf("%w: field offset %d in %s [%d] but %d in [%d]",
					ErrAmbiguous, ts.bitOffset/8, root.Name, id, best.bitOffset/8, best.rootID)
			}
			if res.poison != rel.target.poison || (!res.poison && res.val != rel.target.val) {
				return relocation{}, ls, fmt.Errorf("%w: %s is %d for [%d] but %d for [%d]",
					ErrAmbiguous, r.Kind, res.val, id, rel.target.val, best.rootID)
			}
		}
		if found {
			break // vmlinux candidates win; modules are searched only without them
		}
	}
	if !found {
		res, err := calc(r.Kind, nil)
		if errors.Is(err, errPoison) {
			res, err = result{poison: true}, nil
		}
		if err != nil {
			return relocation{}, ls, err
		}
		rel.target = res
	}
	return rel, ls, nil
}

// sizeAdjustable: a load may change size for pointers and unsigned ints.
func sizeAdjustable(ls *Spec, lid TypeID, t *Spec, tid TypeID) bool {
	lt, err1 := ls.Type(lid)
	tt, err2 := t.Type(tid)
	if err1 != nil || err2 != nil {
		return false
	}
	if lt.Kind == KindPtr && tt.Kind == KindPtr {
		return true
	}
	return lt.Kind == KindInt && tt.Kind == KindInt && !isSignedInt(ls, lid) && !isSignedInt(t, tid)
}

// Relocate applies the CO-RE relocations of ELF section `section` to insns,
// the section's raw instruction bytes (in local's byte order), in place.
// targets[0] is the kernel's BTF (LoadKernel or LoadFile); further entries
// are kernel module BTFs, searched only for types vmlinux lacks.
//
// A relocation whose field, type or enumerator no target has resolves as
// libbpf does: existence checks yield 0, type relocations 0; other uses are
// poisoned (a call to helper PoisonHelper+Fixup.Index) if the section also
// checks that thing's existence (bpf_core_field_exists and friends on the
// same type and access, or bpf_core_type_exists on its type), since the
// guarded use is then dead code on this kernel; otherwise they are a
// *COREError naming the program, type and field. On error, insns may be
// partly patched: discard them.
func Relocate(insns []byte, section string, local *Spec, ext *Ext, targets []*Spec) ([]Fixup, error) {
	sec := ext.Section(section)
	if len(sec.COREs) == 0 {
		return nil, nil
	}
	if local == nil {
		return nil, errors.New("btf: CO-RE relocation needs the object's BTF")
	}
	if len(targets) == 0 || targets[0] == nil {
		return nil, fmt.Errorf("%w: CO-RE relocation needs the kernel's BTF", ErrNotSupported)
	}
	if len(insns)%8 != 0 {
		return nil, invalidf("section %s: %d bytes is not a whole number of instructions", section, len(insns))
	}
	guards := existenceGuards(local, sec.COREs)
	funcs := funcStarts(local, sec.FuncInfos)
	fixups := make([]Fixup, 0, len(sec.COREs))
	for i, r := range sec.COREs {
		prog := funcs.at(r.Insn, section)
		rootName := describeType(local, r.TypeID)
		fail := func(err error) error {
			return &COREError{Program: prog, Section: section, Insn: r.Insn, Kind: r.Kind,
				Type: rootName, Field: describeAccess(local, r), Err: err}
		}
		if uint64(r.Insn)*8+8 > uint64(len(insns)) {
			return nil, fail(invalidf("instruction %d beyond the section's %d", r.Insn, len(insns)/8))
		}
		rel, _, err := compute(local, r, targets)
		if err != nil {
			return nil, fail(err)
		}
		f := Fixup{Relo: r, Index: i, Program: prog, Local: rel.local.val, Target: rel.target.val,
			Poison: rel.target.poison, Type: rootName, Field: describeAccess(local, r)}
		if f.Poison && !guards.covers(local, r) {
			root, _ := local.Type(r.TypeID)
			return nil, fail(fmt.Errorf("%w: the kernel's BTF has no %s (no %s named %s has it) and the program does not check its existence",
				ErrNotFound, f.Field, root.Kind, essential(root.Name)))
		}
		if err := patch(insns, local.order, r.Insn, i, rel, guards.covers(local, r), &f); err != nil {
			return nil, fail(err)
		}
		fixups = append(fixups, f)
	}
	return fixups, nil
}

// instruction fields
const (
	clsLD    = 0x00
	clsLDX   = 0x01
	clsST    = 0x02
	clsSTX   = 0x03
	clsALU   = 0x04
	clsJMP   = 0x05
	clsALU64 = 0x07
	srcK     = 0x00
	opCall   = 0x80
	modeIMM  = 0x00
	sizeDW   = 0x18
)

var sizeBytes = map[uint8]uint32{0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}
var bytesSize = map[uint32]uint8{4: 0x00, 2: 0x08, 1: 0x10, 8: 0x18}

// patch rewrites instruction n for a computed relocation.
// A load or store whose size cannot follow the field's (a signed or
// non-integer field of another size) is poisoned if guarded, else an error.
func patch(insns []byte, o binary.ByteOrder, n uint32, idx int, rel relocation, guarded bool, f *Fixup) error {
	in := insns[n*8 : n*8+8]
	code := in[0]
	poison := func() {
		if code == clsLD|sizeDW|modeIMM && len(insns) >= int(n*8+16) {
			poisonInsn(insns[n*8+8:n*8+16], o, idx)
		}
		poisonInsn(in, o, idx)
		f.Poison = true
	}
	if rel.target.poison {
		poison()
		return nil
	}
	newVal := rel.target.val
	switch code & 0x07 {
	case clsALU, clsALU64:
		if code&0x08 != srcK {
			return fmt.Errorf("instruction %d (%#02x) is not an ALU with an immediate", n, code)
		}
		imm := uint64(uint32(o.Uint32(in[4:])))
		if rel.local.validate && imm != rel.local.val&0xffffffff {
			return fmt.Errorf("instruction %d holds %d, the object's types give %d", n, imm, rel.local.val)
		}
		if fits := newVal <= 0xffffffff || (int64(newVal) < 0 && int64(newVal) >= -1<<31); !fits {
			return fmt.Errorf("instruction %d: value %d does not fit a 32-bit immediate", n, newVal)
		}
		o.PutUint32(in[4:], uint32(newVal))
	case clsLDX, clsST, clsSTX:
		off := uint64(uint16(o.Uint16(in[2:])))
		if rel.local.validate && off != rel.local.val {
			return fmt.Errorf("instruction %d has offset %d, the object's types give %d", n, off, rel.local.val)
		}
		if newVal > 0x7fff {
			return fmt.Errorf("instruction %d: offset %d too big", n, newVal)
		}
		if rel.memszFail {
			if !guarded {
				return fmt.Errorf("%w: instruction %d accesses %d bytes, the kernel's field has %d and is not an unsigned integer or pointer",
					ErrNotSupported, n, rel.local.size, rel.target.size)
			}
			poison()
			return nil
		}
		o.PutUint16(in[2:], uint16(newVal))
		if rel.target.size != rel.local.size {
			if sizeBytes[code&0x18] != rel.local.size {
				return fmt.Errorf("instruction %d accesses %d bytes, the field has %d", n, sizeBytes[code&0x18], rel.local.size)
			}
			sz, ok := bytesSize[rel.target.size]
			if !ok {
				return fmt.Errorf("instruction %d: no load/store of %d bytes", n, rel.target.size)
			}
			in[0] = code&^0x18 | sz
		}
	case clsLD:
		if code != clsLD|sizeDW|modeIMM || len(insns) < int(n*8+16) {
			return fmt.Errorf("instruction %d (%#02x) is not a 64-bit immediate load", n, code)
		}
		next := insns[n*8+8 : n*8+16]
		if in[1]&srcMask(o) != 0 || o.Uint16(in[2:]) != 0 || next[0] != 0 || next[1] != 0 || o.Uint16(next[2:]) != 0 {
			return fmt.Errorf("instruction %d: unexpected 64-bit immediate load form", n)
		}
		imm := uint64(o.Uint32(in[4:])) | uint64(o.Uint32(next[4:]))<<32
		if rel.local.validate && imm != rel.local.val && !(rel.localEnum32 && uint32(imm) == uint32(rel.local.val)) {
			return fmt.Errorf("instruction %d holds %d, the object's types give %d", n, imm, rel.local.val)
		}
		o.PutUint32(in[4:], uint32(newVal))
		o.PutUint32(next[4:], uint32(newVal>>32))
	default:
		return fmt.Errorf("instruction %d (%#02x) cannot be relocated", n, code)
	}
	return nil
}

// srcMask is the src_reg nibble of the registers byte.
func srcMask(o binary.ByteOrder) uint8 {
	if o == binary.BigEndian {
		return 0x0f
	}
	return 0xf0
}

func poisonInsn(in []byte, o binary.ByteOrder, idx int) {
	in[0] = clsJMP | opCall
	in[1] = 0
	o.PutUint16(in[2:], 0)
	o.PutUint32(in[4:], uint32(PoisonHelper+idx))
}

// guardSet records what a section checks the existence of.
type guardSet struct {
	fields map[string]bool // root type name + " " + access
	types  map[string]bool // root type name
}

func existenceGuards(s *Spec, rs []CORERelo) guardSet {
	g := guardSet{fields: map[string]bool{}, types: map[string]bool{}}
	for _, r := range rs {
		name := describeType(s, r.TypeID)
		switch r.Kind {
		case FieldExists, EnumvalExists:
			g.fields[name+" "+r.Access] = true
		case TypeExists, TypeMatches:
			g.types[name] = true
		}
	}
	return g
}

// covers says whether r's subject (or a prefix of its access, or its
// type) is checked for existence in the same section.
func (g guardSet) covers(s *Spec, r CORERelo) bool {
	name := describeType(s, r.TypeID)
	if g.types[name] {
		return true
	}
	a := r.Access
	for {
		if g.fields[name+" "+a] {
			return true
		}
		i := strings.LastIndexByte(a, ':')
		if i < 0 {
			return false
		}
		a = a[:i]
	}
}

// funcTable maps instructions to the functions of a section.
type funcTable struct {
	starts []uint32
	names  []string
}

func funcStarts(s *Spec, fis []FuncInfo) funcTable {
	var ft funcTable
	sorted := append([]FuncInfo(nil), fis...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Insn < sorted[j].Insn })
	for _, fi := range sorted {
		t, err := s.Type(fi.TypeID)
		if err != nil {
			continue
		}
		ft.starts = append(ft.starts, fi.Insn)
		ft.names = append(ft.names, t.Name)
	}
	return ft
}

func (ft funcTable) at(insn uint32, section string) string {
	i := sort.Search(len(ft.starts), func(i int) bool { return ft.starts[i] > insn }) - 1
	if i < 0 {
		return section
	}
	return ft.names[i]
}

// describeType is "struct task_struct" for type id.
func describeType(s *Spec, id TypeID) string {
	t, err := s.Type(id)
	if err != nil {
		return fmt.Sprintf("[%d]", id)
	}
	if t.Name == "" {
		return fmt.Sprintf("anonymous %s [%d]", t.Kind, id)
	}
	switch t.Kind {
	case KindStruct, KindUnion, KindEnum, KindEnum64:
		return t.Kind.String() + " " + t.Name
	}
	return t.Name
}

// describeAccess resolves an access string to names, e.g.
// "task_struct.real_parent.tgid", "pt_regs[0].ax", "enum_name::VALUE".
func describeAccess(s *Spec, r CORERelo) string {
	root, err := s.Type(r.TypeID)
	if err != nil {
		return r.Access
	}
	out := root.Name
	if out == "" {
		out = "(anon)"
	}
	raw, err := parseAccess(r.Access)
	if err != nil {
		return out + "+" + r.Access
	}
	switch {
	case r.Kind.typeBased():
		return out
	case r.Kind.enumBased():
		id, err := s.Resolve(r.TypeID)
		if err != nil {
			return out + "+" + r.Access
		}
		es, err := s.Enums(id)
		if err != nil || raw[0] >= len(es) {
			return out + "+" + r.Access
		}
		return out + "::" + es[raw[0]].Name
	}
	if raw[0] != 0 {
		out += "[" + strconv.Itoa(raw[0]) + "]"
	}
	id := r.TypeID
	for _, idx := range raw[1:] {
		id, err = s.Resolve(id)
		if err != nil {
			return out + "+" + r.Access
		}
		t, _ := s.Type(id)
		switch t.Kind {
		case KindStruct, KindUnion:
			m, err := s.member(id, idx)
			if err != nil {
				return out + "+" + r.Access
			}
			if m.Name != "" {
				out += "." + m.Name
			}
			id = m.Type
		case KindArray:
			a, _ := s.Array(id)
			out += "[" + strconv.Itoa(idx) + "]"
			id = a.Type
		default:
			return out + "+" + r.Access
		}
	}
	return out
}

// PoisonError explains a verifier rejection caused by a poisoned
// instruction: if log (a verifier log) reports a call to helper
// PoisonHelper+N ("invalid func unknown#..."), it returns a *COREError for
// the fixup of index N, else nil. Use it when loading a program whose
// Relocate fixups include a poisoned one.
func PoisonError(log string, fixups []Fixup) error {
	for rest := log; ; {
		i := strings.Index(rest, "unknown#")
		if i < 0 {
			return nil
		}
		rest = rest[i+len("unknown#"):]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		n, err := strconv.ParseUint(rest[:j], 10, 32)
		if err != nil || n < PoisonHelper {
			continue
		}
		for _, f := range fixups {
			if f.Poison && uint64(PoisonHelper+f.Index) == n {
				return &COREError{Program: f.Program, Insn: f.Relo.Insn, Kind: f.Relo.Kind, Field: f.Field, Type: f.Type,
					Err: fmt.Errorf("%w: the kernel has no such field or type (or its size differs), and this use is reachable", ErrNotFound)}
			}
		}
	}
}
