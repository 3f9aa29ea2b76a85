package elf

import (
	"os"
	"testing"

	"github.com/iovisor/gobpf/internal/btf"
)

// The same program with and without CO-RE: BPF_CORE_READ against
// preserve_access_index types, or BPF_PROBE_READ with the offsets of the
// vmlinux.h it was compiled against.
const benchTaskSrc = `
struct out { __u32 tgid, ptgid; char comm[16]; } res;
SEC("tp/syscalls/sys_enter_getpgid")
int task_reads(void *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	res.tgid = READ(t, tgid);
	res.ptgid = READ(t, real_parent, tgid);
	READ_STR(&res.comm, t, comm);
	return 0;
}
`

func benchLoad(b *testing.B, obj string) {
	m := NewModule(obj)
	if err := m.Load(nil); err != nil { // warm: kernel BTF parsed once per process
		b.Fatal(err)
	}
	m.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := NewModule(obj)
		if err := m.Load(nil); err != nil {
			b.Fatal(err)
		}
		m.Close()
	}
}

// BenchmarkLoadCORE: parse + CO-RE relocate + BTF/program load of a
// program reading task_struct with BPF_CORE_READ.
func BenchmarkLoadCORE(b *testing.B) {
	benchLoad(b, compileModernSnippet(b, "#define READ BPF_CORE_READ\n#define READ_STR BPF_CORE_READ_STR_INTO\n"+benchTaskSrc))
}

// BenchmarkLoadNoCORE: the same program without CO-RE relocations.
func BenchmarkLoadNoCORE(b *testing.B) {
	benchLoad(b, compileModernSnippet(b, "#define READ BPF_PROBE_READ\n#define READ_STR BPF_PROBE_READ_STR_INTO\n"+benchTaskSrc, "-DBPF_NO_PRESERVE_ACCESS_INDEX"))
}

// BenchmarkLoadNoCOREWithoutBTF: the same again, without loading the
// object's BTF (no func_info/line_info): the cost of BTF_LOAD alone.
func BenchmarkLoadNoCOREWithoutBTF(b *testing.B) {
	obj := compileModernSnippet(b, "#define READ BPF_PROBE_READ\n#define READ_STR BPF_PROBE_READ_STR_INTO\n"+benchTaskSrc, "-DBPF_NO_PRESERVE_ACCESS_INDEX")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := NewModule(obj)
		if err := m.LoadWithOptions(LoadOptions{NoObjectBTF: true}); err != nil {
			b.Fatal(err)
		}
		m.Close()
	}
}

// BenchmarkKernelBTFParse: parsing /sys/kernel/btf/vmlinux (what the first
// CO-RE load in a process pays once), and looking a type up in it.
func BenchmarkKernelBTFParse(b *testing.B) {
	raw, err := os.ReadFile("/sys/kernel/btf/vmlinux")
	if err != nil {
		b.Skip("no kernel BTF")
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s, err := btf.Parse(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.TypeByName("task_struct", btf.KindStruct); err != nil {
			b.Fatal(err)
		}
	}
}
