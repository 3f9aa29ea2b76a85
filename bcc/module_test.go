package bcc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/testutil"
	"github.com/iovisor/gobpf/pkg/ksym"
)

func TestCompileError(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	const bad = `
int broken(void *ctx) {
	return undeclared_gobpf_identifier + 1;
}
`
	m, err := NewModuleWithError(bad, nil)
	if m != nil || err == nil {
		t.Fatalf("NewModuleWithError = %v, %v; want nil and an error", m, err)
	}
	var ce *CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %T, want *CompileError", err)
	}
	for _, want := range []string{"undeclared_gobpf_identifier", "error:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("diagnostics lack %q:\n%v", want, err)
		}
	}
	// A syntax error, and a diagnostic larger than a pipe buffer: the
	// capture must not block.
	var big strings.Builder
	for i := 0; i < 400; i++ {
		fmt.Fprintf(&big, "int f%d(void *ctx) { return gobpf_missing_%d; }\n", i, i)
	}
	_, err = NewModuleWithError(big.String(), nil)
	if err == nil || !strings.Contains(err.Error(), "gobpf_missing_0") {
		t.Errorf("big diagnostics: err = %.300v", err)
	}
	if m := NewModule("int f(void *ctx) { return 0 ", nil); m != nil {
		m.Close()
		t.Error("NewModule of bad C returned a module")
	}
	// stderr is back in place: fd 2 is what it was before.
	var before, after unix.Stat_t
	unix.Fstat(int(os.Stderr.Fd()), &before)
	NewModuleWithError("int x(", nil)
	unix.Fstat(2, &after)
	if before.Ino != after.Ino || before.Dev != after.Dev {
		t.Error("fd 2 was not restored after the compile")
	}
}

const closeSource = `
BPF_ARRAY(hits, u64, 3);
static inline int hit(int k) {
	if ((bpf_get_current_pid_tgid() >> 32) != TGID)
		return 0;
	u64 *p = hits.lookup(&k);
	if (p)
		__sync_fetch_and_add(p, 1);
	return 0;
}
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) { return hit(0); }
int on_uprobe(struct pt_regs *ctx) { return 0; }
int on_kprobe(struct pt_regs *ctx) { return hit(1); }
int on_kretprobe(struct pt_regs *ctx) { return hit(2); }
`

func readEventsFile(name string) string {
	for _, d := range tracefsDirs {
		if b, err := os.ReadFile(d + "/" + name); err == nil {
			return string(b)
		}
	}
	return ""
}

