// CO-RE object for elf's compile-once-run-everywhere test
// (elf/modern_core_test.go). Built once against a vmlinux.h of one kernel
// and loaded on another: every task_struct access goes through CO-RE.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

// A flavor: libbpf's rules match it to task_struct, ignoring "___v1".
struct task_struct___v1 {
	int tgid;
	struct task_struct___v1 *real_parent;
	char comm[16];
} __attribute__((preserve_access_index));

// A field that exists on some kernels only (mm_cid: 6.4+), and one that
// exists on none; both only used behind an existence check.
struct task_struct___guard {
	int mm_cid;
	int gobpf_no_such_field;
} __attribute__((preserve_access_index));

struct result {
	__u32 tgid, ptgid, v1_tgid, v1_ptgid;
	char comm[16];
	__u32 has_mm_cid, has_bogus, runs;
	int bogus;
};

const volatile __u32 target_tgid = 0;
struct result res;

SEC("tp/syscalls/sys_enter_getpgid")
int core_task(void *ctx)
{
	struct task_struct *t;
	struct task_struct___v1 *t1;
	struct task_struct___guard *tg;

	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	t = (void *)bpf_get_current_task();
	res.tgid = BPF_CORE_READ(t, tgid);
	res.ptgid = BPF_CORE_READ(t, real_parent, tgid);
	BPF_CORE_READ_STR_INTO(&res.comm, t, comm);
	t1 = (void *)t;
	res.v1_tgid = BPF_CORE_READ(t1, tgid);
	res.v1_ptgid = BPF_CORE_READ(t1, real_parent, tgid);
	tg = (void *)t;
	res.has_mm_cid = bpf_core_field_exists(tg->mm_cid);
	res.has_bogus = bpf_core_field_exists(tg->gobpf_no_such_field);
	if (bpf_core_field_exists(tg->gobpf_no_such_field))
		res.bogus = BPF_CORE_READ(tg, gobpf_no_such_field);
	res.runs++;
	return 0;
}
