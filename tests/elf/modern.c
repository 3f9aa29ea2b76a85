// libbpf-style object for elf's modern-object tests (elf/modern_test.go):
// libbpf section names, global data (.rodata/.data/.bss), a ring buffer.
// Built at test time against a vmlinux.h dumped from the running kernel:
//   clang -O2 -g -target bpf -DBPF_NO_PRESERVE_ACCESS_INDEX -I DIR -c modern.c
// (no CO-RE here: tests/elf/core.c exercises that).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define SOL_SOCKET 1
#define SO_PRIORITY 12

// Counter slots (elf/modern_test.go mirrors them).
enum {
	C_TP, C_TRACEPOINT, C_RAWTP, C_RAWTRACEPOINT, C_XDP, C_TCX_IN, C_TCX_OUT,
	C_SOCKET, C_SKB_IN, C_SKB_OUT, C_SOCK_CREATE, C_CONNECT4, C_CONNECT6,
	C_BIND4, C_BIND6, C_SENDMSG4, C_SENDMSG6, C_RECVMSG4, C_RECVMSG6,
	C_GETSOCKOPT, C_SETSOCKOPT, C_SYSCTL, C_DEV, C_SOCKOPS, C_SK_MSG,
	C_SK_SKB, C_PERF, C_TC, C_MAX = 32,
};

// Set from Go before load (SetConstant): only this process counts.
const volatile __u32 target_tgid = 0;
const volatile __u16 net_port = 0; // UDP port the packet programs count (host order)
const char greeting[] = "hello"; // .rodata too

__u64 counts[C_MAX];   // .bss
__u64 data_init = 42;  // .data
__u32 step = 1;        // .data: what each tracepoint hit adds

struct event {
	__u32 tgid;
	__u32 seq;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} uprobe_hits SEC(".maps"), uretprobe_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} msg_map SEC(".maps"), skb_map SEC(".maps");

static __always_inline int mine(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

static __always_inline void hit(int slot)
{
	__sync_fetch_and_add(&counts[slot], 1);
}

SEC("tp/syscalls/sys_enter_getpgid")
int tp_getpgid(void *ctx)
{
	if (mine())
		__sync_fetch_and_add(&counts[C_TP], step);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int tracepoint_getppid(void *ctx)
{
	struct event *e;
	if (!mine())
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->tgid = target_tgid;
	e->seq = __sync_fetch_and_add(&counts[C_TRACEPOINT], 1);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("raw_tp/sys_enter")
int rawtp_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (mine() && ctx->args[1] == 102 /* getuid */)
		hit(C_RAWTP);
	return 0;
}

SEC("raw_tracepoint/sys_enter")
int rawtracepoint_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (mine() && ctx->args[1] == 104 /* getgid */)
		hit(C_RAWTRACEPOINT);
	return 0;
}

static __always_inline void count_tgid(void *map)
{
	__u32 k = bpf_get_current_pid_tgid() >> 32;
	__u64 one = 1, *v = bpf_map_lookup_elem(map, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(map, &k, &one, BPF_NOEXIST);
}

SEC("uprobe/libc.so.6:getpid")
int uprobe_getpid(void *ctx)
{
	count_tgid(&uprobe_hits);
	return 0;
}

SEC("uretprobe/libc.so.6:getpid")
int uretprobe_getpid(void *ctx)
{
	count_tgid(&uretprobe_hits);
	return 0;
}

SEC("kprobe/do_nanosleep")
int kprobe_nanosleep(void *ctx) { return 0; }

SEC("kretprobe/do_nanosleep")
int kretprobe_nanosleep(void *ctx) { return 0; }

SEC("ksyscall/getpid")
int ksyscall_getpid(void *ctx) { return 0; }

SEC("kretsyscall/getpid")
int kretsyscall_getpid(void *ctx) { return 0; }

SEC("usdt/libc.so.6:libc:setjmp")
int usdt_setjmp(void *ctx) { return 0; }

SEC("perf_event")
int perf_sample(struct bpf_perf_event_data *ctx)
{
	if (mine())
		hit(C_PERF);
	return 0;
}

// udp_port returns the destination port of an IPv4 UDP packet at data
// (an IP header), or 0.
static __always_inline int udp_dport(void *data, void *end)
{
	struct iphdr *ip = data;
	struct udphdr *udp;
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl != 5)
		return 0;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return 0;
	return __builtin_bswap16(udp->dest);
}

static __always_inline int eth_udp_dport(void *data, void *end)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP))
		return 0;
	return udp_dport(eth + 1, end);
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	if (eth_udp_dport((void *)(long)ctx->data, (void *)(long)ctx->data_end) == net_port)
		hit(C_XDP);
	return XDP_PASS;
}

