package bcc

import "fmt"

// LoadOptions are the optional parts of a program load (LoadWithOptions).
// The zero value loads like Load(name, progType, 0, 0).
type LoadOptions struct {
	// AttachType is the program's expected attach type, which the kernel
	// requires at load for cgroup sock_addr programs (BPF_CGROUP_INET4_CONNECT
	// ...) and sockopt programs, and uses for cgroup sock and skb programs.
	// Since 0 is an attach type too (BPF_CGROUP_INET_INGRESS), it is passed
	// only when WithAttachType is set; ExpectAttachType sets both.
	AttachType     AttachType
	WithAttachType bool

	// LogLevel and LogSize ask the verifier for a log, as Load's do.
	LogLevel uint
	LogSize  uint
}

// ExpectAttachType returns the options that load a program for attach
// type t.
func ExpectAttachType(t AttachType) LoadOptions {
	return LoadOptions{AttachType: t, WithAttachType: true}
}

// needsAttachType lists the program types the kernel refuses to load
// without an expected attach type.
var needsAttachType = map[int]string{
	BPF_PROG_TYPE_CGROUP_SOCK_ADDR: "cgroup sock_addr",
	BPF_PROG_TYPE_CGROUP_SOCKOPT:   "cgroup sockopt",
}

// LoadWithOptions loads the function name as a program of type progType
// (BPF_PROG_TYPE_*) with opts, and returns its fd, owned by the module.
// Like Load, loading a function again returns the fd of its first load,
// whatever the options.
func (m *Module) LoadWithOptions(name string, progType int, opts LoadOptions) (int, error) {
	at := -1
	if opts.WithAttachType {
		if opts.AttachType < 0 || opts.AttachType > 1<<16 {
			return -1, fmt.Errorf("bcc: load %q: invalid %v", name, opts.AttachType)
		}
		at = int(opts.AttachType)
	} else if what, ok := needsAttachType[progType]; ok {
		return -1, fmt.Errorf("bcc: load %q: %s programs need an expected attach type (LoadOptions.WithAttachType)", name, what)
	}
	return m.load(name, progType, at, opts.LogLevel, opts.LogSize)
}

// LoadSchedCLS loads a program of type BPF_PROG_TYPE_SCHED_CLS, for
// AttachTC (direct action) and AttachTCX.
func (m *Module) LoadSchedCLS(name string) (int, error) {
	return m.Load(name, BPF_PROG_TYPE_SCHED_CLS, 0, 0)
}

// LoadCgroupSkb loads a BPF_PROG_TYPE_CGROUP_SKB program for attachType
// BPF_CGROUP_INET_INGRESS or BPF_CGROUP_INET_EGRESS.
func (m *Module) LoadCgroupSkb(name string, attachType AttachType) (int, error) {
	return m.LoadWithOptions(name, BPF_PROG_TYPE_CGROUP_SKB, ExpectAttachType(attachType))
}

// LoadCgroupSock loads a BPF_PROG_TYPE_CGROUP_SOCK program for attachType
// (BPF_CGROUP_INET_SOCK_CREATE, BPF_CGROUP_INET_SOCK_RELEASE,
// BPF_CGROUP_INET4_POST_BIND, BPF_CGROUP_INET6_POST_BIND).
func (m *Module) LoadCgroupSock(name string, attachType AttachType) (int, error) {
	return m.LoadWithOptions(name, BPF_PROG_TYPE_CGROUP_SOCK, ExpectAttachType(attachType))
}

// LoadCgroupSockAddr loads a BPF_PROG_TYPE_CGROUP_SOCK_ADDR program for
// attachType (BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_BIND,
// BPF_CGROUP_UDP4_SENDMSG ...).
func (m *Module) LoadCgroupSockAddr(name string, attachType AttachType) (int, error) {
	return m.LoadWithOptions(name, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, ExpectAttachType(attachType))
}

// LoadCgroupSockopt loads a BPF_PROG_TYPE_CGROUP_SOCKOPT program for
// attachType BPF_CGROUP_GETSOCKOPT or BPF_CGROUP_SETSOCKOPT.
func (m *Module) LoadCgroupSockopt(name string, attachType AttachType) (int, error) {
	return m.LoadWithOptions(name, BPF_PROG_TYPE_CGROUP_SOCKOPT, ExpectAttachType(attachType))
}

// LoadCgroupSysctl loads a BPF_PROG_TYPE_CGROUP_SYSCTL program.
func (m *Module) LoadCgroupSysctl(name string) (int, error) {
	return m.LoadWithOptions(name, BPF_PROG_TYPE_CGROUP_SYSCTL, ExpectAttachType(BPF_CGROUP_SYSCTL))
}

// LoadCgroupDevice loads a BPF_PROG_TYPE_CGROUP_DEVICE program.
func (m *Module) LoadCgroupDevice(name string) (int, error) {
	return m.LoadWithOptions(name, BPF_PROG_TYPE_CGROUP_DEVICE, ExpectAttachType(BPF_CGROUP_DEVICE))
}

// LoadSockops loads a BPF_PROG_TYPE_SOCK_OPS program.
func (m *Module) LoadSockops(name string) (int, error) {
	return m.LoadWithOptions(name, BPF_PROG_TYPE_SOCK_OPS, ExpectAttachType(BPF_CGROUP_SOCK_OPS))
}

// LoadSkMsg loads a BPF_PROG_TYPE_SK_MSG program, to attach to a sockmap
// or sockhash with BPF_SK_MSG_VERDICT.
func (m *Module) LoadSkMsg(name string) (int, error) {
	return m.LoadWithOptions(name, BPF_PROG_TYPE_SK_MSG, ExpectAttachType(BPF_SK_MSG_VERDICT))
}

// LoadSkSkb loads a BPF_PROG_TYPE_SK_SKB program, to attach to a sockmap
// or sockhash as a stream parser (BPF_SK_SKB_STREAM_PARSER) or verdict
// (BPF_SK_SKB_STREAM_VERDICT, BPF_SK_SKB_VERDICT).
func (m *Module) LoadSkSkb(name string) (int, error) {
	return m.Load(name, BPF_PROG_TYPE_SK_SKB, 0, 0)
}
