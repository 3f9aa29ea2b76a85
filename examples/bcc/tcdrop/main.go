// Command tcdrop drops IPv4 packets of one protocol (and destination port)
// on a network device with a tc filter (clsact qdisc, direct action), and
// prints how many packets of that protocol it passed and dropped:
//
//	# tcdrop -dev eth0 -proto udp -port 53 -interval 1s
//	Dropping udp to port 53 on eth0 ingress... Hit Ctrl-C to end.
//	TIME     DEV              DIR      PASSED   DROPPED
//	12:00:01 eth0             ingress  14       3
//
// -egress filters what the device sends instead of what it receives. One
// line per -interval (counts since the previous line), and one at exit;
// -count stops after that many lines. The filter (and the clsact qdisc, when
// tcdrop added it) is removed at exit. Run as root.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	bpf "github.com/iovisor/gobpf/bcc"
)

// PROTO and PORT are defined on the compiler's command line.
const source = `
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/in.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/pkt_cls.h>

// 0: passed, 1: dropped (packets of PROTO).
BPF_PERCPU_ARRAY(counts, u64, 2);

int tcdrop(struct __sk_buff *skb) {
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != htons(ETH_P_IP))
		return TC_ACT_OK;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != PROTO)
		return TC_ACT_OK;
	int verdict = TC_ACT_SHOT;
	if (PORT != 0) {
		// TCP and UDP both start with the source and destination ports.
		struct udphdr *l4 = (void *)ip + ip->ihl * 4;
		if ((void *)(l4 + 1) > end || l4->dest != htons(PORT))
			verdict = TC_ACT_OK;
	}
	int slot = verdict == TC_ACT_SHOT;
	u64 *c = counts.lookup(&slot);
	if (c)
		(*c)++;
	return verdict;
}
`

var protos = map[string]int{"icmp": syscall.IPPROTO_ICMP, "tcp": syscall.IPPROTO_TCP, "udp": syscall.IPPROTO_UDP}

func main() {
	dev := flag.String("dev", "", "network device to filter (required)")
	egress := flag.Bool("egress", false, "filter what the device sends (default: what it receives)")
	proto := flag.String("proto", "udp", "IPv4 protocol to drop: udp, tcp or icmp")
	port := flag.Int("port", 0, "drop only packets to this destination port (udp, tcp; 0: all)")
	interval := flag.Duration("interval", 0, "print counts every interval (0: only at exit)")
	count := flag.Int("count", 0, "with -interval: stop after this many lines (0: no limit)")
	duration := flag.Duration("duration", 0, "stop after this long (0: until interrupted)")
	flag.Parse()
	p, ok := protos[*proto]
	switch {
	case *dev == "":
		fmt.Fprintln(os.Stderr, "tcdrop: -dev is required")
		os.Exit(2)
	case !ok:
		fmt.Fprintf(os.Stderr, "tcdrop: -proto %q: want udp, tcp or icmp\n", *proto)
		os.Exit(2)
	case *port < 0 || *port > 65535 || (*port != 0 && p == syscall.IPPROTO_ICMP):
		fmt.Fprintf(os.Stderr, "tcdrop: -port %d: want 1-65535, with udp or tcp\n", *port)
		os.Exit(2)
	}
	dir := bpf.TCIngress
	if *egress {
		dir = bpf.TCEgress
	}
	if err := run(*dev, dir, *proto, p, *port, *interval, *count, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "tcdrop:", err)
		os.Exit(1)
	}
}

func run(dev string, dir bpf.TCDirection, protoName string, proto, port int, interval time.Duration, count int, duration time.Duration) error {
	m, err := bpf.NewModuleWithError(source, []string{fmt.Sprintf("-DPROTO=%d", proto), fmt.Sprintf("-DPORT=%d", port)})
	if err != nil {
		return err
	}
	defer m.Close()
	fd, err := m.LoadSchedCLS("tcdrop")
	if err != nil {
		return err
	}
	if err := m.AttachTC(dev, fd, dir); err != nil {
		return err
	}
	counts := bpf.NewTable(m.TableId("counts"), m)
	what := protoName
	if port != 0 {
		what += fmt.Sprintf(" to port %d", port)
	}
	fmt.Printf("Dropping %s on %s %s... Hit Ctrl-C to end.\n", what, dev, dir)
	fmt.Printf("%-8s %-16s %-8s %-8s %-8s\n", "TIME", "DEV", "DIR", "PASSED", "DROPPED")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	var tick, stop <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	if duration > 0 {
		stop = time.After(duration)
	}
	var last [2]uint64
	for n := 1; ; n++ {
		exiting := false
		select {
		case <-sig:
			exiting = true
		case <-stop:
			exiting = true
		case <-tick:
		}
		var now [2]uint64
		for i := range now {
			v, err := sumPerCPU(counts, uint32(i))
			if err != nil {
				return err
			}
			now[i] = v
		}
		fmt.Printf("%-8s %-16s %-8s %-8d %-8d\n", time.Now().Format("15:04:05"), dev, dir, now[0]-last[0], now[1]-last[1])
		last = now
		if exiting || (count > 0 && n >= count) {
			return nil
		}
	}
}

// sumPerCPU adds up every CPU's u64 at index i of a per-CPU array.
func sumPerCPU(t *bpf.Table, i uint32) (uint64, error) {
	key := make([]byte, 4)
	binary.NativeEndian.PutUint32(key, i)
	vals, err := t.GetPerCPU(key)
	if err != nil {
		return 0, fmt.Errorf("reading counts: %w", err)
	}
	var sum uint64
	for _, v := range vals {
		sum += binary.NativeEndian.Uint64(v)
	}
	return sum, nil
}
