package elf

import (
	"errors"
	"strings"
	"testing"
)

// TestRefuseCORE is issue 8 fault 8 (first point): an object with CO-RE
// relocations is refused, naming the program section and the first
// relocation, instead of loading with the field offsets of the local type.
func TestRefuseCORE(t *testing.T) {
	obj := compileSnippet(t, `
struct task_struct___local { int pad; int tgid; } __attribute__((preserve_access_index));
static long (*bpf_probe_read_kernel)(void *dst, __u32 size, const void *src) = (void *)BPF_FUNC_probe_read_kernel;
static __u64 (*bpf_get_current_task)(void) = (void *)BPF_FUNC_get_current_task;
SEC("tracepoint/syscalls/sys_enter_getppid") int f(void *ctx) {
	struct task_struct___local *t = (void *)bpf_get_current_task();
	int tgid = 0;
	bpf_probe_read_kernel(&tgid, sizeof(tgid), &t->tgid);
	return tgid;
}`)
	m := NewModule(obj)
	defer m.Close()
	err := m.Load(nil)
	t.Log(err)
	if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("Load: %v, want ErrNotSupported", err)
	}
	for _, want := range []string{`"tracepoint/syscalls/sys_enter_getppid"`, "CO-RE relocation at instruction", "field byte offset", "struct task_struct___local", `access "0:1"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if m.TracepointProgram("tracepoint/syscalls/sys_enter_getppid") != nil {
		t.Error("the program was loaded")
	}
}

// TestRefuseUnknownSections is issue 8 fault 8 (second and third points):
// program sections of kinds the loader does not know, unknown loaded data
// sections and the legacy "maps" section are errors wrapping
// ErrNotSupported; global data is refused with ErrNotSupported too.
func TestRefuseUnknownSections(t *testing.T) {
	const prog = `SEC("socket/ok") int ok(void *ctx) { return 0; }
`
	for _, tc := range []struct {
		name, src, want, notWant string
	}{
		{"tp/", prog + `SEC("tp/syscalls/sys_enter_getppid") int f(void *ctx) { return 0; }`, `program section "tp/syscalls/sys_enter_getppid": unknown program kind`, ""},
		{"raw_tp/", prog + `SEC("raw_tp/sys_enter") int f(void *ctx) { return 0; }`, `"raw_tp/sys_enter": unknown program kind`, ""},
		{"fentry/", prog + `SEC("fentry/do_unlinkat") int f(void *ctx) { return 0; }`, `"fentry/do_unlinkat": unknown program kind`, ""},
		{"lsm/", prog + `SEC("lsm/file_open") int f(void *ctx) { return 0; }`, `"lsm/file_open": unknown program kind`, ""},
		{"tp_btf/", prog + `SEC("tp_btf/sched_switch") int f(void *ctx) { return 0; }`, `"tp_btf/sched_switch": unknown program kind`, ""},
		{"struct_ops data", prog + `struct { int a; } ops SEC(".struct_ops") = {1};`, `section ".struct_ops"`, ""},
		{"legacy maps", `struct bpf_map_def { unsigned int type, key_size, value_size, max_entries; };
struct bpf_map_def SEC("maps") a = {1, 4, 4, 1}, b = {2, 4, 4, 1};
SEC("socket/x") int f(void *ctx) { int k = 0; return bpf_map_lookup_elem(&a, &k) != 0 && bpf_map_lookup_elem(&b, &k) != 0; }`, `section "maps": legacy map definitions`, "global data"},
		{"global data", `int counter;
SEC("socket/x") int f(void *ctx) { return counter++; }`, `"counter" is in section ".bss": global data`, ""},
		{"rodata", `const volatile int limit = 3;
SEC("socket/x") int f(void *ctx) { return limit; }`, `"limit" is in section ".rodata": global data`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewModule(compileSnippet(t, tc.src))
			defer m.Close()
			err := m.Load(nil)
			if !errors.Is(err, ErrNotSupported) {
				t.Fatalf("Load: %v, want ErrNotSupported", err)
			}
			if !strings.Contains(err.Error(), tc.want) || (tc.notWant != "" && strings.Contains(err.Error(), tc.notWant)) {
				t.Errorf("error %q, want it to contain %q and not %q", err, tc.want, tc.notWant)
			}
			if m.SocketFilter("socket/ok") != nil {
				t.Error("a program was loaded")
			}
		})
	}
}
