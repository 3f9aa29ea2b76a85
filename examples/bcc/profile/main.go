// Command profile samples the stacks of everything running on the system
// (or of one process, -pid) at 49 Hz on every CPU and, after -duration,
// prints the -top most frequent kernel+user stacks, symbolized:
//
//	__x64_sys_getppid+0x5
//	do_syscall_64+0x82
//	entry_SYSCALL_64_after_hwframe+0x76
//	--
//	/usr/lib/x86_64-linux-gnu/libc.so.6:getppid+0x7
//	/tmp/prog:main+0x24
//	-                spin (4242)
//	    37
//
// It attaches a perf_event program to a CPU clock software event and counts
// (pid, kernel stack id, user stack id) in a hash; the stacks themselves
// live in a BPF_STACK_TRACE table. Run as root.
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	bpf "github.com/iovisor/gobpf/bcc"
)

const source = `
#include <uapi/linux/ptrace.h>
#include <uapi/linux/bpf_perf_event.h>

struct key_t {
	u32 pid;
	int kstack;
	int ustack;
	char comm[16];
};

BPF_HASH(counts, struct key_t, u64, 16384);
BPF_STACK_TRACE(stacks, 16384);

int do_sample(struct bpf_perf_event_data *ctx) {
	u32 pid = bpf_get_current_pid_tgid() >> 32;
	if (pid == 0 && !IDLE)
		return 0;
	if (FILTER_PID && pid != FILTER_PID)
		return 0;
	struct key_t key = {.pid = pid};
	bpf_get_current_comm(&key.comm, sizeof(key.comm));
	key.kstack = stacks.get_stackid(&ctx->regs, 0);
	key.ustack = stacks.get_stackid(&ctx->regs, BPF_F_USER_STACK);
	counts.increment(key);
	return 0;
}
`

// key mirrors struct key_t.
type key struct {
	Pid    uint32
	KStack int32
	UStack int32
	Comm   [16]byte
}

type sample struct {
	key
	count uint64
}

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long to sample")
	top := flag.Int("top", 10, "how many stacks to print")
	pid := flag.Int("pid", 0, "only sample this process (0: all)")
	freq := flag.Int("freq", 49, "sampling frequency in Hz")
	idle := flag.Bool("idle", false, "include the idle task (pid 0)")
	flag.Parse()
	if err := run(*duration, *top, *pid, *freq, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, top, pid, freq int, idle bool) error {
	if top <= 0 || freq <= 0 || pid < 0 || duration <= 0 {
		return errors.New("-top, -freq and -duration must be positive, -pid not negative")
	}
	idleFlag := 0
	if idle {
		idleFlag = 1
	}
	m, err := bpf.NewModuleWithError(source, []string{
		fmt.Sprintf("-DFILTER_PID=%d", pid),
		fmt.Sprintf("-DIDLE=%d", idleFlag),
	})
	if err != nil {
		return err
	}
	defer m.Close()
	fd, err := m.LoadPerfEvent("do_sample")
	if err != nil {
		return err
	}
	if err := m.AttachPerfEvent(bpf.PERF_TYPE_SOFTWARE, bpf.PERF_COUNT_SW_CPU_CLOCK, 0, freq, -1, -1, -1, fd); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Sampling stacks at %d Hz for %v... Ctrl-C to stop early.\n", freq, duration)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case <-time.After(duration):
	case <-sig:
	}

	counts := bpf.NewTable(m.TableId("counts"), m)
	var samples []sample
	it := counts.Iter()
	for it.Next() {
		var k key
		if err := binary.Read(bytes.NewReader(it.Key()), binary.NativeEndian, &k); err != nil {
			return err
		}
		samples = append(samples, sample{k, binary.NativeEndian.Uint64(it.Leaf())})
	}
	if err := it.Err(); err != nil {
		return err
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i].count > samples[j].count })
	if len(samples) > top {
		samples = samples[:top]
	}
	stacks, err := m.StackTable("stacks")
	if err != nil {
		return err
	}
	sym := bpf.NewSymbolizer()
	defer sym.Close()
	for _, s := range samples {
		printStack(stacks, sym, s)
	}
	return nil
}

func printStack(stacks *bpf.StackTable, sym *bpf.Symbolizer, s sample) {
	if addrs, err := stacks.Addresses(int(s.KStack)); err == nil {
		for _, f := range sym.KernelStack(addrs) {
			fmt.Printf("    %s\n", f)
		}
	} else if s.KStack != -int32(syscall.EFAULT) {
		fmt.Printf("    [kernel stack: %v]\n", err)
	}
	fmt.Println("    --")
	if addrs, err := stacks.Addresses(int(s.UStack)); err == nil {
		for _, f := range sym.UserStack(int(s.Pid), addrs) {
			fmt.Printf("    %s\n", f)
		}
	} else if s.UStack == -int32(syscall.EFAULT) {
		fmt.Println("    [no user stack]")
	} else {
		fmt.Printf("    [user stack: %v]\n", err)
	}
	fmt.Printf("    -                %s (%d)\n        %d\n\n", bytes.TrimRight(s.Comm[:], "\x00"), s.Pid, s.count)
}
