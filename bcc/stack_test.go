package bpf

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

const stackBPF = `
#include <uapi/linux/ptrace.h>
BPF_STACK_TRACE(stacks, 128);
BPF_ARRAY(ids, int, 4);     // 0: user stack of leaf, 1: kernel stack of getppid
BPF_ARRAY(counts, u64, 4);  // hits of the same
BPF_HASH(not_stack, u32, u32);

int on_leaf(struct pt_regs *ctx) {
	int k = 0;
	int id = stacks.get_stackid(ctx, BPF_F_USER_STACK);
	ids.update(&k, &id);
	counts.increment(k);
	return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
	if ((bpf_get_current_pid_tgid() >> 32) != TGID)
		return 0;
	int k = 1;
	int id = stacks.get_stackid(args, 0);
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
		fd, err := m.LoadTracepoint("tracepoint__syscalls__sys_enter_getppid")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AttachTracepoint("syscalls:sys_enter_getppid", fd); err != nil {
			t.Fatal(err)
		}
		syscall.Getppid()
		stackWaitFor(t, func() bool { return arrayU64(t, m, "counts", 1, 8) > 0 })
		id := int(int32(arrayU64(t, m, "ids", 1, 4)))
		addrs, err := m.StackTrace("stacks", id)
		if err != nil {
			t.Fatal(err)
		}
		frames := sym.KernelStack(addrs)
		t.Logf("kernel stack:\n  %s", strings.Join(frames, "\n  "))
		entry := false
		for _, f := range frames {
			if !strings.Contains(f, "+0x") || strings.Contains(f, ":") || strings.HasPrefix(f, "[unknown]") {
				t.Errorf("kernel frame %q is not function+offset", f)
			}
			if strings.HasPrefix(f, "do_syscall_64+") || strings.HasPrefix(f, "entry_SYSCALL_64") {
				entry = true
			}
		}
		if !entry {
			t.Fatalf("kernel stack lacks the syscall entry: %v", frames)
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
		if _, err := m.StackTrace("stacks", 127); !errors.Is(err, ErrKeyNotExist) {
			t.Errorf("unused id: err = %v, want ErrKeyNotExist", err)
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
