package btf

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// exercise walks everything a Spec offers; it must not panic.
func exercise(s *Spec) {
	n := s.NumTypes()
	if n > 5000 {
		n = 5000
	}
	for id := TypeID(0); int(id) <= n; id++ {
		t, err := s.Type(id)
		if err != nil {
			continue
		}
		s.Members(id)
		s.Enums(id)
		s.Params(id)
		s.Array(id)
		s.Int(id)
		s.Var(id)
		s.SecInfos(id)
		s.DeclTag(id)
		s.Resolve(id)
		s.Size(id)
		s.TypesByName(t.Name)
		s.TypeByName(t.Name, t.Kind)
	}
	s.Marshal(MarshalOptions{Features: &Features{}})
	s.Marshal(MarshalOptions{Features: &AllFeatures, Sections: map[string]DataSec{".data": {Size: 8}, ".bss": {Size: 4}, ".rodata": {Size: 16}}})
}

// seed reads a fuzz seed from testdata/seed (sections dumped from the
// test objects with llvm-objcopy --dump-section), so that fuzz workers
// need no clang.
func seed(t testing.TB, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", "seed", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzParse(f *testing.F) {
	f.Add(seed(f, "globals.btf"))
	b := newBuilder(binary.LittleEndian)
	i := b.int("int", 4)
	b.add(KindStruct, "s", 2, 8, b.str("a"), uint32(i), 0, b.str("b"), uint32(i), 1<<24|32)
	b.add(KindEnum64, "big", 1, 8, b.str("A"), 0, 1)
	b.add(KindArray, "", 0, 0, uint32(i), uint32(i), 4)
	b.add(KindDatasec, ".data", 1, 0, uint32(i), 0, 4)
	f.Add(b.bytes())
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := Parse(raw)
		if err != nil {
			return
		}
		exercise(s)
	})
}

// FuzzCORE parses an object's BTF and .BTF.ext from the fuzzer and
// relocates every section against that same BTF and a fixed one.
func FuzzCORE(f *testing.F) {
	btf, ext := seed(f, "core.btf"), seed(f, "core.btf.ext")
	target, err := Parse(btf)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(btf, ext, seed(f, "flavor.insns"))
	f.Add(btf, ext, seed(f, "bitfield.insns"))
	f.Fuzz(func(t *testing.T, btf, ext, insns []byte) {
		s, err := Parse(btf)
		if err != nil {
			return
		}
		e, err := ParseExt(ext, s)
		if err != nil {
			return
		}
		for name := range e.Sections {
			buf := append([]byte(nil), insns...)
			buf = buf[:len(buf)/8*8]
			Relocate(buf, name, s, e, []*Spec{s})
			Relocate(buf, name, s, e, []*Spec{target})
		}
	})
}
