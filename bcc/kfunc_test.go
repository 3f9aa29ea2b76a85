package bcc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/testutil"
)

// requireFeature skips the test naming the missing kernel feature, or fails
// it when the environment variable env is "1" (the VM lane sets it for the
// kernels that have the feature, so the test cannot pass by skipping).
func requireFeature(t *testing.T, have bool, env, feature string, why error) {
	t.Helper()
	if have {
		return
	}
	if os.Getenv(env) == "1" {
		t.Fatalf("kernel lacks %s but %s=1: %v", feature, env, why)
	}
	t.Skipf("kernel lacks %s: %v", feature, why)
}

// checkTracingRefusal checks the error of a tracing program the kernel
// refused: ErrNotSupported, saying why, never "permission denied" alone.
func checkTracingRefusal(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("%s on a kernel that refuses tracing programs: err = %v, want ErrNotSupported", what, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "refuses tracing programs") {
		t.Errorf("%s: error does not say the kernel refuses tracing programs: %v", what, err)
	}
	if mode := lockdownMode(); mode != "" && mode != "none" && !strings.Contains(msg, "locked down ("+mode+")") {
		t.Errorf("%s: kernel lockdown is %q but the error does not say so: %v", what, mode, err)
	}
}

func kfuncSource(sysfn string) string {
	return fmt.Sprintf(`
#include <uapi/linux/ptrace.h>

BPF_ARRAY(counts, u64, 8);
BPF_ARRAY(deny, u32, 1);

static inline void add(int slot) {
	u64 *p = counts.lookup(&slot);
	if (p)
		__sync_fetch_and_add(p, 1);
}

static inline bool mine(void) {
	return (bpf_get_current_pid_tgid() >> 32) == TGID;
}

KFUNC_PROBE(%[1]s) {
	if (mine())
		add(0);
	return 0;
}

KRETFUNC_PROBE(%[1]s, const struct pt_regs *regs, long ret) {
	if (!mine())
		return 0;
	add(1);
	if (ret == PGID)
		add(2);
	return 0;
}

// security_bpf(cmd, attr, size): counts this process's BPF_PROG_GET_NEXT_ID
// commands and denies them while deny[0] is set.
LSM_PROBE(bpf, int cmd) {
	if (!mine() || cmd != GET_NEXT_ID_CMD)
		return 0;
	add(3);
	int k = 0;
	u32 *d = deny.lookup(&k);
	if (d && *d)
		return -1; // -EPERM
	return 0;
}
`, sysfn)
}

func kfuncCflags() []string {
	return []string{
		fmt.Sprintf("-DTGID=%d", os.Getpid()),
		fmt.Sprintf("-DPGID=%d", pgid()),
		fmt.Sprintf("-DGET_NEXT_ID_CMD=%d", bpfsys.BPF_PROG_GET_NEXT_ID),
	}
}

