package elf

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/iovisor/gobpf/internal/bpfsys"
)

// These tests only parse: they need clang but neither root nor cgo.

func parseFile(t testing.TB, path string) (*objectSpec, error) {
	t.Helper()
	return NewModule(path).parse()
}

func TestParseObject(t *testing.T) {
	spec, err := parseFile(t, testObject(t))
	if err != nil {
		t.Fatal(err)
	}
	if spec.License != "GPL" || spec.Version != useCurrentKernelVersion {
		t.Errorf("license %q version %#x", spec.License, spec.Version)
	}
	maps := map[string]*mapSpec{}
	for _, m := range spec.Maps {
		maps[m.Name] = m
	}
	want := map[string]mapSpec{
		"config":        {Section: "maps/config", Type: 2, KeySize: 4, ValueSize: 4, MaxEntries: 4},
		"counters":      {Section: "maps/counters", Type: 2, KeySize: 4, ValueSize: 8, MaxEntries: 16},
		"pinned_global": {Section: "maps/pinned_global", Type: 1, KeySize: 4, ValueSize: 8, MaxEntries: 8, Pinning: PIN_GLOBAL_NS, Namespace: "gobpf_elf_test"},
		"pinned_custom": {Section: "maps/pinned_custom", Type: 2, KeySize: 4, ValueSize: 8, MaxEntries: 2, Pinning: PIN_CUSTOM_NS},
		"pinned_object": {Section: "maps/pinned_object", Type: 2, KeySize: 4, ValueSize: 8, MaxEntries: 2, Pinning: PIN_OBJECT_NS},
		"events":        {Section: ".maps", Type: 4, KeySize: 4, ValueSize: 4, BTF: true},
		"hash_map":      {Section: ".maps", Type: 1, KeySize: 4, ValueSize: 24, MaxEntries: 64, BTF: true},
		"percpu_map":    {Section: ".maps", Type: 6, KeySize: 4, ValueSize: 8, MaxEntries: 4, BTF: true},
		"lru_map":       {Section: ".maps", Type: 9, KeySize: 8, ValueSize: 4, MaxEntries: 4, BTF: true},
		"lpm_map":       {Section: ".maps", Type: 11, KeySize: 8, ValueSize: 4, MaxEntries: 16, Flags: 1, BTF: true},
		"jmp_table":     {Section: ".maps", Type: 3, KeySize: 4, ValueSize: 4, MaxEntries: 4, BTF: true},
	}
	if len(maps) != len(want) {
		t.Errorf("got %d maps, want %d", len(maps), len(want))
	}
	for name, w := range want {
		m, ok := maps[name]
		if !ok {
			t.Errorf("map %q missing", name)
			continue
		}
		w.Name = name
		got := *m
		got.btfKey, got.btfValue = 0, 0 // BTF type ids: checked by TestModernMapBTF
		if got != w {
			t.Errorf("map %q = %+v, want %+v", name, got, w)
		}
	}
	progs := map[string]*progSpec{}
	for _, p := range spec.Progs {
		progs[p.Section] = p
	}
	wantProgs := map[string]struct {
		kind progKind
		typ  bpfsys.ProgType
		fn   string
	}{
		"tracepoint/syscalls/sys_enter_getppid": {kindTracepoint, bpfsys.BPF_PROG_TYPE_TRACEPOINT, "tp_getppid"},
		"raw_tracepoint/sys_enter":              {kindRawTracepoint, bpfsys.BPF_PROG_TYPE_RAW_TRACEPOINT, "raw_sys_enter"},
		"kprobe/do_sys_openat2":                 {kindKprobe, bpfsys.BPF_PROG_TYPE_KPROBE, "kprobe_openat2"},
		"kretprobe/do_sys_openat2":              {kindKretprobe, bpfsys.BPF_PROG_TYPE_KPROBE, "kretprobe_openat2"},
		"uprobe/target_func":                    {kindUprobe, bpfsys.BPF_PROG_TYPE_KPROBE, "uprobe_target"},
		"uretprobe/target_func":                 {kindUretprobe, bpfsys.BPF_PROG_TYPE_KPROBE, "uretprobe_target"},
		"socket/drop_d":                         {kindSocketFilter, bpfsys.BPF_PROG_TYPE_SOCKET_FILTER, "socket_drop_d"},
		"socket/tail_target":                    {kindSocketFilter, bpfsys.BPF_PROG_TYPE_SOCKET_FILTER, "socket_tail_target"},
		"socket/tail_caller":                    {kindSocketFilter, bpfsys.BPF_PROG_TYPE_SOCKET_FILTER, "socket_tail_caller"},
		"cgroup/skb":                            {kindCgroupSkb, bpfsys.BPF_PROG_TYPE_CGROUP_SKB, "cgroup_skb_filter"},
		"cgroup/sock":                           {kindCgroupSock, bpfsys.BPF_PROG_TYPE_CGROUP_SOCK, "cgroup_sock_create"},
		"xdp/udp_drop":                          {kindXDP, bpfsys.BPF_PROG_TYPE_XDP, "xdp_udp_drop"},
	}
	if len(progs) != len(wantProgs) {
		t.Errorf("got %d programs, want %d", len(progs), len(wantProgs))
	}
	for sec, w := range wantProgs {
		p, ok := progs[sec]
		if !ok {
			t.Errorf("program %q missing", sec)
			continue
		}
		if p.Kind != w.kind || p.Type != w.typ || p.FuncName != w.fn {
			t.Errorf("program %q: kind %d type %d func %q, want %d %d %q", sec, p.Kind, p.Type, p.FuncName, w.kind, w.typ, w.fn)
		}
		for _, r := range p.relocs {
			if p.Insns[r.insn].Code != opLdImm64 {
				t.Errorf("program %q: relocation at %d is not ld_imm64", sec, r.insn)
			}
		}
	}
	// cgroup/skb and xdp call udp_dport_is in .text: it must be linked in,
	// with the call pointing at it.
	for _, sec := range []string{"cgroup/skb", "xdp/udp_drop"} {
		p := progs[sec]
		calls := 0
		for i, in := range p.Insns {
			if in.Code == opCall && in.Regs>>4 == pseudoCall {
				calls++
				tgt := i + 1 + int(in.Imm)
				if tgt <= i || tgt >= len(p.Insns) {
					t.Errorf("%s: call at %d targets %d of %d", sec, i, tgt, len(p.Insns))
				}
			}
		}
		if calls != 1 {
			t.Errorf("%s: %d bpf-to-bpf calls, want 1", sec, calls)
		}
	}
}