// TestCloseReleasesEverything compiles, loads, attaches and closes a module
// twice in parallel, and checks that nothing is left behind.
func TestCloseReleasesEverything(t *testing.T) {
	bin := testutil.BuildC(t, uprobeTargetSource)
	uprobes0, kprobes0 := readEventsFile("uprobe_events"), readEventsFile("kprobe_events")
	check := testutil.CheckLeaks(t)
	var ms []*Module
	for i := 0; i < 2; i++ {
		m := mustNewModule(t, closeSource, fmt.Sprintf("-DTGID=%d", os.Getpid()))
		ms = append(ms, m)
		fd, err := m.LoadTracepoint("tracepoint__syscalls__sys_enter_getppid")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AttachTracepoint("syscalls:sys_enter_getppid", fd); err != nil {
			t.Fatal(err)
		}
		ufd, err := m.LoadUprobe("on_uprobe")
		if err != nil {
			t.Fatal(err)
		}
		// Both modules probe the same function: their events must not clash.
		if err := m.AttachUprobe(bin, "gobpf_add", ufd, -1); err != nil {
			t.Fatal(err)
		}
		if err := m.AttachUretprobe(bin, "gobpf_add", ufd, -1); err != nil {
			t.Fatal(err)
		}
	}
	unix.Getppid()
	unix.Getppid()
	for i, m := range ms {
		if got := lookupU64(t, m, "hits", 0); got != 2 {
			t.Errorf("module %d saw %d getppid calls, want 2", i, got)
		}
	}
	fd, _ := ms[0].LoadTracepoint("tracepoint__syscalls__sys_enter_getppid")
	for _, m := range ms {
		m.Close()
		m.Close() // twice is fine
	}
	check()
	if got := readEventsFile("uprobe_events"); got != uprobes0 {
		t.Errorf("uprobe_events changed:\nbefore %q\nafter  %q", uprobes0, got)
	}
	if got := readEventsFile("kprobe_events"); got != kprobes0 {
		t.Errorf("kprobe_events changed:\nbefore %q\nafter  %q", kprobes0, got)
	}
	// The program fd is closed.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)); l == "anon_inode:bpf-prog" {
			t.Errorf("program fd %d still open after Close", fd)
		}
	}

	// Every method of a closed module returns ErrClosed, never panics.
	m := ms[0]
	checks := map[string]error{}
	_, checks["Load"] = m.Load("x", BPF_PROG_TYPE_KPROBE, 0, 0)
	_, checks["LoadTracepoint"] = m.LoadTracepoint("tracepoint__syscalls__sys_enter_getppid")
	_, checks["LoadKprobe"] = m.LoadKprobe("on_uprobe")
	_, checks["LoadNet"] = m.LoadNet("x")
	_, checks["GetProgramTag"] = m.GetProgramTag(0)
	checks["AttachTracepoint"] = m.AttachTracepoint("syscalls:sys_enter_getppid", 0)
	checks["AttachRawTracepoint"] = m.AttachRawTracepoint("sys_enter", 0)
	checks["AttachKprobe"] = m.AttachKprobe("x", 0, 0)
	checks["AttachUprobe"] = m.AttachUprobe(bin, "gobpf_add", 0, -1)
	checks["AttachMatchingUprobes"] = m.AttachMatchingUprobes(bin, "gobpf_add", 0, -1)
	checks["AttachPerfEvent"] = m.AttachPerfEvent(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK, 0, 99, -1, 0, -1, 0)
	checks["AttachXDP"] = m.AttachXDP("lo", 0)
	checks["RemoveXDP"] = m.RemoveXDP("lo")
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
	var nilModule *Module
	nilModule.Close()

	t.Run("KprobeKretprobe", func(t *testing.T) {
		testutil.RequireKprobes(t)
		fn := GetSyscallFnName("getppid")
		kprobes0 := readEventsFile("kprobe_events")
		check := testutil.CheckLeaks(t)
		// Two modules probe the same function: their events must not clash.
		// A kretprobe with maxActive is registered through kprobe_events.
		maxActive := []int{8, 16}
		var ms []*Module
		for i := range maxActive {
			m := mustNewModule(t, closeSource, fmt.Sprintf("-DTGID=%d", os.Getpid()))
			ms = append(ms, m)
			kfd, err := m.LoadKprobe("on_kprobe")
			if err != nil {
				t.Fatal(err)
			}
			rfd, err := m.LoadKprobe("on_kretprobe")
			if err != nil {
				t.Fatal(err)
			}
			if err := m.AttachKprobe(fn, kfd, 0); err != nil {
				t.Fatal(err)
			}
			if err := m.AttachKretprobe(fn, rfd, maxActive[i]); err != nil {
				t.Fatal(err)
			}
		}
		for _, ma := range maxActive {
			checkKretprobeMaxActive(t, fn, ma)
		}
		if got := readEventsFile("kprobe_events"); got == kprobes0 {
			t.Errorf("kprobe_events unchanged while attached:\n%s", got)
		}
		const n = 5
		for i := 0; i < n; i++ {
			unix.Getppid()
		}
		for i, m := range ms {
			if k, r := lookupU64(t, m, "hits", 1), lookupU64(t, m, "hits", 2); k != n || r != n {
				t.Errorf("module %d: kprobe saw %d getppid calls, kretprobe %d; want %d each", i, k, r, n)
			}
		}
		for _, m := range ms {
			m.Close()
		}
		check()
		if got := readEventsFile("kprobe_events"); got != kprobes0 {
			t.Errorf("kprobe_events changed by attaching and closing:\nbefore %q\nafter  %q", kprobes0, got)
		}
		if lines := ownKprobeEvents(fn); len(lines) != 0 {
			t.Errorf("kprobe_events still lists this process's probes on %s: %q", fn, lines)
		}
	})
}

func TestGetSyscallFnName(t *testing.T) {
	name := GetSyscallFnName("chroot")
	b, err := os.ReadFile("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), " "+name+"\n") {
		t.Errorf("GetSyscallFnName(chroot) = %q, not in /proc/kallsyms", name)
	}
	if !strings.HasSuffix(name, "sys_chroot") || GetSyscallPrefix()+"chroot" != name {
		t.Errorf("GetSyscallFnName(chroot) = %q, prefix %q", name, GetSyscallPrefix())
	}
	// Older kernels and other architectures.
	for _, tc := range []struct{ syms, want string }{
		{"ffffffff81000000 T sys_bpf\nffffffff81000010 T sys_chroot\n", "sys_"},
		{"ffff800010000000 T __arm64_sys_bpf\n", "__arm64_sys_"},
		{"ffffffff81000000 T __x64_sys_bpf\nffffffff81000000 T __ia32_sys_bpf\n", "__x64_sys_"},
		{"", "sys_"},
	} {
		if got := syscallPrefixIn(ksym.Parse(strings.NewReader(tc.syms))); got != tc.want {
			t.Errorf("syscallPrefixIn(%q) = %q, want %q", tc.syms, got, tc.want)
		}
	}
}

// TestCaptureStderrInheritedFD checks that a child holding the redirected
// fd 2 does not keep the capture (and every compile after it) waiting.
func TestCaptureStderrInheritedFD(t *testing.T) {
	var cmd *exec.Cmd
	start := time.Now()
	out := captureStderr(func() {
		cmd = exec.Command("sleep", "10")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Error(err)
		}
		unix.Write(2, []byte("captured-text\n"))
	})
	if cmd.Process != nil {
		cmd.Process.Kill()
		cmd.Wait()
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("capture took %v with a child holding the pipe", d)
	}
	if out != "captured-text\n" {
		t.Errorf("captured %q", out)
	}
}
