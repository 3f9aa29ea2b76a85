package bcc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/testutil"
	"github.com/iovisor/gobpf/pkg/cpuonline"
)

// Slots of the counts array of coreSource.
const (
	slotTracepoint = iota
	slotRawTP
	slotUprobeCount
	slotUprobeArgSum
	slotUretCount
	slotUretSum
	slotMatch
	slotMatchRet
	slotSockDrop
	slotXDPDrop
	slotKprobe
	slotKretprobe
	slotStrlen
	slotOpen        // do_sys_openat2 calls of the marked thread
	slotOpenAtFDCWD // ... whose dfd was AT_FDCWD
	slotOpenLastDFD // dfd of the last one
	slotOpenRet     // do_sys_openat2 returns on the marked thread
	slotOpenENOENT  // ... that returned -ENOENT
	slotOpenLastRC  // return value of the last one
)

// openNameLen is the size of the filename buffer of coreSource's
// do_sys_openat2 probe (struct open_name).
const openNameLen = 64

const coreSource = `
#include <uapi/linux/ptrace.h>
#include <uapi/linux/bpf_perf_event.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/in.h>

BPF_ARRAY(counts, u64, 32);
BPF_ARRAY(cpu_samples, u64, 1024);

static inline void add(int slot, u64 v) {
	u64 *p = counts.lookup(&slot);
	if (p)
		__sync_fetch_and_add(p, v);
}

static inline bool mine(void) {
	return (bpf_get_current_pid_tgid() >> 32) == TGID;
}

static inline void set(int slot, u64 v) {
	u64 *p = counts.lookup(&slot);
	if (p)
		*p = v;
}

// The thread (of this process) whose opens the do_sys_openat2 probes see;
// 0 for none. The test sets it.
BPF_ARRAY(open_tid, u32, 1);

struct open_name {
	char name[OPEN_NAME_LEN];
};
// Filenames the marked thread opened -> how many times.
BPF_HASH(open_names, struct open_name, u64, 64);
BPF_ARRAY(open_last_name, struct open_name, 1);

static inline bool marked_thread(void) {
	int k = 0;
	u32 *tid = open_tid.lookup(&k);
	return mine() && tid && *tid != 0 && (u32)bpf_get_current_pid_tgid() == *tid;
}

TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
	if (mine())
		add(SLOT_TP, 1);
	return 0;
}

RAW_TRACEPOINT_PROBE(sys_enter) {
	// args: struct pt_regs *regs, long id
	if (mine() && ctx->args[1] == NR_GETPPID)
		add(SLOT_RAWTP, 1);
	return 0;
}

int on_add(struct pt_regs *ctx) {
	add(SLOT_UP, 1);
	add(SLOT_UPARG, PT_REGS_PARM1(ctx));
	return 0;
}

int on_add_ret(struct pt_regs *ctx) {
	add(SLOT_URET, 1);
	add(SLOT_URETSUM, PT_REGS_RC(ctx));
	return 0;
}

int on_match(struct pt_regs *ctx) {
	add(SLOT_MATCH, 1);
	return 0;
}

int on_match_ret(struct pt_regs *ctx) {
	add(SLOT_MATCHRET, 1);
	return 0;
}

int on_cpu_clock(struct bpf_perf_event_data *ctx) {
	u32 cpu = bpf_get_smp_processor_id();
	u64 *p = cpu_samples.lookup(&cpu);
	if (p)
		__sync_fetch_and_add(p, 1);
	return 0;
}

// Socket filter: drop UDP datagrams whose payload starts with 'D'. The
// filter sees the packet from the UDP header on.
int sock_drop_d(struct __sk_buff *skb) {
	u8 c = load_byte(skb, sizeof(struct udphdr));
	if (c == 'D') {
		add(SLOT_SOCK, 1);
		return 0;
	}
	return -1;
}

int xdp_drop_udp(struct xdp_md *ctx) {
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl != 5)
		return XDP_PASS;
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end || udp->dest != htons(XDP_PORT))
		return XDP_PASS;
	add(SLOT_XDP, 1);
	return XDP_DROP;
}

int on_kprobe(struct pt_regs *ctx) {
	if (mine())
		add(SLOT_KP, 1);
	return 0;
}

int on_kretprobe(struct pt_regs *ctx) {
	if (mine())
		add(SLOT_KRET, 1);
	return 0;
}

// long do_sys_openat2(int dfd, const char __user *filename, struct open_how *how)
int on_openat2(struct pt_regs *ctx) {
	if (!marked_thread())
		return 0;
	int dfd = (int)PT_REGS_PARM1(ctx);
	add(SLOT_OPEN, 1);
	if (dfd == AT_FDCWD_VAL)
		add(SLOT_OPEN_FDCWD, 1);
	set(SLOT_OPEN_LASTDFD, (u64)(s64)dfd);
	struct open_name n = {};
	bpf_probe_read_user_str(&n.name, sizeof(n.name), (void *)PT_REGS_PARM2(ctx));
	u64 zero = 0;
	u64 *c = open_names.lookup_or_try_init(&n, &zero);
	if (c)
		__sync_fetch_and_add(c, 1);
	int k = 0;
	open_last_name.update(&k, &n);
	return 0;
}

int on_openat2_ret(struct pt_regs *ctx) {
	if (!marked_thread())
		return 0;
	long rc = (long)PT_REGS_RC(ctx);
	add(SLOT_OPEN_RET, 1);
	if (rc == -ENOENT_VAL)
		add(SLOT_OPEN_ENOENT, 1);
	set(SLOT_OPEN_LASTRC, (u64)rc);
	return 0;
}

// Counts libc strlen calls on strings starting with "gobpf#SL".
int on_strlen(struct pt_regs *ctx) {
	char b[8] = {};
	bpf_probe_read_user(&b, sizeof(b), (void *)PT_REGS_PARM1(ctx));
	if (b[0] == 'g' && b[1] == 'o' && b[2] == 'b' && b[3] == 'p' &&
	    b[4] == 'f' && b[5] == '#' && b[6] == 'S' && b[7] == 'L')
		add(SLOT_STRLEN, 1);
	return 0;
}

// Reads far past the end of the context: the verifier must refuse it.
int bad_ctx(struct pt_regs *ctx) {
	return *(volatile u64 *)((char *)ctx + 4000);
}
`

