package ksym

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/testutil"
	"golang.org/x/sys/unix"
)

const fixed = `ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81377c60 t __do_sys_getppid
ffffffff81377c60 T __ia32_sys_getppid
ffffffff81377c60 T __x64_sys_getppid
ffffffff81377c80 t helper
ffffffff81377ca0 t local_a
ffffffff81377ca0 t local_b
ffffffff81200000 t helper
ffffffffc0025b80 t bpf_dispatcher_xdp	[bpf]
ffffffffc0a00000 t mod_fn	[mymod]
`

func TestParseFixed(t *testing.T) {
	tab, err := Parse(strings.NewReader(fixed))
	if err != nil {
		t.Fatal(err)
	}
	if tab.Len() != 11 {
		t.Fatalf("Len() = %d, want 11", tab.Len())
	}
	for _, tc := range []struct {
		addr   uint64
		name   string
		off    uint64
		module string
	}{
		{0xffffffff81000000, "_stext", 0, ""},
		{0xffffffff81000001, "_stext", 1, ""},
		{0xffffffff81377c60, "__ia32_sys_getppid", 0, ""}, // first global alias
		{0xffffffff81377c61, "__ia32_sys_getppid", 1, ""},
		{0xffffffff81377c9f, "helper", 0x1f, ""},
		{0xffffffff81377ca4, "local_a", 4, ""}, // no global alias: the first
		{0xffffffff81200010, "helper", 0x10, ""},
		{0xffffffffc0025b80, "bpf_dispatcher_xdp", 0, "bpf"},
		{0xffffffffc0a00123, "mod_fn", 0x123, "mymod"},
		{0xffffffffffffffff, "mod_fn", 0xffffffffffffffff - 0xffffffffc0a00000, "mymod"},
	} {
		sym, off, err := tab.Resolve(tc.addr)
		if err != nil || sym.Name != tc.name || off != tc.off || sym.Module != tc.module {
			t.Errorf("Resolve(%#x) = %+v+%#x, %v; want %s+%#x [%s]", tc.addr, sym, off, err, tc.name, tc.off, tc.module)
		}
	}
	if sym, off, err := tab.Resolve(0xffffffff80ffffff); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve below the first symbol = %+v+%d, %v; want ErrNotFound", sym, off, err)
	}
	if _, _, err := tab.Resolve(0); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve(0): %v, want ErrNotFound", err)
	}

	for _, tc := range []struct {
		name string
		addr uint64
		typ  byte
	}{
		{"_text", 0xffffffff81000000, 'T'},
		{"__do_sys_getppid", 0xffffffff81377c60, 't'},
		{"__x64_sys_getppid", 0xffffffff81377c60, 'T'},
		{"helper", 0xffffffff81200000, 't'}, // duplicate name: lowest address
		{"mod_fn", 0xffffffffc0a00000, 't'},
	} {
		sym, err := tab.Lookup(tc.name)
		if err != nil || sym.Addr != tc.addr || sym.Type != tc.typ {
			t.Errorf("Lookup(%s) = %+v, %v; want %#x %c", tc.name, sym, err, tc.addr, tc.typ)
		}
	}
	for _, name := range []string{"", "nope", "_tex", "_textt", "zzz"} {
		if sym, err := tab.Lookup(name); !errors.Is(err, ErrNotFound) {
			t.Errorf("Lookup(%q) = %+v, %v; want ErrNotFound", name, sym, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{"", "no symbols"},
		{"\n\n", "no symbols"},
		{"ffffffff81000000 T\n", "line 1"},
		{"ffffffff81000000 T _text\nzz T foo\n", "line 2: bad address"},
		{"ffffffff81000000 TT _text\n", "bad symbol type"},
		{"ffffffff81000000 T _text mod\n", "bad module field"},
		{"ffffffff81000000 T _text [a] extra\n", "line 1"},
		{"1ffffffff81000000 T _text\n", "bad address"},
	} {
		tab, err := Parse(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Parse(%q) = %v, %v; want an error with %q", tc.in, tab, err, tc.msg)
		}
	}
	hidden := "0000000000000000 T _stext\n0000000000000000 T _text\n0000000000000000 t mod_fn\t[m]\n"
	if _, err := Parse(strings.NewReader(hidden)); !errors.Is(err, ErrAddressesHidden) {
		t.Errorf("all-zero addresses: %v, want ErrAddressesHidden", err)
	}
}

func TestParseHex(t *testing.T) {
	for in, want := range map[string]uint64{
		"ffffffff81377c60":   0xffffffff81377c60,
		"0xffffffff81377c60": 0xffffffff81377c60,
		"FFFFFFFF81377C60":   0xffffffff81377c60,
		" 10\n":              0x10,
	} {
		if got, err := parseHex(in); err != nil || got != want {
			t.Errorf("parseHex(%q) = %#x, %v; want %#x", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0x", "g", "-1", "1ffffffffffffffff"} {
		if got, err := parseHex(in); err == nil {
			t.Errorf("parseHex(%q) = %#x, want an error", in, got)
		}
	}
	if _, err := Ksym("not hex"); err == nil || !strings.Contains(err.Error(), "not hex") {
		t.Errorf("Ksym(bad) error %v", err)
	}
}

// scanKallsyms reads /proc/kallsyms independently of the package: the
// addresses of name, and every symbol at addr.
func scanKallsyms(t *testing.T, name string) (addrs []uint64, byAddr map[uint64][]string) {
	t.Helper()
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	byAddr = map[uint64][]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		fl := strings.Fields(s.Text())
		a, err := strconv.ParseUint(fl[0], 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		byAddr[a] = append(byAddr[a], fl[1]+" "+fl[2])
		if fl[2] == name {
			addrs = append(addrs, a)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return addrs, byAddr
}

func TestRealKallsyms(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	const name = "__x64_sys_getppid"
	want, byAddr := scanKallsyms(t, name)
	if len(want) != 1 {
		t.Fatalf("/proc/kallsyms lists %s at %x", name, want)
	}
	addr, err := Lookup(name)
	if err != nil || addr != want[0] {
		t.Fatalf("Lookup(%s) = %#x, %v; want %#x", name, addr, err, want[0])
	}
	// The expected alias by the documented rule: the first global one.
	aliases := byAddr[addr]
	expect := strings.Fields(aliases[0])[1]
	for _, a := range aliases {
		if f := strings.Fields(a); f[0] >= "A" && f[0] <= "Z" {
			expect = f[1]
			break
		}
	}
	for off := uint64(0); off < 4; off++ {
		got, gotOff, err := Resolve(addr + off)
		if err != nil || got != expect || gotOff != off {
			t.Fatalf("Resolve(%s+%d) = %s+%d, %v; want %s+%d (aliases %v)", name, off, got, gotOff, err, expect, off, aliases)
		}
	}
	if got, err := Ksym(fmt.Sprintf("%016x", addr)); err != nil || got != expect {
		t.Fatalf("Ksym(%016x) = %q, %v; want %q", addr, got, err, expect)
	}
	if got, err := Ksym(fmt.Sprintf("0x%x", addr+2)); err != nil || got != expect {
		t.Fatalf("Ksym(%#x) = %q, %v; want %q", addr+2, got, err, expect)
	}
	if got, err := Kaddr(name); err != nil || got != fmt.Sprintf("%016x", want[0]) {
		t.Fatalf("Kaddr(%s) = %q, %v", name, got, err)
	}
	if _, err := Lookup("no_such_symbol_gobpf"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Lookup(missing) = %v, want ErrNotFound", err)
	}
	// Below the lowest symbol (with CONFIG_KALLSYMS_ALL, per-CPU variables
	// sit at small offsets from 0, so do not assume a fixed address).
	lowest := ^uint64(0)
	for a := range byAddr {
		lowest = min(lowest, a)
	}
	if lowest > 0 {
		if _, _, err := Resolve(lowest - 1); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Resolve(%#x), below the lowest symbol: %v, want ErrNotFound", lowest-1, err)
		}
	}
	if got, off, err := Resolve(lowest); err != nil || off != 0 || byAddr[lowest] == nil {
		t.Fatalf("Resolve(lowest %#x) = %s+%d, %v", lowest, got, off, err)
	}
	// Every line but BPF programs' (which other tests load and unload
	// concurrently) is in the table.
	if err := Reload(); err != nil {
		t.Fatal(err)
	}
	tab, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(string(b), "\n") - strings.Count(string(b), "\t[bpf]\n")
	n := 0
	for _, s := range tab.syms {
		if s.Module != "bpf" {
			n++
		}
	}
	if n != lines {
		t.Fatalf("table has %d non-BPF symbols, /proc/kallsyms %d lines", n, lines)
	}
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("/proc/kallsyms")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		if _, err := Parse(strings.NewReader(string(data))); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResolve(b *testing.B) {
	addr, err := Lookup("__x64_sys_getppid")
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if _, _, err := Resolve(addr + 3); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBPFProgSymbol loads a BPF program, whose JIT image the kernel lists in
// kallsyms as bpf_prog_<tag>_<name> [bpf]: it is absent from the cached
// table until Reload, then resolves like any kernel function.
func TestBPFProgSymbol(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	if _, err := Load(); err != nil {
		t.Fatal(err)
	}
	fd, err := bpfsys.ProgLoad(&bpfsys.ProgLoadAttr{
		Type:    bpfsys.BPF_PROG_TYPE_SOCKET_FILTER,
		Insns:   []bpfsys.Insn{bpfsys.MovImm(0, 7), bpfsys.MovImm(0, 0), bpfsys.Exit()},
		License: "GPL",
		Name:    "ksym_test",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	info, err := bpfsys.GetProgInfo(fd)
	if err != nil {
		t.Fatal(err)
	}
	name := "bpf_prog_" + hex.EncodeToString(info.Tag[:]) + "_ksym_test"
	if _, err := Lookup(name); !errors.Is(err, ErrNotFound) {
		// Another test of this package may have reloaded already; only the
		// cached table before Reload is expected to lack the symbol.
		t.Logf("before Reload: %v", err)
	}
	if err := Reload(); err != nil {
		t.Fatal(err)
	}
	addr, err := Lookup(name)
	if err != nil {
		t.Fatalf("Lookup(%s) after Reload: %v", name, err)
	}
	tab, _ := Load()
	sym, off, err := tab.Resolve(addr + 5)
	if err != nil || sym.Name != name || off != 5 || sym.Module != "bpf" || sym.Addr != addr {
		t.Fatalf("Resolve(%s+5) = %+v+%d, %v", name, sym, off, err)
	}
	// Once the program is gone and the table reloaded, the name is too.
	unix.Close(fd)
	fd = -1
	deadline := 100
	for ; deadline > 0; deadline-- {
		if err := Reload(); err != nil {
			t.Fatal(err)
		}
		if _, err := Lookup(name); errors.Is(err, ErrNotFound) {
			break
		}
		// The kernel frees programs after an RCU grace period.
		unix.Nanosleep(&unix.Timespec{Nsec: 20e6}, nil)
	}
	if deadline == 0 {
		t.Fatalf("%s still in kallsyms after closing the program", name)
	}
}

// TestAll: every symbol once, by address, equal addresses in file order.
func TestAll(t *testing.T) {
	tab, err := Parse(strings.NewReader(fixed))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for s := range tab.All() {
		got = append(got, fmt.Sprintf("%x %c %s", s.Addr, s.Type, s.Name))
		if len(got) == 5 {
			break // stopping early must be fine
		}
	}
	want := []string{
		"ffffffff81000000 T _stext",
		"ffffffff81000000 T _text",
		"ffffffff81200000 t helper",
		"ffffffff81377c60 t __do_sys_getppid",
		"ffffffff81377c60 T __ia32_sys_getppid",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("All() = %q, want %q", got, want)
	}
	n := 0
	for range tab.All() {
		n++
	}
	if n != tab.Len() {
		t.Errorf("All() gave %d symbols, Len() = %d", n, tab.Len())
	}
}
