package btf

import (
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"
)

// fixup returns the single fixup of kind k on field f.
func fixup(t testing.TB, fs []Fixup, k COREKind, f string) Fixup {
	t.Helper()
	var got []Fixup
	for _, x := range fs {
		if x.Relo.Kind == k && x.Field == f {
			got = append(got, x)
		}
	}
	if len(got) == 0 {
		t.Fatalf("no %s relocation of %s in %+v", k, f, fs)
	}
	for _, g := range got[1:] {
		if g.Target != got[0].Target || g.Poison != got[0].Poison {
			t.Fatalf("%s of %s relocated two ways: %+v", k, f, got)
		}
	}
	return got[0]
}

func relocate(t testing.TB, o *testObj, sec string, targets ...*Spec) ([]byte, []Fixup) {
	t.Helper()
	if len(targets) == 0 {
		k, err := LoadKernel()
		if err != nil {
			t.Fatal(err)
		}
		targets = []*Spec{k}
	}
	insns := o.insns(t, sec)
	fs, err := Relocate(insns, sec, o.spec, o.ext, targets)
	if err != nil {
		t.Fatalf("%s: %v", sec, err)
	}
	return insns, fs
}

func TestCOREFields(t *testing.T) {
	o := buildObj(t, "core.c")
	k, _ := LoadKernel()
	_, tgidOff := memberOf(t, k, "task_struct", "tgid")
	_, parentOff := memberOf(t, k, "task_struct", "real_parent")
	_, commOff := memberOf(t, k, "task_struct", "comm")

	_, fs := relocate(t, o, "raw_tp/tgid")
	if f := fixup(t, fs, FieldByteOffset, "task_struct.tgid"); f.Target != uint64(tgidOff/8) || f.Program != "tgid" {
		t.Errorf("tgid: %+v, want offset %d", f, tgidOff/8)
	}
	_, fs = relocate(t, o, "raw_tp/ptgid")
	if f := fixup(t, fs, FieldByteOffset, "task_struct.real_parent"); f.Target != uint64(parentOff/8) {
		t.Errorf("real_parent: %+v, want %d", f, parentOff/8)
	}
	_, fs = relocate(t, o, "raw_tp/flavor")
	f := fixup(t, fs, FieldByteOffset, "task_struct___v1.real_parent")
	if f.Target != uint64(parentOff/8) || f.Local != 8 {
		t.Errorf("flavor real_parent: %+v, want local 8 target %d", f, parentOff/8)
	}
	if f := fixup(t, fs, FieldByteOffset, "task_struct___v1.tgid"); f.Target != uint64(tgidOff/8) || f.Local != 0 {
		t.Errorf("flavor tgid: %+v, want local 0 target %d", f, tgidOff/8)
	}
	_, fs = relocate(t, o, "raw_tp/array")
	if f := fixup(t, fs, FieldByteOffset, "task_struct.comm[2]"); f.Target != uint64(commOff/8+2) {
		t.Errorf("comm[2]: %+v, want %d", f, commOff/8+2)
	}
	_, fs = relocate(t, o, "raw_tp/comm")
	if f := fixup(t, fs, FieldByteOffset, "task_struct.comm"); f.Target != uint64(commOff/8) {
		t.Errorf("comm: %+v, want %d", f, commOff/8)
	}
}

func TestCOREBitfield(t *testing.T) {
	o := buildObj(t, "core.c")
	k, _ := LoadKernel()
	m, bitOff := memberOf(t, k, "task_struct", "sched_reset_on_fork")
	if m.BitfieldSize == 0 {
		t.Fatalf("task_struct.sched_reset_on_fork is not a bitfield in this kernel: %+v", m)
	}
	// Expected values, derived here from the member's bit position: the
	// smallest naturally aligned load of the field's type size or more.
	byteSz := uint64(4)
	byteOff := uint64(bitOff) / 8 / byteSz * byteSz
	for uint64(bitOff)+uint64(m.BitfieldSize)-byteOff*8 > byteSz*8 {
		byteSz *= 2
		byteOff = uint64(bitOff) / 8 / byteSz * byteSz
	}
	_, fs := relocate(t, o, "raw_tp/bitfield")
	const name = "task_struct.sched_reset_on_fork"
	checks := []struct {
		k    COREKind
		want uint64
	}{
		{FieldByteOffset, byteOff},
		{FieldByteSize, byteSz},
		{FieldLShiftU64, 64 - (uint64(bitOff) + uint64(m.BitfieldSize) - byteOff*8)},
		{FieldRShiftU64, 64 - uint64(m.BitfieldSize)},
	}
	for _, c := range checks {
		if f := fixup(t, fs, c.k, name); f.Target != c.want {
			t.Errorf("%s of %s: %d, want %d (bit %d size %d)", c.k, name, f.Target, c.want, bitOff, m.BitfieldSize)
		}
	}
}