const xdpPort = 9931

func coreCflags() []string {
	return []string{
		fmt.Sprintf("-DTGID=%d", os.Getpid()),
		fmt.Sprintf("-DNR_GETPPID=%d", unix.SYS_GETPPID),
		fmt.Sprintf("-DXDP_PORT=%d", xdpPort),
		fmt.Sprintf("-DSLOT_TP=%d", slotTracepoint),
		fmt.Sprintf("-DSLOT_RAWTP=%d", slotRawTP),
		fmt.Sprintf("-DSLOT_UP=%d", slotUprobeCount),
		fmt.Sprintf("-DSLOT_UPARG=%d", slotUprobeArgSum),
		fmt.Sprintf("-DSLOT_URET=%d", slotUretCount),
		fmt.Sprintf("-DSLOT_URETSUM=%d", slotUretSum),
		fmt.Sprintf("-DSLOT_MATCH=%d", slotMatch),
		fmt.Sprintf("-DSLOT_MATCHRET=%d", slotMatchRet),
		fmt.Sprintf("-DSLOT_SOCK=%d", slotSockDrop),
		fmt.Sprintf("-DSLOT_XDP=%d", slotXDPDrop),
		fmt.Sprintf("-DSLOT_KP=%d", slotKprobe),
		fmt.Sprintf("-DSLOT_KRET=%d", slotKretprobe),
		fmt.Sprintf("-DSLOT_STRLEN=%d", slotStrlen),
		fmt.Sprintf("-DSLOT_OPEN=%d", slotOpen),
		fmt.Sprintf("-DSLOT_OPEN_FDCWD=%d", slotOpenAtFDCWD),
		fmt.Sprintf("-DSLOT_OPEN_LASTDFD=%d", slotOpenLastDFD),
		fmt.Sprintf("-DSLOT_OPEN_RET=%d", slotOpenRet),
		fmt.Sprintf("-DSLOT_OPEN_ENOENT=%d", slotOpenENOENT),
		fmt.Sprintf("-DSLOT_OPEN_LASTRC=%d", slotOpenLastRC),
		fmt.Sprintf("-DOPEN_NAME_LEN=%d", openNameLen),
		fmt.Sprintf("-DAT_FDCWD_VAL=%d", unix.AT_FDCWD),
		fmt.Sprintf("-DENOENT_VAL=%d", int(unix.ENOENT)),
	}
}

