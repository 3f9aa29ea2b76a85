package elf

import (
	"debug/elf"
	"fmt"
	"strings"

	"github.com/iovisor/gobpf/internal/bpfsys"
)

// This file maps section names to program types the way libbpf does
// (its SEC() conventions), beside gobpf's own prefixes (classify).

// Program types and attach types beyond those bpfsys names.
const (
	progTypeSockOps       bpfsys.ProgType = 13
	progTypeSkSkb         bpfsys.ProgType = 14
	progTypeCgroupDevice  bpfsys.ProgType = 15
	progTypeSkMsg         bpfsys.ProgType = 16
	progTypeCgroupSysctl  bpfsys.ProgType = 23
	progTypeCgroupSockopt bpfsys.ProgType = 25
	progTypeTracing       bpfsys.ProgType = 26
	progTypeLSM           bpfsys.ProgType = 29
	progTypePerfEvent     bpfsys.ProgType = 7

	attachSkMsgVerdict        bpfsys.AttachType = 7
	attachInet4Bind           bpfsys.AttachType = 8
	attachInet6Bind           bpfsys.AttachType = 9
	attachInet4Connect        bpfsys.AttachType = 10
	attachInet6Connect        bpfsys.AttachType = 11
	attachUDP4Sendmsg         bpfsys.AttachType = 14
	attachUDP6Sendmsg         bpfsys.AttachType = 15
	attachCgroupSysctl        bpfsys.AttachType = 18
	attachUDP4Recvmsg         bpfsys.AttachType = 19
	attachUDP6Recvmsg         bpfsys.AttachType = 20
	attachCgroupGetsockopt    bpfsys.AttachType = 21
	attachCgroupSetsockopt    bpfsys.AttachType = 22
	attachTraceRawTP          bpfsys.AttachType = 23
	attachTraceFentry         bpfsys.AttachType = 24
	attachTraceFexit          bpfsys.AttachType = 25
	attachModifyReturn        bpfsys.AttachType = 26
	attachLSMMac              bpfsys.AttachType = 27
	attachTraceIter           bpfsys.AttachType = 28
	attachCgroupSockRelease   bpfsys.AttachType = 34
	attachXDP                 bpfsys.AttachType = 37
	attachTypePerfEvent       bpfsys.AttachType = 41
	attachTCXIngress          bpfsys.AttachType = 46
	attachTCXEgress           bpfsys.AttachType = 47
	attachCgroupInet4PostBind bpfsys.AttachType = 12
	attachCgroupInet6PostBind bpfsys.AttachType = 13
)

// attachKind says how a program is attached (see link.go).
type attachKind int

const (
	attachNone attachKind = iota
	attachKindTracepoint
	attachKindRawTracepoint
	attachKindTracing // tp_btf, fentry, fexit, fmod_ret, lsm: BTF id at load
	attachKindIter
	attachKindKprobe
	attachKindKsyscall
	attachKindUprobe
	attachKindUSDT
	attachKindPerfEvent
	attachKindXDP
	attachKindTC // tc, classifier, tcx/*: TCX links
	attachKindSocket
	attachKindCgroup
	attachKindSockMap // sk_msg, sk_skb: attached to a sockmap/sockhash
)

// secDef is one row of the section table.
type secDef struct {
	name   string // exact name, or prefix before '/' when plus
	plus   bool   // "NAME" or "NAME/anything"
	typ    bpfsys.ProgType
	attach bpfsys.AttachType
	kind   attachKind
	ret    bool   // kretprobe, uretprobe, kretsyscall
	btfPfx string // kernel BTF name prefix of the attach target (tracing)
	btfKnd uint8  // BTF kind of the attach target
}