SEC("tcx/ingress")
int tcx_in(struct __sk_buff *skb)
{
	if (eth_udp_dport((void *)(long)skb->data, (void *)(long)skb->data_end) == net_port)
		hit(C_TCX_IN);
	return TCX_NEXT;
}

SEC("tcx/egress")
int tcx_out(struct __sk_buff *skb)
{
	if (eth_udp_dport((void *)(long)skb->data, (void *)(long)skb->data_end) == net_port)
		hit(C_TCX_OUT);
	return TCX_NEXT;
}

SEC("tc")
int tc_count(struct __sk_buff *skb)
{
	if (eth_udp_dport((void *)(long)skb->data, (void *)(long)skb->data_end) == net_port)
		hit(C_TC);
	return TCX_NEXT;
}

SEC("classifier")
int classifier_pass(struct __sk_buff *skb) { return 0; }

SEC("socket")
int socket_count(struct __sk_buff *skb)
{
	hit(C_SOCKET);
	return skb->len;
}

static __always_inline int skb_is_udp(struct __sk_buff *skb)
{
	__u8 proto = 0;
	if (skb->protocol == __builtin_bswap16(ETH_P_IP))
		bpf_skb_load_bytes(skb, 9, &proto, 1);
	else if (skb->protocol == __builtin_bswap16(ETH_P_IPV6))
		bpf_skb_load_bytes(skb, 6, &proto, 1);
	return proto == IPPROTO_UDP;
}

SEC("cgroup_skb/ingress")
int skb_in(struct __sk_buff *skb)
{
	if (skb_is_udp(skb))
		hit(C_SKB_IN);
	return 1;
}

SEC("cgroup_skb/egress")
int skb_out(struct __sk_buff *skb)
{
	if (skb_is_udp(skb))
		hit(C_SKB_OUT);
	return 1;
}

SEC("cgroup/sock_create")
int sock_create(struct bpf_sock *sk) { hit(C_SOCK_CREATE); return 1; }

SEC("cgroup/connect4")
int connect4(struct bpf_sock_addr *ctx) { hit(C_CONNECT4); return 1; }

SEC("cgroup/connect6")
int connect6(struct bpf_sock_addr *ctx) { hit(C_CONNECT6); return 1; }

SEC("cgroup/bind4")
int bind4(struct bpf_sock_addr *ctx) { hit(C_BIND4); return 1; }

SEC("cgroup/bind6")
int bind6(struct bpf_sock_addr *ctx) { hit(C_BIND6); return 1; }

SEC("cgroup/sendmsg4")
int sendmsg4(struct bpf_sock_addr *ctx) { hit(C_SENDMSG4); return 1; }

SEC("cgroup/sendmsg6")
int sendmsg6(struct bpf_sock_addr *ctx) { hit(C_SENDMSG6); return 1; }

SEC("cgroup/recvmsg4")
int recvmsg4(struct bpf_sock_addr *ctx) { hit(C_RECVMSG4); return 1; }

SEC("cgroup/recvmsg6")
int recvmsg6(struct bpf_sock_addr *ctx) { hit(C_RECVMSG6); return 1; }

SEC("cgroup/getsockopt")
int getsockopt_prog(struct bpf_sockopt *ctx)
{
	if (ctx->level == SOL_SOCKET && ctx->optname == SO_PRIORITY)
		hit(C_GETSOCKOPT);
	return 1;
}

SEC("cgroup/setsockopt")
int setsockopt_prog(struct bpf_sockopt *ctx)
{
	if (ctx->level == SOL_SOCKET && ctx->optname == SO_PRIORITY)
		hit(C_SETSOCKOPT);
	return 1;
}

SEC("cgroup/sysctl")
int sysctl_prog(struct bpf_sysctl *ctx)
{
	if (!ctx->write)
		hit(C_SYSCTL);
	return 1;
}

SEC("cgroup/dev")
int dev_prog(struct bpf_cgroup_dev_ctx *ctx)
{
	if (ctx->major == 1 && ctx->minor == 3) /* /dev/null */
		hit(C_DEV);
	return 1;
}

SEC("sockops")
int sockops_prog(struct bpf_sock_ops *ctx)
{
	if (ctx->op == BPF_SOCK_OPS_TCP_CONNECT_CB)
		hit(C_SOCKOPS);
	return 1;
}

SEC("sk_msg")
int sk_msg_prog(struct sk_msg_md *msg) { hit(C_SK_MSG); return SK_PASS; }

SEC("sk_skb/stream_verdict")
int sk_skb_prog(struct __sk_buff *skb) { hit(C_SK_SKB); return SK_PASS; }
