package elf

import (
	"errors"
	"fmt"
)

// CO-RE relocations (BPF Compile Once - Run Everywhere: clang's
// preserve_access_index, BPF_CORE_READ) are recorded in .BTF.ext. This
// loader does not apply them, and a program whose field offsets were left
// as compiled for the local type reads the wrong memory: such objects are
// refused, naming the program section and its first relocation.
//
// This check is kept apart on purpose: it goes away once relocations are
// applied.

// coreReloKinds names enum bpf_core_relo_kind.
var coreReloKinds = []string{
	"field byte offset", "field byte size", "field exists", "field signed",
	"field lshift", "field rshift", "local type id", "target type id",
	"type exists", "type size", "enum value exists", "enum value",
	"type matches",
}

// refuseCORE returns an error wrapping ErrNotSupported when the object has
// CO-RE relocations, nil when it has none (or no .BTF.ext).
func (p *parser) refuseCORE() error {
	ext, btfData := -1, -1
	for i, s := range p.f.Sections {
		switch s.Name {
		case ".BTF.ext":
			ext = i
		case ".BTF":
			btfData = i
		}
	}
	if ext < 0 {
		return nil
	}
	d, err := p.data(ext)
	if err != nil {
		return fmt.Errorf("elf: %w", err)
	}
	bo := p.bo
	if len(d) < 24 || bo.Uint16(d) != btfMagic {
		return errors.New("elf: .BTF.ext: bad header")
	}
	hdrLen := bo.Uint32(d[4:])
	if hdrLen < 32 { // no core_relo_off/core_relo_len fields
		return nil
	}
	if uint64(hdrLen) > uint64(len(d)) {
		return errors.New("elf: .BTF.ext: header longer than the section")
	}
	off, n := uint64(bo.Uint32(d[24:])), uint64(bo.Uint32(d[28:]))
	if n == 0 {
		return nil
	}
	body := d[hdrLen:]
	if off+n > uint64(len(body)) || n < 4 {
		return errors.New("elf: .BTF.ext: CO-RE relocation info out of bounds")
	}
	relo := body[off : off+n]
	recSize := uint64(bo.Uint32(relo))
	if recSize < 16 {
		return fmt.Errorf("elf: .BTF.ext: CO-RE relocation record size %d", recSize)
	}
	var btf *btfSpec
	var strs []byte
	if btfData >= 0 {
		if bd, err := p.data(btfData); err == nil {
			btf, _ = readBTF(bd, bo)
			strs = btfStrings(bd, p)
		}
	}
	str := func(o uint32) string {
		if uint64(o) >= uint64(len(strs)) {
			return fmt.Sprintf("string #%d", o)
		}
		return cstr(strs[o:])
	}
	total := uint64(0)
	first := ""
	for pos := uint64(4); pos+8 <= uint64(len(relo)); {
		sec, cnt := bo.Uint32(relo[pos:]), uint64(bo.Uint32(relo[pos+4:]))
		pos += 8
		if cnt > (uint64(len(relo))-pos)/recSize {
			return errors.New("elf: .BTF.ext: CO-RE relocation records out of bounds")
		}
		if cnt > 0 && first == "" {
			r := relo[pos:]
			insn, typ, access, kind := bo.Uint32(r), bo.Uint32(r[4:]), bo.Uint32(r[8:]), bo.Uint32(r[12:])
			kindName := fmt.Sprintf("kind %d", kind)
			if int(kind) < len(coreReloKinds) {
				kindName = coreReloKinds[kind]
			}
			typName := fmt.Sprintf("type #%d", typ)
			if btf != nil && int(typ) < len(btf.types) {
				typName = btfKindName(btf.types[typ].kind) + " " + btf.types[typ].name
			}
			first = fmt.Sprintf("program section %q: CO-RE relocation at instruction %d (%s of %s, access %q)",
				str(sec), insn/insnSize, kindName, typName, str(access))
		}
		total += cnt
		pos += cnt * recSize
	}
	if total == 0 {
		return nil
	}
	return fmt.Errorf("elf: %s, %d CO-RE relocation(s) in all: CO-RE relocations are not applied by this loader, so the object is %w",
		first, total, ErrNotSupported)
}

// btfStrings returns the string section of raw .BTF data (nil if bad).
func btfStrings(d []byte, p *parser) []byte {
	bo := p.bo
	if len(d) < 24 {
		return nil
	}
	hdrLen := uint64(bo.Uint32(d[4:]))
	strOff, strLen := uint64(bo.Uint32(d[16:])), uint64(bo.Uint32(d[20:]))
	if hdrLen > uint64(len(d)) || hdrLen+strOff+strLen > uint64(len(d)) {
		return nil
	}
	return d[hdrLen+strOff : hdrLen+strOff+strLen]
}

func btfKindName(k uint8) string {
	switch k {
	case btfKindStruct:
		return "struct"
	case btfKindUnion:
		return "union"
	case btfKindEnum, btfKindEnum64:
		return "enum"
	case btfKindTypedef:
		return "typedef"
	case btfKindInt:
		return "int"
	case btfKindPtr:
		return "pointer"
	}
	return "type"
}
