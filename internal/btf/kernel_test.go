package btf

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
)

// memberOf looks a member up in the kernel's BTF with the plain accessors
// (no CO-RE code), descending into anonymous members.
func memberOf(t testing.TB, s *Spec, structName, field string) (Member, uint32) {
	t.Helper()
	id, err := s.TypeByName(structName, KindStruct)
	if err != nil {
		t.Fatal(err)
	}
	var find func(id TypeID, base uint32) (Member, uint32, bool)
	find = func(id TypeID, base uint32) (Member, uint32, bool) {
		ms, err := s.Members(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Name == field {
				return m, base + m.BitOffset, true
			}
			if m.Name == "" {
				rid, _ := s.Resolve(m.Type)
				if k := s.kindOf(rid); k == KindStruct || k == KindUnion {
					if r, off, ok := find(rid, base+m.BitOffset); ok {
						return r, off, true
					}
				}
			}
		}
		return Member{}, 0, false
	}
	m, off, ok := find(id, 0)
	if !ok {
		t.Fatalf("kernel struct %s has no %s", structName, field)
	}
	return m, off
}

// bpftoolMembers parses `bpftool btf dump file vmlinux` (raw format) for
// the members of struct name: member name -> bits_offset.
func bpftoolMembers(t testing.TB, name string) map[string]uint64 {
	t.Helper()
	out, err := exec.Command("bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux").Output()
	if err != nil {
		t.Fatalf("bpftool btf dump: %v", err)
	}
	head := regexp.MustCompile(`^\[\d+\] STRUCT '` + regexp.QuoteMeta(name) + `' size=`)
	mem := regexp.MustCompile(`^\s+'([^']*)' type_id=\d+ bits_offset=(\d+)`)
	res := map[string]uint64{}
	in := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if head.MatchString(line) {
			in = true
			continue
		}
		if in {
			m := mem.FindStringSubmatch(line)
			if m == nil {
				break
			}
			v, _ := strconv.ParseUint(m[2], 10, 64)
			res[m[1]] = v
		}
	}
	if len(res) == 0 {
		t.Fatalf("bpftool output has no struct %s", name)
	}
	return res
}

func TestParseKernel(t *testing.T) {
	s, err := LoadKernel()
	if err != nil {
		t.Fatal(err)
	}
	if s.NumTypes() < 10000 {
		t.Fatalf("vmlinux BTF has only %d types", s.NumTypes())
	}
	// Every type decodes with its kind's accessor.
	counts := map[Kind]int{}
	for id := TypeID(1); int(id) < s.NumTypes(); id++ {
		ty, err := s.Type(id)
		if err != nil {
			t.Fatalf("type %d: %v", id, err)
		}
		counts[ty.Kind]++
		switch ty.Kind {
		case KindStruct, KindUnion:
			_, err = s.Members(id)
		case KindEnum, KindEnum64:
			_, err = s.Enums(id)
		case KindFuncProto:
			_, err = s.Params(id)
		case KindArray:
			_, err = s.Array(id)
		case KindInt:
			_, err = s.Int(id)
		case KindVar:
			_, err = s.Var(id)
		case KindDatasec:
			_, err = s.SecInfos(id)
		case KindDeclTag:
			_, err = s.DeclTag(id)
		}
		if err != nil {
			t.Fatalf("type %d (%s %q): %v", id, ty.Kind, ty.Name, err)
		}
	}
	t.Logf("%d types: %v", s.NumTypes(), counts)
	if counts[KindStruct] == 0 || counts[KindFunc] == 0 || counts[KindEnum] == 0 {
		t.Fatalf("implausible kind counts %v", counts)
	}
	// Offsets agree with bpftool's dump of the same BTF.
	want := bpftoolMembers(t, "task_struct")
	for _, f := range []string{"tgid", "pid", "real_parent", "comm", "flags"} {
		_, off := memberOf(t, s, "task_struct", f)
		if w, ok := want[f]; !ok || uint64(off) != w {
			t.Errorf("task_struct.%s at bit %d, bpftool says %d (present %v)", f, off, w, ok)
		}
	}
	sz, err := s.Size(mustType(t, s, "task_struct", KindStruct))
	if err != nil || sz < 1000 {
		t.Fatalf("sizeof(task_struct) = %d, %v", sz, err)
	}
	// A typedef resolves to what it names.
	u32 := mustType(t, s, "u32", KindTypedef)
	if sz, err := s.Size(u32); err != nil || sz != 4 {
		t.Fatalf("sizeof(u32) = %d, %v", sz, err)
	}
}

func mustType(t testing.TB, s *Spec, name string, k Kind) TypeID {
	t.Helper()
	id, err := s.TypeByName(name, k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestLoadFileAndModule(t *testing.T) {
	k, err := LoadKernel()
	if err != nil {
		t.Fatal(err)
	}
	// Raw BTF from a file gives the same types as the kernel's.
	f, err := LoadFile("/sys/kernel/btf/vmlinux")
	if err != nil {
		t.Fatal(err)
	}
	if f.NumTypes() != k.NumTypes() {
		t.Fatalf("file has %d types, kernel %d", f.NumTypes(), k.NumTypes())
	}
	// The .BTF of an ELF object.
	o := buildObj(t, "core.c")
	e, err := LoadFile(o.path)
	if err != nil {
		t.Fatal(err)
	}
	if e.NumTypes() != o.spec.NumTypes() {
		t.Fatalf("ELF file has %d types, section %d", e.NumTypes(), o.spec.NumTypes())
	}
	if _, err := LoadFile("/nonexistent/vmlinux"); err == nil {
		t.Fatal("missing file loaded")
	}
	if _, err := LoadKernelModule("../vmlinux"); err == nil {
		t.Fatal("path traversal accepted")
	}
	if _, err := LoadKernelModule("no_such_module_gobpf"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing module: %v", err)
	}
	// Every module's BTF continues vmlinux's.
	ents, _ := os.ReadDir("/sys/kernel/btf")
	mods, err := LoadKernelModules()
	if err != nil || len(mods) != len(ents)-1 {
		t.Fatalf("%d module BTFs for %d entries in /sys/kernel/btf: %v", len(mods), len(ents), err)
	}
	for _, m := range mods {
		if m.FirstID() != TypeID(k.NumTypes()) || m.Base() != k {
			t.Fatalf("module BTF starts at %d, vmlinux has %d types", m.FirstID(), k.NumTypes())
		}
	}
	t.Logf("%d kernel modules with BTF", len(mods))
}
