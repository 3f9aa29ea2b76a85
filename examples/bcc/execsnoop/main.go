// Command execsnoop prints every program executed on the system, from the
// sched:sched_process_exec tracepoint (or syscalls:sys_enter_execve where
// that is missing), through a perf map:
//
//	PID     PPID    COMM             FILENAME
//	4242    4200    ls               /usr/bin/ls
//
// Run as root; stop it with Ctrl-C, or bound it with -duration or -count.
package main

import (
	"bytes"
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

BPF_PERF_OUTPUT(events);

static inline void fill(struct exec_event *e) {
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
}

// After a successful exec: comm is already the new program's.
TRACEPOINT_PROBE(sched, sched_process_exec) {
	struct exec_event e = {};
	fill(&e);
	unsigned short off = args->data_loc_filename & 0xFFFF;
	bpf_probe_read_kernel_str(&e.filename, sizeof(e.filename), (char *)args + off);
	events.perf_submit(args, &e, sizeof(e));
	return 0;
}

// Fallback: every execve attempt, before it happens.
TRACEPOINT_PROBE(syscalls, sys_enter_execve) {
	struct exec_event e = {};
	fill(&e);
	bpf_probe_read_user_str(&e.filename, sizeof(e.filename), args->filename);
	events.perf_submit(args, &e, sizeof(e));
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
	flag.Parse()
	if err := run(*duration, *count); err != nil {
		fmt.Fprintln(os.Stderr, "execsnoop:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, count int) error {
	m, err := bpf.NewModuleWithError(source, nil)
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

	events := make(chan []byte, 256)
	lost := make(chan uint64, 8)
	pm, err := bpf.InitPerfMap(bpf.NewTable(m.TableId("events"), m), events, lost)
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

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	var timeout <-chan time.Time
	if duration > 0 {
		timeout = time.After(duration)
	}
	fmt.Printf("tracing exec with the tracepoint %s\n", attached)
	fmt.Printf("%-7s %-7s %-16s %s\n", "PID", "PPID", "COMM", "FILENAME")
	seen := 0
	for {
		select {
		case data := <-events:
			var e execEvent
			if err := binary.Read(bytes.NewReader(data), binary.NativeEndian, &e); err != nil {
				return fmt.Errorf("decoding event: %w", err)
			}
			fmt.Printf("%-7d %-7s %-16s %s\n", e.Pid, ppid(e.Pid), cstr(e.Comm[:]), cstr(e.Filename[:]))
			seen++
			if count > 0 && seen >= count {
				return nil
			}
		case n := <-lost:
			fmt.Fprintf(os.Stderr, "lost %d events\n", n)
		case <-sig:
			return nil
		case <-timeout:
			return nil
		}
	}
}
