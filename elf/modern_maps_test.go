package elf

import (
	"os"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/testutil"
)

func bpfsysSyscallInfo(attr unsafe.Pointer, size uintptr) (int, error) {
	return bpfsys.Syscall(bpfsys.BPF_OBJ_GET_INFO_BY_FD, attr, size)
}

const mapInMapSrc = `
const volatile __u32 target_tgid = 0;

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
};
struct inner in_a SEC(".maps"), in_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = { .values = { &in_a, &in_b } };

int tail_target(void *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__array(values, int (void *));
} jmp SEC(".maps") = { .values = { [2] = (void *)&tail_target } };

__u64 tail_hits, fallthrough;

SEC("tp/gobpf/tail")
int tail_target(void *ctx)
{
	__sync_fetch_and_add(&tail_hits, 1);
	return 0;
}

SEC("tp/syscalls/sys_enter_getpgid")
int entry(void *ctx)
{
	__u32 k = 1, z = 0;
	void *in;
	__u64 *v;
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	in = bpf_map_lookup_elem(&outer, &k);
	if (in) {
		v = bpf_map_lookup_elem(in, &z);
		if (v)
			__sync_fetch_and_add(v, 1);
	}
	bpf_tail_call(ctx, &jmp, 0); /* empty slot: falls through */
	__sync_fetch_and_add(&fallthrough, 1);
	bpf_tail_call(ctx, &jmp, 2);
	return 0;
}
`

// TestModernMapInMapAndProgArray: an array of maps with initial inner maps
// and a program array whose initial value wires a tail call at load.
func TestModernMapInMapAndProgArray(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	const n = 11
	m := NewModule(compileModernSnippet(t, mapInMapSrc, "-DBPF_NO_PRESERVE_ACCESS_INDEX"))
	defer m.Close()
	if err := m.SetConstant("target_tgid", uint32(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	if err := m.Load(nil); err != nil {
		t.Fatal(err)
	}
	l := attach(t, m, "entry", (*Program).Attach)
	for i := 0; i < n; i++ {
		unix.Getpgid(0)
	}
	l.Close()
	var a, b, th, ft uint64
	k := uint32(0)
	if err := m.LookupElement(m.Map("in_a"), unsafe.Pointer(&k), unsafe.Pointer(&a)); err != nil {
		t.Fatal(err)
	}
	if err := m.LookupElement(m.Map("in_b"), unsafe.Pointer(&k), unsafe.Pointer(&b)); err != nil {
		t.Fatal(err)
	}
	m.ReadVariable("tail_hits", &th)
	m.ReadVariable("fallthrough", &ft)
	if a != 0 || b != n {
		t.Errorf("inner maps: in_a %d, in_b %d; want 0, %d (outer[1] = in_b)", a, b, n)
	}
	if th != n || ft != n {
		t.Errorf("tail calls: %d into slot 2, %d fell through slot 0; want %d, %d", th, ft, n, n)
	}
}

func TestModernMapInitialValueErrors(t *testing.T) {
	_, err := parseFile(t, compileModernSnippet(t, `
struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } in_a SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, int (void *));
} jmp SEC(".maps") = { .values = { (void *)&in_a } };
SEC("tp/syscalls/sys_enter_getpgid") int entry(void *ctx) { bpf_tail_call(ctx, &jmp, 0); return 0; }
`, "-DBPF_NO_PRESERVE_ACCESS_INDEX"))
	if err == nil || !strings.Contains(err.Error(), `points to "in_a", not a program`) {
		t.Errorf("program array holding a map: %v", err)
	}
}

// mapBTFInfo returns btf_id, btf_key_type_id and btf_value_type_id of a map.
func mapBTFInfo(t *testing.T, fd int) (uint32, uint32, uint32) {
	t.Helper()
	var buf [128]byte
	attr := struct {
		Fd      uint32
		InfoLen uint32
		Info    unsafe.Pointer
	}{Fd: uint32(fd), InfoLen: uint32(len(buf)), Info: unsafe.Pointer(&buf[0])}
	if _, err := bpfsysSyscallInfo(unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		t.Fatal(err)
	}
	u := func(off int) uint32 { return *(*uint32)(unsafe.Pointer(&buf[off])) }
	return u(64), u(68), u(72)
}

// TestModernMapBTF: maps carry the object's BTF key and value types (global
// data maps their DATASEC), as bpftool shows them.
func TestModernMapBTF(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	m := loadModern(t, uint32(os.Getpid()), 1)
	for _, name := range []string{"uprobe_hits", ".bss", ".data", ".rodata"} {
		mp := m.Map(name)
		if mp == nil {
			t.Fatalf("no map %s", name)
		}
		id, key, val := mapBTFInfo(t, mp.Fd())
		if id == 0 || val == 0 || (name == "uprobe_hits" && key == 0) {
			t.Errorf("map %s: btf id %d, key type %d, value type %d; want BTF types", name, id, key, val)
		}
	}
}

// TestModernStringAndCustomSections: string literals (.rodata.str1.1),
// custom .rodata.NAME and .data.NAME sections become frozen/mmap'd maps
// like .rodata and .data; bpf_snprintf formats from the frozen string.
func TestModernStringAndCustomSections(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	m := NewModule(compileModernSnippet(t, `
const volatile __u32 target_tgid = 0;
const volatile int custom_const SEC(".rodata.custom") = 5;
int custom_var SEC(".data.custom") = 7;
char out[32];
SEC("tp/syscalls/sys_enter_getpgid")
int fmt(void *ctx)
{
	__u64 args[2];
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	args[0] = custom_const;
	args[1] = custom_var;
	bpf_snprintf(out, sizeof(out), "gobpf %d+%d", args, sizeof(args));
	return 0;
}
`, "-DBPF_NO_PRESERVE_ACCESS_INDEX"))
	defer m.Close()
	m.SetConstant("target_tgid", uint32(os.Getpid()))
	if err := m.SetConstant("custom_const", int32(40)); err != nil {
		t.Fatal(err)
	}
	if err := m.Load(nil); err != nil {
		t.Fatal(err)
	}
	for _, sec := range []string{".rodata.str1.1", ".rodata.custom", ".data.custom"} {
		if m.Map(sec) == nil {
			t.Errorf("no map for section %s", sec)
		}
	}
	if err := m.WriteVariable("custom_var", int32(2)); err != nil {
		t.Fatal(err)
	}
	l := attach(t, m, "fmt", (*Program).Attach)
	unix.Getpgid(0)
	l.Close()
	var out [32]byte
	if err := m.ReadVariable("out", &out); err != nil {
		t.Fatal(err)
	}
	if got := string(out[:strings.IndexByte(string(out[:]), 0)]); got != "gobpf 40+2" {
		t.Errorf("bpf_snprintf wrote %q, want %q", got, "gobpf 40+2")
	}
}
