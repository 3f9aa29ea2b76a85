// Command tcdrop attaches a tc program to a network device, in direct-action
// mode on a clsact qdisc (or with a TCX link, -tcx), that drops the IPv4
// packets of a protocol (and port), counting them, and prints the counts
// each second they changed:
//
//	dropping udp packets to port 9999 at ingress of veth0 (tc clsact, direct action); Ctrl-C to stop
//	12:00:01 ingress udp dport 9999: dropped 3 packets, 129 bytes
//
// Run as root: tcdrop -dev veth0 [-dir ingress|egress] [-proto udp|tcp|icmp|any]
// [-port N] [-tcx] [-pass] [-duration 10s]. The program (and the qdisc it
// added) is removed on exit (Ctrl-C, SIGTERM or -duration).
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

const source = `
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/in.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/tcp.h>
#include <uapi/linux/pkt_cls.h>

BPF_ARRAY(stats, u64, 2); /* packets, bytes */

int tc_drop(struct __sk_buff *skb) {
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != htons(ETH_P_IP))
		return TC_ACT_OK;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return TC_ACT_OK;
	if (PROTO >= 0 && ip->protocol != PROTO)
		return TC_ACT_OK;
	if (PORT != 0) {
		/* The ports lead both the UDP and the TCP header. */
		struct udphdr *l4 = (void *)ip + ip->ihl * 4;
		if (ip->ihl < 5 || (void *)(l4 + 1) > end || l4->dest != htons(PORT))
			return TC_ACT_OK;
	}
	int k = 0;
	u64 *n = stats.lookup(&k);
	if (n)
		__sync_fetch_and_add(n, 1);
	k = 1;
	n = stats.lookup(&k);
	if (n)
		__sync_fetch_and_add(n, skb->len);
	return VERDICT;
}
`

var protos = map[string]int{"any": -1, "icmp": 1, "tcp": 6, "udp": 17}

func main() {
	dev := flag.String("dev", "", "network device to attach to (required)")
	dir := flag.String("dir", "ingress", "ingress or egress")
	proto := flag.String("proto", "udp", "udp, tcp, icmp or any")
	port := flag.Int("port", 0, "destination port (udp, tcp; 0: any)")
	tcx := flag.Bool("tcx", false, "attach with a TCX link (Linux 6.6+) instead of a clsact filter")
	pass := flag.Bool("pass", false, "count the packets but let them through")
	duration := flag.Duration("duration", 0, "stop after this long (0: until interrupted)")
	flag.Parse()
	if err := run(*dev, *dir, *proto, *port, *tcx, *pass, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "tcdrop:", err)
		os.Exit(1)
	}
}

func run(dev, dirName, proto string, port int, tcx, pass bool, duration time.Duration) error {
	if dev == "" {
		return fmt.Errorf("-dev is required")
	}
	var dir bpf.TCDirection
	switch dirName {
	case "ingress":
		dir = bpf.TCIngress
	case "egress":
		dir = bpf.TCEgress
	default:
		return fmt.Errorf("-dir %q: want ingress or egress", dirName)
	}
	p, ok := protos[proto]
	if !ok {
		return fmt.Errorf("-proto %q: want udp, tcp, icmp or any", proto)
	}
	if port < 0 || port > 65535 || port != 0 && p != 6 && p != 17 {
		return fmt.Errorf("-port %d: want 1-65535 with -proto udp or tcp", port)
	}
	verdict := "TC_ACT_SHOT"
	if pass {
		verdict = "TC_ACT_OK"
	}
	m, err := bpf.NewModuleWithError(source, []string{
		fmt.Sprintf("-DPROTO=%d", p), fmt.Sprintf("-DPORT=%d", port), "-DVERDICT=" + verdict,
	})
	if err != nil {
		return err
	}
	defer m.Close() // also removes the program
	fd, err := m.LoadSchedCLS("tc_drop")
	if err != nil {
		return err
	}
	how := "tc clsact, direct action"
	if tcx {
		how = "TCX link"
		err = m.AttachTCX(dev, fd, dir)
	} else {
		err = m.AttachTC(dev, fd, dir)
	}
	if err != nil {
		return err
	}
	what := proto + " packets"
	if port != 0 {
		what += fmt.Sprintf(" to port %d", port)
	}
	verb := "dropping"
	if pass {
		verb = "counting"
	}
	fmt.Printf("%s %s at %s of %s (%s); Ctrl-C to stop\n", verb, what, dir, dev, how)

	stats := bpf.NewTable(m.TableId("stats"), m)
	get := func(k uint32) (uint64, error) {
		var key [4]byte
		binary.NativeEndian.PutUint32(key[:], k)
		v, err := stats.Get(key[:])
		if err != nil {
			return 0, err
		}
		return binary.NativeEndian.Uint64(v), nil
	}
	label := fmt.Sprintf("%s %s", dir, proto)
	if port != 0 {
		label += fmt.Sprintf(" dport %d", port)
	}
	past := "dropped"
	if pass {
		past = "counted"
	}
	var last uint64
	print := func() error {
		n, err := get(0)
		if err != nil {
			return err
		}
		b, err := get(1)
		if err != nil {
			return err
		}
		if n != last {
			fmt.Printf("%s %s: %s %d packets, %d bytes\n", time.Now().Format("15:04:05"), label, past, n, b)
			last = n
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
