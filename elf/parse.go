package elf

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unsafe"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/btf"
)

// This file turns an eBPF ELF object into an objectSpec without touching
// the kernel, so that it can be tested and fuzzed without privileges.

// Relocation types of the BPF ELF ABI.
const (
	rBPF64_64 = 1  // ld_imm64 of a map (or global data)
	rBPF64_32 = 10 // bpf-to-bpf call
)

const (
	insnSize        = 8
	opLdImm64       = 0x18
	opCall          = 0x85
	pseudoMapFD     = 1
	pseudoCall      = 1
	classicDefSize  = 280 // struct bpf_map_def with pinning and namespace
	namespaceOffset = 24
	maxObjectInsns  = 1 << 20
)

type progKind int

const (
	kindKprobe progKind = iota
	kindKretprobe
	kindUprobe
	kindUretprobe
	kindTracepoint
	kindRawTracepoint
	kindSocketFilter
	kindCgroupSkb
	kindCgroupSock
	kindXDP
	kindSchedCls
	kindSchedAct
)

// classify maps a section name to a program kind, as gobpf does: by prefix.
func classify(sec string) (progKind, bpfsys.ProgType, bool) {
	switch {
	case strings.HasPrefix(sec, "kprobe/"):
		return kindKprobe, bpfsys.BPF_PROG_TYPE_KPROBE, true
	case strings.HasPrefix(sec, "kretprobe/"):
		return kindKretprobe, bpfsys.BPF_PROG_TYPE_KPROBE, true
	case strings.HasPrefix(sec, "uprobe/"):
		return kindUprobe, bpfsys.BPF_PROG_TYPE_KPROBE, true
	case strings.HasPrefix(sec, "uretprobe/"):
		return kindUretprobe, bpfsys.BPF_PROG_TYPE_KPROBE, true
	case strings.HasPrefix(sec, "tracepoint/"):
		return kindTracepoint, bpfsys.BPF_PROG_TYPE_TRACEPOINT, true
	case strings.HasPrefix(sec, "raw_tracepoint/"):
		return kindRawTracepoint, bpfsys.BPF_PROG_TYPE_RAW_TRACEPOINT, true
	case strings.HasPrefix(sec, "socket"):
		return kindSocketFilter, bpfsys.BPF_PROG_TYPE_SOCKET_FILTER, true
	case strings.HasPrefix(sec, "cgroup/skb"):
		return kindCgroupSkb, bpfsys.BPF_PROG_TYPE_CGROUP_SKB, true
	case strings.HasPrefix(sec, "cgroup/sock"):
		return kindCgroupSock, bpfsys.BPF_PROG_TYPE_CGROUP_SOCK, true
	case strings.HasPrefix(sec, "xdp"):
		return kindXDP, bpfsys.BPF_PROG_TYPE_XDP, true
	case strings.HasPrefix(sec, "sched_cls/"):
		return kindSchedCls, bpfsys.BPF_PROG_TYPE_SCHED_CLS, true
	case strings.HasPrefix(sec, "sched_act/"):
		return kindSchedAct, bpfsys.BPF_PROG_TYPE_SCHED_ACT, true
	}
	return 0, 0, false
}

// mapSpec is a map definition read from the object.
type mapSpec struct {
	Name       string
	Section    string // "maps/NAME" or ".maps"
	Type       uint32
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
	Flags      uint32
	Pinning    uint32
	Namespace  string
	BTF        bool        // defined in ".maps" (libbpf pinning semantics)
	Global     *globalSpec // global data sections only (globaldata.go)
	Inner      *innerSpec  // __array(values, ...) maps (mapinmap.go)
	innerFD    int         // at load: the inner map template, 0 if none
	btfFD      int         // at load: the object's BTF, 0 if none (core.go)
	btfKey     uint32      // BTF type ids of __type(key/value) members
	btfValue   uint32
}

