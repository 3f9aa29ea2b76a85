package btf

import (
	"encoding/binary"
	"fmt"
)

// Sizes of the records the kernel takes in BPF_PROG_LOAD.
const (
	FuncInfoSize = 8
	LineInfoSize = 16
)

// FuncInfo says that the function of type TypeID (a FUNC) starts at
// instruction Insn.
type FuncInfo struct {
	Insn   uint32 // instruction index (section-relative as parsed)
	TypeID TypeID
}

// LineInfo maps instruction Insn to a source line.
type LineInfo struct {
	Insn        uint32 // instruction index (section-relative as parsed)
	FileNameOff uint32 // string offsets in the object's BTF
	LineOff     uint32
	LineCol     uint32 // line<<10 | column
}

// Line is the source line number.
func (l LineInfo) Line() uint32 { return l.LineCol >> 10 }

// Col is the source column.
func (l LineInfo) Col() uint32 { return l.LineCol & 0x3ff }

// CORERelo is one CO-RE relocation record.
type CORERelo struct {
	Insn   uint32 // instruction index in the section
	TypeID TypeID // root type in the local BTF
	Access string // access string, e.g. "0:1:2"
	Kind   COREKind
}

// ExtSection holds one ELF section's .BTF.ext records.
type ExtSection struct {
	FuncInfos []FuncInfo
	LineInfos []LineInfo
	COREs     []CORERelo
}

// Ext is a parsed .BTF.ext section.
type Ext struct {
	Sections map[string]*ExtSection // by ELF section name
}

// Section returns the records of an ELF section (empty if it has none).
func (e *Ext) Section(name string) *ExtSection {
	if e != nil {
		if s := e.Sections[name]; s != nil {
			return s
		}
	}
	return &ExtSection{}
}

// ParseExt parses a .BTF.ext section whose strings live in s.
func ParseExt(raw []byte, s *Spec) (*Ext, error) {
	if s == nil {
		return nil, fmt.Errorf("btf: .BTF.ext needs the object's BTF")
	}
	o := s.order
	if len(raw) < 24 {
		return nil, invalidf(".BTF.ext: %d bytes is too short for its header", len(raw))
	}
	if o.Uint16(raw) != btfMagic {
		return nil, invalidf(".BTF.ext: bad magic or byte order")
	}
	if raw[2] != 1 {
		return nil, invalidf(".BTF.ext: unsupported version %d", raw[2])
	}
	hdrLen := o.Uint32(raw[4:])
	if hdrLen < 24 || uint64(hdrLen) > uint64(len(raw)) {
		return nil, invalidf(".BTF.ext: header length %d", hdrLen)
	}
	body := raw[hdrLen:]
	e := &Ext{Sections: map[string]*ExtSection{}}
	sub := func(at int) ([]byte, error) {
		off, n := o.Uint32(raw[at:]), o.Uint32(raw[at+4:])
		if uint64(off)+uint64(n) > uint64(len(body)) {
			return nil, invalidf(".BTF.ext: sub-section at %d+%d out of bounds", off, n)
		}
		return body[off : off+n], nil
	}
	fi, err := sub(8)
	if err != nil {
		return nil, err
	}
	li, err := sub(16)
	if err != nil {
		return nil, err
	}
	var cr []byte
	if hdrLen >= 32 {
		if cr, err = sub(24); err != nil {
			return nil, err
		}
	}
	err = walkExt(fi, o, s, "func_info", 8, func(sec *ExtSection, r []byte) error {
		sec.FuncInfos = append(sec.FuncInfos, FuncInfo{Insn: o.Uint32(r) / 8, TypeID: TypeID(o.Uint32(r[4:]))})
		return nil
	}, e)
	if err != nil {
		return nil, err
	}
	err = walkExt(li, o, s, "line_info", 16, func(sec *ExtSection, r []byte) error {
		sec.LineInfos = append(sec.LineInfos, LineInfo{Insn: o.Uint32(r) / 8, FileNameOff: o.Uint32(r[4:]), LineOff: o.Uint32(r[8:]), LineCol: o.Uint32(r[12:])})
		return nil
	}, e)
	if err != nil {
		return nil, err
	}
	err = walkExt(cr, o, s, "core_relo", 16, func(sec *ExtSection, r []byte) error {
		acc, err := s.String(o.Uint32(r[8:]))
		if err != nil {
			return err
		}
		sec.COREs = append(sec.COREs, CORERelo{Insn: o.Uint32(r) / 8, TypeID: TypeID(o.Uint32(r[4:])), Access: acc, Kind: COREKind(o.Uint32(r[12:]))})
		return nil
	}, e)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// walkExt walks one info sub-section: rec_size, then per ELF section its
// name offset, record count and records.
func walkExt(b []byte, o binary.ByteOrder, s *Spec, what string, minSize uint32, rec func(*ExtSection, []byte) error, e *Ext) error {
	if len(b) == 0 {
		return nil
	}
	if len(b) < 4 {
		return invalidf(".BTF.ext %s: truncated", what)
	}
	size := o.Uint32(b)
	if size < minSize || size > 1<<16 {
		return invalidf(".BTF.ext %s: record size %d", what, size)
	}
	b = b[4:]
	for len(b) > 0 {
		if len(b) < 8 {
			return invalidf(".BTF.ext %s: truncated section header", what)
		}
		name, err := s.String(o.Uint32(b))
		if err != nil {
			return fmt.Errorf(".BTF.ext %s: section name: %w", what, err)
		}
		n := o.Uint32(b[4:])
		b = b[8:]
		if uint64(n)*uint64(size) > uint64(len(b)) {
			return invalidf(".BTF.ext %s: section %q: %d records of %d bytes out of bounds", what, name, n, size)
		}
		sec := e.Sections[name]
		if sec == nil {
			sec = &ExtSection{}
			e.Sections[name] = sec
		}
		for i := uint32(0); i < n; i++ {
			if err := rec(sec, b[:size]); err != nil {
				return fmt.Errorf(".BTF.ext %s: section %q: %w", what, name, err)
			}
			b = b[size:]
		}
	}
	return nil
}

// MarshalFuncInfos encodes records as bpf_func_info for BPF_PROG_LOAD
// (func_info_rec_size FuncInfoSize). Insn must already be relative to the
// program's first instruction.
func MarshalFuncInfos(recs []FuncInfo, o binary.ByteOrder) []byte {
	b := make([]byte, FuncInfoSize*len(recs))
	for i, r := range recs {
		o.PutUint32(b[8*i:], r.Insn)
		o.PutUint32(b[8*i+4:], uint32(r.TypeID))
	}
	return b
}

// MarshalLineInfos encodes records as bpf_line_info for BPF_PROG_LOAD
// (line_info_rec_size LineInfoSize). Insn must already be relative to the
// program's first instruction.
func MarshalLineInfos(recs []LineInfo, o binary.ByteOrder) []byte {
	b := make([]byte, LineInfoSize*len(recs))
	for i, r := range recs {
		o.PutUint32(b[16*i:], r.Insn)
		o.PutUint32(b[16*i+4:], r.FileNameOff)
		o.PutUint32(b[16*i+8:], r.LineOff)
		o.PutUint32(b[16*i+12:], r.LineCol)
	}
	return b
}
