// Command perf samples the running tasks on every CPU with a software
// cpu-clock perf event (-freq Hz) and prints which processes were on CPU
// most often when it stops (Ctrl-C, or after -duration):
//
//	SAMPLES  PID     COMM
//	    412  4242    cc1
//
// Run as root.
package main

import (
	"bytes"
	"encoding/binary"
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
#include <uapi/linux/bpf_perf_event.h>

struct key_t {
	u32 pid;
	char comm[16];
};

BPF_HASH(samples, struct key_t, u64, 10240);

int on_sample(struct bpf_perf_event_data *ctx) {
	struct key_t key = {};
	key.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(&key.comm, sizeof(key.comm));
	samples.increment(key);
	return 0;
}
`

func main() {
	duration := flag.Duration("duration", 5*time.Second, "sample for this long (0: until interrupted)")
	freq := flag.Int("freq", 99, "samples per second per CPU")
	top := flag.Int("top", 15, "print this many processes")
	flag.Parse()
	if err := run(*duration, *freq, *top); err != nil {
		fmt.Fprintln(os.Stderr, "perf:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, freq, top int) error {
	m, err := bpf.NewModuleWithError(source, nil)
	if err != nil {
		return err
	}
	defer m.Close()
	fd, err := m.LoadPerfEvent("on_sample")
	if err != nil {
		return err
	}
	if err := m.AttachPerfEvent(bpf.PERF_TYPE_SOFTWARE, bpf.PERF_COUNT_SW_CPU_CLOCK, 0, freq, -1, -1, -1, fd); err != nil {
		return err
	}
	fmt.Printf("sampling all CPUs at %d Hz; Ctrl-C to stop\n", freq)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	var timeout <-chan time.Time
	if duration > 0 {
		timeout = time.After(duration)
	}
	select {
	case <-sig:
	case <-timeout:
	}

	type entry struct {
		pid  uint32
		comm string
		n    uint64
	}
	var entries []entry
	it := bpf.NewTable(m.TableId("samples"), m).Iter()
	for it.Next() {
		k, v := it.Key(), it.Leaf()
		comm := k[4:20]
		if i := bytes.IndexByte(comm, 0); i >= 0 {
			comm = comm[:i]
		}
		entries = append(entries, entry{binary.NativeEndian.Uint32(k), string(comm), binary.NativeEndian.Uint64(v)})
	}
	if err := it.Err(); err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].n > entries[j].n })
	if len(entries) > top {
		entries = entries[:top]
	}
	fmt.Printf("%8s  %-7s %s\n", "SAMPLES", "PID", "COMM")
	for _, e := range entries {
		fmt.Printf("%8d  %-7d %s\n", e.n, e.pid, e.comm)
	}
	return nil
}
