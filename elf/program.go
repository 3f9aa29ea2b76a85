package elf

import (
	"errors"
	"fmt"
	"sort"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/btf"
)

// Program is any loaded program, whatever its section family: the handle
// of libbpf-style sections (tp/, fentry/, cgroup/connect4, tcx/ingress...)
// and a second view of gobpf's typed programs. Its Attach methods return
// a *Link (link.go).
type Program struct {
	// Section is the ELF section name, FuncName the C function's.
	Section  string
	FuncName string

	mod  *Module
	fdp  *int // shared with the gobpf typed program, if any
	own  bool // the Program owns *fdp (no gobpf type for it)
	info secInfo
}

// Fd returns the program's file descriptor (-1 once the module is closed).
func (p *Program) Fd() int {
	p.mod.mu.Lock()
	defer p.mod.mu.Unlock()
	return *p.fdp
}

// Type returns the program type (enum bpf_prog_type) it was loaded with.
func (p *Program) Type() uint32 { return uint32(p.info.typ) }

// ExpectedAttachType returns the expected attach type it was loaded with.
func (p *Program) ExpectedAttachType() uint32 { return uint32(p.info.attach) }

// Target returns what follows the section family in the section name
// ("syscalls/sys_enter_getpid" for "tp/syscalls/sys_enter_getpid").
func (p *Program) Target() string { return p.info.target }

// moduleExt is the module state this file family adds.
type moduleExt struct {
	programs map[string]*Program // by FuncName and by Section
	links    map[*Link]struct{}
	globals  map[string]*globalMap // by section name (globaldata.go)
	opts     LoadOptions
	rings    map[*RingBuf]struct{}
	btf      *objBTF               // core.go
	vars     map[string]*globalVar // globaldata.go: variables looked up so far
}

func (x *moduleExt) init() {
	x.programs = map[string]*Program{}
	x.links = map[*Link]struct{}{}
	x.globals = map[string]*globalMap{}
	x.rings = map[*RingBuf]struct{}{}
	x.vars = map[string]*globalVar{}
}

// Program returns the program whose C function or section is name.
func (b *Module) Program(name string) (*Program, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("elf: program %q: %w", name, ErrClosed)
	}
	if !b.loaded {
		return nil, fmt.Errorf("elf: program %q: %w", name, ErrNotLoaded)
	}
	p, ok := b.x.programs[name]
	if !ok {
		return nil, fmt.Errorf("elf: program %q: %w", name, ErrNotFound)
	}
	return p, nil
}

// Programs returns the names (C function names, or sections when a
// program has none) of every loaded program, sorted.
func (b *Module) Programs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	seen := map[*Program]bool{}
	var out []string
	for _, p := range b.x.programs {
		if seen[p] {
			continue
		}
		seen[p] = true
		if p.FuncName != "" {
			out = append(out, p.FuncName)
		} else {
			out = append(out, p.Section)
		}
	}
	sort.Strings(out)
	return out
}

// loadProg loads one program of spec with instructions insns (relocated).
func (b *Module) loadProg(spec *objectSpec, ps *progSpec, insns []bpfsys.Insn, version uint32) (int, error) {
	name := ps.FuncName
	if name == "" {
		name = ps.Section
	}
	o := &progLoadOpts{
		typ: ps.Type, attach: ps.Info.attach, insns: insns, license: spec.License,
		kernVersion: version, name: name, logSize: b.logSize,
	}
	if ps.Info.kind == attachKindTracing || ps.Info.kind == attachKindIter {
		id, err := b.attachBTFID(ps)
		if err != nil {
			return -1, fmt.Errorf("elf: program %q: %w", ps.Section, err)
		}
		o.attachBTFID = id
	}
	fixups, err := b.relocateCORE(ps, insns)
	if err != nil {
		return -1, fmt.Errorf("elf: program %q: %w", ps.Section, err)
	}
	b.objBTFProg(spec, ps, o)
	fd, err := progLoad(o)
	if err != nil && ps.Info.kind == attachKindTC && o.attach != 0 && errors.Is(err, errEINVAL) {
		// Kernels before 6.6 know no TCX attach types: load it as a
		// plain classifier (attaching it through TCX then reports
		// ErrNotSupported), as libbpf does for optional attach types.
		o.attach = 0
		fd, err = progLoad(o)
	}
	if err != nil {
		var ve *bpfsys.VerifierError
		if errors.As(err, &ve) {
			b.log = []byte(ve.Log)
			if perr := btf.PoisonError(ve.Log, fixups); perr != nil {
				err = fmt.Errorf("%w (%w)", perr, err)
			}
		}
		if ps.Info.kind == attachKindTracing || ps.Info.kind == attachKindIter {
			if errors.Is(err, errEPERM) {
				err = fmt.Errorf("%w (%w: the kernel refuses tracing programs, e.g. lockdown)", err, ErrNotSupported)
			}
		}
		return -1, fmt.Errorf("elf: error while loading %q: %w", ps.Section, err)
	}
	return fd, nil
}

// addModern registers a loaded program under its function and section
// names. fdp is the gobpf typed program's fd when it has one.
func (b *Module) addModern(ps *progSpec, fd int) {
	p := &Program{Section: ps.Section, FuncName: ps.FuncName, mod: b, info: ps.Info}
	if fdp := b.typedFD(ps); fdp != nil {
		p.fdp = fdp
	} else {
		p.fdp, p.own = &fd, true
	}
	b.x.programs[ps.Section] = p
	if ps.FuncName != "" {
		b.x.programs[ps.FuncName] = p
	}
}

// typedFD finds the fd field of the gobpf typed program of ps.
func (b *Module) typedFD(ps *progSpec) *int {
	name := ps.Section
	switch ps.Kind {
	case kindKprobe, kindKretprobe:
		if b.compatProbe {
			name = compatSectionName(name)
		}
		if p := b.probes[name]; p != nil {
			return &p.fd
		}
	case kindUprobe, kindUretprobe:
		if p := b.uprobes[name]; p != nil {
			return &p.fd
		}
	case kindTracepoint:
		if p := b.tracepointPrograms[name]; p != nil {
			return &p.fd
		}
	case kindRawTracepoint:
		if p := b.rawTracepointPrograms[name]; p != nil {
			return &p.fd
		}
	case kindSocketFilter:
		if p := b.socketFilters[name]; p != nil {
			return &p.fd
		}
	case kindCgroupSkb, kindCgroupSock:
		if p := b.cgroupPrograms[name]; p != nil {
			return &p.fd
		}
	case kindXDP:
		if p := b.xdpPrograms[name]; p != nil {
			return &p.fd
		}
	case kindSchedCls, kindSchedAct:
		if p := b.schedPrograms[name]; p != nil {
			return &p.fd
		}
	}
	return nil
}

// closeModern closes links, ring buffer readers, global data mappings and
// the programs only this file family owns. Called with b.mu held.
func (b *Module) closeModern() error {
	var errs []error
	for l := range b.x.links {
		errs = append(errs, l.closeLocked())
	}
	for r := range b.x.rings {
		errs = append(errs, r.closeLocked())
	}
	for _, g := range b.x.globals {
		errs = append(errs, g.unmap())
	}
	errs = append(errs, b.x.btf.close())
	b.x.btf = nil
	seen := map[*Program]bool{}
	for _, k := range sortedKeys(b.x.programs) {
		p := b.x.programs[k]
		if p.own && !seen[p] {
			errs = append(errs, closeFD(p.fdp))
		}
		seen[p] = true
	}
	return errors.Join(errs...)
}
