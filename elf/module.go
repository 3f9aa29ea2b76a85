package elf

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
)

// Errors returned (wrapped) by this package; match them with errors.Is.
var (
	// ErrNotSupported: the running kernel (kprobes, ...) or this loader
	// (global data, CO-RE relocations, compressed sections, ...) lacks a
	// feature the object or the call needs.
	ErrNotSupported = errors.New("not supported")
	// ErrNotFound: no program or map of that name in the module.
	ErrNotFound = errors.New("not found")
	// ErrClosed: the module was closed.
	ErrClosed = errors.New("module closed")
	// ErrNotLoaded: Load has not (successfully) run.
	ErrNotLoaded = errors.New("module not loaded")
)

const (
	useCurrentKernelVersion = 0xFFFFFFFE
	defaultLogSize          = 524288
)

// Module is an eBPF object file and, once loaded, its maps and programs.
type Module struct {
	fileName   string
	fileReader io.ReaderAt

	// mu guards everything below and the fds of the module's maps,
	// programs and perf events (see guard.go): operations that only use
	// an fd hold it shared, Load, Close and attachments hold it
	// exclusively, so that no fd is used once Close began.
	mu          sync.RWMutex
	logSize     uint32
	log         []byte
	spec        *objectSpec
	loaded      bool
	closed      bool
	compatProbe bool

	maps                  map[string]*Map
	probes                map[string]*Kprobe
	uprobes               map[string]*Uprobe
	cgroupPrograms        map[string]*CgroupProgram
	socketFilters         map[string]*SocketFilter
	tracepointPrograms    map[string]*TracepointProgram
	rawTracepointPrograms map[string]*RawTracepointProgram
	schedPrograms         map[string]*SchedProgram
	xdpPrograms           map[string]*XDPProgram
	perfMaps              map[*PerfMap]bool

	x moduleExt // libbpf-era state: programs, links, global data (program.go)
}

// program is what every program kind has in common.
type program struct {
	// Name is the ELF section name, e.g. "kprobe/do_sys_open".
	Name     string
	fd       int
	funcName string
	mod      *Module
}

// Fd returns the program's file descriptor (-1 once the module is closed).
// The fd stays valid until the module's Close begins: a caller that keeps
// using it must not race Close.
func (p *program) Fd() int {
	if p == nil || p.mod == nil {
		return -1
	}
	p.mod.mu.RLock()
	defer p.mod.mu.RUnlock()
	if p.mod.closed {
		return -1
	}
	return p.fd
}

// FuncName returns the name of the C function the program was compiled from.
func (p *program) FuncName() string { return p.funcName }

// Kprobe is a kprobe/ or kretprobe/ program.
type Kprobe struct {
	program
	efd    int    // perf event, -1 when not enabled
	event  string // kprobe_events entry to remove on close, if any
	tracer string // tracefs root used for event
}

// Uprobe is a uprobe/ or uretprobe/ program.
type Uprobe struct {
	program
	efds   map[string]int // attachment key -> perf event fd
	events map[string]string
}

// TracepointProgram is a tracepoint/CATEGORY/NAME program.
type TracepointProgram struct {
	program
	efd int
}

// RawTracepointProgram is a raw_tracepoint/NAME program.
type RawTracepointProgram struct {
	program
	efd int
}

// CgroupProgram is a cgroup/skb or cgroup/sock program.
type CgroupProgram struct {
	program
	attachs []cgroupAttachment
}

type cgroupAttachment struct {
	path string
	fd   int
	typ  AttachType
}

// SocketFilter is a socket... program.
type SocketFilter struct {
	program
}

// SchedProgram is a sched_cls/ or sched_act/ program.
type SchedProgram struct {
	program
}

// XDPProgram is an xdp... program.
type XDPProgram struct {
	program
	attachs map[string]uint32 // device -> flags used
}

// AttachType is where a cgroup program attaches (enum bpf_attach_type).
type AttachType int

// Cgroup attach types.
const (
	IngressType    AttachType = iota // BPF_CGROUP_INET_INGRESS
	EgressType                       // BPF_CGROUP_INET_EGRESS
	SockCreateType                   // BPF_CGROUP_INET_SOCK_CREATE
)