// uprobeTargetSource is the program the uprobe tests probe: it calls
// gobpf_add(i, 7), gobpf_mul(i, 3) and gobpf_other(i) for i in [0, n), and
// then strlen(argv[2]) n times if there is an argv[2].
const uprobeTargetSource = `
#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) int gobpf_add(int a, int b) { return a + b; }
__attribute__((noinline)) int gobpf_mul(int a, int b) { return a * b; }
__attribute__((noinline)) int gobpf_other(int a) { return a - 1; }
int main(int argc, char **argv) {
	int n = atoi(argv[1]);
	volatile int s = 0;
	for (int i = 0; i < n; i++) {
		s += gobpf_add(i, 7);
		s += gobpf_mul(i, 3);
		s += gobpf_other(i);
	}
	for (int i = 0; argc > 2 && i < n; i++)
		s += strlen(argv[2]);
	return 0;
}
`

// TestCore compiles one module and exercises every attach type with it.
func TestCore(t *testing.T) {
	defer testutil.CheckLeaks(t)()
	m := mustNewModule(t, coreSource, coreCflags()...)
	defer m.Close()

	bin := testutil.BuildC(t, uprobeTargetSource, "-fno-builtin")
	runTarget := func(t *testing.T, n int) {
		t.Helper()
		testutil.Run(t, bin, strconv.Itoa(n))
	}
	count := func(slot int) uint64 { return lookupU64(t, m, "counts", uint32(slot)) }

	t.Run("Tracepoint", func(t *testing.T) {
		fd, err := m.LoadTracepoint("tracepoint__syscalls__sys_enter_getppid")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AttachTracepoint("syscalls:sys_enter_getppid", fd); err != nil {
			t.Fatal(err)
		}
		before := count(slotTracepoint)
		const n = 1000
		for i := 0; i < n; i++ {
			unix.Getppid()
		}
		if got := count(slotTracepoint) - before; got != n {
			t.Fatalf("tracepoint saw %d getppid calls, want %d", got, n)
		}
	})

	t.Run("RawTracepoint", func(t *testing.T) {
		if !SupportsRawTracepoints() {
			t.Fatal("SupportsRawTracepoints() = false on a kernel that has them")
		}
		fd, err := m.LoadRawTracepoint("raw_tracepoint__sys_enter")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AttachRawTracepoint("sys_enter", fd); err != nil {
			t.Fatal(err)
		}
		before := count(slotRawTP)
		const n = 777
		for i := 0; i < n; i++ {
			unix.Getppid()
		}
		if got := count(slotRawTP) - before; got != n {
			t.Fatalf("raw tracepoint saw %d getppid calls, want %d", got, n)
		}
	})

	t.Run("UprobeUretprobe", func(t *testing.T) {
		fd, err := m.LoadUprobe("on_add")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AttachUprobe(bin, "gobpf_add", fd, -1); err != nil {
			t.Fatal(err)
		}
		rfd, err := m.LoadUprobe("on_add_ret")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AttachUretprobe(bin, "gobpf_add", rfd, -1); err != nil {
			t.Fatal(err)
		}
		const n = 50
		runTarget(t, n)
		var argSum, retSum uint64
		for i := 0; i < n; i++ {
			argSum += uint64(i)
			retSum += uint64(i + 7)
		}
		if got := count(slotUprobeCount); got != n {
			t.Errorf("uprobe hits = %d, want %d", got, n)
		}
		if got := count(slotUprobeArgSum); got != argSum {
			t.Errorf("sum of first arguments = %d, want %d", got, argSum)
		}
		if got := count(slotUretCount); got != n {
			t.Errorf("uretprobe hits = %d, want %d", got, n)
		}
		if got := count(slotUretSum); got != retSum {
			t.Errorf("sum of return values = %d, want %d", got, retSum)
		}
	})

	t.Run("MatchingUprobes", func(t *testing.T) {
		fd, err := m.LoadUprobe("on_match")
		if err != nil {
			t.Fatal(err)
		}
		funcs, err := m.AttachMatchingUprobesFuncs(bin, `^gobpf_(add|mul)$`, fd, -1)
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(funcs)
		if strings.Join(funcs, ",") != "gobpf_add,gobpf_mul" {
			t.Errorf("AttachMatchingUprobesFuncs attached %q, want gobpf_add and gobpf_mul", funcs)
		}
		rfd, err := m.LoadUprobe("on_match_ret")
		if err != nil {
			t.Fatal(err)
		}
		rfuncs, err := m.AttachMatchingUretprobesFuncs(bin, `^gobpf_(mul|other)$`, rfd, -1)
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(rfuncs)
		if strings.Join(rfuncs, ",") != "gobpf_mul,gobpf_other" {
			t.Errorf("AttachMatchingUretprobesFuncs attached %q, want gobpf_mul and gobpf_other", rfuncs)
		}
		if err := m.AttachMatchingUprobes(bin, `^no_such_function_\d+$`, fd, -1); !errors.Is(err, ErrNotFound) {
			t.Errorf("matching nothing: err = %v, want ErrNotFound", err)
		}
		const n = 40
		runTarget(t, n)
		if got := count(slotMatch); got != 2*n {
			t.Errorf("matching uprobes hits = %d, want %d (2 functions × %d)", got, 2*n, n)
		}
		if got := count(slotMatchRet); got != 2*n {
			t.Errorf("matching uretprobes hits = %d, want %d", got, 2*n)
		}
	})

	t.Run("UprobeLibraryShortName", func(t *testing.T) {
		// "c" resolves to libc; the probe is limited to a pid that never
		// calls the function, so only the attach itself is checked here.
		fd, err := m.LoadUprobe("on_match")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AttachUprobe("c", "getpid", fd, os.Getpid()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("UprobeIndirectFunction", func(t *testing.T) {
		// glibc's strlen is an indirect function (STT_GNU_IFUNC): the
		// probe must land on the implementation, not on the resolver.
		fd, err := m.LoadUprobe("on_strlen")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AttachUprobe("c", "strlen", fd, -1); err != nil {
			t.Fatal(err)
		}
		const n = 25
		testutil.Run(t, bin, strconv.Itoa(n), "gobpf#SL-marker")
		if got := count(slotStrlen); got != n {
			t.Errorf("strlen hits = %d, want %d", got, n)
		}
	})

	t.Run("UprobeErrors", func(t *testing.T) {
		fd, err := m.LoadUprobe("on_add")
		if err != nil {
			t.Fatal(err)
		}
		err = m.AttachUprobe(bin, "no_such_symbol", fd, -1)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no_such_symbol") {
			t.Errorf("unknown symbol: err = %v, want ErrNotFound naming it", err)
		}
		err = m.AttachUprobe("/no/such/binary", "main", fd, -1)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "/no/such/binary") {
			t.Errorf("unknown binary: err = %v, want ErrNotFound naming it", err)
		}
		err = m.AttachUprobe("nosuchlibgobpf", "main", fd, -1)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "nosuchlibgobpf") {
			t.Errorf("unknown library: err = %v, want ErrNotFound naming it", err)
		}
		if err := m.AttachMatchingUprobes(bin, `(`, fd, -1); err == nil {
			t.Error("bad regexp: no error")
		}
	})

	t.Run("PerfEvent", func(t *testing.T) {
		fd, err := m.LoadPerfEvent("on_cpu_clock")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AttachPerfEvent(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK, 0, 1000, -1, -1, -1, fd); err != nil {
			t.Fatal(err)
		}
		// Keep every CPU busy for a while.
		stop := time.Now().Add(300 * time.Millisecond)
		var wg sync.WaitGroup
		for i := 0; i < runtime.NumCPU(); i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
				}
			}()
		}
		wg.Wait()
		cpus, err := cpuonline.Get()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cpus {
			if got := lookupU64(t, m, "cpu_samples", uint32(c)); got == 0 {
				t.Errorf("cpu %d: no cpu-clock samples", c)
			} else {
				t.Logf("cpu %d: %d samples", c, got)
			}
		}
		if err := m.AttachPerfEvent(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK, 0, 0, -1, -1, -1, fd); err == nil {
			t.Error("neither period nor frequency: no error")
		}
	})

	t.Run("SocketFilter", func(t *testing.T) {
		fd, err := m.LoadSocketFilter("sock_drop_d")
		if err != nil {
			t.Fatal(err)
		}
		if fd2, err := m.Load("sock_drop_d", BPF_PROG_TYPE_SOCKET_FILTER, 0, 0); err != nil || fd2 != fd {
			t.Fatalf("second load = %d, %v; want the cached fd %d", fd2, err, fd)
		}
		rx, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(rx)
		if err := unix.SetsockoptInt(rx, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, fd); err != nil {
			t.Fatal(err)
		}
		if err := unix.Bind(rx, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		sa, err := unix.Getsockname(rx)
		if err != nil {
			t.Fatal(err)
		}
		unix.SetsockoptTimeval(rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2})
		tx, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(tx)
		before := count(slotSockDrop)
		var want []string
		drops := 0
		for i := 0; i < 10; i++ {
			msg := fmt.Sprintf("K%d", i)
			if i%3 == 0 {
				msg = fmt.Sprintf("D%d", i)
				drops++
			} else {
				want = append(want, msg)
			}
			if err := unix.Sendto(tx, []byte(msg), 0, sa); err != nil {
				t.Fatal(err)
			}
		}
		unix.Sendto(tx, []byte("END"), 0, sa)
		var got []string
		buf := make([]byte, 64)
		for {
			n, _, err := unix.Recvfrom(rx, buf, 0)
			if err != nil {
				t.Fatalf("recv after %v: %v", got, err)
			}
			if string(buf[:n]) == "END" {
				break
			}
			got = append(got, string(buf[:n]))
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("received %v, want %v", got, want)
		}
		if d := count(slotSockDrop) - before; d != uint64(drops) {
			t.Errorf("filter counted %d drops, want %d", d, drops)
		}
	})

	t.Run("XDP", func(t *testing.T) { testXDP(t, m) })

	t.Run("Kprobe", func(t *testing.T) {
		fd, err := m.LoadKprobe("on_kprobe")
		if err != nil {
			t.Fatal(err)
		}
		rfd, err := m.LoadKprobe("on_kretprobe")
		if err != nil {
			t.Fatal(err)
		}
		fn := GetSyscallFnName("getppid")
		if !testutil.HaveKprobes() {
			err := m.AttachKprobe(fn, fd, 0)
			if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "CONFIG_KPROBES") {
				t.Errorf("AttachKprobe without kprobes: err = %v, want ErrNotSupported naming CONFIG_KPROBES", err)
			}
			err = m.AttachKretprobe(fn, rfd, 0)
			if !errors.Is(err, ErrNotSupported) {
				t.Errorf("AttachKretprobe without kprobes: err = %v, want ErrNotSupported", err)
			}
		}
		testutil.RequireKprobes(t)
		if !SupportsKprobes() {
			t.Fatal("SupportsKprobes() = false on a kernel with kprobes")
		}
		if err := m.AttachKprobe(fn, fd, 0); err != nil {
			t.Fatal(err)
		}
		if err := m.AttachKretprobe(fn, rfd, 16); err != nil {
			t.Fatal(err)
		}
		if err := m.AttachKprobe("gobpf_no_such_kernel_function", fd, 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown kernel function: err = %v, want ErrNotFound", err)
		}
		// The kretprobe's maxActive reached the kernel.
		checkKretprobeMaxActive(t, fn, 16)
		b1, b2 := count(slotKprobe), count(slotKretprobe)
		const n = 321
		for i := 0; i < n; i++ {
			unix.Getppid()
		}
		if got := count(slotKprobe) - b1; got != n {
			t.Errorf("kprobe hits = %d, want %d", got, n)
		}
		if got := count(slotKretprobe) - b2; got != n {
			t.Errorf("kretprobe hits = %d, want %d", got, n)
		}
	})

	t.Run("KprobeSyscallFnName", func(t *testing.T) {
		testutil.RequireKprobes(t)
		prefix := GetSyscallPrefix()
		if runtime.GOARCH == "amd64" && kallsymsHas(t, "__x64_sys_bpf") && prefix != "__x64_sys_" {
			t.Errorf("GetSyscallPrefix() = %q on a kernel with __x64_sys_bpf, want __x64_sys_", prefix)
		}
		for _, sc := range []string{"getppid", "chroot", "openat"} {
			name := GetSyscallFnName(sc)
			if name != prefix+sc {
				t.Errorf("GetSyscallFnName(%q) = %q, want prefix %q + %q", sc, name, prefix, sc)
			}
			if !kallsymsHas(t, name) {
				t.Errorf("GetSyscallFnName(%q) = %q is not in /proc/kallsyms", sc, name)
			}
		}
	})

	t.Run("KprobeKretprobeArgs", func(t *testing.T) {
		testutil.RequireKprobes(t)
		// long do_sys_openat2(int dfd, const char __user *filename, struct open_how *how)
		const fn = "do_sys_openat2"
		if !kallsymsHas(t, fn) {
			t.Fatalf("%s is not in /proc/kallsyms", fn)
		}
		fd, err := m.LoadKprobe("on_openat2")
		if err != nil {
			t.Fatal(err)
		}
		rfd, err := m.LoadKprobe("on_openat2_ret")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AttachKprobe(fn, fd, 0); err != nil {
			t.Fatal(err)
		}
		if err := m.AttachKretprobe(fn, rfd, 16); err != nil {
			t.Fatal(err)
		}
		checkKretprobeMaxActive(t, fn, 16)

		marker := fmt.Sprintf("/tmp/gobpf-kprobe-%d-missing", os.Getpid())
		if len(marker) >= openNameLen {
			t.Fatalf("marker %q too long", marker)
		}
		if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("stat %s: %v, want ENOENT", marker, err)
		}
		// The probes count only this (locked) thread's opens.
		tids := NewTable(m.TableId("open_tid"), m)
		setTid := func(tid int) {
			t.Helper()
			var k, v [4]byte
			binary.NativeEndian.PutUint32(v[:], uint32(tid))
			if err := tids.Set(k[:], v[:]); err != nil {
				t.Fatal(err)
			}
		}
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		setTid(unix.Gettid())
		const n = 37
		for i := 0; i < n; i++ {
			fd, err := unix.Open(marker, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != unix.ENOENT {
				if err == nil {
					unix.Close(fd)
				}
				setTid(0)
				t.Fatalf("open %s: %v, want ENOENT", marker, err)
			}
		}
		setTid(0)

		var lastName string
		if v, err := NewTable(m.TableId("open_last_name"), m).Get(make([]byte, 4)); err == nil {
			lastName = cString(v)
		}
		if got := count(slotOpen); got != n {
			t.Errorf("kprobe on %s: %d hits, want %d (last filename %q)", fn, got, n, lastName)
		}
		if got := count(slotOpenAtFDCWD); got != n {
			t.Errorf("kprobe on %s: dfd == AT_FDCWD in %d calls, want %d (last dfd %d)",
				fn, got, n, int64(count(slotOpenLastDFD)))
		}
		key := make([]byte, openNameLen)
		copy(key, marker)
		v, err := NewTable(m.TableId("open_names"), m).Get(key)
		if err != nil {
			t.Errorf("kprobe on %s: filename %q never seen (last filename %q): %v", fn, marker, lastName, err)
		} else if got := binary.NativeEndian.Uint64(v); got != n {
			t.Errorf("kprobe on %s: filename %q seen %d times, want %d (last filename %q)", fn, marker, got, n, lastName)
		}
		if lastName != marker {
			t.Errorf("kprobe on %s: last filename %q, want %q", fn, lastName, marker)
		}
		if got := count(slotOpenRet); got != n {
			t.Errorf("kretprobe on %s: %d hits, want %d", fn, got, n)
		}
		if got := count(slotOpenENOENT); got != n {
			t.Errorf("kretprobe on %s: returned -ENOENT %d times, want %d (last return value %d)",
				fn, got, n, int64(count(slotOpenLastRC)))
		}
		t.Logf("%d opens of %s: dfd %d, filename %q, return value %d",
			n, marker, int64(count(slotOpenLastDFD)), lastName, int64(count(slotOpenLastRC)))
	})

	t.Run("Errors", func(t *testing.T) {
		_, err := m.LoadTracepoint("no_such_function")
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no_such_function") {
			t.Errorf("unknown function: err = %v, want ErrNotFound naming it", err)
		}
		fd, err := m.LoadTracepoint("tracepoint__syscalls__sys_enter_getppid")
		if err != nil {
			t.Fatal(err)
		}
		err = m.AttachTracepoint("syscalls:sys_enter_gobpf_nope", fd)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "syscalls:sys_enter_gobpf_nope") {
			t.Errorf("unknown tracepoint: err = %v, want ErrNotFound naming it", err)
		}
		for _, bad := range []string{"nocolon", ":x", "x:", "a:b:c"} {
			if err := m.AttachTracepoint(bad, fd); err == nil {
				t.Errorf("AttachTracepoint(%q): no error", bad)
			}
		}
		rfd, err := m.LoadRawTracepoint("raw_tracepoint__sys_enter")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AttachRawTracepoint("gobpf_no_such_tp", rfd); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown raw tracepoint: err = %v, want ErrNotFound", err)
		}
		xfd, err := m.LoadXDP("xdp_drop_udp")
		if err != nil {
			t.Fatal(err)
		}
		err = m.AttachXDP("gbxnosuch0", xfd)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "gbxnosuch0") {
			t.Errorf("unknown device: err = %v, want ErrNotFound naming it", err)
		}
	})

	t.Run("VerifierRejection", func(t *testing.T) {
		_, err := m.LoadKprobe("bad_ctx")
		var le *LoadError
		if !errors.As(err, &le) {
			t.Fatalf("err = %v, want a *LoadError", err)
		}
		if !strings.Contains(err.Error(), "invalid bpf_context access") {
			t.Errorf("error lacks the verifier's text:\n%v", err)
		}
		// An explicit log level and size work too.
		_, err = m.Load("bad_ctx", BPF_PROG_TYPE_KPROBE, 2, 1<<20)
		if err == nil || !strings.Contains(err.Error(), "invalid bpf_context access") {
			t.Errorf("with log level 2: err = %v", err)
		}
	})

	t.Run("ProgramTag", func(t *testing.T) {
		fd, err := m.LoadTracepoint("tracepoint__syscalls__sys_enter_getppid")
		if err != nil {
			t.Fatal(err)
		}
		tag, err := m.GetProgramTag(fd)
		if err != nil {
			t.Fatal(err)
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("prog_tag:\t%016x", tag)
		if !bytes.Contains(info, []byte(want)) {
			t.Errorf("tag %016x not in fdinfo:\n%s", tag, info)
		}
		if _, err := m.GetProgramTag(-1); err == nil {
			t.Error("tag of fd -1: no error")
		}
	})
}

