package btf

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/testutil"
)

// dataSecs reads sizes and symbol offsets of an object's sections, as the
// elf loader will pass them to Marshal.
func dataSecs(t testing.TB, path string) map[string]DataSec {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]DataSec{}
	for i, s := range f.Sections {
		ds := DataSec{Size: uint32(s.Size), Symbols: map[string]uint32{}}
		for _, sym := range syms {
			if int(sym.Section) == i && elf.ST_TYPE(sym.Info) == elf.STT_OBJECT {
				ds.Symbols[sym.Name] = uint32(sym.Value)
			}
		}
		out[s.Name] = ds
	}
	return out
}

func loadBTF(t testing.TB, raw []byte) int {
	t.Helper()
	fd, err := LoadIntoKernel(raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func TestMarshalDatasec(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	o := buildObj(t, "globals.c")
	secs := dataSecs(t, o.path)
	raw, err := o.spec.Marshal(MarshalOptions{Sections: secs, Features: &AllFeatures})
	if err != nil {
		t.Fatal(err)
	}
	loadBTF(t, raw)
	m, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if m.NumTypes() != o.spec.NumTypes() {
		t.Fatalf("marshalled %d types, object has %d", m.NumTypes(), o.spec.NumTypes())
	}
	seen := map[string]bool{}
	for id := TypeID(1); int(id) < m.NumTypes(); id++ {
		ty, _ := m.Type(id)
		if ty.Kind != KindDatasec {
			continue
		}
		seen[ty.Name] = true
		if ty.Size != secs[ty.Name].Size {
			t.Errorf("DATASEC %s size %d, section has %d", ty.Name, ty.Size, secs[ty.Name].Size)
		}
		vs, _ := m.SecInfos(id)
		for _, v := range vs {
			vt, _ := m.Type(v.Type)
			if want, ok := secs[ty.Name].Symbols[vt.Name]; !ok || want != v.Offset {
				t.Errorf("%s: %s at %d, symbol at %d (%v)", ty.Name, vt.Name, v.Offset, want, ok)
			}
		}
	}
	for _, s := range []string{".data", ".rodata", ".bss"} {
		if !seen[s] {
			t.Errorf("no DATASEC %s in %v", s, seen)
		}
	}
	// Without section sizes, the missing one is named.
	_, err = o.spec.Marshal(MarshalOptions{Features: &AllFeatures})
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "section .") {
		t.Fatalf("marshal without sections: %v", err)
	}
}

func TestMarshalSanitize(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	f := ProbeFeatures()
	if f != AllFeatures {
		t.Fatalf("6.x kernel should accept every BTF kind: %+v", f)
	}
	o := buildObj(t, "globals.c")
	secs := dataSecs(t, o.path)
	// As for a kernel that lacks each kind in turn, then all at once (but
	// FUNC, which every kernel with BTF_LOAD for programs has).
	old := []Features{
		{Func: true, FuncLinkage: true, Datasec: true, Float: true, DeclTag: true, TypeTag: false, Enum64: true},
		{Func: true, FuncLinkage: true, Datasec: true, Float: true, DeclTag: false, TypeTag: true, Enum64: true},
		{Func: true, FuncLinkage: true, Datasec: true, Float: false, DeclTag: true, TypeTag: true, Enum64: true},
		{Func: true},
	}
	for _, feat := range old {
		raw, err := o.spec.Marshal(MarshalOptions{Sections: secs, Features: &feat})
		if err != nil {
			t.Fatal(err)
		}
		loadBTF(t, raw)
		m, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[Kind]int{}
		for id := TypeID(1); int(id) < m.NumTypes(); id++ {
			ty, _ := m.Type(id)
			kinds[ty.Kind]++
			if ty.Kind == KindFunc && !feat.FuncLinkage && ty.Vlen != LinkageStatic {
				t.Errorf("FUNC %s keeps linkage %d", ty.Name, ty.Vlen)
			}
		}
		for k, have := range map[Kind]bool{KindTypeTag: feat.TypeTag, KindDeclTag: feat.DeclTag, KindFloat: feat.Float, KindDatasec: feat.Datasec, KindVar: feat.Datasec} {
			if !have && kinds[k] > 0 {
				t.Errorf("features %+v: %d %s left", feat, kinds[k], k)
			}
		}
		if feat == old[3] && kinds[KindStruct] == 0 {
			t.Errorf("no DATASEC became a STRUCT: %v", kinds)
		}
	}
	if c := countKinds(o.spec); c[KindTypeTag] == 0 || c[KindDeclTag] == 0 || c[KindFloat] == 0 || c[KindDatasec] == 0 {
		t.Fatalf("object lacks the kinds under test: %v", c)
	}

	// ENUM64 (clang 14 cannot emit it): built by hand, with a signed ENUM.
	b := newBuilder(o.spec.ByteOrder())
	b.add(KindEnum64, "big", 2, 8, b.str("A"), 0, 1, b.str("B"), 1, 0)
	b.add(KindEnum|0x80, "neg", 1, 4, b.str("N"), 0xffffffff) // kind_flag: signed
	spec, err := Parse(b.bytes())
	if err != nil {
		t.Fatal(err)
	}
	es, err := spec.Enums(1)
	if err != nil || es[0].Value != 1<<32 || es[1].Value != 1 {
		t.Fatalf("enum64 values %+v, %v", es, err)
	}
	for _, feat := range []Features{AllFeatures, {Func: true}} {
		raw, err := spec.Marshal(MarshalOptions{Features: &feat})
		if err != nil {
			t.Fatal(err)
		}
		loadBTF(t, raw)
		m, _ := Parse(raw)
		if k := m.kindOf(1); feat.Enum64 != (k == KindEnum64) {
			t.Errorf("features %+v: enum64 became %s", feat, k)
		}
	}
}

func countKinds(s *Spec) map[Kind]int {
	c := map[Kind]int{}
	for id := TypeID(1); int(id) < s.NumTypes(); id++ {
		c[s.kindOf(id)]++
	}
	return c
}

func TestLoadIntoKernelRejects(t *testing.T) {
	b := newBuilder(binary.NativeEndian)
	b.add(KindPtr, "", 0, 99) // points to a type that does not exist
	_, err := LoadIntoKernel(b.bytes())
	var le *LoadError
	if !errors.As(err, &le) || le.Log == "" || !errors.Is(err, unix.EINVAL) {
		t.Fatalf("bad BTF: %v", err)
	}
	t.Logf("%v", err)
}

// TestFuncLineInfo loads a relocated program with the object's BTF,
// func_info and line_info; a verifier rejection then quotes the source.
func TestFuncLineInfo(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	o := buildObj(t, "core.c")
	raw, err := o.spec.Marshal(MarshalOptions{Sections: dataSecs(t, o.path)})
	if err != nil {
		t.Fatal(err)
	}
	btfFd := loadBTF(t, raw)
	sec := o.ext.Section("raw_tp/tgid")
	if len(sec.FuncInfos) != 1 || len(sec.LineInfos) < 2 {
		t.Fatalf("raw_tp/tgid: %d func_info, %d line_info", len(sec.FuncInfos), len(sec.LineInfos))
	}
	insns, _ := relocate(t, o, "raw_tp/tgid")
	fi := MarshalFuncInfos(sec.FuncInfos, o.spec.ByteOrder())
	li := MarshalLineInfos(sec.LineInfos, o.spec.ByteOrder())
	fd, _, err := progLoadBTF(insns, "GPL", btfFd, fi, li)
	if err != nil {
		t.Fatal(err)
	}
	a := &bpfsys.TestRunAttr{ProgFd: fd}
	err = bpfsys.ProgTestRun(a)
	unix.Close(fd)
	if err != nil || int(a.Retval) != unix.Getpid() {
		t.Fatalf("test run: %d, %v", a.Retval, err)
	}
	// Not GPL: bpf_probe_read_kernel is refused, and the log shows the line.
	_, log, err := progLoadBTF(insns, "Proprietary", btfFd, fi, li)
	if err == nil {
		t.Fatal("GPL-only helper accepted")
	}
	// (6.1 prints the source line; later kernels add " @ core.c:NN".)
	if !strings.Contains(log, "; struct task_struct *t = (void *)bpf_get_current_task();") {
		t.Fatalf("verifier log quotes no source:\n%s", log)
	}
}

// progLoadBTF is BPF_PROG_LOAD with the BTF fields (the elf loader has
// its own; bpfsys.ProgLoad has none).
func progLoadBTF(insns []byte, license string, btfFd int, fi, li []byte) (int, string, error) {
	attr := struct {
		ProgType, InsnCnt  uint32
		Insns, License     unsafe.Pointer
		LogLevel, LogSize  uint32
		LogBuf             unsafe.Pointer
		KernVersion, Flags uint32
		Name               [16]byte
		Ifindex, Expected  uint32
		BTFFd, FIRecSize   uint32
		FuncInfo           unsafe.Pointer
		FICnt, LIRecSize   uint32
		LineInfo           unsafe.Pointer
		LICnt              uint32
	}{
		ProgType: uint32(bpfsys.BPF_PROG_TYPE_RAW_TRACEPOINT), InsnCnt: uint32(len(insns) / 8),
		Insns: unsafe.Pointer(&insns[0]), BTFFd: uint32(btfFd),
		FIRecSize: FuncInfoSize, FuncInfo: unsafe.Pointer(&fi[0]), FICnt: uint32(len(fi) / FuncInfoSize),
		LIRecSize: LineInfoSize, LineInfo: unsafe.Pointer(&li[0]), LICnt: uint32(len(li) / LineInfoSize),
	}
	lic := append([]byte(license), 0)
	log := make([]byte, 1<<20)
	attr.License = unsafe.Pointer(&lic[0])
	attr.LogLevel, attr.LogSize, attr.LogBuf = 1, uint32(len(log)), unsafe.Pointer(&log[0])
	fd, err := bpfsys.Syscall(bpfsys.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(insns)
	runtime.KeepAlive(fi)
	runtime.KeepAlive(li)
	runtime.KeepAlive(lic)
	s := string(log[:strings.IndexByte(string(log), 0)])
	return fd, s, err
}
