package elf

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/btf"
	"github.com/iovisor/gobpf/internal/testutil"
)

// The CO-RE object is compiled once per test binary against the vmlinux.h
// of $GOBPF_VMLINUX_BTF (the VM lane points it at the host kernel's BTF,
// so that the guest's 6.1 kernel runs an object built for 6.18) or else of
// the running kernel.
var (
	coreOnce sync.Once
	coreObj  string
)

func coreObject(t testing.TB) string {
	t.Helper()
	coreOnce.Do(func() {
		o := filepath.Join(vmlinuxHeaderDir(t), "core.o")
		compileModern(t, "../tests/elf/core.c", o)
		coreObj = o
	})
	if coreObj == "" {
		t.Fatal("core.c did not build")
	}
	return coreObj
}

type coreResult struct {
	Tgid, Ptgid, V1Tgid, V1Ptgid uint32
	Comm                         [16]byte
	HasMmCid, HasBogus, Runs     uint32
	Bogus                        int32
}

// TestModernCORE: one object, built once, reads task->tgid,
// task->real_parent->tgid and task->comm with BPF_CORE_READ, through a
// flavor type too, and checks a field that exists on some kernels only.
func TestModernCORE(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	if src := os.Getenv("GOBPF_VMLINUX_BTF"); src != "" {
		t.Logf("object built against %s, loaded on %s", src, kernelRelease())
	}
	m := NewModule(coreObject(t))
	defer m.Close()
	if err := m.SetConstant("target_tgid", uint32(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	if err := m.Load(nil); err != nil {
		t.Fatal(err)
	}
	l := attach(t, m, "core_task", (*Program).Attach)
	defer l.Close()
	unix.Getpgid(0)
	var r coreResult
	if err := m.ReadVariable("res", &r); err != nil {
		t.Fatal(err)
	}
	comm, _ := os.ReadFile("/proc/self/comm")
	wantComm := strings.TrimSpace(string(comm))
	gotComm := string(r.Comm[:])
	gotComm = gotComm[:strings.IndexByte(gotComm+"\x00", 0)]
	if r.Runs == 0 {
		t.Fatal("program did not run")
	}
	if r.Tgid != uint32(os.Getpid()) || r.Ptgid != uint32(os.Getppid()) || gotComm != wantComm {
		t.Errorf("task: tgid %d parent %d comm %q; want %d %d %q", r.Tgid, r.Ptgid, gotComm, os.Getpid(), os.Getppid(), wantComm)
	}
	if r.V1Tgid != r.Tgid || r.V1Ptgid != r.Ptgid {
		t.Errorf("flavor task_struct___v1: tgid %d parent %d; want %d %d", r.V1Tgid, r.V1Ptgid, r.Tgid, r.Ptgid)
	}
	ks, err := btf.LoadKernel()
	if err != nil {
		t.Fatal(err)
	}
	want := uint32(0)
	if id, err := ks.TypeByName("task_struct", btf.KindStruct); err == nil {
		ms, _ := ks.Members(id)
		for _, mem := range ms {
			if mem.Name == "mm_cid" {
				want = 1
			}
		}
	}
	if r.HasMmCid != want || r.HasBogus != 0 || r.Bogus != 0 {
		t.Errorf("field existence: mm_cid %d (kernel has it: %d), bogus %d (value %d); want 0 for bogus", r.HasMmCid, want, r.HasBogus, r.Bogus)
	}
}

func kernelRelease() string {
	var u unix.Utsname
	unix.Uname(&u)
	return unix.ByteSliceToString(u.Release[:])
}

// TestModernCOREErrors: a relocation no kernel satisfies names the program,
// type and field; a missing kernel BTF file is ErrNotFound-ish and clear.
func TestModernCOREErrors(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	obj := compileModernSnippet(t, `
struct task_struct___nope { int gobpf_missing_field; } __attribute__((preserve_access_index));
int out;
SEC("tp/syscalls/sys_enter_getpgid")
int reads_missing(void *ctx)
{
	struct task_struct___nope *t = (void *)bpf_get_current_task();
	out = BPF_CORE_READ(t, gobpf_missing_field);
	return 0;
}
`)
	m := NewModule(obj)
	err := m.Load(nil)
	m.Close()
	if err == nil {
		t.Fatal("loading a program reading a field no kernel has succeeded")
	}
	for _, s := range []string{"reads_missing", "task_struct", "gobpf_missing_field"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
	m = NewModule(coreObject(t))
	err = m.LoadWithOptions(LoadOptions{KernelBTF: "/nonexistent/gobpf.btf"})
	m.Close()
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/gobpf.btf") {
		t.Errorf("missing BTF file: %v", err)
	}
	// A BTF file supplied explicitly (the running kernel's, copied) works.
	raw, err := os.ReadFile("/sys/kernel/btf/vmlinux")
	if err != nil {
		t.Skip("no kernel BTF")
	}
	f := filepath.Join(t.TempDir(), "vmlinux.btf")
	os.WriteFile(f, raw, 0o644)
	m = NewModule(coreObject(t))
	defer m.Close()
	m.SetConstant("target_tgid", uint32(os.Getpid()))
	if err := m.LoadWithOptions(LoadOptions{KernelBTF: f}); err != nil {
		t.Fatal(err)
	}
	l := attach(t, m, "core_task", (*Program).Attach)
	defer l.Close()
	unix.Getpgid(0)
	var r coreResult
	if err := m.ReadVariable("res", &r); err != nil || r.Tgid != uint32(os.Getpid()) {
		t.Errorf("with LoadOptions.KernelBTF: tgid %d, %v", r.Tgid, err)
	}
}

// TestModernVerifierSourceLines: the object's BTF is loaded with the
// program, so a verifier rejection quotes the C source line.
func TestModernVerifierSourceLines(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	obj := compileModernSnippet(t, `
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } arr SEC(".maps");
SEC("tp/syscalls/sys_enter_getpgid")
int bad_access(void *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&arr, &k);
	return *v + 7; /* gobpf: unchecked lookup result */
}
`, "-DBPF_NO_PRESERVE_ACCESS_INDEX")
	m := NewModule(obj)
	defer m.Close()
	err := m.Load(nil)
	if err == nil {
		t.Fatal("verifier accepted a NULL dereference")
	}
	if !strings.Contains(err.Error(), "gobpf: unchecked lookup result") {
		t.Errorf("verifier log does not quote the source line:\n%v", err)
	}
	// Without the object's BTF there is no line_info to quote.
	m2 := NewModule(obj)
	defer m2.Close()
	err = m2.LoadWithOptions(LoadOptions{NoObjectBTF: true})
	if err == nil || strings.Contains(err.Error(), "gobpf: unchecked lookup result") {
		t.Errorf("NoObjectBTF: %v", err)
	}
}