func TestParseErrors(t *testing.T) {
	obj, err := os.ReadFile(testObject(t))
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		path string
		want string
	}{
		{name: "empty", data: nil, want: "EOF"},
		{name: "garbage", data: []byte("this is not an ELF object at all, just text"), want: "bad magic"},
		{name: "header only", data: obj[:64], want: ""},
		{name: "truncated", data: obj[:len(obj)/2], want: ""},
		{name: "host binary", path: exe, want: "EM_BPF"},
		{name: "missing file", path: "/nonexistent/gobpf.o", want: "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m *Module
			if tc.path != "" {
				m = NewModule(tc.path)
			} else {
				m = NewModuleFromReader(bytes.NewReader(tc.data))
			}
			_, err := m.parse()
			if err == nil {
				t.Fatal("parse succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			// Load must fail the same way, without creating anything.
			if err := m.Load(nil); err == nil {
				t.Error("Load succeeded")
			}
			if err := m.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

func TestParseUnsupported(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unknown section", `SEC("no_such_family/x") int f(void *ctx) { return 0; }`, `unknown program section "no_such_family/x"`},
		{"bad map def", `struct { int a, b; } small SEC("maps/small") = {1, 2};
SEC("socket/x") int f(void *ctx) { return 0; }`, "map definition is 8 bytes"},
		{"btf member", `struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __type(key, int); __type(value, int); __uint(weird, 3); } m SEC(".maps");
SEC("socket/x") int f(void *ctx) { int k = 0; return bpf_map_lookup_elem(&m, &k) != 0; }`, `unsupported BTF map member "weird"`},
		{"two programs", `SEC("socket/x") int f(void *ctx) { return 0; }
SEC("socket/x") int g(void *ctx) { return 1; }`, "one program per section"},
		{"short classic def and BTF map", `struct { int t, k, v, m; } short_def SEC("maps/short_def") = {1, 4, 4, 1};
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __type(key, int); __type(value, int); } btf_map SEC(".maps");
SEC("socket/x") int f(void *ctx) { int k = 0; return bpf_map_lookup_elem(&short_def, &k) != 0 && bpf_map_lookup_elem(&btf_map, &k) != 0; }`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFile(t, compileSnippet(t, tc.src))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// FuzzNewModule feeds arbitrary bytes to the object parser: it must return
// an error or a consistent spec, never panic. Run it with
//
//	go test -run XXX -fuzz FuzzNewModule -fuzztime 150000x ./elf/
//
// The seeds are small objects (1 and 7 KB: a classic map, a BTF map, a .text
// subprogram and their relocations), so that the fuzzer spends its time
// fuzzing rather than minimizing large inputs (make fuzz also bounds
// -fuzzminimizetime).
func FuzzNewModule(f *testing.F) {
	for _, debug := range []string{"-g0", "-g"} {
		src := fuzzSeedSrc
		if debug == "-g0" { // no BTF: no .maps
			src = strings.ReplaceAll(src, "long *w = bpf_map_lookup_elem(&h, &k);", "long *w = v;")
			src = strings.ReplaceAll(src, ` h SEC(".maps");`, " h;")
		}
		obj, err := os.ReadFile(compileSnippetFlags(f, src, debug))
		if err != nil {
			f.Fatal(err)
		}
		if _, err := NewModuleFromReader(bytes.NewReader(obj)).parse(); err != nil {
			f.Fatalf("seed (%s, %d bytes): %v", debug, len(obj), err)
		}
		f.Add(obj)
		for _, n := range []int{0, 4, 16, 64, 100, 512, len(obj) / 2, len(obj) - 1} {
			if n >= 0 && n <= len(obj) {
				f.Add(obj[:n])
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := NewModuleFromReader(bytes.NewReader(data))
		spec, err := m.parse()
		if err != nil {
			if spec != nil {
				t.Fatal("spec and error")
			}
			return
		}
		for _, p := range spec.Progs {
			if len(p.Insns) == 0 {
				t.Fatalf("%s: no instructions", p.Section)
			}
			for _, r := range p.relocs {
				if r.insn < 0 || r.insn+1 >= len(p.Insns) {
					t.Fatalf("%s: relocation %d out of %d instructions", p.Section, r.insn, len(p.Insns))
				}
			}
		}
	})
}

func TestKernelVersionFromReleaseString(t *testing.T) {
	for in, want := range map[string]uint32{
		"4.4.2-1":               0x040402,
		"6.1.0-18-amd64":        0x060100,
		"5.15.300":              0x050fff,
		"6.18":                  0x061200,
		"4.19.0-6-cloud-amd64+": 0x041300,
	} {
		got, err := KernelVersionFromReleaseString(in)
		if err != nil || got != want {
			t.Errorf("%q: %#x, %v; want %#x", in, got, err, want)
		}
	}
	if _, err := KernelVersionFromReleaseString("linux"); err == nil {
		t.Error("no error for a bad release")
	}
	if v, err := CurrentKernelVersion(); err != nil || v == 0 {
		t.Errorf("CurrentKernelVersion: %#x, %v", v, err)
	}
}

func TestErrorsWrap(t *testing.T) {
	m := NewModule("/nonexistent")
	if err := m.EnableKprobe("kprobe/x", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("EnableKprobe on unloaded module: %v", err)
	}
}

const fuzzSeedSrc = `struct bpf_map_def { unsigned int type, key_size, value_size, max_entries, map_flags; };
struct bpf_map_def SEC("maps/c") c = {BPF_MAP_TYPE_ARRAY, 4, 8, 4};
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __type(key, int); __type(value, long); } h SEC(".maps");
__attribute__((noinline)) int sub(int x) { return x + 1; }
SEC("socket/x") int f(void *ctx) { int k = 0; long *v = bpf_map_lookup_elem(&c, &k); long *w = bpf_map_lookup_elem(&h, &k); return sub(v && w); }
`
