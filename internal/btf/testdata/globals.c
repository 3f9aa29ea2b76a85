// Global data and newer BTF kinds, for Marshal's fixups and sanitizing.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

const volatile int filter_pid = 0;
const volatile long limit = 5;
int counter = 3;
__u64 hits;
__u32 more_hits;
float ratio = 1.5;
int __attribute__((btf_decl_tag("mytag"))) tagged = 1;
int __attribute__((btf_type_tag("user"))) *tptr;

static __noinline int sub(int x)
{
	return x + counter + tagged;
}

__noinline int global_sub(int x)
{
	return x * 2;
}

SEC("raw_tp/g")
int g(void *ctx)
{
	hits++;
	more_hits++;
	if (tptr)
		return 1;
	return sub(filter_pid) + global_sub(limit);
}
