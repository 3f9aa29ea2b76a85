// Command tcpconnect traces active TCP connections (connect(2)), printing
// what bcc's tcpconnect prints, from the sock:inet_sock_set_state
// tracepoint (a socket going from CLOSE to SYN_SENT, in the connecting
// task) instead of kprobes on tcp_v4_connect/tcp_v6_connect:
//
//	# tcpconnect
//	Tracing connect ... Hit Ctrl-C to end
//	PID    COMM         IP SADDR            DADDR            DPORT
//	1479   curl         4  10.0.2.15        93.184.216.34    80
//	1479   curl         6  ::1              ::1              8080
//
// -t adds a timestamp column, -U the UID, -p traces one process, -P only
// these destination ports (comma-separated), -4/-6 one address family.
// Run as root; stop it with Ctrl-C, or bound it with -duration or -count.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	bpf "github.com/iovisor/gobpf/bcc"
)

// FILTER is replaced before compiling.
const source = `
#include <net/sock.h>

struct connect_event {
	u64 ts_us;
	u32 pid;
	u32 uid;
	u16 family;
	u16 dport;
	u8 saddr[16];
	u8 daddr[16];
	char task[16];
};

BPF_RINGBUF_OUTPUT(events, 64);

TRACEPOINT_PROBE(sock, inet_sock_set_state) {
	if (args->protocol != IPPROTO_TCP || args->oldstate != TCP_CLOSE || args->newstate != TCP_SYN_SENT)
		return 0;
	u32 pid = bpf_get_current_pid_tgid() >> 32;
	u32 uid = bpf_get_current_uid_gid();
	u16 family = args->family, dport = args->dport;
	FILTER
	struct connect_event *e = events.ringbuf_reserve(sizeof(*e));
	if (!e)
		return 0;
	e->ts_us = bpf_ktime_get_ns() / 1000;
	e->pid = pid;
	e->uid = uid;
	e->family = family;
	e->dport = dport;
	if (family == AF_INET) {
		__builtin_memcpy(e->saddr, args->saddr, 4);
		__builtin_memcpy(e->daddr, args->daddr, 4);
	} else {
		__builtin_memcpy(e->saddr, args->saddr_v6, 16);
		__builtin_memcpy(e->daddr, args->daddr_v6, 16);
	}
	bpf_get_current_comm(&e->task, sizeof(e->task));
	events.ringbuf_submit(e, 0);
	return 0;
}
`

type connectEvent struct {
	TsUs   uint64
	Pid    uint32
	UID    uint32
	Family uint16
	Dport  uint16
	Saddr  [16]byte
	Daddr  [16]byte
	Task   [16]byte
}

func main() {
	timestamp := flag.Bool("t", false, "include a timestamp column (seconds since the first event)")
	printUID := flag.Bool("U", false, "include a UID column")
	pid := flag.Int("p", 0, "trace this PID only")
	ports := flag.String("P", "", "destination ports to trace, comma-separated (default: all)")
	only4 := flag.Bool("4", false, "trace IPv4 only")
	only6 := flag.Bool("6", false, "trace IPv6 only")
	duration := flag.Duration("duration", 0, "stop after this long (0: until interrupted)")
	count := flag.Int("count", 0, "stop after this many connections (0: no limit)")
	flag.Parse()
	var filters []string
	if *pid > 0 {
		filters = append(filters, fmt.Sprintf("if (pid != %d) return 0;", *pid))
	}
	if *ports != "" {
		var conds []string
		for _, p := range strings.Split(*ports, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 16)
			if err != nil {
				fmt.Fprintf(os.Stderr, "tcpconnect: -P %q: not a port\n", p)
				os.Exit(2)
			}
			conds = append(conds, fmt.Sprintf("dport != %d", n))
		}
		filters = append(filters, "if ("+strings.Join(conds, " && ")+") return 0;")
	}
	switch {
	case *only4 && *only6:
		fmt.Fprintln(os.Stderr, "tcpconnect: -4 and -6 exclude each other")
		os.Exit(2)
	case *only4:
		filters = append(filters, "if (family != AF_INET) return 0;")
	case *only6:
		filters = append(filters, "if (family != AF_INET6) return 0;")
	}
	if err := run(strings.Join(filters, "\n\t"), *timestamp, *printUID, *duration, *count); err != nil {
		fmt.Fprintln(os.Stderr, "tcpconnect:", err)
		os.Exit(1)
	}
}

func run(filter string, timestamp, printUID bool, duration time.Duration, count int) error {
	m, err := bpf.NewModuleWithError(strings.Replace(source, "FILTER", filter, 1), nil)
	if err != nil {
		return err
	}
	defer m.Close()
	fd, err := m.LoadTracepoint("tracepoint__sock__inet_sock_set_state")
	if err != nil {
		return err
	}
	if err := m.AttachTracepoint("sock:inet_sock_set_state", fd); err != nil {
		return err
	}
	r, err := bpf.NewRingBufReader(bpf.NewTable(m.TableId("events"), m))
	if err != nil {
		return err
	}
	defer r.Close()

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if duration > 0 {
		var c context.CancelFunc
		ctx, c = context.WithTimeout(ctx, duration)
		defer c()
	}

	// bcc's header and columns, byte for byte.
	fmt.Println("Tracing connect ... Hit Ctrl-C to end")
	var hdr strings.Builder
	if timestamp {
		fmt.Fprintf(&hdr, "%-9s", "TIME(s)")
	}
	if printUID {
		fmt.Fprintf(&hdr, "%-6s", "UID")
	}
	fmt.Fprintf(&hdr, "%-6s %-12s %-2s %-16s %-16s %-6s", "PID", "COMM", "IP", "SADDR", "DADDR", "DPORT")
	fmt.Println(hdr.String())

	var start uint64
	var rec bpf.Record
	for seen := 0; count == 0 || seen < count; seen++ {
		if err := r.ReadInto(ctx, &rec); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		var e connectEvent
		if _, err := binary.Decode(rec.RawSample, binary.NativeEndian, &e); err != nil {
			return fmt.Errorf("decoding event: %w", err)
		}
		var line strings.Builder
		if timestamp {
			if start == 0 {
				start = e.TsUs
			}
			fmt.Fprintf(&line, "%-9.3f", float64(e.TsUs-start)/1e6)
		}
		if printUID {
			fmt.Fprintf(&line, "%-6d", e.UID)
		}
		ip, saddr, daddr := 4, netip.AddrFrom4([4]byte(e.Saddr[:4])), netip.AddrFrom4([4]byte(e.Daddr[:4]))
		if e.Family == syscall.AF_INET6 {
			ip, saddr, daddr = 6, netip.AddrFrom16(e.Saddr), netip.AddrFrom16(e.Daddr)
		}
		task := cstr(e.Task[:])
		if len(task) > 12 {
			task = task[:12]
		}
		// bcc appends the (empty without -d) DNS column after a space.
		fmt.Fprintf(&line, "%-6d %-12s %-2d %-16s %-16s %-6d ", e.Pid, task, ip, saddr, daddr, e.Dport)
		fmt.Println(line.String())
	}
	return nil
}

func cstr(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
