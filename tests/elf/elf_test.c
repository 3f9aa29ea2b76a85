// Test object for github.com/iovisor/gobpf/elf: one program per section kind
// the package supports, classic "maps/" definitions (with the gobpf pinning
// extension) and BTF ".maps" definitions.
//
// Built at test time with:
//   clang -O2 -g -target bpf -I/usr/include/$(gcc -print-multiarch) -c elf_test.c -o elf_test.o
//
// Self-contained apart from <linux/bpf.h> (linux-libc-dev).
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#undef __always_inline
#define __always_inline inline __attribute__((always_inline))
#define __noinline __attribute__((noinline))

typedef unsigned int u32;
typedef unsigned long long u64;

/* Helpers, by number (enum bpf_func_id in <linux/bpf.h>). */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, u64 flags) = (void *)BPF_FUNC_map_update_elem;
static u64 (*bpf_get_current_pid_tgid)(void) = (void *)BPF_FUNC_get_current_pid_tgid;
static long (*bpf_perf_event_output)(void *ctx, void *map, u64 flags, void *data, u64 size) = (void *)BPF_FUNC_perf_event_output;
static long (*bpf_skb_load_bytes)(const void *skb, u32 offset, void *to, u32 len) = (void *)BPF_FUNC_skb_load_bytes;
static long (*bpf_tail_call)(void *ctx, void *prog_array_map, u32 index) = (void *)BPF_FUNC_tail_call;

/* The classic gobpf map definition (elf/include/bpf_map.h). */
#define BUF_SIZE_MAP_NS 256
struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
	unsigned int pinning;
	char namespace[BUF_SIZE_MAP_NS];
};
#define PIN_NONE 0
#define PIN_OBJECT_NS 1
#define PIN_GLOBAL_NS 2
#define PIN_CUSTOM_NS 3

/* config[0] = tgid to watch, config[1] = syscall number of getppid,
 * config[2] = UDP port that cgroup/skb and XDP drop. */
struct bpf_map_def SEC("maps/config") config = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(u32),
	.value_size = sizeof(u32),
	.max_entries = 4,
};

/* counters[i]: 0 tracepoint, 1 raw tracepoint, 2 uprobe, 3 uretprobe,
 * 4 socket pass, 5 socket drop, 6 cgroup pass, 7 cgroup drop,
 * 8 xdp pass, 9 xdp drop, 10 sock create, 11 sock create denied,
 * 12 kprobe, 13 kretprobe, 14 last uretprobe return value, 15 tail call */
struct bpf_map_def SEC("maps/counters") counters = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(u32),
	.value_size = sizeof(u64),
	.max_entries = 16,
};

struct bpf_map_def SEC("maps/pinned_global") pinned_global = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(u32),
	.value_size = sizeof(u64),
	.max_entries = 8,
	.pinning = PIN_GLOBAL_NS,
	.namespace = "gobpf_elf_test",
};

struct bpf_map_def SEC("maps/pinned_custom") pinned_custom = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(u32),
	.value_size = sizeof(u64),
	.max_entries = 2,
	.pinning = PIN_CUSTOM_NS,
};

struct bpf_map_def SEC("maps/pinned_object") pinned_object = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(u32),
	.value_size = sizeof(u64),
	.max_entries = 2,
	.pinning = PIN_OBJECT_NS,
};

/* BTF-defined maps, as libbpf's bpf_helpers.h spells them. */
struct event {
	u32 tgid;
	u32 seq;
	u64 magic;
	char tag[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(u32));
	__uint(value_size, sizeof(u32));
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, u32);
	__type(value, struct event);
} hash_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, u32);
	__type(value, u64);
} percpu_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4);
	__type(key, u64);
	__type(value, u32);
} lru_map SEC(".maps");

struct lpm_key {
	u32 prefixlen;
	unsigned char addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key);
	__type(value, u32);
} lpm_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__uint(key_size, sizeof(u32));
	__uint(value_size, sizeof(u32));
} jmp_table SEC(".maps");

static __always_inline void bump(u32 idx)
{
	u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline int is_watched(void)
{
	u32 k = 0;
	u32 *tgid = bpf_map_lookup_elem(&config, &k);
	return tgid && *tgid != 0 && *tgid == (u32)(bpf_get_current_pid_tgid() >> 32);
}

/* A real (not inlined) subprogram: exercises bpf-to-bpf call relocation. */
__noinline int udp_dport_is(u32 port, u32 dport)
{
	return port != 0 && port == dport;
}

/* Tracepoint: counts our own getppid() calls and emits one perf event each. */
SEC("tracepoint/syscalls/sys_enter_getppid")
int tp_getppid(void *ctx)
{
	if (!is_watched())
		return 0;
	u32 idx = 0;
	u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (!v)
		return 0;
	u64 seq = __sync_fetch_and_add(v, 1) + 1;
	struct event e = {
		.tgid = (u32)(bpf_get_current_pid_tgid() >> 32),
		.seq = (u32)seq,
		.magic = 0xfeedfacecafebeefULL,
		.tag = "gobpf!",
	};
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &e, sizeof(e));
	u32 key = (u32)seq;
	bpf_map_update_elem(&hash_map, &key, &e, BPF_ANY);
	return 0;
}