// SectionParams changes how Load sets up a section ("maps/NAME" keys;
// BTF-defined maps use "maps/NAME" too).
type SectionParams struct {
	PerfRingBufferPageCount   int
	SkipPerfMapInitialization bool
	PinPath                   string // path to be pinned, relative to "/sys/fs/bpf"
	MapMaxEntries             int    // Used to override bpf map entries size
	// PerfRingBufferBackward and PerfRingBufferOverwritable, set
	// together on a perf event array, ask for backward-written,
	// overwritable perf rings (gobpf's DumpBackward/SwapAndDumpBackward
	// flight-recorder mode, see perf_backward.go). Setting only one of
	// them fails Load with an error wrapping ErrNotSupported.
	PerfRingBufferBackward     bool
	PerfRingBufferOverwritable bool
}

// CloseOptions tells CloseExt what to do with a map ("maps/NAME" keys).
type CloseOptions struct {
	// Set Unpin to true to remove the map's pin as well.
	Unpin   bool
	PinPath string
}

func newModule(logSize uint32) *Module {
	return &Module{logSize: logSize}
}

// NewModule returns a module for the object file at fileName. Nothing is
// read before Load.
func NewModule(fileName string) *Module {
	m := newModule(defaultLogSize)
	m.fileName = fileName
	return m
}

// NewModuleFromReader returns a module reading the object from fileReader.
func NewModuleFromReader(fileReader io.ReaderAt) *Module {
	m := newModule(defaultLogSize)
	m.fileReader = fileReader
	return m
}

// NewModuleWithLog is NewModule with the verifier log size to ask for.
func NewModuleWithLog(fileName string, logSize uint32) *Module {
	m := newModule(logSize)
	m.fileName = fileName
	return m
}

// NewModuleFromReaderWithLog is NewModuleFromReader with a verifier log size.
func NewModuleFromReaderWithLog(fileReader io.ReaderAt, logSize uint32) *Module {
	m := newModule(logSize)
	m.fileReader = fileReader
	return m
}

// Log returns the verifier log of the last program the kernel rejected.
func (b *Module) Log() []byte {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.log
}

// EnableOptionCompatProbe makes Load rewrite kprobe/SyS_NAME and
// kprobe/sys_NAME sections to the running kernel's syscall symbol.
func (b *Module) EnableOptionCompatProbe() {
	b.mu.Lock()
	b.compatProbe = true
	b.mu.Unlock()
}

// parse reads and checks the object without loading anything.
func (b *Module) parse() (*objectSpec, error) {
	if b.spec != nil {
		return b.spec, nil
	}
	r := b.fileReader
	if b.fileName != "" {
		f, err := os.Open(b.fileName)
		if err != nil {
			return nil, fmt.Errorf("elf: %w", err)
		}
		defer f.Close()
		r = f
	}
	if r == nil {
		return nil, errors.New("elf: module has no object file")
	}
	spec, err := parseObject(r)
	if err != nil {
		return nil, err
	}
	b.spec = spec
	return spec, nil
}

// Load creates the object's maps and loads its programs. Each ELF section
// can have parameters that change how it is set up. When Load fails, what it
// created is released; the module can then only be closed.
//
// When creating a map fails with EPERM (kernels before 5.11 charge BPF
// memory to RLIMIT_MEMLOCK), Load raises the process's RLIMIT_MEMLOCK to
// unlimited and retries, as upstream gobpf does. That process-wide change
// is not undone (see MemlockRaised).
func (b *Module) Load(parameters map[string]SectionParams) error {
	if err := b.lockOpen("load", ""); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if b.loaded {
		return errors.New("elf: module already loaded")
	}
	spec, err := b.parse()
	if err != nil {
		return err
	}
	b.initMaps()
	if err := b.load(spec, parameters); err != nil {
		b.closeAll(nil)
		b.initMaps()
		return err
	}
	b.loaded = true
	return nil
}