// TestKfuncFentryFexit counts a syscall function's entries (fentry) and
// returns (fexit, checking the return value) exactly, detaches each, and
// attaches again. Where the kernel refuses tracing programs it checks the
// error and skips.
func TestKfuncFentryFexit(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	fn := GetSyscallFnName("getpgid")
	m := mustNewModule(t, kfuncSource(fn), kfuncCflags()...)
	defer m.Close()
	count := func(slot int) uint64 { return lookupU64(t, m, "counts", uint32(slot)) }

	if _, err := m.LoadKfunc("gobpf_no_such_function"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LoadKfunc of a function the module lacks: err = %v, want ErrNotFound", err)
	}
	entry, err := m.LoadKfunc(fn)
	if !SupportsKfunc() {
		checkTracingRefusalOrMissing(t, "LoadKfunc", err)
		requireFeature(t, false, "GOBPF_REQUIRE_TRACING", "fentry/fexit (kfunc) programs", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.LoadKfunc("kretfunc__" + fn); err == nil {
		t.Error("LoadKfunc took a kretfunc program")
	}
	exit := mustLoad(t)(m.LoadKretfunc("kretfunc__" + fn))
	if err := m.AttachKfunc(exit); err == nil {
		t.Error("AttachKfunc took a kretfunc program")
	}
	if err := m.AttachKfunc(entry); err != nil {
		t.Fatal(err)
	}
	if err := m.AttachKretfunc(exit); err != nil {
		t.Fatal(err)
	}
	getpgids(123)
	if e, x, v := count(0), count(1), count(2); e != 123 || x != 123 || v != 123 {
		t.Errorf("fentry/fexit/fexit with ret == pgid = %d/%d/%d, want 123 each", e, x, v)
	}
	if err := m.DetachKfunc("kfunc__" + fn); err != nil {
		t.Fatal(err)
	}
	getpgids(10)
	if e, x := count(0), count(1); e != 123 || x != 133 {
		t.Errorf("fentry detached: fentry/fexit = %d/%d, want 123/133", e, x)
	}
	if err := m.DetachKretfunc(fn); err != nil {
		t.Fatal(err)
	}
	if err := m.DetachKretfunc(fn); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DetachKretfunc: err = %v, want ErrNotFound", err)
	}
	getpgids(10)
	if e, x := count(0), count(1); e != 123 || x != 133 {
		t.Errorf("both detached: fentry/fexit = %d/%d, want 123/133", e, x)
	}
	if err := m.AttachKfunc(entry); err != nil {
		t.Fatal(err)
	}
	getpgids(7)
	if e := count(0); e != 130 {
		t.Errorf("fentry attached again: %d, want 130", e)
	}
}

// checkTracingRefusalOrMissing accepts the lockdown refusal, or a kernel
// without BTF or trampolines (ErrNotSupported either way).
func checkTracingRefusalOrMissing(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), "refuses tracing programs") || lockdownMode() == "integrity" || lockdownMode() == "confidentiality" {
		checkTracingRefusal(t, what, err)
		return
	}
	if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("%s where unsupported: err = %v, want ErrNotSupported", what, err)
	}
}

