// Command usdt traces a user statically defined tracepoint (USDT probe) of
// a binary (-binary, every process running it) or of a running process
// (-pid), and prints each hit with its arguments:
//
//	pid 4242 (myprog) gobpftest:tick arg1=3 arg2=42
//
// -list prints the probes instead. Without -probe the only probe of the
// target is used. The BPF program is generated from the probe's argument
// types. Run as root; stop it with Ctrl-C, or bound it with -duration or
// -count.
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	bpf "github.com/iovisor/gobpf/bcc"
)

const maxArgs = 12 // sys/sdt.h allows up to 12 arguments

func main() {
	binaryPath := flag.String("binary", "", "binary or library with the probe (path, program in $PATH or library short name)")
	pid := flag.Int("pid", 0, "trace the probe in this running process")
	probe := flag.String("probe", "", `probe, "name" or "provider:name"`)
	list := flag.Bool("list", false, "list the probes and exit")
	duration := flag.Duration("duration", 0, "stop after this long (0: until Ctrl-C)")
	count := flag.Int("count", 0, "stop after this many hits (0: no limit)")
	flag.Parse()
	if err := run(*binaryPath, *pid, *probe, *list, *duration, *count); err != nil {
		fmt.Fprintln(os.Stderr, "usdt:", err)
		os.Exit(1)
	}
}

func newContext(binaryPath string, pid int) (*bpf.USDTContext, error) {
	switch {
	case pid > 0 && binaryPath != "":
		return bpf.NewUSDTContextFromPIDPath(pid, binaryPath)
	case pid > 0:
		return bpf.NewUSDTContextFromPID(pid)
	case binaryPath != "":
		return bpf.NewUSDTContext(binaryPath)
	}
	return nil, errors.New("give -binary or -pid")
}

func run(binaryPath string, pid int, probe string, list bool, duration time.Duration, count int) error {
	u, err := newContext(binaryPath, pid)
	if err != nil {
		return err
	}
	defer u.Close()
	probes, err := u.Probes()
	if err != nil {
		return err
	}
	if list {
		for _, p := range probes {
			sem := ""
			if p.Semaphore != 0 {
				sem = fmt.Sprintf(" semaphore=0x%x", p.Semaphore)
			}
			fmt.Printf("%s %s:%s args=%d locations=%d%s\n", p.BinPath, p.Provider, p.Name, p.NumArguments, p.NumLocations, sem)
		}
		return nil
	}
	if probe == "" {
		if len(probes) != 1 {
			return fmt.Errorf("the target has %d probes: choose one with -probe (see -list)", len(probes))
		}
		probe = probes[0].Provider + ":" + probes[0].Name
	}
	args, err := u.ProbeArgs(probe)
	if err != nil {
		return err
	}
	if len(args) > maxArgs {
		args = args[:maxArgs]
	}
	if err := u.EnableProbe(probe, "on_probe"); err != nil {
		return err
	}
	m, err := bpf.NewModuleWithUSDT(program(args), nil, u)
	if err != nil {
		return err
	}
	defer m.Close()

	events := make(chan []byte, 1024)
	pm, err := bpf.InitPerfMap(bpf.NewTable(m.TableId("events"), m), events, nil)
	if err != nil {
		return err
	}
	pm.Start()
	defer pm.Stop()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	var timeout <-chan time.Time
	if duration > 0 {
		timeout = time.After(duration)
	}
	fmt.Fprintf(os.Stderr, "Tracing %s... Ctrl-C to stop.\n", probe)
	for n := 0; count == 0 || n < count; n++ {
		select {
		case b := <-events:
			printEvent(probe, args, b)
		case <-timeout:
			return nil
		case <-sig:
			return nil
		}
	}
	return nil
}

// program generates the BPF C program reading the probe's arguments.
func program(args []bpf.USDTArg) string {
	var b strings.Builder
	fmt.Fprintf(&b, `#include <uapi/linux/ptrace.h>
struct event {
	u32 pid;
	char comm[16];
	u64 args[%d];
};
BPF_PERF_OUTPUT(events);

int on_probe(struct pt_regs *ctx) {
	struct event e = {};
	e.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(&e.comm, sizeof(e.comm));
`, max(len(args), 1))
	for i, a := range args {
		fmt.Fprintf(&b, "\t{ %s v = 0; bpf_usdt_readarg(%d, ctx, &v); e.args[%d] = (u64)v; }\n", a.CType, i+1, i)
	}
	b.WriteString("\tevents.perf_submit(ctx, &e, sizeof(e));\n\treturn 0;\n}\n")
	return b.String()
}

func printEvent(probe string, args []bpf.USDTArg, b []byte) {
	if len(b) < 24+8*len(args) {
		fmt.Fprintf(os.Stderr, "short event (%d bytes)\n", len(b))
		return
	}
	pid := binary.NativeEndian.Uint32(b[0:])
	comm := bytes.TrimRight(b[4:20], "\x00")
	var line strings.Builder
	fmt.Fprintf(&line, "pid %d (%s) %s", pid, comm, probe)
	for i, a := range args {
		v := binary.NativeEndian.Uint64(b[24+8*i:])
		if a.Signed {
			fmt.Fprintf(&line, " arg%d=%d", i+1, int64(v))
		} else {
			fmt.Fprintf(&line, " arg%d=%d", i+1, v)
		}
	}
	fmt.Println(line.String())
}
