// Command xdp attaches an XDP program to a network device that drops every
// IPv4 and IPv6 packet (or, with -pass, lets them through) and counts them
// per IP protocol, printing the counts every second:
//
//	proto 1 (icmp): 3 packets
//
// Run as root: xdp -dev veth0 [-duration 10s] [-skb] [-pass]. ARP and
// other non-IP traffic always passes. The program is removed on exit
// (Ctrl-C, SIGTERM or -duration).
package main

import (
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
#include <uapi/linux/bpf.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

BPF_ARRAY(dropcnt, u64, 256);

int xdp_prog(struct xdp_md *ctx) {
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	u32 proto;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return XDP_PASS;
		proto = ip->protocol;
	} else if (eth->h_proto == htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		proto = ip6->nexthdr;
	} else {
		return XDP_PASS;
	}
	u64 *n = dropcnt.lookup(&proto);
	if (n)
		__sync_fetch_and_add(n, 1);
	return VERDICT;
}
`

var protoNames = map[uint32]string{1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}

func main() {
	dev := flag.String("dev", "", "network device to attach to (required)")
	duration := flag.Duration("duration", 0, "stop after this long (0: until interrupted)")
	skb := flag.Bool("skb", false, "use generic (SKB) mode XDP")
	pass := flag.Bool("pass", false, "count the packets but let them through")
	flag.Parse()
	if *dev == "" {
		fmt.Fprintln(os.Stderr, "xdp: -dev is required")
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*dev, *duration, *skb, *pass); err != nil {
		fmt.Fprintln(os.Stderr, "xdp:", err)
		os.Exit(1)
	}
}

func run(dev string, duration time.Duration, skb, pass bool) error {
	verdict := "-DVERDICT=XDP_DROP"
	if pass {
		verdict = "-DVERDICT=XDP_PASS"
	}
	m, err := bpf.NewModuleWithError(source, []string{verdict})
	if err != nil {
		return err
	}
	defer m.Close() // also removes the program from dev
	fd, err := m.Load("xdp_prog", bpf.BPF_PROG_TYPE_XDP, 0, 0)
	if err != nil {
		return err
	}
	var flags uint32
	if skb {
		flags = bpf.XDP_FLAGS_SKB_MODE
	}
	if err := m.AttachXDPWithFlags(dev, fd, flags); err != nil {
		return err
	}
	verb := "dropping"
	if pass {
		verb = "counting"
	}
	fmt.Printf("%s IP packets on %s; Ctrl-C to stop\n", verb, dev)

	table := bpf.NewTable(m.TableId("dropcnt"), m)
	print := func() error {
		var lines []string
		for proto := uint32(0); proto < 256; proto++ {
			var k [4]byte
			binary.NativeEndian.PutUint32(k[:], proto)
			v, err := table.Get(k[:])
			if err != nil {
				return err
			}
			if n := binary.NativeEndian.Uint64(v); n > 0 {
				name := protoNames[proto]
				if name == "" {
					name = "?"
				}
				lines = append(lines, fmt.Sprintf("proto %d (%s): %d packets", proto, name, n))
			}
		}
		sort.Strings(lines)
		for _, l := range lines {
			fmt.Println(l)
		}
		return nil
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	var timeout <-chan time.Time
	if duration > 0 {
		timeout = time.After(duration)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if err := print(); err != nil {
				return err
			}
		case <-sig:
			return print()
		case <-timeout:
			return print()
		}
	}
}