type mapReloc struct {
	insn  int    // index of the ld_imm64 instruction
	name  string // map name
	value bool   // global data: address of the map's value + off
	off   uint32
}

// progSpec is one program section, linked with the .text subprograms it calls.
type progSpec struct {
	Section  string
	FuncName string
	Kind     progKind
	Type     bpfsys.ProgType
	Insns    []bpfsys.Insn
	relocs   []mapReloc
	Info     secInfo // libbpf-style type, attach type and target (secdefs.go)
	TextBase int     // index where .text was appended, 0 if it was not
}

// objectSpec is everything Load needs from an object file.
type objectSpec struct {
	License string
	Version uint32
	Maps    []*mapSpec
	Progs   []*progSpec
	ID      string // hex digest of the object's contents, for PIN_OBJECT_NS
	BTF     []byte // raw .BTF and .BTF.ext sections, if any
	BTFExt  []byte
	// DataSecs: sizes and symbol offsets of allocated sections, for the
	// BTF DATASEC fixups (core.go).
	DataSecs map[string]btf.DataSec
}

func hostLittleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

type rawSection struct {
	sec   *elf.Section
	index int
	data  []byte
}

// parseObject reads an eBPF object. It never panics on malformed input.
func parseObject(r io.ReaderAt) (spec *objectSpec, err error) {
	defer func() {
		// debug/elf is robust, but a parser fed with hostile input must
		// not take the process down: turn any panic into an error.
		if p := recover(); p != nil {
			spec, err = nil, fmt.Errorf("elf: malformed object (parser panic: %v)", p)
		}
	}()
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("elf: %w", err)
	}
	if f.Class != elf.ELFCLASS64 {
		return nil, fmt.Errorf("elf: object is %v, want ELFCLASS64", f.Class)
	}
	if f.Machine != elf.EM_BPF {
		return nil, fmt.Errorf("elf: object is for machine %v, want EM_BPF (compile with clang -target bpf)", f.Machine)
	}
	wantLE := hostLittleEndian()
	if (f.ByteOrder == binary.LittleEndian) != wantLE {
		return nil, fmt.Errorf("elf: object byte order %v does not match the host's", f.ByteOrder)
	}
	if err := checkLayout(f, r); err != nil {
		return nil, err
	}
	p := &parser{f: f, bo: f.ByteOrder, secs: map[int]*rawSection{}, rels: map[int][]int{}}
	for i, s := range f.Sections {
		if s.Type == elf.SHT_REL || s.Type == elf.SHT_RELA {
			p.rels[int(s.Info)] = append(p.rels[int(s.Info)], i)
		}
	}
	return p.parse()
}

type parser struct {
	f       *elf.File
	rels    map[int][]int // section index -> its relocation sections
	bySec   map[int][]elf.Symbol
	text    *textInfo
	bo      binary.ByteOrder
	syms    []elf.Symbol
	symsErr error
	secs    map[int]*rawSection
	spec    objectSpec
	linked  int // instructions of the programs so far (see maxLinkedInsns)
}

func (p *parser) data(i int) ([]byte, error) {
	if rs, ok := p.secs[i]; ok {
		return rs.data, nil
	}
	if i < 0 || i >= len(p.f.Sections) {
		return nil, fmt.Errorf("section index %d out of range", i)
	}
	s := p.f.Sections[i]
	if s.Type == elf.SHT_NOBITS {
		return nil, fmt.Errorf("section %q has no data (SHT_NOBITS)", s.Name)
	}
	d, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("reading section %q: %w", s.Name, err)
	}
	p.secs[i] = &rawSection{sec: s, index: i, data: d}
	return d, nil
}

func (p *parser) symbols() ([]elf.Symbol, error) {
	if p.syms == nil && p.symsErr == nil {
		p.syms, p.symsErr = p.f.Symbols()
		if p.symsErr != nil {
			p.symsErr = fmt.Errorf("reading symbols: %w", p.symsErr)
		}
		p.bySec = map[int][]elf.Symbol{}
		for _, s := range p.syms {
			p.bySec[int(s.Section)] = append(p.bySec[int(s.Section)], s)
		}
	}
	return p.syms, p.symsErr
}

