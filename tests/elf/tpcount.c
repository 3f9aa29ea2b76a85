// Counts every system call (tracepoint raw_syscalls/sys_enter) in a
// BTF-defined array map, for examples/elf/tpcount. Build with:
//   clang -O2 -g -target bpf -I/usr/include/$(gcc -print-multiarch) -c tpcount.c -o tpcount.o
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, unsigned int);
	__type(value, unsigned long long);
} counts SEC(".maps");

SEC("tracepoint/raw_syscalls/sys_enter")
int count_sys_enter(void *ctx)
{
	unsigned int k = 0;
	unsigned long long *v = bpf_map_lookup_elem(&counts, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}

char _license[] SEC("license") = "GPL";