/* Raw tracepoint on sys_enter: args[1] is the syscall number. */
SEC("raw_tracepoint/sys_enter")
int raw_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (!is_watched())
		return 0;
	u32 k = 1;
	u32 *nr = bpf_map_lookup_elem(&config, &k);
	if (nr && ctx->args[1] == *nr)
		bump(1);
	return 0;
}

SEC("kprobe/do_sys_openat2")
int kprobe_openat2(void *ctx)
{
	if (is_watched())
		bump(12);
	return 0;
}

SEC("kretprobe/do_sys_openat2")
int kretprobe_openat2(void *ctx)
{
	if (is_watched())
		bump(13);
	return 0;
}

/* x86-64 struct pt_regs, enough for the return value (ax). */
struct pt_regs_x86 {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di;
};

SEC("uprobe/target_func")
int uprobe_target(void *ctx)
{
	bump(2);
	return 0;
}

SEC("uretprobe/target_func")
int uretprobe_target(struct pt_regs_x86 *ctx)
{
	bump(3);
	u32 idx = 14;
	u64 ret = ctx->ax;
	bpf_map_update_elem(&counters, &idx, &ret, BPF_ANY);
	return 0;
}

/* Socket filter: drops datagrams whose first byte is 'D', passes the rest. */
SEC("socket/drop_d")
int socket_drop_d(struct __sk_buff *skb)
{
	unsigned char c = 0;
	if (bpf_skb_load_bytes(skb, 0, &c, 1) < 0)
		return skb->len;
	if (c == 'D') {
		bump(5);
		return 0;
	}
	bump(4);
	return skb->len;
}

static __always_inline u32 drop_port(void)
{
	u32 k = 2;
	u32 *p = bpf_map_lookup_elem(&config, &k);
	return p ? *p : 0;
}

/* cgroup skb (egress): drops IPv4 UDP datagrams to the configured port. */
SEC("cgroup/skb")
int cgroup_skb_filter(struct __sk_buff *skb)
{
	unsigned char iph[20];
	unsigned short dport;
	if (skb->protocol != __builtin_bswap16(0x0800))
		return 1;
	if (bpf_skb_load_bytes(skb, 0, iph, sizeof(iph)) < 0)
		return 1;
	if (iph[9] != 17 /* UDP */)
		return 1;
	u32 ihl = (iph[0] & 0xf) * 4;
	if (bpf_skb_load_bytes(skb, ihl + 2, &dport, sizeof(dport)) < 0)
		return 1;
	if (udp_dport_is(drop_port(), __builtin_bswap16(dport))) {
		bump(7);
		return 0;
	}
	bump(6);
	return 1;
}

/* cgroup sock (create): denies AF_INET6 datagram sockets, counts the rest. */
SEC("cgroup/sock")
int cgroup_sock_create(struct bpf_sock *sk)
{
	if (sk->family == 10 /* AF_INET6 */ && sk->type == 2 /* SOCK_DGRAM */) {
		bump(11);
		return 0;
	}
	bump(10);
	return 1;
}

/* XDP: drops IPv4 UDP to the configured port, passes everything else. */
SEC("xdp/udp_drop")
int xdp_udp_drop(struct xdp_md *ctx)
{
	unsigned char *data = (unsigned char *)(long)ctx->data;
	unsigned char *end = (unsigned char *)(long)ctx->data_end;
	if (data + 14 + 20 + 8 > end)
		return XDP_PASS;
	if (data[12] != 0x08 || data[13] != 0x00)
		return XDP_PASS;
	unsigned char *ip = data + 14;
	if ((ip[0] & 0xf) != 5 || ip[9] != 17)
		return XDP_PASS;
	unsigned char *udp = ip + 20;
	u32 dport = ((u32)udp[2] << 8) | udp[3];
	if (udp_dport_is(drop_port(), dport)) {
		bump(9);
		return XDP_DROP;
	}
	bump(8);
	return XDP_PASS;
}

/* Tail call target and its caller (a prog array in a BTF map). */
SEC("socket/tail_target")
int socket_tail_target(struct __sk_buff *skb)
{
	bump(15);
	return 7;
}

SEC("socket/tail_caller")
int socket_tail_caller(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &jmp_table, 0);
	return 3;
}

char _license[] SEC("license") = "GPL";
unsigned int _version SEC("version") = 0xFFFFFFFE;