func (b *Module) initMaps() {
	b.maps = map[string]*Map{}
	b.probes = map[string]*Kprobe{}
	b.uprobes = map[string]*Uprobe{}
	b.cgroupPrograms = map[string]*CgroupProgram{}
	b.socketFilters = map[string]*SocketFilter{}
	b.tracepointPrograms = map[string]*TracepointProgram{}
	b.rawTracepointPrograms = map[string]*RawTracepointProgram{}
	b.schedPrograms = map[string]*SchedProgram{}
	b.xdpPrograms = map[string]*XDPProgram{}
	b.perfMaps = map[*PerfMap]bool{}
	b.x.init()
}

func (b *Module) load(spec *objectSpec, params map[string]SectionParams) error {
	version := spec.Version
	if version == useCurrentKernelVersion {
		v, err := CurrentKernelVersion()
		if err != nil {
			return err
		}
		version = v
	}
	b.prepareBTF(spec)
	for _, ms := range spec.Maps {
		m, err := b.createMapInner(ms, spec, params["maps/"+ms.Name])
		if err != nil {
			return err
		}
		m.module = b
		b.maps[ms.Name] = m
		if err := b.initGlobal(m, ms); err != nil {
			return err
		}
	}
	if err := b.fillSlots(spec, false); err != nil {
		return err
	}
	for _, ps := range spec.Progs {
		insns := append([]bpfsys.Insn(nil), ps.Insns...)
		for _, r := range ps.relocs {
			m, ok := b.maps[r.name]
			if !ok {
				return fmt.Errorf("elf: program %q references map %q, which the object does not define", ps.Section, r.name)
			}
			insns[r.insn].Regs = insns[r.insn].Regs&0x0f | pseudoMapFD<<4
			insns[r.insn].Imm = int32(m.fd)
			insns[r.insn+1].Imm = 0
			if r.value {
				if r.off >= m.def.ValueSize {
					return fmt.Errorf("elf: program %q references offset %d of %s, which is %d bytes", ps.Section, r.off, r.name, m.def.ValueSize)
				}
				insns[r.insn].Regs = insns[r.insn].Regs&0x0f | pseudoMapValue<<4
				insns[r.insn+1].Imm = int32(r.off)
			}
		}
		fd, err := b.loadProg(spec, ps, insns, version)
		if err != nil {
			return err
		}
		b.addProgram(ps, fd)
		b.addModern(ps, fd)
	}
	if err := b.fillSlots(spec, true); err != nil {
		return err
	}
	return nil
}

func (b *Module) addProgram(ps *progSpec, fd int) {
	p := program{Name: ps.Section, fd: fd, funcName: ps.FuncName, mod: b}
	switch ps.Kind {
	case kindKprobe, kindKretprobe:
		if b.compatProbe {
			p.Name = compatSectionName(p.Name)
		}
		b.probes[p.Name] = &Kprobe{program: p, efd: -1}
	case kindUprobe, kindUretprobe:
		b.uprobes[p.Name] = &Uprobe{program: p, efds: map[string]int{}, events: map[string]string{}}
	case kindTracepoint:
		b.tracepointPrograms[p.Name] = &TracepointProgram{program: p, efd: -1}
	case kindRawTracepoint:
		b.rawTracepointPrograms[p.Name] = &RawTracepointProgram{program: p, efd: -1}
	case kindSocketFilter:
		b.socketFilters[p.Name] = &SocketFilter{program: p}
	case kindCgroupSkb, kindCgroupSock:
		b.cgroupPrograms[p.Name] = &CgroupProgram{program: p}
	case kindXDP:
		b.xdpPrograms[p.Name] = &XDPProgram{program: p, attachs: map[string]uint32{}}
	case kindSchedCls, kindSchedAct:
		b.schedPrograms[p.Name] = &SchedProgram{program: p}
	}
}

func compatSectionName(sec string) string {
	parts := strings.SplitN(sec, "/", 2)
	if len(parts) != 2 || !(strings.HasPrefix(parts[1], "SyS_") || strings.HasPrefix(parts[1], "sys_")) {
		return sec
	}
	name := strings.TrimPrefix(strings.TrimPrefix(parts[1], "SyS_"), "sys_")
	fn, err := GetSyscallFnName(name)
	if err != nil {
		return sec
	}
	return parts[0] + "/" + fn
}