// secDefs is libbpf's table of section names (libbpf.c section_defs), for
// the families gobpf supports. Order matters: the first match wins.
var secDefs = []secDef{
	{name: "socket", plus: true, typ: bpfsys.BPF_PROG_TYPE_SOCKET_FILTER, kind: attachKindSocket},
	{name: "kprobe", plus: true, typ: bpfsys.BPF_PROG_TYPE_KPROBE, kind: attachKindKprobe},
	{name: "kretprobe", plus: true, typ: bpfsys.BPF_PROG_TYPE_KPROBE, kind: attachKindKprobe, ret: true},
	{name: "ksyscall", plus: true, typ: bpfsys.BPF_PROG_TYPE_KPROBE, kind: attachKindKsyscall},
	{name: "kretsyscall", plus: true, typ: bpfsys.BPF_PROG_TYPE_KPROBE, kind: attachKindKsyscall, ret: true},
	{name: "uprobe", plus: true, typ: bpfsys.BPF_PROG_TYPE_KPROBE, kind: attachKindUprobe},
	{name: "uretprobe", plus: true, typ: bpfsys.BPF_PROG_TYPE_KPROBE, kind: attachKindUprobe, ret: true},
	{name: "usdt", plus: true, typ: bpfsys.BPF_PROG_TYPE_KPROBE, kind: attachKindUSDT},
	{name: "tc/ingress", typ: bpfsys.BPF_PROG_TYPE_SCHED_CLS, attach: attachTCXIngress, kind: attachKindTC},
	{name: "tc/egress", typ: bpfsys.BPF_PROG_TYPE_SCHED_CLS, attach: attachTCXEgress, kind: attachKindTC},
	{name: "tcx/ingress", typ: bpfsys.BPF_PROG_TYPE_SCHED_CLS, attach: attachTCXIngress, kind: attachKindTC},
	{name: "tcx/egress", typ: bpfsys.BPF_PROG_TYPE_SCHED_CLS, attach: attachTCXEgress, kind: attachKindTC},
	{name: "tc", plus: true, typ: bpfsys.BPF_PROG_TYPE_SCHED_CLS, kind: attachKindTC},
	{name: "classifier", plus: true, typ: bpfsys.BPF_PROG_TYPE_SCHED_CLS, kind: attachKindTC},
	{name: "tracepoint", plus: true, typ: bpfsys.BPF_PROG_TYPE_TRACEPOINT, kind: attachKindTracepoint},
	{name: "tp", plus: true, typ: bpfsys.BPF_PROG_TYPE_TRACEPOINT, kind: attachKindTracepoint},
	{name: "raw_tracepoint", plus: true, typ: bpfsys.BPF_PROG_TYPE_RAW_TRACEPOINT, kind: attachKindRawTracepoint},
	{name: "raw_tp", plus: true, typ: bpfsys.BPF_PROG_TYPE_RAW_TRACEPOINT, kind: attachKindRawTracepoint},
	{name: "tp_btf", plus: true, typ: progTypeTracing, attach: attachTraceRawTP, kind: attachKindTracing, btfPfx: "btf_trace_", btfKnd: btfKindTypedef},
	{name: "fentry", plus: true, typ: progTypeTracing, attach: attachTraceFentry, kind: attachKindTracing, btfKnd: btfKindFunc},
	{name: "fmod_ret", plus: true, typ: progTypeTracing, attach: attachModifyReturn, kind: attachKindTracing, btfKnd: btfKindFunc},
	{name: "fexit", plus: true, typ: progTypeTracing, attach: attachTraceFexit, kind: attachKindTracing, btfKnd: btfKindFunc},
	{name: "lsm", plus: true, typ: progTypeLSM, attach: attachLSMMac, kind: attachKindTracing, btfPfx: "bpf_lsm_", btfKnd: btfKindFunc},
	{name: "iter", plus: true, typ: progTypeTracing, attach: attachTraceIter, kind: attachKindIter, btfPfx: "bpf_iter_", btfKnd: btfKindFunc},
	{name: "xdp", typ: bpfsys.BPF_PROG_TYPE_XDP, attach: attachXDP, kind: attachKindXDP},
	{name: "perf_event", typ: progTypePerfEvent, kind: attachKindPerfEvent},
	{name: "sockops", typ: progTypeSockOps, attach: bpfsys.BPF_CGROUP_SOCK_OPS, kind: attachKindCgroup},
	{name: "sk_skb/stream_parser", typ: progTypeSkSkb, attach: bpfsys.BPF_SK_SKB_STREAM_PARSER, kind: attachKindSockMap},
	{name: "sk_skb/stream_verdict", typ: progTypeSkSkb, attach: bpfsys.BPF_SK_SKB_STREAM_VERDICT, kind: attachKindSockMap},
	{name: "sk_msg", typ: progTypeSkMsg, attach: attachSkMsgVerdict, kind: attachKindSockMap},
	{name: "cgroup_skb/ingress", typ: bpfsys.BPF_PROG_TYPE_CGROUP_SKB, attach: bpfsys.BPF_CGROUP_INET_INGRESS, kind: attachKindCgroup},
	{name: "cgroup_skb/egress", typ: bpfsys.BPF_PROG_TYPE_CGROUP_SKB, attach: bpfsys.BPF_CGROUP_INET_EGRESS, kind: attachKindCgroup},
	{name: "cgroup/sock_create", typ: bpfsys.BPF_PROG_TYPE_CGROUP_SOCK, attach: bpfsys.BPF_CGROUP_INET_SOCK_CREATE, kind: attachKindCgroup},
	{name: "cgroup/sock_release", typ: bpfsys.BPF_PROG_TYPE_CGROUP_SOCK, attach: attachCgroupSockRelease, kind: attachKindCgroup},
	{name: "cgroup/post_bind4", typ: bpfsys.BPF_PROG_TYPE_CGROUP_SOCK, attach: attachCgroupInet4PostBind, kind: attachKindCgroup},
	{name: "cgroup/post_bind6", typ: bpfsys.BPF_PROG_TYPE_CGROUP_SOCK, attach: attachCgroupInet6PostBind, kind: attachKindCgroup},
	{name: "cgroup/bind4", typ: bpfsys.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, attach: attachInet4Bind, kind: attachKindCgroup},
	{name: "cgroup/bind6", typ: bpfsys.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, attach: attachInet6Bind, kind: attachKindCgroup},
	{name: "cgroup/connect4", typ: bpfsys.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, attach: attachInet4Connect, kind: attachKindCgroup},
	{name: "cgroup/connect6", typ: bpfsys.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, attach: attachInet6Connect, kind: attachKindCgroup},
	{name: "cgroup/sendmsg4", typ: bpfsys.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, attach: attachUDP4Sendmsg, kind: attachKindCgroup},
	{name: "cgroup/sendmsg6", typ: bpfsys.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, attach: attachUDP6Sendmsg, kind: attachKindCgroup},
	{name: "cgroup/recvmsg4", typ: bpfsys.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, attach: attachUDP4Recvmsg, kind: attachKindCgroup},
	{name: "cgroup/recvmsg6", typ: bpfsys.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, attach: attachUDP6Recvmsg, kind: attachKindCgroup},
	{name: "cgroup/sysctl", typ: progTypeCgroupSysctl, attach: attachCgroupSysctl, kind: attachKindCgroup},
	{name: "cgroup/getsockopt", typ: progTypeCgroupSockopt, attach: attachCgroupGetsockopt, kind: attachKindCgroup},
	{name: "cgroup/setsockopt", typ: progTypeCgroupSockopt, attach: attachCgroupSetsockopt, kind: attachKindCgroup},
	{name: "cgroup/dev", typ: progTypeCgroupDevice, attach: bpfsys.BPF_CGROUP_DEVICE, kind: attachKindCgroup},
}

