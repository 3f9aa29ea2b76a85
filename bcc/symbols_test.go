package bcc

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/iovisor/gobpf/internal/testutil"
)

// kallsymsAddr returns the address of a text symbol in /proc/kallsyms.
func kallsymsAddr(t *testing.T, name string) uint64 {
	t.Helper()
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 3 && fs[2] == name && (fs[1] == "T" || fs[1] == "t") {
			a, err := strconv.ParseUint(fs[0], 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			if a == 0 {
				t.Fatalf("kallsyms shows %s at 0 (kptr_restrict?)", name)
			}
			return a
		}
	}
	t.Fatalf("%s not in /proc/kallsyms", name)
	return 0
}

func TestSymbolizeKernel(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	addr := kallsymsAddr(t, "__x64_sys_getppid")
	c, err := NewSymbolCache(-1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.Resolve(addr + 0x10)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "__x64_sys_getppid" || s.Offset != 0x10 || !s.Kernel {
		t.Fatalf("resolved %+v", s)
	}
	if got := s.String(); got != "__x64_sys_getppid+0x10" {
		t.Fatalf("String() = %q", got)
	}
	s, err = ResolveKernelSymbol(addr)
	if err != nil || s.String() != "__x64_sys_getppid+0x0" {
		t.Fatalf("ResolveKernelSymbol = %v, %v", s, err)
	}
	if _, err := c.Resolve(0x10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Resolve(0x10) err = %v, want ErrNotFound", err)
	}
	c.Close()
	if _, err := c.Resolve(addr); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close err = %v, want ErrClosed", err)
	}
	c.Close()
}

// TestSymbolizeUserSelf resolves an address of libc's atoi as mapped in
// this test process (go test strips the test binary itself).
func TestSymbolizeUserSelf(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	libc, off, err := ResolveSymbolAddress("c", "atoi", -1)
	if err != nil {
		t.Fatal(err)
	}
	libc, _ = filepath.EvalSymlinks(libc)
	addr := mapVirtAddr(t, os.Getpid(), libc, off)
	c, err := NewSymbolCache(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.Resolve(addr + 4)
	if err != nil {
		t.Fatalf("%+v: %v", s, err)
	}
	if s.Name != "atoi" || s.Offset != 4 || s.Kernel || s.Module != libc {
		t.Fatalf("resolved %+v, want %s:atoi+0x4", s, libc)
	}
	if got := s.String(); got != libc+":atoi+0x4" {
		t.Fatalf("String() = %q", got)
	}
	// The reverse lookup, by short name and by path, gives the address.
	for _, m := range []string{"c", libc} {
		a, err := c.ResolveName(m, "atoi")
		if err != nil || a != addr {
			t.Fatalf("ResolveName(%q) = 0x%x, %v; want 0x%x", m, a, err, addr)
		}
	}
	if _, err := c.ResolveName("c", "no_such_symbol_gobpf"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ResolveName(missing) err = %v", err)
	}
	if _, err := NewSymbolCache(0); err == nil {
		t.Fatal("NewSymbolCache(0) succeeded")
	}
}

// mapVirtAddr converts a file offset in binary to its address in pid.
func mapVirtAddr(t *testing.T, pid int, binary string, off uint64) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		fs := strings.Fields(l)
		if len(fs) < 6 || fs[5] != binary {
			continue
		}
		r := strings.SplitN(fs[0], "-", 2)
		lo, _ := strconv.ParseUint(r[0], 16, 64)
		hi, _ := strconv.ParseUint(r[1], 16, 64)
		foff, _ := strconv.ParseUint(fs[2], 16, 64)
		if off >= foff && off < foff+hi-lo {
			return lo + off - foff
		}
	}
	t.Fatalf("offset 0x%x of %s not mapped in %d", off, binary, pid)
	return 0
}

const symProg = `
#include <stdio.h>
#include <unistd.h>
int target_fn(int x) { return x + 1; }
int main(void) {
	printf("%p\n", (void *)target_fn);
	fflush(stdout);
	char b[1];
	read(0, b, 1);
	return target_fn(0) - 1;
}
`

func TestSymbolizeUserBinary(t *testing.T) {
	bin := testutil.BuildC(t, symProg)
	defer testutil.CheckLeaks(t)()
	cmd := exec.Command(bin)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		in.Close()
		cmd.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	addr, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(line), "0x"), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewSymbolCache(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.Resolve(addr + 8)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "target_fn" || s.Offset != 8 || filepath.Base(s.Module) != "prog" {
		t.Fatalf("resolved %+v", s)
	}
	if got, want := s.String(), fmt.Sprintf("%s:target_fn+0x8", s.Module); got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}

	for _, mod := range []string{"", bin} {
		if a, err := c.ResolveName(mod, "target_fn"); err != nil || a != addr {
			t.Fatalf("ResolveName(%q, target_fn) = 0x%x, %v; want 0x%x", mod, a, err, addr)
		}
	}

	// The file offset ResolveSymbolAddress gives is where the
	// function's bytes are in the file: compare with the process's maps.
	path, off, err := ResolveSymbolAddress(bin, "target_fn", -1)
	if err != nil {
		t.Fatal(err)
	}
	if path != bin || off == 0 {
		t.Fatalf("ResolveSymbolAddress = %q, 0x%x", path, off)
	}
	if got := mapFileOffset(t, cmd.Process.Pid, addr); got != off {
		t.Fatalf("file offset of target_fn: maps say 0x%x, ResolveSymbolAddress 0x%x", got, off)
	}
}

// mapFileOffset converts a virtual address in pid to its file offset.
func mapFileOffset(t *testing.T, pid int, addr uint64) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		fs := strings.Fields(l)
		if len(fs) < 3 {
			continue
		}
		r := strings.SplitN(fs[0], "-", 2)
		lo, _ := strconv.ParseUint(r[0], 16, 64)
		hi, _ := strconv.ParseUint(r[1], 16, 64)
		off, _ := strconv.ParseUint(fs[2], 16, 64)
		if addr >= lo && addr < hi {
			return addr - lo + off
		}
	}
	t.Fatalf("0x%x not mapped in %d", addr, pid)
	return 0
}

func TestResolveSymbolAddress(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	path, addr, err := ResolveSymbolAddress("c", "strlen", -1)
	if err != nil {
		t.Fatal(err)
	}
	if addr == 0 || !strings.Contains(filepath.Base(path), "libc") {
		t.Fatalf("strlen in %q at 0x%x", path, addr)
	}
	if _, _, err := ResolveSymbolAddress("c", "no_such_symbol_gobpf", -1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing symbol err = %v, want ErrNotFound", err)
	}
	if _, _, err := ResolveSymbolAddress("no_such_lib_gobpf", "strlen", -1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing library err = %v, want ErrNotFound", err)
	}
	if _, _, err := ResolveSymbolAddress("", "strlen", -1); err == nil {
		t.Fatal("empty binary accepted")
	}
	syms, err := matchUserSymbols("c", "^strlen$")
	if err != nil || len(syms) == 0 {
		t.Fatalf("matchUserSymbols = %v, %v", syms, err)
	}
}
