// Command bash_readline prints the commands typed into every bash shell on
// the system, from a uretprobe on bash's readline():
//
//	PID     COMMAND
//	4242    ls -l
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
	"syscall"
	"time"

	bpf "github.com/iovisor/gobpf/bcc"
)

const source = `
#include <uapi/linux/ptrace.h>

struct readline_event {
	u32 pid;
	char line[200];
};

BPF_PERF_OUTPUT(events);

int on_readline_return(struct pt_regs *ctx) {
	if (!PT_REGS_RC(ctx))
		return 0;
	struct readline_event e = {};
	e.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_probe_read_user_str(&e.line, sizeof(e.line), (void *)PT_REGS_RC(ctx));
	events.perf_submit(ctx, &e, sizeof(e));
	return 0;
}
`

type readlineEvent struct {
	Pid  uint32
	Line [200]byte
}

func main() {
	duration := flag.Duration("duration", 0, "stop after this long (0: until interrupted)")
	count := flag.Int("count", 0, "stop after this many lines (0: no limit)")
	shell := flag.String("bash", "/bin/bash", "the bash binary to probe")
	flag.Parse()
	if err := run(*shell, *duration, *count); err != nil {
		fmt.Fprintln(os.Stderr, "bash_readline:", err)
		os.Exit(1)
	}
}

func run(shell string, duration time.Duration, count int) error {
	m, err := bpf.NewModuleWithError(source, nil)
	if err != nil {
		return err
	}
	defer m.Close()
	fd, err := m.LoadUprobe("on_readline_return")
	if err != nil {
		return err
	}
	if err := m.AttachUretprobe(shell, "readline", fd, -1); err != nil {
		return err
	}

	events := make(chan []byte, 64)
	pm, err := bpf.InitPerfMap(bpf.NewTable(m.TableId("events"), m), events, nil)
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
	fmt.Printf("%-7s %s\n", "PID", "COMMAND")
	seen := 0
	for {
		select {
		case data := <-events:
			var e readlineEvent
			if err := binary.Read(bytes.NewReader(data), binary.NativeEndian, &e); err != nil {
				return fmt.Errorf("decoding event: %w", err)
			}
			line := e.Line[:]
			if i := bytes.IndexByte(line, 0); i >= 0 {
				line = line[:i]
			}
			fmt.Printf("%-7d %s\n", e.Pid, line)
			seen++
			if count > 0 && seen >= count {
				return nil
			}
		case <-sig:
			return nil
		case <-timeout:
			return nil
		}
	}
}