// secInfo is what a program's section name says about it.
type secInfo struct {
	typ    bpfsys.ProgType
	attach bpfsys.AttachType
	kind   attachKind
	ret    bool
	target string // what follows "NAME/" ("" when none)
	def    *secDef
}

// lookupSection classifies a program section: first by libbpf's table,
// then by gobpf's prefixes (classify). ok is false for unknown names.
func lookupSection(sec string) (gkind progKind, gok bool, info secInfo, ok bool) {
	gkind, gtyp, gok := classify(sec)
	for i := range secDefs {
		d := &secDefs[i]
		var target string
		switch {
		case sec == d.name:
		case d.plus && strings.HasPrefix(sec, d.name+"/"):
			target = sec[len(d.name)+1:]
		default:
			continue
		}
		info = secInfo{typ: d.typ, attach: d.attach, kind: d.kind, ret: d.ret, target: target, def: d}
		if gok && gtyp != d.typ {
			gok = false // e.g. "tc" is not a gobpf kind; never disagree
		}
		return gkind, gok, info, true
	}
	if !gok {
		return 0, false, secInfo{}, false
	}
	// gobpf-only prefixes (xdp/NAME, socket_NAME, cgroup/skb..., sched_*).
	info = secInfo{typ: gtyp}
	switch gkind {
	case kindXDP:
		info.kind = attachKindXDP
	case kindSocketFilter:
		info.kind = attachKindSocket
	case kindCgroupSkb:
		info.kind = attachKindCgroup
	case kindCgroupSock:
		info.kind, info.attach = attachKindCgroup, bpfsys.BPF_CGROUP_INET_SOCK_CREATE
	case kindSchedCls:
		info.kind = attachKindTC
	}
	return gkind, true, info, true
}

// kindNone marks a program that only libbpf's conventions name (tp/,
// fentry/, cgroup/connect4...): it has no gobpf type and is reached
// through Module.Program.
const kindNone progKind = -1

// programSection classifies an executable section; an unknown name with
// code in it is an error rather than a silently dropped program.
func (p *parser) programSection(s *elf.Section) (progKind, secInfo, error) {
	gkind, gok, info, ok := lookupSection(s.Name)
	if !ok {
		if s.Size == 0 {
			return kindNone, info, nil
		}
		return 0, info, fmt.Errorf("elf: unknown program section %q (not a libbpf or gobpf section name): %w", s.Name, ErrNotSupported)
	}
	if !gok {
		gkind = kindNone
	}
	return gkind, info, nil
}