// sortedKeys returns m's keys in order, so that iteration is stable.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// iter emits the values of the module's map m, by name, on a channel it
// closes at the end. As in gobpf, the caller must drain the channel.
func iter[V any](b *Module, m *map[string]V) <-chan V {
	b.mu.RLock()
	vals := make([]V, 0, len(*m))
	for _, k := range sortedKeys(*m) {
		vals = append(vals, (*m)[k])
	}
	b.mu.RUnlock()
	ch := make(chan V)
	go func() {
		for _, v := range vals {
			ch <- v
		}
		close(ch)
	}()
	return ch
}

// closedChan is what the Iter methods of a nil module return.
func closedChan[V any]() <-chan V {
	ch := make(chan V)
	close(ch)
	return ch
}

// IterKprobes emits the module's kprobes and kretprobes.
func (b *Module) IterKprobes() <-chan *Kprobe {
	if b == nil {
		return closedChan[*Kprobe]()
	}
	return iter(b, &b.probes)
}

// IterUprobes emits the module's uprobes and uretprobes.
func (b *Module) IterUprobes() <-chan *Uprobe {
	if b == nil {
		return closedChan[*Uprobe]()
	}
	return iter(b, &b.uprobes)
}

// IterCgroupProgram emits the module's cgroup programs.
func (b *Module) IterCgroupProgram() <-chan *CgroupProgram {
	if b == nil {
		return closedChan[*CgroupProgram]()
	}
	return iter(b, &b.cgroupPrograms)
}

// IterTracepointProgram emits the module's tracepoint programs.
func (b *Module) IterTracepointProgram() <-chan *TracepointProgram {
	if b == nil {
		return closedChan[*TracepointProgram]()
	}
	return iter(b, &b.tracepointPrograms)
}

// IterRawTracepointProgram emits the module's raw tracepoint programs.
func (b *Module) IterRawTracepointProgram() <-chan *RawTracepointProgram {
	if b == nil {
		return closedChan[*RawTracepointProgram]()
	}
	return iter(b, &b.rawTracepointPrograms)
}

// IterSocketFilter emits the module's socket filters.
func (b *Module) IterSocketFilter() <-chan *SocketFilter {
	if b == nil {
		return closedChan[*SocketFilter]()
	}
	return iter(b, &b.socketFilters)
}

// IterSchedProgram emits the module's sched_cls/sched_act programs.
func (b *Module) IterSchedProgram() <-chan *SchedProgram {
	if b == nil {
		return closedChan[*SchedProgram]()
	}
	return iter(b, &b.schedPrograms)
}

// IterXDPProgram emits the module's XDP programs.
func (b *Module) IterXDPProgram() <-chan *XDPProgram {
	if b == nil {
		return closedChan[*XDPProgram]()
	}
	return iter(b, &b.xdpPrograms)
}

// IterMaps emits the module's maps.
func (b *Module) IterMaps() <-chan *Map {
	if b == nil {
		return closedChan[*Map]()
	}
	return iter(b, &b.maps)
}

// Kprobe returns the kprobe/kretprobe of that section name, or nil.
func (b *Module) Kprobe(name string) *Kprobe {
	if b == nil {
		return nil
	}
	return get(b, &b.probes, name)
}

// Uprobe returns the uprobe/uretprobe of that section name, or nil.
func (b *Module) Uprobe(name string) *Uprobe {
	if b == nil {
		return nil
	}
	return get(b, &b.uprobes, name)
}

// UprobeProgram is Uprobe.
func (b *Module) UprobeProgram(name string) *Uprobe {
	if b == nil {
		return nil
	}
	return get(b, &b.uprobes, name)
}

// CgroupProgram returns the cgroup program of that section name, or nil.
func (b *Module) CgroupProgram(name string) *CgroupProgram {
	if b == nil {
		return nil
	}
	return get(b, &b.cgroupPrograms, name)
}

// SocketFilter returns the socket filter of that section name, or nil.
func (b *Module) SocketFilter(name string) *SocketFilter {
	if b == nil {
		return nil
	}
	return get(b, &b.socketFilters, name)
}

// TracepointProgram returns the tracepoint program of that section name, or nil.
func (b *Module) TracepointProgram(name string) *TracepointProgram {
	if b == nil {
		return nil
	}
	return get(b, &b.tracepointPrograms, name)
}

