// Package elf loads precompiled eBPF objects (clang -O2 -g -target bpf -c)
// without libbcc, in pure Go (it builds with CGO_ENABLED=0). Its API follows
// github.com/iovisor/gobpf/elf.
//
//	m := elf.NewModule("prog.o")
//	if err := m.Load(nil); err != nil { ... } // the verifier log is in err
//	defer m.Close()
//	err := m.EnableTracepoint("tracepoint/syscalls/sys_enter_openat")
//
// # Sections
//
// One program per section, recognised by prefix as gobpf does:
//
//	kprobe/FN, kretprobe/FN        Kprobe, EnableKprobe(s)
//	uprobe/..., uretprobe/...      Uprobe, AttachUprobe(Pid)
//	tracepoint/CATEGORY/NAME       TracepointProgram, EnableTracepoint
//	raw_tracepoint/NAME            RawTracepointProgram, EnableTracepoint or EnableRawTracepoint
//	socket...                      SocketFilter, AttachSocketFilter
//	cgroup/skb, cgroup/sock        CgroupProgram, AttachCgroupProgram
//	xdp...                         XDPProgram, Attach / AttachXDP
//	sched_cls/..., sched_act/...   SchedProgram (load only)
//
// libbpf's section names are recognised too (secdefs.go), each with the
// program type and expected attach type libbpf gives it: tp/, tracepoint/,
// raw_tp/, raw_tracepoint/, tp_btf/, fentry/, fexit/, fmod_ret/, lsm/,
// iter/ (attach BTF id from the kernel's BTF), kprobe/, kretprobe/,
// ksyscall/, kretsyscall/, uprobe/ and uretprobe/ (BINARY:FUNCTION),
// usdt/ (load only), perf_event, xdp, tc, tcx/ingress, tcx/egress,
// classifier, socket, cgroup_skb/ingress|egress, cgroup/sock_create,
// cgroup/connect4|6, cgroup/bind4|6, cgroup/sendmsg4|6,
// cgroup/recvmsg4|6, cgroup/getsockopt|setsockopt, cgroup/sysctl,
// cgroup/dev, sockops, sk_msg, sk_skb/stream_verdict. A section with code
// whose name is neither gobpf's nor libbpf's is an error. Module.Program
// (by function or section name) returns a *Program whose Attach,
// AttachTracepoint, AttachKprobe, AttachUprobe, AttachInterface (XDP, TCX),
// AttachCgroup, AttachSocket, AttachMap (sockmaps) and AttachPerfEvent
// return a *Link: Close detaches that one attachment; bpf_links can be
// pinned (Link.Pin, LoadPinnedLink).
//
// Programs may call non-inlined functions in .text (bpf-to-bpf calls).
// What the loader cannot honour is refused with an error wrapping
// ErrNotSupported, never skipped: program sections of unknown kinds, the
// legacy "maps" section, loaded (SHF_ALLOC) sections it does not know,
// compressed sections other than debug info, extern symbols (.kconfig,
// .ksyms) and several programs in one section. Sections that are not
// loaded (symbols, relocations, debug info) are read only as needed. A file
// whose sections overlap is malformed; the instructions of all programs,
// once .text is linked into each, are capped at 2M, so that a small file
// cannot make the parser allocate much more than its size.
//
// # Global data, BTF and CO-RE
//
// .data, .rodata (and .rodata.*, .data.*) and .bss are single-entry array
// maps named after their section. SetConstant sets a variable (a `const
// volatile` in .rodata) between NewModule and Load, checked against its
// BTF type and size; .rodata is frozen before the programs load.
// ReadVariable and WriteVariable access .data/.bss (mmap'd) after Load.
// The object's BTF is loaded into the kernel, so programs carry func_info
// and line_info (verifier errors quote source lines), and CO-RE
// relocations are applied against /sys/kernel/btf/vmlinux or the file in
// LoadOptions.KernelBTF (LoadWithOptions).
//
// The "license" section holds the license string and the optional
// "version" section a __u32 kernel version (0xFFFFFFFE: the running kernel).
//
// # Maps
//
// Classic maps are one struct bpf_map_def per "maps/NAME" section, in
// gobpf's layout:
//
//	struct bpf_map_def {
//		unsigned int type, key_size, value_size, max_entries, map_flags;
//		unsigned int pinning;     // PIN_NONE, PIN_OBJECT_NS, PIN_GLOBAL_NS, PIN_CUSTOM_NS
//		char namespace[256];      // for PIN_GLOBAL_NS
//	};
//
// (definitions of only the first 4 to 6 fields, 16 to 24 bytes, are
// accepted too). Pinned maps live under /sys/fs/bpf (mounted if needed):
// PIN_GLOBAL_NS at /sys/fs/bpf/NAMESPACE/globals/NAME, PIN_CUSTOM_NS at
// /sys/fs/bpf/ + SectionParams.PinPath, PIN_OBJECT_NS at
// /sys/fs/bpf/gobpf/OBJECT-DIGEST/NAME (one directory per object content).
// When the pin exists, Load reuses that map (after checking its type and
// sizes) instead of creating one. CloseExt with Unpin removes a pin.
//
// BTF-defined maps in the ".maps" section, as libbpf's bpf_helpers.h
// writes them, are read from the object's BTF (compile with -g):
//
//	struct {
//		__uint(type, BPF_MAP_TYPE_HASH);
//		__uint(max_entries, 1024);
//		__type(key, __u32);      // or __uint(key_size, 4)
//		__type(value, struct v); // or __uint(value_size, N)
//		__uint(map_flags, BPF_F_NO_PREALLOC);
//		__uint(pinning, LIBBPF_PIN_BY_NAME);
//	} name SEC(".maps");
//
// The members type, key_size, value_size, max_entries, map_flags,
// numa_node (ignored), pinning, key, value and values (__array: map-in-map
// with initial inner maps, program arrays with initial programs, stored at
// Load) are supported; others (map_extra...) are rejected. Ring buffers
// are read with Module.OpenRingBuf. LIBBPF_PIN_BY_NAME pins at
// /sys/fs/bpf/NAME, or /sys/fs/bpf/ + SectionParams.PinPath. SectionParams and CloseOptions of every
// map, classic or BTF, are keyed "maps/NAME". A perf event array with
// max_entries 0 gets one entry per possible CPU.
//
// # Closing
//
// Close detaches everything the module attached (perf events, kprobe and
// uprobe events it created, raw tracepoints, XDP, cgroups), stops perf
// maps and closes every file descriptor; it is safe to call twice. Socket
// filters stay on their sockets (the socket owns them). Close waits for the
// calls in flight that use the module's fds (map operations, attachments);
// calls made once Close began return an error wrapping ErrClosed, so no
// call ever reaches an fd number the kernel reused for another object.
//
// # Perf maps
//
// InitPerfMap reads a perf event array through one ring per online CPU,
// sent to a channel by PollStart, from a goroutine that reads the rings in
// batches (the pump of the bcc package's PerfMap). PollStop hands over the
// records left while the receiver takes them, then closes the channels;
// Lost counts what the kernel dropped and what was never handed over.
// With the section parameters
// PerfRingBufferBackward and PerfRingBufferOverwritable the rings are
// gobpf's flight recorder instead: the kernel keeps the newest records,
// DumpBackward reads them and SwapAndDumpBackward swaps in fresh rings.
//
// # Memory limit
//
// On kernels before 5.11, which charge BPF maps to RLIMIT_MEMLOCK, Load
// raises that limit process-wide when map creation fails with EPERM, and
// does not restore it (MemlockRaised).
package elf