func TestCOREExistence(t *testing.T) {
	o := buildObj(t, "core.c")
	insns, fs := relocate(t, o, "raw_tp/guarded")
	if f := fixup(t, fs, FieldExists, "task_struct___nope.no_such_field"); f.Target != 0 || f.Local != 1 || f.Poison {
		t.Errorf("exists: %+v", f)
	}
	f := fixup(t, fs, FieldByteOffset, "task_struct___nope.no_such_field")
	if !f.Poison {
		t.Fatalf("guarded use not poisoned: %+v", f)
	}
	in := insns[f.Relo.Insn*8:]
	if in[0] != 0x85 || binary.LittleEndian.Uint32(in[4:]) != uint32(PoisonHelper+f.Index) {
		t.Fatalf("poisoned instruction is % x", in[:8])
	}

	// Unguarded: an error naming program, type and field.
	k, _ := LoadKernel()
	_, err := Relocate(o.insns(t, "raw_tp/unguarded"), "raw_tp/unguarded", o.spec, o.ext, []*Spec{k})
	var ce *COREError
	if !errors.As(err, &ce) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("unguarded relocation: %v", err)
	}
	for _, want := range []string{`"unguarded"`, "struct task_struct___nope", "task_struct___nope.no_such_field"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestCOREEnumsTypes(t *testing.T) {
	o := buildObj(t, "core.c")
	k, _ := LoadKernel()
	fid := mustType(t, k, "bpf_func_id", KindEnum)
	es, _ := k.Enums(fid)
	var want uint64
	for _, e := range es {
		if e.Name == "BPF_FUNC_probe_read_kernel" {
			want = e.Value
		}
	}
	if want == 0 {
		t.Fatal("kernel lacks BPF_FUNC_probe_read_kernel")
	}
	_, fs := relocate(t, o, "raw_tp/enums")
	if f := fixup(t, fs, EnumvalValue, "bpf_func_id::BPF_FUNC_probe_read_kernel"); f.Target != want {
		t.Errorf("enum value: %+v want %d", f, want)
	}
	if f := fixup(t, fs, EnumvalValue, "bpf_func_id___local::BPF_FUNC_probe_read_kernel___local"); f.Target != want || f.Local != 1 {
		t.Errorf("flavored enum value: %+v want %d", f, want)
	}
	if f := fixup(t, fs, EnumvalExists, "bpf_func_id___local::BPF_FUNC_no_such_helper___local"); f.Target != 0 {
		t.Errorf("missing enumerator exists: %+v", f)
	}

	ts := mustType(t, k, "task_struct", KindStruct)
	size, _ := k.Size(ts)
	_, fs = relocate(t, o, "raw_tp/types")
	if f := fixup(t, fs, TypeExists, "task_struct"); f.Target != 1 {
		t.Errorf("type exists: %+v", f)
	}
	if f := fixup(t, fs, TypeExists, "no_such_type_in_any_kernel"); f.Target != 0 {
		t.Errorf("missing type exists: %+v", f)
	}
	if f := fixup(t, fs, TypeSize, "task_struct"); f.Target != uint64(size) {
		t.Errorf("type size: %+v want %d", f, size)
	}
	_, fs = relocate(t, o, "raw_tp/typeids")
	if f := fixup(t, fs, TypeIDTarget, "task_struct"); f.Target != uint64(ts) {
		t.Errorf("target type id: %+v want %d", f, ts)
	}
	lid := mustType(t, o.spec, "task_struct___v1", KindStruct)
	if f := fixup(t, fs, TypeIDLocal, "task_struct___v1"); f.Target != uint64(lid) {
		t.Errorf("local type id: %+v want %d", f, lid)
	}
}

// TestCOREMatches builds TYPE_MATCHES records by hand (clang 14 cannot
// emit them) against a "r0 = 1" instruction.
func TestCOREMatches(t *testing.T) {
	o := buildObj(t, "core.c")
	k, _ := LoadKernel()
	for _, c := range []struct {
		name string
		want uint64
	}{{"task_struct___v1", 1}, {"task_struct___nope", 0}, {"no_such_type_in_any_kernel", 0}} {
		id := mustType(t, o.spec, c.name, KindStruct)
		ext := &Ext{Sections: map[string]*ExtSection{"x": {COREs: []CORERelo{{Insn: 0, TypeID: id, Access: "0", Kind: TypeMatches}}}}}
		insns := []byte{0xb7, 0, 0, 0, 1, 0, 0, 0}
		fs, err := Relocate(insns, "x", o.spec, ext, []*Spec{k})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := binary.LittleEndian.Uint32(insns[4:]); got != uint32(c.want) || fs[0].Target != c.want {
			t.Errorf("type_matches(%s) = %d, want %d", c.name, got, c.want)
		}
	}
}

// TestCORESelf relocates sections against the object's own BTF: each
// value must equal clang's, and the instructions must come out unchanged.
// Where the object holds flavors of a type (task_struct___v1 beside
// task_struct) that disagree, they are candidates too: ErrAmbiguous.
func TestCORESelf(t *testing.T) {
	o := buildObj(t, "core.c")
	checked, ambiguous := 0, 0
	for sec, orig := range o.progs {
		insns := o.insns(t, sec)
		fs, err := Relocate(insns, sec, o.spec, o.ext, []*Spec{o.spec})
		if errors.Is(err, ErrAmbiguous) {
			ambiguous++
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", sec, err)
		}
		for _, f := range fs {
			if f.Poison || f.Local != f.Target {
				t.Errorf("%s: %+v", sec, f)
			}
			checked++
		}
		// clang and libbpf disagree on bitfield load sizes (libbpf does
		// not validate them either); clang 14 writes 64-bit enums as
		// 32-bit ENUMs, so the object's own BTF truncates them.
		if sec != "raw_tp/bitfield" && sec != "raw_tp/enum64" && string(insns) != string(orig) {
			t.Errorf("%s: instructions changed", sec)
		}
	}
	if checked < 10 || ambiguous < 3 {
		t.Fatalf("only %d relocations checked, %d sections ambiguous", checked, ambiguous)
	}
}

// TestCORERun loads relocated programs into the kernel and runs them.
func TestCORERun(t *testing.T) {
	o := buildObj(t, "core.c")
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	for len(comm) < 4 {
		comm = append(comm, 0)
	}
	k, _ := LoadKernel()
	size, _ := k.Size(mustType(t, k, "task_struct", KindStruct))
	cases := []struct {
		sec  string
		want uint32
	}{
		{"raw_tp/tgid", uint32(os.Getpid())},
		{"raw_tp/ptgid", uint32(os.Getppid())},
		{"raw_tp/flavor", uint32(os.Getppid())},
		{"raw_tp/comm", binary.LittleEndian.Uint32(comm)},
		{"raw_tp/array", uint32(int8(comm[2]))},
		{"raw_tp/guarded", 7},
		{"raw_tp/enums", 113 + 113000},
		{"raw_tp/types", 1 + size<<8},
	}
	for _, c := range cases {
		insns, _ := relocate(t, o, c.sec)
		if got := runRawTP(t, strings.TrimPrefix(c.sec, "raw_tp/"), insns); got != c.want {
			t.Errorf("%s returned %d, want %d", c.sec, got, c.want)
		}
	}
}

// TestCOREMemSize checks load size adjustment: the local field is 8 bytes,
// the kernel's 4. An unsigned field is read with a 4-byte load; a signed
// one cannot be, and its load is poisoned.
func TestCOREMemSize(t *testing.T) {
	o := buildObj(t, "core.c")
	k, _ := LoadKernel()
	_, flagsOff := memberOf(t, k, "task_struct", "flags")
	orig := o.progs["raw_tp/direct"]
	insns, fs := relocate(t, o, "raw_tp/direct")
	f := fixup(t, fs, FieldByteOffset, "task_struct___sz.flags")
	in, was := insns[f.Relo.Insn*8:], orig[f.Relo.Insn*8:]
	if f.Poison || f.Target != uint64(flagsOff/8) || binary.LittleEndian.Uint16(in[2:]) != uint16(flagsOff/8) {
		t.Fatalf("flags: %+v, insn % x", f, in[:8])
	}
	if was[0] != 0x79 || in[0] != 0x61 { // LDX DW -> LDX W
		t.Fatalf("load of flags: opcode %#x -> %#x, want 0x79 -> 0x61", was[0], in[0])
	}
	g := fixup(t, fs, FieldByteOffset, "task_struct___sz.tgid")
	if !g.Poison || insns[g.Relo.Insn*8] != 0x85 {
		t.Fatalf("signed tgid read with another size: %+v, insn % x", g, insns[g.Relo.Insn*8:][:8])
	}
}

func TestCOREMemSizeUnguarded(t *testing.T) {
	o := buildObj(t, "core.c")
	k, _ := LoadKernel()
	id := mustType(t, o.spec, "task_struct___sz", KindStruct)
	ext := &Ext{Sections: map[string]*ExtSection{"x": {COREs: []CORERelo{{Insn: 0, TypeID: id, Access: "0:1", Kind: FieldByteOffset}}}}}
	insns := []byte{0x79, 0x10, 8, 0, 0, 0, 0, 0} // r0 = *(u64 *)(r1 + 8)
	_, err := Relocate(insns, "x", o.spec, ext, []*Spec{k})
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "task_struct___sz.tgid") {
		t.Fatalf("8-byte load of the kernel's 4-byte signed tgid: %v", err)
	}
}

