// Command strlen_count counts the strings passed to libc's strlen(3), with a
// uprobe, and prints the most frequent ones when it stops (Ctrl-C, or after
// -duration):
//
//	COUNT  STRING
//	  1024 "LANG"
//
// Run as root. -pid limits it to one process.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"syscall"
	"time"

	bpf "github.com/iovisor/gobpf/bcc"
)

const source = `
#include <uapi/linux/ptrace.h>

struct key_t {
	char s[80];
};

BPF_HASH(counts, struct key_t, u64, 10240);

int count_strlen(struct pt_regs *ctx) {
	struct key_t key = {};
	void *p = (void *)PT_REGS_PARM1(ctx);
	if (!p)
		return 0;
	bpf_probe_read_user_str(&key.s, sizeof(key.s), p);
	counts.increment(key);
	return 0;
}
`

func main() {
	duration := flag.Duration("duration", 0, "stop after this long (0: until interrupted)")
	pid := flag.Int("pid", -1, "only count in this process (-1: all)")
	top := flag.Int("top", 20, "print this many strings")
	flag.Parse()
	if err := run(*duration, *pid, *top); err != nil {
		fmt.Fprintln(os.Stderr, "strlen_count:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, pid, top int) error {
	m, err := bpf.NewModuleWithError(source, nil)
	if err != nil {
		return err
	}
	defer m.Close()
	fd, err := m.LoadUprobe("count_strlen")
	if err != nil {
		return err
	}
	if err := m.AttachUprobe("c", "strlen", fd, pid); err != nil {
		return err
	}
	fmt.Println("counting strlen(3) calls; Ctrl-C to stop")

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
		s string
		n uint64
	}
	var entries []entry
	it := bpf.NewTable(m.TableId("counts"), m).Iter()
	for it.Next() {
		k, v := it.Key(), it.Leaf()
		if i := bytes.IndexByte(k, 0); i >= 0 {
			k = k[:i]
		}
		entries = append(entries, entry{string(k), binary.NativeEndian.Uint64(v)})
	}
	if err := it.Err(); err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].n != entries[j].n {
			return entries[i].n > entries[j].n
		}
		return entries[i].s < entries[j].s
	})
	if len(entries) > top {
		entries = entries[:top]
	}
	fmt.Printf("%8s  %s\n", "COUNT", "STRING")
	for _, e := range entries {
		fmt.Printf("%8d  %s\n", e.n, strconv.Quote(e.s))
	}
	return nil
}
