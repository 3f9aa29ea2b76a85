package elf

import (
	"errors"
	"strings"
	"testing"
)

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
		{"unknown family", prog + `SEC("no_such_family/x") int f(void *ctx) { return 0; }`, `program section "no_such_family/x"`, ""},
		{"misspelt tracepoint", prog + `SEC("tracepont/syscalls/sys_enter_getppid") int f(void *ctx) { return 0; }`, `program section "tracepont/syscalls/sys_enter_getppid"`, ""},
		{"struct_ops data", prog + `struct { int a; } ops SEC(".struct_ops") = {1};`, `section ".struct_ops"`, ""},
		{"legacy maps", `struct bpf_map_def { unsigned int type, key_size, value_size, max_entries; };
struct bpf_map_def SEC("maps") a = {1, 4, 4, 1}, b = {2, 4, 4, 1};
SEC("socket/x") int f(void *ctx) { int k = 0; return bpf_map_lookup_elem(&a, &k) != 0 && bpf_map_lookup_elem(&b, &k) != 0; }`, `section "maps": legacy map definitions`, "global data"},
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