// kallsymsHas reports whether /proc/kallsyms lists a kernel (not module)
// symbol name.
func kallsymsHas(t testing.TB, name string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b, []byte(" "+name+"\n"))
}

// ownKprobeEvents returns the lines of kprobe_events that this process's
// probes on the kernel function fn registered there (libbcc names their
// events "kprobes/<name>_bcc_<pid>").
func ownKprobeEvents(fn string) []string {
	var lines []string
	suffix := fmt.Sprintf("_bcc_%d", os.Getpid())
	for _, l := range strings.Split(readEventsFile("kprobe_events"), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[1] == fn && strings.HasSuffix(f[0], suffix) {
			lines = append(lines, l)
		}
	}
	return lines
}

// checkKretprobeMaxActive checks that kprobe_events lists this process's
// kretprobes on fn with maxactive set: libbcc registers a kretprobe with a
// maxActive above 0 through kprobe_events ("r<maxactive>:kprobes/..."),
// since the perf_kprobe PMU cannot take it.
func checkKretprobeMaxActive(t *testing.T, fn string, maxActive int) {
	t.Helper()
	want := fmt.Sprintf("r%d:", maxActive)
	var found bool
	lines := ownKprobeEvents(fn)
	for _, l := range lines {
		if strings.HasPrefix(l, want) {
			found = true
			t.Logf("kprobe_events: %s", l)
		}
	}
	if !found {
		t.Errorf("kprobe_events has no %q line of this process for %s; its lines for %s: %q\nkprobe_events:\n%s",
			want, fn, fn, lines, readEventsFile("kprobe_events"))
	}
}