func (p *parser) parse() (*objectSpec, error) {
	if err := p.checkSections(); err != nil {
		return nil, err
	}
	h := sha256.New()
	for i, s := range p.f.Sections {
		switch {
		case s.Name == "license":
			d, err := p.data(i)
			if err != nil {
				return nil, fmt.Errorf("elf: %w", err)
			}
			if j := bytes.IndexByte(d, 0); j >= 0 {
				d = d[:j]
			}
			p.spec.License = string(d)
		case s.Name == "version":
			d, err := p.data(i)
			if err != nil {
				return nil, fmt.Errorf("elf: %w", err)
			}
			if len(d) != 4 {
				return nil, fmt.Errorf("elf: version section is %d bytes, want a __u32", len(d))
			}
			p.spec.Version = p.bo.Uint32(d)
		case strings.HasPrefix(s.Name, "maps/"):
			m, err := p.classicMap(i)
			if err != nil {
				return nil, fmt.Errorf("elf: section %q: %w", s.Name, err)
			}
			p.spec.Maps = append(p.spec.Maps, m)
		case isGlobalSection(s):
			m, err := p.globalData(i)
			if err != nil {
				return nil, fmt.Errorf("elf: global data section %q: %w", s.Name, err)
			}
			if m != nil {
				p.spec.Maps = append(p.spec.Maps, m)
			}
		case s.Name == ".BTF" || s.Name == ".BTF.ext":
			d, err := p.data(i)
			if err != nil {
				return nil, fmt.Errorf("elf: %w", err)
			}
			if s.Name == ".BTF" {
				p.spec.BTF = d
			} else {
				p.spec.BTFExt = d
			}
		case s.Name == ".maps":
			ms, err := p.btfMaps()
			if err != nil {
				return nil, fmt.Errorf("elf: BTF map definitions (.maps): %w", err)
			}
			p.spec.Maps = append(p.spec.Maps, ms...)
		}
		if s.Type == elf.SHT_PROGBITS && s.Flags&elf.SHF_ALLOC != 0 {
			d, err := p.data(i)
			if err != nil {
				return nil, fmt.Errorf("elf: %w", err)
			}
			fmt.Fprintf(h, "%s\x00%d\x00", s.Name, len(d))
			h.Write(d)
		}
	}
	seen := map[string]bool{}
	for _, m := range p.spec.Maps {
		if seen[m.Name] {
			return nil, fmt.Errorf("elf: duplicate map %q", m.Name)
		}
		seen[m.Name] = true
	}
	for i, s := range p.f.Sections {
		if s.Name == ".maps" {
			if err := p.mapInitialValues(i); err != nil {
				return nil, fmt.Errorf("elf: BTF map initial values: %w", err)
			}
		}
	}
	for i, s := range p.f.Sections {
		if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_EXECINSTR == 0 || s.Name == ".text" {
			continue
		}
		kind, info, err := p.programSection(s)
		if err != nil {
			return nil, err
		}
		prog, err := p.program(i, kind, info.typ)
		if err != nil {
			return nil, fmt.Errorf("elf: program section %q: %w", s.Name, err)
		}
		if prog != nil {
			prog.Info = info
			p.spec.Progs = append(p.spec.Progs, prog)
		}
	}
	p.spec.DataSecs = p.dataSecs()
	p.spec.ID = hex.EncodeToString(h.Sum(nil))[:32]
	return &p.spec, nil
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// classicMap reads a "maps/NAME" section: one struct bpf_map_def.
func (p *parser) classicMap(i int) (*mapSpec, error) {
	d, err := p.data(i)
	if err != nil {
		return nil, err
	}
	name := strings.TrimPrefix(p.f.Sections[i].Name, "maps/")
	if name == "" {
		return nil, errors.New("empty map name")
	}
	// Accepted layouts: gobpf's 280-byte struct bpf_map_def (type, key_size,
	// value_size, max_entries, map_flags, pinning, namespace[256]), or its
	// first 4 to 6 fields (16 to 24 bytes).
	if len(d) != classicDefSize && (len(d) < 16 || len(d) > 24 || len(d)%4 != 0) {
		return nil, fmt.Errorf("map definition is %d bytes; want %d (struct bpf_map_def with pinning and namespace) or 16..24", len(d), classicDefSize)
	}
	u := func(k int) uint32 {
		if 4*k+4 > len(d) {
			return 0
		}
		return p.bo.Uint32(d[4*k:])
	}
	m := &mapSpec{
		Name: name, Section: p.f.Sections[i].Name,
		Type: u(0), KeySize: u(1), ValueSize: u(2), MaxEntries: u(3), Flags: u(4), Pinning: u(5),
	}
	if len(d) == classicDefSize {
		m.Namespace = cstr(d[namespaceOffset:])
	}
	return m, nil
}

func (p *parser) btfMaps() ([]*mapSpec, error) {
	var btfIdx = -1
	for i, s := range p.f.Sections {
		if s.Name == ".BTF" {
			btfIdx = i
		}
	}
	if btfIdx < 0 {
		return nil, errors.New("object has no .BTF section (compile with clang -g)")
	}
	d, err := p.data(btfIdx)
	if err != nil {
		return nil, err
	}
	spec, err := readBTF(d, p.bo)
	if err != nil {
		return nil, err
	}
	return spec.btfMapDefs(".maps")
}

type callReloc struct {
	insn   int // index of the call instruction
	target int // index of the callee in .text
}

// relocsFor reads the SHT_REL section that applies to section target and
// sorts it into map and call relocations.
func (p *parser) relocsFor(target int, insns []bpfsys.Insn) ([]mapReloc, []callReloc, error) {
	var maps []mapReloc
	var calls []callReloc
	for _, ri := range p.rels[target] {
		rs := p.f.Sections[ri]
		if rs.Type == elf.SHT_RELA {
			return nil, nil, fmt.Errorf("RELA relocations (%q) are not supported", rs.Name)
		}
		d, err := p.data(ri)
		if err != nil {
			return nil, nil, err
		}
		if len(d)%16 != 0 {
			return nil, nil, fmt.Errorf("relocation section %q size %d is not a multiple of 16", rs.Name, len(d))
		}
		syms, err := p.symbols()
		if err != nil {
			return nil, nil, err
		}
		for off := 0; off < len(d); off += 16 {
			roff := p.bo.Uint64(d[off:])
			info := p.bo.Uint64(d[off+8:])
			symIdx, rtype := info>>32, uint32(info)
			if roff%insnSize != 0 || roff/insnSize >= uint64(len(insns)) {
				return nil, nil, fmt.Errorf("relocation offset %#x outside the program", roff)
			}
			idx := int(roff / insnSize)
			if symIdx == 0 || symIdx > uint64(len(syms)) {
				return nil, nil, fmt.Errorf("relocation at %#x: bad symbol index %d", roff, symIdx)
			}
			sym := syms[symIdx-1]
			secIdx := int(sym.Section)
			if sym.Section == elf.SHN_UNDEF || sym.Section >= elf.SHN_LORESERVE || secIdx >= len(p.f.Sections) {
				return nil, nil, fmt.Errorf("relocation at %#x: symbol %q is undefined or in no section (extern symbols are not supported)", roff, sym.Name)
			}
			symSec := p.f.Sections[secIdx]
			switch rtype {
			case rBPF64_64:
				if insns[idx].Code != opLdImm64 || idx+1 >= len(insns) {
					return nil, nil, fmt.Errorf("relocation at %#x for %q: instruction %#x is not ld_imm64", roff, sym.Name, insns[idx].Code)
				}
				name, err := p.mapNameFor(sym, symSec, insns[idx])
				if err != nil {
					return nil, nil, fmt.Errorf("relocation at %#x: %w", roff, err)
				}
				mr := mapReloc{insn: idx, name: name}
				if isGlobalSection(symSec) {
					mr.value, mr.off = true, uint32(sym.Value)+uint32(insns[idx].Imm)
				}
				maps = append(maps, mr)
			case rBPF64_32:
				if insns[idx].Code != opCall || insns[idx].Regs>>4 != pseudoCall {
					return nil, nil, fmt.Errorf("call relocation at %#x for %q: instruction is not a bpf-to-bpf call", roff, sym.Name)
				}
				if symSec.Name != ".text" {
					return nil, nil, fmt.Errorf("call relocation at %#x: callee %q is in section %q; only calls into .text are supported", roff, sym.Name, symSec.Name)
				}
				if sym.Value%insnSize != 0 {
					return nil, nil, fmt.Errorf("call relocation at %#x: misaligned callee %q", roff, sym.Name)
				}
				tgt := int64(sym.Value/insnSize) + int64(insns[idx].Imm) + 1
				if sym.Value/insnSize > maxObjectInsns || tgt < 0 || tgt > maxObjectInsns {
					return nil, nil, fmt.Errorf("call relocation at %#x: callee %q out of range", roff, sym.Name)
				}
				calls = append(calls, callReloc{insn: idx, target: int(tgt)})
			default:
				return nil, nil, fmt.Errorf("relocation at %#x: unsupported type %d for symbol %q", roff, rtype, sym.Name)
			}
		}
	}
	return maps, calls, nil
}

func (p *parser) mapNameFor(sym elf.Symbol, sec *elf.Section, insn bpfsys.Insn) (string, error) {
	switch {
	case strings.HasPrefix(sec.Name, "maps/"):
		return strings.TrimPrefix(sec.Name, "maps/"), nil
	case isGlobalSection(sec):
		return sec.Name, nil
	case sec.Name == ".maps":
		if elf.ST_TYPE(sym.Info) != elf.STT_SECTION {
			return sym.Name, nil
		}
		// A section-relative reference: the map at offset imm.
		for _, s := range p.bySec[int(sym.Section)] {
			if elf.ST_TYPE(s.Info) == elf.STT_OBJECT && int64(s.Value) == int64(insn.Imm) {
				return s.Name, nil
			}
		}
		return "", fmt.Errorf("no map at offset %d of .maps", insn.Imm)
	}
	if globalDataSection(sec.Name) {
		return "", fmt.Errorf("symbol %q is in section %q: global data (.data, .rodata, .bss) is %w", sym.Name, sec.Name, ErrNotSupported)
	}
	return "", fmt.Errorf("symbol %q is in section %q: only maps (\"maps/NAME\" or \".maps\") can be referenced: %w", sym.Name, sec.Name, ErrNotSupported)
}

func (p *parser) decode(d []byte) ([]bpfsys.Insn, error) {
	if len(d)%insnSize != 0 {
		return nil, fmt.Errorf("size %d is not a multiple of %d", len(d), insnSize)
	}
	if len(d)/insnSize > maxObjectInsns {
		return nil, fmt.Errorf("too many instructions (%d)", len(d)/insnSize)
	}
	insns := make([]bpfsys.Insn, len(d)/insnSize)
	for i := range insns {
		b := d[i*insnSize:]
		insns[i] = bpfsys.Insn{Code: b[0], Regs: b[1], Off: int16(p.bo.Uint16(b[2:])), Imm: int32(p.bo.Uint32(b[4:]))}
	}
	return insns, nil
}

func (p *parser) program(i int, kind progKind, typ bpfsys.ProgType) (*progSpec, error) {
	d, err := p.data(i)
	if err != nil {
		return nil, err
	}
	if len(d) == 0 {
		return nil, nil // gobpf skips empty sections
	}
	insns, err := p.decode(d)
	if err != nil {
		return nil, err
	}
	prog := &progSpec{Section: p.f.Sections[i].Name, Kind: kind, Type: typ}
	if _, err := p.symbols(); err == nil {
		var funcs []string
		for _, s := range p.bySec[i] {
			if elf.ST_TYPE(s.Info) == elf.STT_FUNC {
				if s.Value == 0 {
					prog.FuncName = s.Name
				}
				if elf.ST_BIND(s.Info) == elf.STB_GLOBAL {
					funcs = append(funcs, s.Name)
				}
			}
		}
		if len(funcs) > 1 {
			sort.Strings(funcs)
			return nil, fmt.Errorf("holds %d programs (%s); one program per section is supported", len(funcs), strings.Join(funcs, ", "))
		}
	}
	mrel, crel, err := p.relocsFor(i, insns)
	if err != nil {
		return nil, err
	}
	prog.relocs = mrel
	if len(crel) > 0 {
		if err := p.linkText(prog, &insns, crel); err != nil {
			return nil, err
		}
	}
	prog.Insns = insns
	p.linked += len(insns)
	if p.linked > maxLinkedInsns {
		return nil, fmt.Errorf("the object's programs hold more than %d instructions", maxLinkedInsns)
	}
	return prog, nil
}

// textInfo is .text decoded, with its relocations (read once).
type textInfo struct {
	insns []bpfsys.Insn
	maps  []mapReloc
	calls []callReloc
	err   error
}

func (p *parser) textSection() *textInfo {
	if p.text != nil {
		return p.text
	}
	p.text = &textInfo{}
	textIdx := -1
	for j, s := range p.f.Sections {
		if s.Name == ".text" {
			textIdx = j
		}
	}
	if textIdx < 0 {
		p.text.err = errors.New("calls into .text but the object has no .text")
		return p.text
	}
	td, err := p.data(textIdx)
	if err != nil {
		p.text.err = err
		return p.text
	}
	if p.text.insns, err = p.decode(td); err != nil {
		p.text.err = fmt.Errorf(".text: %w", err)
		return p.text
	}
	if p.text.maps, p.text.calls, err = p.relocsFor(textIdx, p.text.insns); err != nil {
		p.text.err = fmt.Errorf(".text: %w", err)
	}
	return p.text
}

// linkText appends .text to the program and points its calls at it.
func (p *parser) linkText(prog *progSpec, insns *[]bpfsys.Insn, calls []callReloc) error {
	ti := p.textSection()
	if ti.err != nil {
		return ti.err
	}
	text, tmaps, tcalls := ti.insns, ti.maps, ti.calls
	base := len(*insns)
	if base+len(text) > maxObjectInsns {
		return errors.New("program too large")
	}
	if p.linked+base+len(text) > maxLinkedInsns {
		return fmt.Errorf("the object's programs hold more than %d instructions with .text linked into each", maxLinkedInsns)
	}
	all := append(append([]bpfsys.Insn(nil), (*insns)...), text...)
	for _, c := range calls {
		if c.target >= len(text) {
			return fmt.Errorf("call at insn %d: callee %d outside .text", c.insn, c.target)
		}
		all[c.insn].Imm = int32(base + c.target - c.insn - 1)
	}
	for _, c := range tcalls {
		if c.target >= len(text) {
			return fmt.Errorf(".text call at insn %d: callee %d outside .text", c.insn, c.target)
		}
		all[base+c.insn].Imm = int32(c.target - c.insn - 1)
	}
	for _, m := range tmaps {
		m.insn += base
		prog.relocs = append(prog.relocs, m)
	}
	*insns = all
	prog.TextBase = base
	return nil
}
