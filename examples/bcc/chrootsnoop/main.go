// Command chrootsnoop prints every chroot(2) call on the system:
//
//	pid 4242 (chroot) called chroot(2) on /srv/jail
//
// It uses a kprobe on the kernel's chroot syscall function when the kernel
// has kprobes, and the syscalls:sys_enter_chroot tracepoint otherwise, and
// receives the events through a perf map. Run as root; stop it with
// Ctrl-C, or bound it with -duration or -count.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	bpf "github.com/iovisor/gobpf/bcc"
)

const source = `
#include <uapi/linux/ptrace.h>

struct chroot_event {
	u32 pid;
	char comm[16];
	char path[256];
};

BPF_PERF_OUTPUT(events);

static inline int report(void *ctx, const char __user *filename) {
	struct chroot_event e = {};
	e.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(&e.comm, sizeof(e.comm));
	bpf_probe_read_user_str(&e.path, sizeof(e.path), filename);
	events.perf_submit(ctx, &e, sizeof(e));
	return 0;
}

// kprobe flavour: bcc reads the syscall's arguments for syscall__ functions.
int syscall__chroot(struct pt_regs *ctx, const char __user *filename) {
	return report(ctx, filename);
}

// tracepoint flavour.
TRACEPOINT_PROBE(syscalls, sys_enter_chroot) {
	return report(args, args->filename);
}
`

type chrootEvent struct {
	Pid  uint32
	Comm [16]byte
	Path [256]byte
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func main() {
	duration := flag.Duration("duration", 0, "stop after this long (0: until interrupted)")
	count := flag.Int("count", 0, "stop after this many events (0: no limit)")
	flag.Parse()
	if err := run(*duration, *count); err != nil {
		fmt.Fprintln(os.Stderr, "chrootsnoop:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, count int) error {
	m, err := bpf.NewModuleWithError(source, nil)
	if err != nil {
		return err
	}
	defer m.Close()

	var how string
	if bpf.SupportsKprobes() {
		fn := bpf.GetSyscallFnName("chroot")
		fd, err := m.LoadKprobe("syscall__chroot")
		if err != nil {
			return err
		}
		if err := m.AttachKprobe(fn, fd, 0); err != nil {
			return err
		}
		how = "a kprobe on " + fn
	} else {
		fd, err := m.LoadTracepoint("tracepoint__syscalls__sys_enter_chroot")
		if err != nil {
			return err
		}
		if err := m.AttachTracepoint("syscalls:sys_enter_chroot", fd); err != nil {
			return err
		}
		how = "the tracepoint syscalls:sys_enter_chroot (no kprobes in this kernel)"
	}

	table := bpf.NewTable(m.TableId("events"), m)
	events := make(chan []byte, 64)
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

	// Events are received from here on.
	fmt.Printf("tracing chroot(2) with %s\n", how)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	var timeout <-chan time.Time
	if duration > 0 {
		timeout = time.After(duration)
	}
	seen := 0
	for {
		select {
		case data := <-events:
			var e chrootEvent
			if err := binary.Read(bytes.NewReader(data), binary.NativeEndian, &e); err != nil {
				return fmt.Errorf("decoding event: %w", err)
			}
			fmt.Printf("pid %d (%s) called chroot(2) on %s\n", e.Pid, cstr(e.Comm[:]), cstr(e.Path[:]))
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