// cString returns b up to its first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// testXDP drops UDP datagrams to xdpPort sent from a namespace across a
// veth pair, and checks that none arrive and that each was counted.
func testXDP(t *testing.T, m *Module) {
	const (
		ns       = "gobpf-bcc-xdp"
		dev      = "gbx0"
		peer     = "gbx1"
		devAddr  = "10.201.7.1"
		peerAddr = "10.201.7.2"
	)
	testutil.VethPair(t, ns, dev, peer, devAddr, peerAddr)
	fd, err := m.LoadXDP("xdp_drop_udp")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(devAddr), Port: xdpPort})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	send := func(msgs ...string) {
		t.Helper()
		var script strings.Builder
		for _, s := range msgs {
			fmt.Fprintf(&script, "printf %s > /dev/udp/%s/%d\n", s, devAddr, xdpPort)
		}
		testutil.Run(t, "ip", "netns", "exec", ns, "bash", "-c", script.String())
	}
	// recv returns the datagrams that arrive until want of them have or
	// timeout passes.
	recv := func(want int, timeout time.Duration) []string {
		var got []string
		buf := make([]byte, 128)
		deadline := time.Now().Add(timeout)
		for want == 0 || len(got) < want {
			conn.SetReadDeadline(deadline)
			n, err := conn.Read(buf)
			if err != nil {
				return got
			}
			got = append(got, string(buf[:n]))
		}
		return got
	}
	// Without XDP the datagrams arrive.
	send("hello")
	if got := recv(1, 3*time.Second); len(got) != 1 || got[0] != "hello" {
		t.Fatalf("before XDP: received %q, want [hello]", got)
	}
	if err := m.AttachXDP(dev, fd); err != nil {
		t.Fatal(err)
	}
	before := lookupU64(t, m, "counts", slotXDPDrop)
	const n = 5
	var msgs []string
	for i := 0; i < n; i++ {
		msgs = append(msgs, fmt.Sprintf("drop%d", i))
	}
	send(msgs...)
	if got := recv(0, 300*time.Millisecond); len(got) != 0 {
		t.Errorf("with XDP: received %q, want nothing", got)
	}
	if got := lookupU64(t, m, "counts", slotXDPDrop) - before; got != n {
		t.Errorf("XDP dropped %d datagrams, want %d", got, n)
	}
	if err := m.RemoveXDP(dev); err != nil {
		t.Fatal(err)
	}
	send("again")
	if got := recv(1, 3*time.Second); len(got) != 1 || got[0] != "again" {
		t.Errorf("after RemoveXDP: received %q, want [again]", got)
	}
	// Generic (SKB) mode, removed by Close's detach list later on.
	if err := m.AttachXDPWithFlags(dev, fd, XDP_FLAGS_SKB_MODE); err != nil {
		t.Fatal(err)
	}
	out := testutil.Run(t, "ip", "link", "show", dev)
	if !strings.Contains(out, "xdpgeneric") {
		t.Errorf("ip link show %s: no xdpgeneric program:\n%s", dev, out)
	}
	if err := m.AttachXDPWithFlags(dev, fd, 1<<20); err == nil {
		t.Error("unknown XDP flag: no error")
	}
}
