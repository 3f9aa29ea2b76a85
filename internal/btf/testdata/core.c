// CO-RE test object for internal/btf, compiled at test time with
// clang -O2 -g -target bpf against a vmlinux.h dumped from the running
// kernel. Each SEC is one program; tests find relocations by section.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

// A flavor of task_struct: matched to the kernel's task_struct by name
// up to "___".
struct task_struct___v1 {
	int tgid;
	struct task_struct___v1 *real_parent;
} __attribute__((preserve_access_index));

// A flavor with a field no kernel has.
struct task_struct___nope {
	int no_such_field;
} __attribute__((preserve_access_index));

enum bpf_func_id___local {
	BPF_FUNC_probe_read_kernel___local = 1,
	BPF_FUNC_no_such_helper___local = 2,
};

SEC("raw_tp/tgid")
int tgid(void *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	return BPF_CORE_READ(t, tgid);
}

SEC("raw_tp/ptgid")
int ptgid(void *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	return BPF_CORE_READ(t, real_parent, tgid);
}

SEC("raw_tp/comm")
int comm(void *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	char c[4] = {};
	BPF_CORE_READ_INTO(&c, t, comm);
	return c[0] | c[1] << 8 | c[2] << 16 | c[3] << 24;
}

SEC("raw_tp/flavor")
int flavor(void *ctx)
{
	struct task_struct___v1 *t = (void *)bpf_get_current_task();
	return BPF_CORE_READ(t, real_parent, tgid);
}

SEC("raw_tp/guarded")
int guarded(void *ctx)
{
	struct task_struct___nope *t = (void *)bpf_get_current_task();
	if (bpf_core_field_exists(t->no_such_field))
		return BPF_CORE_READ(t, no_such_field);
	return 7;
}

SEC("raw_tp/unguarded")
int unguarded(void *ctx)
{
	struct task_struct___nope *t = (void *)bpf_get_current_task();
	return BPF_CORE_READ(t, no_such_field);
}

SEC("raw_tp/enums")
int enums(void *ctx)
{
	int r = 0;
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_probe_read_kernel))
		r += bpf_core_enum_value(enum bpf_func_id, BPF_FUNC_probe_read_kernel);
	if (bpf_core_enum_value_exists(enum bpf_func_id___local, BPF_FUNC_probe_read_kernel___local))
		r += 1000 * bpf_core_enum_value(enum bpf_func_id___local, BPF_FUNC_probe_read_kernel___local);
	if (bpf_core_enum_value_exists(enum bpf_func_id___local, BPF_FUNC_no_such_helper___local))
		r += 100000;
	return r;
}

SEC("raw_tp/bitfield")
int bitfield(void *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	return BPF_CORE_READ_BITFIELD_PROBED(t, sched_reset_on_fork);
}

struct no_such_type_in_any_kernel {
	int x;
};

SEC("raw_tp/types")
int types(void *ctx)
{
	long r = 0;
	r += bpf_core_type_exists(struct task_struct);
	r += 2 * bpf_core_type_exists(struct no_such_type_in_any_kernel);
	r += bpf_core_type_size(struct task_struct) << 8;
	return r;
}

SEC("raw_tp/typeids")
int typeids(void *ctx)
{
	return bpf_core_type_id_kernel(struct task_struct) + (bpf_core_type_id_local(struct task_struct___v1) << 20);
}

SEC("raw_tp/array")
int array(void *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	char c = 0;
	bpf_core_read(&c, 1, &t->comm[2]);
	return c;
}

// Fields whose size differs from the kernel's: an unsigned one is read
// with a narrower load; a signed one cannot be and is poisoned.
struct task_struct___sz {
	unsigned long long flags;
	long long tgid;
} __attribute__((preserve_access_index));

SEC("raw_tp/direct")
int direct(struct task_struct___sz *t)
{
	if (bpf_core_field_exists(t->tgid))
		return t->flags + t->tgid;
	return 0;
}

// A 64-bit enumerator (an ENUM64 in the kernel's BTF).
SEC("raw_tp/enum64")
int enum64(void *ctx)
{
	unsigned long long v = bpf_core_enum_value(enum perf_callchain_context, PERF_CONTEXT_KERNEL);
	return (v >> 32) == 0xffffffff && (unsigned int)v == 0xffffff80;
}
