package btf

import (
	"encoding/binary"
	"testing"
)

// TestSplitAndModules builds a base and a split BTF (as a module's) by
// hand: IDs and strings continue the base's, lookups see both, and CO-RE
// finds a type only the "module" has.
func TestSplitAndModules(t *testing.T) {
	o := binary.LittleEndian
	base := newBuilder(o)
	i := base.int("int", 4)
	base.add(KindStruct, "in_base", 1, 4, base.str("x"), uint32(i), 0)
	bs, err := Parse(base.bytes())
	if err != nil {
		t.Fatal(err)
	}
	// Split: strings start after the base's, IDs after its last type.
	sb := &builder{o: o, n: TypeID(bs.NumTypes() - 1)}
	strBase := uint32(len(base.strs))
	str := func(s string) uint32 {
		off := uint32(len(sb.strs)) + strBase
		sb.strs = append(append(sb.strs, s...), 0)
		return off
	}
	name := str("mod_struct")
	fa, fb := str("a"), str("b")
	sb.add(KindStruct, "", 2, 8, fa, uint32(i), 0, fb, uint32(i), 32)
	// The struct's name goes in by hand: the builder's str is base-relative.
	raw := sb.bytes()
	o.PutUint32(raw[btfHeaderLen:], name)
	ms, err := ParseSplit(raw, bs)
	if err != nil {
		t.Fatal(err)
	}
	if ms.NumTypes() != bs.NumTypes()+1 || ms.FirstID() != TypeID(bs.NumTypes()) {
		t.Fatalf("split ids: first %d, %d types", ms.FirstID(), ms.NumTypes())
	}
	id, err := ms.TypeByName("mod_struct", KindStruct)
	if err != nil || id != 3 {
		t.Fatalf("mod_struct: %d, %v", id, err)
	}
	if id, err := ms.TypeByName("in_base", KindStruct); err != nil || id != 2 {
		t.Fatalf("base type through split: %d, %v", id, err)
	}
	m, err := ms.Members(3)
	if err != nil || m[1].Name != "b" || m[1].BitOffset != 32 || m[1].Type != i {
		t.Fatalf("members %+v, %v", m, err)
	}

	// A local object reading mod_struct.b: vmlinux (base) lacks it, the
	// module has it.
	lb := newBuilder(o)
	li := lb.int("int", 4)
	ls := lb.add(KindStruct, "mod_struct___local", 1, 4, lb.str("b"), uint32(li), 0)
	lspec, err := Parse(lb.bytes())
	if err != nil {
		t.Fatal(err)
	}
	ext := &Ext{Sections: map[string]*ExtSection{"s": {COREs: []CORERelo{{Insn: 0, TypeID: ls, Access: "0:0", Kind: FieldByteOffset}}}}}
	insns := []byte{0x61, 0x10, 0, 0, 0, 0, 0, 0} // r0 = *(u32 *)(r1 + 0)
	fs, err := Relocate(insns, "s", lspec, ext, []*Spec{bs, ms})
	if err != nil {
		t.Fatal(err)
	}
	if fs[0].Target != 4 || o.Uint16(insns[2:]) != 4 {
		t.Fatalf("offset of mod_struct.b: %+v, insn % x", fs[0], insns)
	}
	// Without the module, the unguarded read is an error.
	if _, err := Relocate(insns, "s", lspec, ext, []*Spec{bs}); err == nil {
		t.Fatal("relocated against a type no target has")
	}
}