// RawTracepointProgram returns the raw tracepoint program of that section name, or nil.
func (b *Module) RawTracepointProgram(name string) *RawTracepointProgram {
	if b == nil {
		return nil
	}
	return get(b, &b.rawTracepointPrograms, name)
}

// SchedProgram returns the sched_cls/sched_act program of that section name, or nil.
func (b *Module) SchedProgram(name string) *SchedProgram {
	if b == nil {
		return nil
	}
	return get(b, &b.schedPrograms, name)
}

// XDPProgram returns the XDP program of that section name, or nil.
func (b *Module) XDPProgram(name string) *XDPProgram {
	if b == nil {
		return nil
	}
	return get(b, &b.xdpPrograms, name)
}

// Map returns the map of that name, or nil.
func (b *Module) Map(name string) *Map {
	if b == nil {
		return nil
	}
	return get(b, &b.maps, name)
}

// UpdateKprobeNameForHandler renames the kprobe loaded from section handler
// to newKprobeName (e.g. "kprobe/other_function") before EnableKprobe.
func (b *Module) UpdateKprobeNameForHandler(handler, newKprobeName string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.probes[handler]
	if !ok {
		return fmt.Errorf("elf: no such handler %q in kprobe mapping: %w", handler, ErrNotFound)
	}
	p.Name = newKprobeName
	return nil
}

// Close detaches every program this module attached (perf events, kprobe
// and uprobe events, XDP, cgroups), stops perf map readers and closes all
// file descriptors. Pinned maps stay pinned (see CloseExt). Close can be
// called more than once.
func (b *Module) Close() error { return b.CloseExt(nil) }

// CloseExt is Close with per-map options keyed "maps/NAME": Unpin removes
// the map's pin (PinPath overrides the path for PIN_CUSTOM_NS maps).
func (b *Module) CloseExt(options map[string]CloseOptions) error {
	if b == nil {
		return nil
	}
	// Taking mu exclusively waits for every operation in flight on the
	// module's fds; operations that start later see closed and return
	// ErrClosed, so no fd number is used after it was closed (and maybe
	// reused by another module's object).
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	return b.closeAll(options)
}

func (b *Module) closeAll(options map[string]CloseOptions) error {
	errs := []error{b.closeModern()}
	for pm := range b.perfMaps {
		pm.stop(false) // no waiting for the receiver
	}
	for _, k := range sortedKeys(b.probes) {
		errs = append(errs, b.probes[k].close())
	}
	for _, k := range sortedKeys(b.uprobes) {
		errs = append(errs, b.uprobes[k].close())
	}
	for _, k := range sortedKeys(b.tracepointPrograms) {
		p := b.tracepointPrograms[k]
		errs = append(errs, closeFD(&p.efd), closeFD(&p.fd))
	}
	for _, k := range sortedKeys(b.rawTracepointPrograms) {
		p := b.rawTracepointPrograms[k]
		errs = append(errs, closeFD(&p.efd), closeFD(&p.fd))
	}
	for _, k := range sortedKeys(b.cgroupPrograms) {
		p := b.cgroupPrograms[k]
		errs = append(errs, p.detachAll(), closeFD(&p.fd))
	}
	for _, k := range sortedKeys(b.xdpPrograms) {
		p := b.xdpPrograms[k]
		errs = append(errs, p.detachAll(), closeFD(&p.fd))
	}
	for _, k := range sortedKeys(b.socketFilters) {
		errs = append(errs, closeFD(&b.socketFilters[k].fd))
	}
	for _, k := range sortedKeys(b.schedPrograms) {
		errs = append(errs, closeFD(&b.schedPrograms[k].fd))
	}
	for _, k := range sortedKeys(b.maps) {
		errs = append(errs, b.maps[k].close(options["maps/"+k]))
	}
	return errors.Join(errs...)
}

// closeFD closes *fd if it is open and marks it closed.
func closeFD(fd *int) error {
	if *fd < 0 {
		return nil
	}
	err := unix.Close(*fd)
	*fd = -1
	if err != nil {
		return fmt.Errorf("elf: close: %w", err)
	}
	return nil
}