// TestCOREPoisonReachable loads a program whose poisoned instruction is
// reachable: the verifier rejects it, and PoisonError names the field.
func TestCOREPoisonReachable(t *testing.T) {
	o := buildObj(t, "core.c")
	insns, fs := relocate(t, o, "raw_tp/guarded")
	// Patch the existence check's result to 1, as if the guard were wrong:
	// the poisoned read becomes reachable.
	f := fixup(t, fs, FieldExists, "task_struct___nope.no_such_field")
	in := insns[f.Relo.Insn*8:]
	binary.LittleEndian.PutUint32(in[4:], 1)
	err := loadRawTP(insns)
	if err == nil {
		t.Fatal("a reachable poisoned call loaded")
	}
	pe := PoisonError(err.Error(), fs)
	var ce *COREError
	if !errors.As(pe, &ce) || ce.Field != "task_struct___nope.no_such_field" || ce.Program != "guarded" {
		t.Fatalf("PoisonError(%v) = %v", err, pe)
	}
}

// TestCORESignedEnum relocates a negative enumerator into an immediate.
func TestCORESignedEnum(t *testing.T) {
	b := newBuilder(binary.LittleEndian)
	e := b.add(KindEnum|0x80, "neg", 1, 4, b.str("N"), 0xfffffffe) // signed: -2
	local, err := Parse(b.bytes())
	if err != nil {
		t.Fatal(err)
	}
	tb := newBuilder(binary.LittleEndian)
	tb.add(KindEnum|0x80, "neg", 2, 4, tb.str("M"), 5, tb.str("N"), 0xfffffff0) // -16
	target, err := Parse(tb.bytes())
	if err != nil {
		t.Fatal(err)
	}
	ext := &Ext{Sections: map[string]*ExtSection{"x": {COREs: []CORERelo{{TypeID: e, Access: "0", Kind: EnumvalValue}}}}}
	insns := []byte{0xb7, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff} // r0 = -2
	fs, err := Relocate(insns, "x", local, ext, []*Spec{target})
	if err != nil {
		t.Fatal(err)
	}
	if got := int32(binary.LittleEndian.Uint32(insns[4:])); got != -16 || int64(fs[0].Target) != -16 {
		t.Fatalf("enum value %d (%+v), want -16", got, fs[0])
	}
}

