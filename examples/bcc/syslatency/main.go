// Command syslatency summarizes a system call's latency as a log2
// histogram, the way bcc's biolatency summarizes block I/O, from the
// syscalls:sys_enter_<name> and sys_exit_<name> tracepoints (no kprobes
// needed):
//
//	# syslatency -syscall read -m
//	Tracing read(2) latency... Hit Ctrl-C to end.
//	^C
//	     msecs               : count     distribution
//	         0 -> 1          : 1021     |****************************************|
//	         2 -> 3          : 4        |                                        |
//
// -C prints one histogram per command (comm = bash), -pid traces one
// process, -interval prints (and clears) the histogram every interval,
// -count stops after that many intervals. Run as root.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"

	bpf "github.com/iovisor/gobpf/bcc"
)

// SYSCALL, FACTOR and the FILTER/STORE lines are replaced before compiling.
const source = `
typedef struct { char comm[16]; u64 slot; } comm_key_t;
BPF_HASH(start, u32, u64, 10240);
BPF_HISTOGRAM(dist);
BPF_HISTOGRAM(dist_comm, comm_key_t);

TRACEPOINT_PROBE(syscalls, sys_enter_SYSCALL) {
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32, tid = id;
	FILTER
	u64 ts = bpf_ktime_get_ns();
	start.update(&tid, &ts);
	return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_SYSCALL) {
	u32 tid = bpf_get_current_pid_tgid();
	u64 *tsp = start.lookup(&tid);
	if (tsp == 0)
		return 0;
	u64 delta = (bpf_ktime_get_ns() - *tsp) / FACTOR;
	start.delete(&tid);
	STORE
	return 0;
}
`

const (
	storeTotal = `dist.increment(bpf_log2l(delta));`
	storeComm  = `comm_key_t key = {.slot = bpf_log2l(delta)};
	bpf_get_current_comm(&key.comm, sizeof(key.comm));
	dist_comm.increment(key);`
)

var syscallName = regexp.MustCompile(`^[a-z0-9_]+$`)

func main() {
	name := flag.String("syscall", "read", "system call to time (a syscalls:sys_enter_<name> tracepoint)")
	pid := flag.Int("pid", 0, "trace this process only (0: every process)")
	msecs := flag.Bool("m", false, "millisecond histogram (default: microseconds)")
	perComm := flag.Bool("C", false, "one histogram per command")
	interval := flag.Duration("interval", 0, "print (and clear) the histogram every interval (0: once, at Ctrl-C)")
	count := flag.Int("count", 0, "with -interval: stop after this many intervals (0: no limit)")
	flag.Parse()
	if err := run(*name, *pid, *msecs, *perComm, *interval, *count); err != nil {
		fmt.Fprintln(os.Stderr, "syslatency:", err)
		os.Exit(1)
	}
}

// tracepointExists reports whether tracefs lists syscalls:<event>.
func tracepointExists(event string) bool {
	for _, dir := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(dir + "/events/syscalls/" + event + "/id"); err == nil {
			return true
		}
	}
	return false
}

func run(name string, pid int, msecs, perComm bool, interval time.Duration, count int) error {
	if !syscallName.MatchString(name) {
		return fmt.Errorf("-syscall %q: not a system call name", name)
	}
	enter, exit := "syscalls:sys_enter_"+name, "syscalls:sys_exit_"+name
	if !tracepointExists("sys_enter_"+name) || !tracepointExists("sys_exit_"+name) {
		return fmt.Errorf("no tracepoints %s and %s (is %s a system call of this kernel?)", enter, exit, name)
	}
	src := bytes.ReplaceAll([]byte(source), []byte("SYSCALL"), []byte(name))
	factor, label := "1000", "usecs"
	if msecs {
		factor, label = "1000000", "msecs"
	}
	src = bytes.ReplaceAll(src, []byte("FACTOR"), []byte(factor))
	filter := ""
	if pid > 0 {
		filter = fmt.Sprintf("if (tgid != %d) return 0;", pid)
	}
	src = bytes.ReplaceAll(src, []byte("FILTER"), []byte(filter))
	store := storeTotal
	if perComm {
		store = storeComm
	}
	src = bytes.ReplaceAll(src, []byte("STORE"), []byte(store))

	m, err := bpf.NewModuleWithError(string(src), nil)
	if err != nil {
		return err
	}
	defer m.Close()
	for _, tp := range []string{enter, exit} {
		fn := "tracepoint__syscalls__" + tp[len("syscalls:"):]
		fd, err := m.LoadTracepoint(fn)
		if err != nil {
			return err
		}
		if err := m.AttachTracepoint(tp, fd); err != nil {
			return err
		}
	}
	table := "dist"
	if perComm {
		table = "dist_comm"
	}
	dist := bpf.NewTable(m.TableId(table), m)
	opts := bpf.HistOptions{
		SectionHeader: "comm",
		SectionPrint:  func(s any) string { return string(s.(bpf.CharArray)) },
	}

	fmt.Printf("Tracing %s(2) latency... Hit Ctrl-C to end.\n", name)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for n := 1; ; n++ {
		exiting := false
		select {
		case <-sig:
			exiting = true
		case <-tick:
		}
		fmt.Println()
		if err := dist.PrintLog2Hist(os.Stdout, label, opts); err != nil {
			return err
		}
		if err := dist.DeleteAll(); err != nil {
			return err
		}
		if exiting || (count > 0 && n >= count) {
			return nil
		}
	}
}
