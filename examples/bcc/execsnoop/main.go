// Command execsnoop prints every program executed on the system, from the
// sched:sched_process_exec tracepoint (or syscalls:sys_enter_execve where
// that is missing), through a BPF ring buffer read with the context-aware
// reader (or, with -perf, through a perf map and gobpf's channel API, for
// kernels older than 5.8):
//
//	PID     PPID    COMM             FILENAME
//	4242    4200    ls               /usr/bin/ls
//
// Run as root; stop it with Ctrl-C, or bound it with -duration or -count.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	bpf "github.com/iovisor/gobpf/bcc"
)

const source = `
struct exec_event {
	u32 pid;
	char comm[16];
	char filename[256];
};

#ifdef USE_PERF
BPF_PERF_OUTPUT(events);
#else
BPF_RINGBUF_OUTPUT(events, 64);
// The kernel does not tell the reader about records the ring had no room
// for: count them here.
BPF_ARRAY(dropped, u64, 1);
#endif

static inline void fill(struct exec_event *e) {
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
}

static inline void submit(void *ctx, struct exec_event *e) {
#ifdef USE_PERF
	events.perf_submit(ctx, e, sizeof(*e));
#else
	if (events.ringbuf_output(e, sizeof(*e), 0) < 0) {
		int zero = 0;
		u64 *d = dropped.lookup(&zero);
		if (d)
			__sync_fetch_and_add(d, 1);
	}
#endif
}

// After a successful exec: comm is already the new program's.
TRACEPOINT_PROBE(sched, sched_process_exec) {
	struct exec_event e = {};
	fill(&e);
	unsigned short off = args->data_loc_filename & 0xFFFF;
	bpf_probe_read_kernel_str(&e.filename, sizeof(e.filename), (char *)args + off);
	submit(args, &e);
	return 0;
}

// Fallback: every execve attempt, before it happens.
TRACEPOINT_PROBE(syscalls, sys_enter_execve) {
	struct exec_event e = {};
	fill(&e);
	bpf_probe_read_user_str(&e.filename, sizeof(e.filename), args->filename);
	submit(args, &e);
	return 0;
}
`

type execEvent struct {
	Pid      uint32
	Comm     [16]byte
	Filename [256]byte
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// ppid reads the parent of pid from /proc ("?" once the process is gone).
// The kernel side does not read task_struct: bcc compiles against kernel
// headers whose layout may differ from the running kernel's.
func ppid(pid uint32) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "?"
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "?"
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return "?"
	}
	return f[1]
}

func main() {
	duration := flag.Duration("duration", 0, "stop after this long (0: until interrupted)")
	count := flag.Int("count", 0, "stop after this many events (0: no limit)")
	usePerf := flag.Bool("perf", false, "use a perf map (kernels before 5.8) instead of a ring buffer")
	flag.Parse()
	if err := run(*duration, *count, *usePerf); err != nil {
		fmt.Fprintln(os.Stderr, "execsnoop:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, count int, usePerf bool) error {
	var cflags []string
	if usePerf {
		cflags = append(cflags, "-DUSE_PERF")
	}
	m, err := bpf.NewModuleWithError(source, cflags)
	if err != nil {
		return err
	}
	defer m.Close()

	attached := ""
	for _, tp := range []struct{ fn, name string }{
		{"tracepoint__sched__sched_process_exec", "sched:sched_process_exec"},
		{"tracepoint__syscalls__sys_enter_execve", "syscalls:sys_enter_execve"},
	} {
		fd, err := m.LoadTracepoint(tp.fn)
		if err != nil {
			return err
		}
		if err := m.AttachTracepoint(tp.name, fd); err != nil {
			fmt.Fprintf(os.Stderr, "execsnoop: %v; trying the next tracepoint\n", err)
			continue
		}
		attached = tp.name
		break
	}
	if attached == "" {
		return fmt.Errorf("no exec tracepoint could be attached")
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if duration > 0 {
		var c context.CancelFunc
		ctx, c = context.WithTimeout(ctx, duration)
		defer c()
	}
	table := bpf.NewTable(m.TableId("events"), m)
	seen := 0
	print := func(data []byte) (done bool, err error) {
		var e execEvent
		if err := binary.Read(bytes.NewReader(data), binary.NativeEndian, &e); err != nil {
			return true, fmt.Errorf("decoding event: %w", err)
		}
		fmt.Printf("%-7d %-7s %-16s %s\n", e.Pid, ppid(e.Pid), cstr(e.Comm[:]), cstr(e.Filename[:]))
		seen++
		return count > 0 && seen >= count, nil
	}
	if usePerf {
		return readPerf(ctx, table, attached, print)
	}
	return readRing(ctx, m, table, attached, print)
}

func header(attached, via string) {
	fmt.Printf("tracing exec with the tracepoint %s through a %s\n", attached, via)
	fmt.Printf("%-7s %-7s %-16s %s\n", "PID", "PPID", "COMM", "FILENAME")
}

// readRing reads the ring buffer with the context-aware reader, reusing one
// record buffer, until ctx ends or print says it is done.
func readRing(ctx context.Context, m *bpf.Module, table *bpf.Table, attached string, print func([]byte) (bool, error)) error {
	r, err := bpf.NewRingBufReader(table)
	if err != nil {
		return err
	}
	defer r.Close()
	dropped := bpf.NewTable(m.TableId("dropped"), m)
	defer func() {
		if v, err := dropped.Get(make([]byte, 4)); err == nil {
			if n := binary.NativeEndian.Uint64(v); n > 0 {
				fmt.Fprintf(os.Stderr, "%d events dropped: the ring buffer was full\n", n)
			}
		}
	}()
	header(attached, "ring buffer")
	var rec bpf.Record
	for {
		if err := r.ReadInto(ctx, &rec); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if done, err := print(rec.RawSample); done || err != nil {
			return err
		}
	}
}

// readPerf reads the perf map through gobpf's channel API.
func readPerf(ctx context.Context, table *bpf.Table, attached string, print func([]byte) (bool, error)) error {
	events := make(chan []byte, 256)
	lost := make(chan uint64, 8)
	pm, err := bpf.InitPerfMap(table, events, lost)
	if err != nil {
		return err
	}
	pm.Start()
	defer func() {
		// Stop delivers what is still buffered: keep receiving meanwhile.
		done := make(chan struct{})
		go func() {
			for {
				select {
				case <-events:
				case <-lost:
				case <-done:
					return
				}
			}
		}()
		pm.Stop()
		close(done)
	}()
	header(attached, "perf map")
	for {
		select {
		case data := <-events:
			if done, err := print(data); done || err != nil {
				return err
			}
		case n := <-lost:
			fmt.Fprintf(os.Stderr, "lost %d events\n", n)
		case <-ctx.Done():
			return nil
		}
	}
}
