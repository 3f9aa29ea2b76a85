package elf

import (
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/testutil"
)

// Tracing families take their target's BTF id at load: tp_btf/, fentry/,
// fexit/, lsm/ and iter/. A kernel locked down in integrity mode refuses
// them with EPERM: Load then returns an error wrapping ErrNotSupported and
// the test skips, naming the feature; the VM lane runs them.

const tracingSrc = `
const volatile __u32 target_tgid = 0;
__u64 hits;

static __always_inline int mine(void) { return (bpf_get_current_pid_tgid() >> 32) == target_tgid; }
`

func loadTracing(t *testing.T, feature, src string) *Module {
	t.Helper()
	m := NewModule(compileModernSnippet(t, tracingSrc+src))
	if err := m.SetConstant("target_tgid", uint32(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	err := m.Load(nil)
	if errors.Is(err, ErrNotSupported) {
		m.Close()
		if os.Getenv("GOBPF_VM") == "1" {
			t.Fatalf("%s programs refused in the VM lane: %v", feature, err)
		}
		t.Skipf("kernel refuses %s programs (locked down?): %v", feature, err)
	}
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func hits(t *testing.T, m *Module) uint64 {
	t.Helper()
	var h uint64
	if err := m.ReadVariable("hits", &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func testTracingCount(t *testing.T, feature, src, prog string, fire func()) {
	t.Cleanup(testutil.CheckLeaks(t))
	const n = 7
	m := loadTracing(t, feature, src)
	p, err := m.Program(prog)
	if err != nil {
		t.Fatal(err)
	}
	if p.Type() != uint32(progTypeTracing) && p.Type() != uint32(progTypeLSM) {
		t.Errorf("%s loaded as type %d", prog, p.Type())
	}
	l, err := p.Attach()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		fire()
	}
	if h := hits(t, m); h != n {
		t.Errorf("%s counted %d, want %d", prog, h, n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	fire()
	if h := hits(t, m); h != n {
		t.Errorf("%s counted %d after its link closed, want %d", prog, h, n)
	}
}

func TestModernTracingTpBtf(t *testing.T) {
	testTracingCount(t, "tp_btf (BTF-enabled raw tracepoint, a tracing program)", `
SEC("tp_btf/sys_enter")
int BPF_PROG(on_sys_enter, struct pt_regs *regs, long id)
{
	if (mine() && id == 121 /* getpgid */)
		__sync_fetch_and_add(&hits, 1);
	return 0;
}
`, "on_sys_enter", func() { unix.Getpgid(0) })
}

func TestModernTracingFentry(t *testing.T) {
	testTracingCount(t, "fentry", `
SEC("fentry/__x64_sys_getpgid")
int BPF_PROG(enter_getpgid, struct pt_regs *regs)
{
	if (mine())
		__sync_fetch_and_add(&hits, 1);
	return 0;
}
`, "enter_getpgid", func() { unix.Getpgid(0) })
}

func TestModernTracingFexitFentry(t *testing.T) {
	testTracingCount(t, "fexit (fentry family)", `
SEC("fexit/__x64_sys_getpgid")
int BPF_PROG(exit_getpgid, struct pt_regs *regs, long ret)
{
	if (mine() && ret == 0)
		__sync_fetch_and_add(&hits, 1);
	return 0;
}
`, "exit_getpgid", func() { unix.Getpgid(0) })
}

func TestModernTracingLSM(t *testing.T) {
	if b, _ := os.ReadFile("/sys/kernel/security/lsm"); !strings.Contains(string(b), "bpf") && os.Getenv("GOBPF_VM") != "1" {
		t.Skip("the BPF LSM is not enabled (lsm=...,bpf)")
	}
	testTracingCount(t, "LSM", `
SEC("lsm/file_open")
int BPF_PROG(on_file_open, struct file *file)
{
	if (mine())
		__sync_fetch_and_add(&hits, 1);
	return 0;
}
`, "on_file_open", func() {
		if f, err := os.Open("/dev/null"); err == nil {
			f.Close()
		}
	})
}

func TestModernTracingIter(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	m := loadTracing(t, "iterator (iter/)", `
SEC("iter/task")
int dump_task(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	if (task && task->tgid == target_tgid && task->pid == task->tgid)
		BPF_SEQ_PRINTF(ctx->meta->seq, "gobpf %d\n", task->tgid);
	return 0;
}
`)
	p, err := m.Program("dump_task")
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.Attach()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.OpenIter()
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if want := "gobpf " + strconv.Itoa(os.Getpid()) + "\n"; string(out) != want {
		t.Errorf("iterator output %q, want %q", out, want)
	}
}

// TestModernTracingFmodRetFentry: an fmod_ret program makes getsid fail
// with EPERM for this process only, through its link (fmod_ret attaches to
// error-injectable functions and security_* hooks).
func TestModernTracingFmodRetFentry(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	m := loadTracing(t, "fmod_ret (fentry family)", `
SEC("fmod_ret/security_task_getsid")
int BPF_PROG(deny_getsid, struct task_struct *p, int ret)
{
	if (!mine())
		return 0;
	__sync_fetch_and_add(&hits, 1);
	return -1; /* -EPERM */
}
`)
	p, err := m.Program("deny_getsid")
	if err != nil {
		t.Fatal(err)
	}
	if p.ExpectedAttachType() != uint32(attachModifyReturn) {
		t.Errorf("expected attach type %d", p.ExpectedAttachType())
	}
	l, err := p.Attach()
	if err != nil {
		t.Fatal(err)
	}
	// getsid(0) does not call the hook: ask for this process by pid.
	if _, err := unix.Getsid(os.Getpid()); !errors.Is(err, unix.EPERM) {
		t.Errorf("getsid with fmod_ret attached: %v, want EPERM", err)
	}
	l.Close()
	if _, err := unix.Getsid(os.Getpid()); err != nil {
		t.Errorf("getsid after the link closed: %v", err)
	}
	if h := hits(t, m); h != 1 {
		t.Errorf("fmod_ret ran %d times, want 1", h)
	}
}