func progGetNextID() error {
	attr := struct{ Start, Next, Flags uint32 }{}
	_, err := bpfsys.Syscall(bpfsys.BPF_PROG_GET_NEXT_ID, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// TestLSMProbe attaches a BPF LSM program to the bpf hook: it counts this
// process's BPF_PROG_GET_NEXT_ID commands exactly and denies them on
// request; detached, it neither counts nor denies.
func TestLSMProbe(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	m := mustNewModule(t, kfuncSource(GetSyscallFnName("getpgid")), kfuncCflags()...)
	defer m.Close()
	count := func() uint64 { return lookupU64(t, m, "counts", 3) }
	if !SupportsLSM() {
		_, err := m.LoadLSM("bpf")
		if err == nil {
			fd, _ := m.LoadLSM("bpf")
			err = m.AttachLSM(fd)
		}
		checkTracingRefusalOrMissing(t, "LoadLSM/AttachLSM", err)
		requireFeature(t, false, "GOBPF_REQUIRE_TRACING", "BPF LSM programs", err)
	}
	fd := mustLoad(t)(m.LoadLSM("lsm__bpf"))
	if err := m.AttachLSM(fd); err != nil {
		t.Fatal(err)
	}
	const n = 55
	for i := 0; i < n; i++ {
		if err := progGetNextID(); err != nil && !errors.Is(err, unix.ENOENT) {
			t.Fatalf("BPF_PROG_GET_NEXT_ID: %v", err)
		}
	}
	if got := count(); got != n {
		t.Errorf("LSM hook saw %d BPF_PROG_GET_NEXT_ID, want %d", got, n)
	}
	var k [4]byte
	on := []byte{1, 0, 0, 0}
	if err := NewTable(m.TableId("deny"), m).Set(k[:], on); err != nil {
		t.Fatal(err)
	}
	if err := progGetNextID(); !errors.Is(err, unix.EPERM) {
		t.Errorf("with the LSM program denying: err = %v, want EPERM", err)
	}
	if err := m.DetachLSM("bpf"); err != nil {
		t.Fatal(err)
	}
	if err := progGetNextID(); err != nil && !errors.Is(err, unix.ENOENT) {
		t.Errorf("LSM program detached: BPF_PROG_GET_NEXT_ID: %v", err)
	}
	if got := count(); got != n+1 {
		t.Errorf("LSM hook count after detach = %d, want %d", got, n+1)
	}
}

const iterSource = `
// The iterators' context structures, as the kernel defines them (in .c
// files, or in linux/bpf.h, which does not compile with every libbcc's own
// uapi headers). Only pointers to the kernel's structures are needed.
struct seq_file;
struct task_struct;
struct bpf_map;

struct bpf_iter_meta {
	union { struct seq_file *seq; };
	u64 session_id;
	u64 seq_num;
};

struct bpf_iter__task {
	union { struct bpf_iter_meta *meta; };
	union { struct task_struct *task; };
};

struct bpf_iter__bpf_map_elem {
	union { struct bpf_iter_meta *meta; };
	union { struct bpf_map *map; };
	union { void *key; };
	union { void *value; };
};

BPF_HASH(elems, u32, u64, 64);

// Writes tgid and tid of every thread of this process.
BPF_ITER(task) {
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	if (task == (void *)0)
		return 0;
	// Offsets from the running kernel's BTF: the headers bcc compiles
	// with may be another kernel's.
	u32 ids[2] = {*(u32 *)((char *)task + TGID_OFF), *(u32 *)((char *)task + PID_OFF)};
	if (ids[0] == TGID)
		bpf_seq_write(seq, ids, sizeof(ids));
	return 0;
}

// Writes each element of the map it is attached to (u32 key, u64 value).
BPF_ITER(bpf_map_elem) {
	struct seq_file *seq = ctx->meta->seq;
	u32 *key = ctx->key;
	u64 *val = ctx->value;
	if (key == (void *)0 || val == (void *)0)
		return 0;
	u64 rec[2] = {*key, *val};
	bpf_seq_write(seq, rec, sizeof(rec));
	return 0;
}
`

// taskPidOffsets reads the byte offsets of pid and tgid in the running
// kernel's task_struct from its BTF (bpftool's dump).
func taskPidOffsets(t *testing.T) (pid, tgid int) {
	out, err := exec.Command("bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux").Output()
	if err != nil {
		t.Fatalf("bpftool btf dump: %v", err)
	}
	in := false
	pid, tgid = -1, -1
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "[") {
			in = strings.Contains(l, " STRUCT 'task_struct' ")
			continue
		}
		if !in {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 3 || !strings.HasPrefix(f[2], "bits_offset=") {
			continue
		}
		bits, _ := strconv.Atoi(strings.TrimPrefix(f[2], "bits_offset="))
		switch f[0] {
		case "'pid'":
			pid = bits / 8
		case "'tgid'":
			tgid = bits / 8
		}
	}
	if pid < 0 || tgid < 0 {
		t.Fatal("task_struct's pid and tgid not found in the kernel's BTF")
	}
	return pid, tgid
}

func threadIDs(t *testing.T) []uint32 {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint32
	for _, e := range ents {
		n, _ := strconv.Atoi(e.Name())
		ids = append(ids, uint32(n))
	}
	slices.Sort(ids)
	return ids
}

// TestIterTaskAndMap reads a task iterator (this process's threads, compared
// with /proc/self/task) and a map element iterator (exactly the elements
// set) as io.Readers.
func TestIterTaskAndMap(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	pidOff, tgidOff := taskPidOffsets(t)
	m := mustNewModule(t, iterSource, fmt.Sprintf("-DTGID=%d", os.Getpid()),
		fmt.Sprintf("-DPID_OFF=%d", pidOff), fmt.Sprintf("-DTGID_OFF=%d", tgidOff))
	defer m.Close()
	if !SupportsIterators() {
		_, err := m.LoadIter("task")
		checkTracingRefusalOrMissing(t, "LoadIter", err)
		requireFeature(t, false, "GOBPF_REQUIRE_TRACING", "BPF iterators", err)
	}
	t.Run("Task", func(t *testing.T) { testIterTask(t, m) })
	t.Run("MapElem", func(t *testing.T) { testIterMapElem(t, m) })
	// Iterators still attached are left for Module.Close.
}

func testIterTask(t *testing.T, m *Module) {
	taskFd := mustLoad(t)(m.LoadIter("task"))
	it, err := m.AttachIter(taskFd)
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread() // keep the thread set still
	defer runtime.UnlockOSThread()
	var got []uint32
	for try := 0; try < 5; try++ {
		before := threadIDs(t)
		out, err := it.ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(out)%8 != 0 {
			t.Fatalf("task iterator wrote %d bytes, not a multiple of 8", len(out))
		}
		got = got[:0]
		for i := 0; i < len(out); i += 8 {
			if tg := binary.NativeEndian.Uint32(out[i:]); tg != uint32(os.Getpid()) {
				t.Fatalf("record of tgid %d, want only %d", tg, os.Getpid())
			}
			got = append(got, binary.NativeEndian.Uint32(out[i+4:]))
		}
		slices.Sort(got)
		if slices.Equal(got, before) && slices.Equal(before, threadIDs(t)) {
			break
		}
		if try == 4 {
			t.Errorf("task iterator listed threads %v, /proc/self/task %v", got, before)
		}
	}
	if !slices.Contains(got, uint32(unix.Gettid())) {
		t.Errorf("task iterator misses this thread %d: %v", unix.Gettid(), got)
	}

}

func testIterMapElem(t *testing.T, m *Module) {
	tbl := NewTable(m.TableId("elems"), m)
	want := map[uint32]uint64{}
	for i := uint32(1); i <= 20; i++ {
		var k [4]byte
		var v [8]byte
		binary.NativeEndian.PutUint32(k[:], i*7)
		binary.NativeEndian.PutUint64(v[:], uint64(i)*1000+3)
		if err := tbl.Set(k[:], v[:]); err != nil {
			t.Fatal(err)
		}
		want[i*7] = uint64(i)*1000 + 3
	}
	elemFd, err := m.LoadIter("bpf_iter__bpf_map_elem")
	if errors.Is(err, ErrNotSupported) {
		checkTracingRefusal(t, "LoadIter(bpf_map_elem)", err)
		requireFeature(t, false, "GOBPF_REQUIRE_TRACING", "map element iterators (bpf_map_elem)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	mapFd, ok := tbl.Config()["fd"].(int)
	if !ok {
		t.Fatalf("table config fd: %#v", tbl.Config()["fd"])
	}
	mit, err := m.AttachMapIter(elemFd, mapFd)
	if err != nil {
		t.Fatal(err)
	}
	r, err := mit.Open()
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(out)%16 != 0 {
		t.Fatalf("map iterator wrote %d bytes, not 16-byte records", len(out))
	}
	gotElems := map[uint32]uint64{}
	for i := 0; i < len(out); i += 16 {
		gotElems[uint32(binary.NativeEndian.Uint64(out[i:]))] = binary.NativeEndian.Uint64(out[i+8:])
	}
	if len(gotElems) != len(want) {
		t.Errorf("map iterator gave %d elements, want %d", len(gotElems), len(want))
	}
	for k, v := range want {
		if gotElems[k] != v {
			t.Errorf("element %d = %d, want %d", k, gotElems[k], v)
		}
	}
	r.Close()
	buf := make([]byte, 16)
	if _, err := r.Read(buf); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after Close: err = %v, want ErrClosed", err)
	}
	// Close with a reader open: the reader is closed too.
	r2, err := mit.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := mit.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Read(buf); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after the iterator's Close: err = %v, want ErrClosed", err)
	}
	if _, err := mit.Open(); !errors.Is(err, ErrClosed) {
		t.Errorf("Open after Close: err = %v, want ErrClosed", err)
	}
}
