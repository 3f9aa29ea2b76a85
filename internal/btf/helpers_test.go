package btf

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"unsafe"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"golang.org/x/sys/unix"
)

// testDir holds the generated vmlinux.h and objects, shared by the tests.
var testDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "gobpf-btf-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

var vmlinuxH struct {
	once sync.Once
	err  error
}

// genVmlinuxH dumps the running kernel's BTF as C, once.
func genVmlinuxH(t testing.TB) {
	t.Helper()
	vmlinuxH.once.Do(func() {
		out, err := exec.Command("bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c").Output()
		if err != nil {
			vmlinuxH.err = fmt.Errorf("bpftool btf dump (tests/setup installs bpftool): %v", err)
			return
		}
		vmlinuxH.err = os.WriteFile(filepath.Join(testDir, "vmlinux.h"), out, 0o644)
	})
	if vmlinuxH.err != nil {
		t.Fatal(vmlinuxH.err)
	}
}

// testObj is a compiled BPF object, read with debug/elf.
type testObj struct {
	path  string
	spec  *Spec
	ext   *Ext
	progs map[string][]byte // program sections by name
}

var objCache sync.Map // source name -> *objEntry

type objEntry struct {
	once sync.Once
	obj  *testObj
	err  error
}

// buildObj compiles testdata/<name> with clang -O2 -g -target bpf against
// the generated vmlinux.h and libbpf's headers, once per test binary.
func buildObj(t testing.TB, name string) *testObj {
	t.Helper()
	genVmlinuxH(t)
	v, _ := objCache.LoadOrStore(name, &objEntry{})
	e := v.(*objEntry)
	e.once.Do(func() {
		src, err := filepath.Abs(filepath.Join("testdata", name))
		if err != nil {
			e.err = err
			return
		}
		out := filepath.Join(testDir, name+".o")
		cmd := exec.Command("clang", "-O2", "-g", "-target", "bpf", "-I", testDir, "-c", src, "-o", out)
		if b, err := cmd.CombinedOutput(); err != nil {
			e.err = fmt.Errorf("clang %s: %v\n%s", name, err, b)
			return
		}
		e.obj, e.err = readObj(out)
	})
	if e.err != nil {
		t.Fatal(e.err)
	}
	return e.obj
}

func readObj(path string) (*testObj, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	o := &testObj{path: path, progs: map[string][]byte{}}
	sec := f.Section(".BTF")
	if sec == nil {
		return nil, errors.New("no .BTF")
	}
	b, err := sec.Data()
	if err != nil {
		return nil, err
	}
	if o.spec, err = Parse(b); err != nil {
		return nil, err
	}
	sec = f.Section(".BTF.ext")
	if sec == nil {
		return nil, errors.New("no .BTF.ext")
	}
	if b, err = sec.Data(); err != nil {
		return nil, err
	}
	if o.ext, err = ParseExt(b, o.spec); err != nil {
		return nil, err
	}
	for _, s := range f.Sections {
		if s.Type == elf.SHT_PROGBITS && s.Flags&elf.SHF_EXECINSTR != 0 && s.Size > 0 {
			d, err := s.Data()
			if err != nil {
				return nil, err
			}
			o.progs[s.Name] = d
		}
	}
	return o, nil
}

// insns returns a private copy of a program section.
func (o *testObj) insns(t testing.TB, sec string) []byte {
	t.Helper()
	b, ok := o.progs[sec]
	if !ok {
		t.Fatalf("object has no section %s", sec)
	}
	return append([]byte(nil), b...)
}

// loadRawTP tries to load insns as a raw tracepoint program.
func loadRawTP(insns []byte) error {
	prog := make([]bpfsys.Insn, len(insns)/8)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&prog[0])), len(insns)), insns)
	fd, err := bpfsys.ProgLoad(&bpfsys.ProgLoadAttr{Type: bpfsys.BPF_PROG_TYPE_RAW_TRACEPOINT, Insns: prog, License: "GPL"})
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// runRawTP loads insns as a raw tracepoint program and runs it once with
// BPF_PROG_TEST_RUN in this thread's context, returning its result.
func runRawTP(t testing.TB, name string, insns []byte) uint32 {
	t.Helper()
	prog := make([]bpfsys.Insn, len(insns)/8)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&prog[0])), len(insns)), insns)
	fd, err := bpfsys.ProgLoad(&bpfsys.ProgLoadAttr{
		Type:    bpfsys.BPF_PROG_TYPE_RAW_TRACEPOINT,
		Insns:   prog,
		License: "GPL",
		Name:    name,
	})
	if err != nil {
		t.Fatalf("loading %s: %v", name, err)
	}
	defer unix.Close(fd)
	a := &bpfsys.TestRunAttr{ProgFd: fd}
	if err := bpfsys.ProgTestRun(a); err != nil {
		t.Fatalf("test run of %s: %v", name, err)
	}
	return a.Retval
}