// TestCOREEnum64 relocates a 64-bit enumerator (ENUM64 in the kernel)
// into a 64-bit immediate load and runs it.
func TestCOREEnum64(t *testing.T) {
	o := buildObj(t, "core.c")
	k, _ := LoadKernel()
	id := mustType(t, k, "perf_callchain_context", KindUnknown)
	if k.kindOf(id) != KindEnum64 {
		t.Skip("kernel BTF has no ENUM64 (pahole before 1.24 or an older kernel): perf_callchain_context is", k.kindOf(id))
	}
	es, _ := k.Enums(id)
	var want uint64
	for _, e := range es {
		if e.Name == "PERF_CONTEXT_KERNEL" {
			want = e.Value
		}
	}
	insns, fs := relocate(t, o, "raw_tp/enum64")
	f := fixup(t, fs, EnumvalValue, "perf_callchain_context::PERF_CONTEXT_KERNEL")
	in := insns[f.Relo.Insn*8:]
	got := uint64(binary.LittleEndian.Uint32(in[4:])) | uint64(binary.LittleEndian.Uint32(in[12:]))<<32
	if f.Target != want || got != want || want != 0xffffffffffffff80 {
		t.Fatalf("PERF_CONTEXT_KERNEL: fixup %+v, immediate %#x, kernel %#x", f, got, want)
	}
	if r := runRawTP(t, "enum64", insns); r != 1 {
		t.Fatalf("program saw another value (returned %d)", r)
	}
}
