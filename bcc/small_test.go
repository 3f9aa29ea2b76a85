package bcc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/testutil"
)

// TestModuleTable gets tables by name: a known one reads what the program
// counted, an unknown one is ErrNotFound naming it, everywhere.
func TestModuleTable(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	m := mustNewModule(t, closeSource+"BPF_PERF_OUTPUT(events);\n", fmt.Sprintf("-DTGID=%d", os.Getpid()))
	fd, err := m.LoadTracepoint("tracepoint__syscalls__sys_enter_getppid")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AttachTracepoint("syscalls:sys_enter_getppid", fd); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		unix.Getppid()
	}
	hits, err := m.Table("hits")
	if err != nil {
		t.Fatal(err)
	}
	v, err := hits.Get([]byte{0, 0, 0, 0})
	if err != nil || len(v) != 8 || v[0] != 4 {
		t.Errorf("hits[0] = %v, %v; want 4", v, err)
	}
	// A missing key is ErrKeyNotExist and fs.ErrNotExist (gobpf gave ENOENT).
	if _, err := hits.Get([]byte{9, 0, 0, 0}); !errors.Is(err, ErrKeyNotExist) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing key: err = %v, want ErrKeyNotExist and fs.ErrNotExist", err)
	}
	if _, err := m.Table("typo_table"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"typo_table"`) {
		t.Errorf("Table(typo_table): err = %v, want ErrNotFound naming it", err)
	}
	// The gobpf way: the name reaches the errors of what uses the table.
	bad := NewTable(m.TableId("typo_perf"), m)
	_, err = NewPerfReader(bad)
	_, err2 := bad.Get([]byte{0, 0, 0, 0})
	for _, e := range []error{err, err2} {
		if !errors.Is(e, ErrNotFound) || !strings.Contains(e.Error(), "typo_perf") || strings.Count(e.Error(), "bcc:") != 1 {
			t.Errorf("unknown table: err = %v, want ErrNotFound naming typo_perf, bcc: once", e)
		}
	}
	if bad.Name() != "" || bad.Config() != nil {
		t.Errorf("unknown table: Name %q, Config %v; want none", bad.Name(), bad.Config())
	}
	m.Close()
	if _, err := m.Table("hits"); !errors.Is(err, ErrClosed) {
		t.Errorf("Table after Close: err = %v, want ErrClosed", err)
	}
}

// TestErrorPrefixOnce checks that failure paths through several layers
// say "bcc: " once, at the start.
func TestErrorPrefixOnce(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	m := mustNewModule(t, closeSource, "-DTGID=1")
	defer m.Close()
	fd, err := m.LoadUprobe("on_uprobe")
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	_, err = m.Load("no_such_function", BPF_PROG_TYPE_KPROBE, 0, 0)
	add(err)
	add(m.AttachUprobe("c", "no_such_symbol_gobpf", fd, -1))
	add(m.AttachUprobe("no_such_lib_gobpf", "strlen", fd, -1))
	add(m.AttachMatchingUprobes("c", "^no_such_gobpf$", fd, -1))
	add(m.AttachTracepoint("nosuch:tracepoint", fd))
	_, err = m.StackTable("no_such_stack")
	add(err)
	_, err = m.StackTrace("hits", 1)
	add(err)
	_, err = NewPerfReader(NewTable(m.TableId("no_such_perf"), m))
	add(err)
	_, err = NewRingBufReader(NewTable(m.TableId("no_such_ring"), m))
	add(err)
	_, _, err = ResolveSymbolAddress("c", "no_such_symbol_gobpf", -1)
	add(err)
	_, err = NewTable(m.TableId("hits"), m).Get([]byte{1})
	add(err)
	_, err = NewTable(m.TableId("hits"), m).Get([]byte{9, 0, 0, 0})
	add(err)
	_, err = NewModuleWithError("int f(", nil)
	add(err)
	m2 := mustNewModule(t, closeSource, "-DTGID=1")
	tb := NewTable(m2.TableId("hits"), m2)
	m2.Close()
	_, err = tb.Get([]byte{0, 0, 0, 0})
	add(err)
	_, err = m2.LoadTracepoint("x")
	add(err)
	for i, err := range errs {
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "bcc: ") || strings.Count(msg, "bcc:") != 1 {
			t.Errorf("case %d: %q: want \"bcc: \" once, at the start", i, msg)
		}
	}
}

// TestExitedProcess attaches to and resolves in a process that has exited
// (reaped, and a zombie): the error says so.
func TestExitedProcess(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	m := mustNewModule(t, closeSource, "-DTGID=1")
	defer m.Close()
	fd, err := m.LoadUprobe("on_uprobe")
	if err != nil {
		t.Fatal(err)
	}
	reaped := exec.Command("true")
	if err := reaped.Run(); err != nil {
		t.Fatal(err)
	}
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for it to exit without reaping it.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, zombie.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	defer zombie.Wait()
	for _, pid := range []int{reaped.Process.Pid, zombie.Process.Pid} {
		want := fmt.Sprintf("process %d has exited", pid)
		errs := []error{
			m.AttachUprobe("c", "strlen", fd, pid),
			m.AttachUretprobe("c", "strlen", fd, pid),
			m.AttachMatchingUprobes("c", "^strlen$", fd, pid),
		}
		_, _, err := ResolveSymbolAddress("c", "strlen", pid)
		errs = append(errs, err)
		for i, err := range errs {
			if !errors.Is(err, ErrNotFound) || !strings.Contains(fmt.Sprint(err), want) {
				t.Errorf("pid %d, case %d: err = %v, want ErrNotFound saying %q", pid, i, err, want)
			}
		}
	}
	// A live process still works.
	if _, _, err := ResolveSymbolAddress("c", "strlen", os.Getpid()); err != nil {
		t.Errorf("own pid: %v", err)
	}
}

// TestResolveUnnamedMappings resolves addresses in a deleted binary's and
// in a memfd's mappings: Offset is relative to the mapped file.
func TestResolveUnnamedMappings(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	const page = 4096
	content := make([]byte, 4*page)
	mapAt := func(fd int) []byte {
		t.Helper()
		// Map the file's second and third page, executable (libbcc
		// looks at executable mappings).
		b, err := unix.Mmap(fd, page, 2*page, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// A deleted file.
	path := filepath.Join(t.TempDir(), "gobpf-deleted-bin")
	if err := os.WriteFile(path, content, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	deleted := mapAt(int(f.Fd()))
	f.Close()
	os.Remove(path)
	defer unix.Munmap(deleted)
	// A memfd.
	mfd, err := unix.MemfdCreate("gobpf-memfd", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(mfd, content); err != nil {
		t.Fatal(err)
	}
	memfd := mapAt(mfd)
	unix.Close(mfd)
	defer unix.Munmap(memfd)

	c, err := NewSymbolCache(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		name, module string
		m            []byte
	}{
		{"deleted", "gobpf-deleted-bin (deleted)", deleted},
		{"memfd", "memfd:gobpf-memfd", memfd},
	} {
		addr := uint64(uintptrOf(tc.m)) + page + 0x123 // the file's third page
		s, err := c.Resolve(addr)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound (no symbol)", tc.name, err)
		}
		if !strings.Contains(s.Module, tc.module) || s.Offset != 2*page+0x123 || s.Name != "" {
			t.Errorf("%s: resolved to %+v (%s), want module %q offset %#x", tc.name, s, s, tc.module, 2*page+0x123)
		}
		if got := s.String(); !strings.HasSuffix(got, "+0x2123") {
			t.Errorf("%s: String() = %q", tc.name, got)
		}
	}
}

func TestSymbolStringEmpty(t *testing.T) {
	for _, tc := range []struct {
		s    Symbol
		want string
	}{
		{Symbol{}, ""},
		{Symbol{Kernel: true}, ""},
		{Symbol{Offset: 0x10}, "0x10"},
		{Symbol{Name: "f", Offset: 0x10, Kernel: true}, "f+0x10"},
		{Symbol{Module: "/bin/x", Offset: 0x10}, "/bin/x+0x10"},
		{Symbol{Name: "f", Module: "/bin/x", Offset: 0x10}, "/bin/x:f+0x10"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.s, got, tc.want)
		}
	}
}

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }
