package bcc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iovisor/gobpf/internal/testutil"
	"golang.org/x/sys/unix"
)

const stackProg = `
#include <unistd.h>
int leaf(int x) { return x + 1; }
int middle(int x) { return leaf(x) * 2; }
int outer(int x) { return middle(x) + 3; }
int main(void) {
	char b;
	if (read(0, &b, 1) != 1)
		return 2;
	int r = outer(1) == 7 ? 0 : 1;
	read(0, &b, 1); /* stay alive until symbolized */
	return r;
}
`

// Each stack replaces whatever stack shares its bucket
// (BPF_F_REUSE_STACKID): the kernel subtest's stack lands in the user
// subtest's bucket one run in 128, and without the flag gets -EEXIST.
const stackBPF = `
#include <uapi/linux/ptrace.h>
BPF_STACK_TRACE(stacks, 128);
BPF_ARRAY(ids, int, 4);     // 0: user stack of leaf, 1: kernel stack of kill
BPF_ARRAY(counts, u64, 4);  // hits of the same
BPF_ARRAY(target, u32, 1);  // the pid the kernel subtest kills
BPF_HASH(not_stack, u32, u32);

int on_leaf(struct pt_regs *ctx) {
	int k = 0;
	int id = stacks.get_stackid(ctx, BPF_F_USER_STACK | BPF_F_REUSE_STACKID);
	ids.update(&k, &id);
	counts.increment(k);
	return 0;
}

// signal_generate fires in the sender, inside its kill(2): unlike a
// syscall tracepoint (which, before Linux 6.12 or so, sees the user-mode
// registers, so that its kernel stack is empty), it has a kernel stack
// that goes through the syscall entry.
TRACEPOINT_PROBE(signal, signal_generate) {
	int z = 0;
	u32 *want = target.lookup(&z);
	if ((bpf_get_current_pid_tgid() >> 32) != TGID || !want || *want == 0 ||
	    args->pid != *want || args->sig != 9 /* SIGKILL */)
		return 0;
	int k = 1;
	int id = stacks.get_stackid(args, BPF_F_REUSE_STACKID);
	ids.update(&k, &id);
	counts.increment(k);
	return 0;
}
`

// stackWaitFor polls cond for up to 5 s.
func stackWaitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("timed out waiting for the BPF program to run")
}

// arrayU64 reads element i of an int/u64 array table.
func arrayU64(t testing.TB, m *Module, table string, i uint32, size int) uint64 {
	t.Helper()
	tb := NewTable(m.TableId(table), m)
	key := make([]byte, 4)
	binary.NativeEndian.PutUint32(key, i)
	v, err := tb.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	if size == 4 {
		return uint64(binary.NativeEndian.Uint32(v))
	}
	return binary.NativeEndian.Uint64(v)
}

func TestStackTraces(t *testing.T) {
	bin := testutil.BuildC(t, stackProg)
	defer testutil.CheckLeaks(t)()
	m, err := NewModuleWithError(stackBPF, []string{fmt.Sprintf("-DTGID=%d", os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sym := NewSymbolizer()
	defer sym.Close()

	t.Run("user", func(t *testing.T) {
		fd, err := m.LoadUprobe("on_leaf")
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin)
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		defer func() {
			in.Close()
			cmd.Wait()
		}()
		if err := m.AttachUprobe(bin, "leaf", fd, pid); err != nil {
			t.Fatal(err)
		}
		// Symbolize while the process lives: its mappings are needed.
		if _, err := in.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
		// The process waits for stdin's end before exiting, so that
		// its mappings can be read while symbolizing.
		stackWaitFor(t, func() bool { return arrayU64(t, m, "counts", 0, 8) > 0 })
		if n := arrayU64(t, m, "counts", 0, 8); n != 1 {
			t.Fatalf("leaf hit %d times, want 1", n)
		}
		id := int(int32(arrayU64(t, m, "ids", 0, 4)))
		addrs, err := m.StackTrace("stacks", id)
		if err != nil {
			t.Fatal(err)
		}
		frames := sym.UserStack(pid, addrs)
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("test program: %v", err)
		}
		t.Logf("user stack:\n  %s", strings.Join(frames, "\n  "))
		var names []string
		for i, a := range addrs {
			s, err := sym.Resolve(pid, a)
			if err != nil {
				continue
			}
			if filepath.Base(s.Module) == "prog" {
				names = append(names, s.Name)
				if !strings.HasPrefix(frames[i], s.Module+":"+s.Name+"+0x") {
					t.Errorf("frame %d formatted %q", i, frames[i])
				}
			}
		}
		want := []string{"leaf", "middle", "outer", "main"}
		if strings.Join(names, ",") != strings.Join(want, ",") {
			t.Fatalf("user stack functions in prog: %v, want %v", names, want)
		}
		s, _ := sym.Resolve(pid, addrs[0])
		if s.Name != "leaf" {
			t.Fatalf("innermost frame %v, want leaf", s)
		}
	})

	t.Run("kernel", func(t *testing.T) {
		// A child to kill, blocked on stdin.
		cmd := exec.Command(bin)
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		waited := false
		defer func() {
			in.Close()
			if !waited {
				cmd.Process.Kill()
				cmd.Wait()
			}
		}()
		key := make([]byte, 4)
		val := make([]byte, 4)
		binary.NativeEndian.PutUint32(val, uint32(pid))
		if err := NewTable(m.TableId("target"), m).Set(key, val); err != nil {
			t.Fatal(err)
		}
		fd, err := m.LoadTracepoint("tracepoint__signal__signal_generate")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AttachTracepoint("signal:signal_generate", fd); err != nil {
			t.Fatal(err)
		}
		// kill(2) itself, not os.Process.Kill (which may use
		// pidfd_send_signal), so that the stack's syscall is known.
		if err := unix.Kill(pid, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		waited = true
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("killed child: %v, want killed by SIGKILL", err)
		}
		stackWaitFor(t, func() bool { return arrayU64(t, m, "counts", 1, 8) > 0 })
		if n := arrayU64(t, m, "counts", 1, 8); n != 1 {
			t.Fatalf("signal_generate hit %d times for the child's SIGKILL, want 1", n)
		}
		id := int(int32(arrayU64(t, m, "ids", 1, 4)))
		addrs, err := m.StackTrace("stacks", id)
		if err != nil {
			t.Fatal(err)
		}
		if len(addrs) == 0 {
			t.Fatal("empty kernel stack")
		}
		frames := sym.KernelStack(addrs)
		t.Logf("kernel stack:\n  %s", strings.Join(frames, "\n  "))
		if len(frames) != len(addrs) {
			t.Fatalf("%d frames for %d addresses", len(frames), len(addrs))
		}
		entry, kill := false, false
		for _, f := range frames {
			if !strings.Contains(f, "+0x") || strings.Contains(f, ":") || strings.HasPrefix(f, "[unknown]") {
				t.Errorf("kernel frame %q is not function+offset", f)
			}
			if strings.HasPrefix(f, "do_syscall_64+") || strings.HasPrefix(f, "entry_SYSCALL_64") {
				entry = true
			}
			// kill(2)'s own functions (some may be inlined, not all).
			for _, fn := range []string{"__x64_sys_kill+", "__se_sys_kill+", "__do_sys_kill+", "kill_something_info+"} {
				if strings.HasPrefix(f, fn) {
					kill = true
				}
			}
		}
		if !entry {
			t.Fatalf("kernel stack lacks the syscall entry: %v", frames)
		}
		if !kill {
			t.Fatalf("kernel stack lacks kill(2): %v", frames)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, c := range []struct {
			id    int
			errno unix.Errno
		}{{-int(unix.EFAULT), unix.EFAULT}, {-int(unix.EEXIST), unix.EEXIST}, {-int(unix.ENOMEM), unix.ENOMEM}} {
			_, err := m.StackTrace("stacks", c.id)
			var se *StackIDError
			if !errors.As(err, &se) || se.Errno != c.errno || !errors.Is(err, c.errno) {
				t.Errorf("StackTrace(%d) err = %v, want StackIDError %v", c.id, err, c.errno)
			}
		}
		// Stack ids are hash buckets: a stack recorded above may sit in
		// any of them, so find one the table does not hold.
		all, err := m.StackTable("stacks")
		if err != nil {
			t.Fatal(err)
		}
		used := map[uint32]bool{}
		for it := all.Table().Iter(); it.Next(); {
			used[binary.NativeEndian.Uint32(it.Key())] = true
		}
		unused := 0
		for used[uint32(unused)] {
			unused++
		}
		if _, err := m.StackTrace("stacks", unused); !errors.Is(err, ErrKeyNotExist) {
			t.Errorf("unused id %d: err = %v, want ErrKeyNotExist", unused, err)
		}
		if _, err := m.StackTrace("no_such_table", 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing table: err = %v, want ErrNotFound", err)
		}
		if _, err := m.StackTrace("not_stack", 0); err == nil || !strings.Contains(err.Error(), "not a BPF_STACK_TRACE") {
			t.Errorf("hash table as stack table: err = %v", err)
		}
		st, err := m.StackTable("stacks")
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Clear(); err != nil {
			t.Fatal(err)
		}
		id := int(int32(arrayU64(t, m, "ids", 0, 4)))
		if _, err := st.Addresses(id); !errors.Is(err, ErrKeyNotExist) {
			t.Errorf("after Clear: err = %v, want ErrKeyNotExist", err)
		}
	})

	m.Close()
	if _, err := m.StackTrace("stacks", 0); !errors.Is(err, ErrClosed) {
		t.Errorf("closed module: err = %v, want ErrClosed", err)
	}
	sym.Close()
	if _, err := sym.Resolve(-1, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("closed symbolizer: err = %v, want ErrClosed", err)
	}
}
