package btf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unsafe"
)

// Sentinel errors. Errors of this package wrap one of them where it fits.
var (
	// ErrInvalid is malformed BTF or .BTF.ext data.
	ErrInvalid = errors.New("btf: invalid data")
	// ErrNotFound is a type, section or file that does not exist.
	ErrNotFound = errors.New("btf: not found")
	// ErrNotSupported is something the running kernel or this package lacks.
	ErrNotSupported = errors.New("btf: not supported")
	// ErrAmbiguous is a CO-RE relocation several target types resolve differently.
	ErrAmbiguous = errors.New("btf: ambiguous relocation")
)

const (
	btfMagic      = 0xeB9F
	btfHeaderLen  = 24
	maxTypes      = 1 << 24 // far above any real kernel (vmlinux has ~150k)
	maxResolveDep = 32      // typedef/modifier chains and nesting depth
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// TypeID identifies a type in a Spec; 0 is void.
type TypeID uint32

// Spec is parsed BTF: the raw bytes and an index of where each type starts.
// Types are decoded on demand by its accessors. A Spec is safe for
// concurrent use.
type Spec struct {
	base    *Spec
	order   binary.ByteOrder
	raw     []byte   // the whole blob (owned, never modified)
	types   []byte   // type section
	strs    []byte   // string section
	offs    []uint32 // offset in types of own type firstID+i
	firstID TypeID   // 1, or the base's NumTypes for split BTF
	strBase uint32   // length of the base's strings (split BTF)

	nameOnce sync.Once
	byEss    map[string]uint32 // essential name -> 1 + index of the first own type
	next     []uint32          // 1 + index of the next type of the same essential name
}

// Parse parses raw BTF (the contents of an ELF .BTF section or a raw BTF
// file). raw is copied.
func Parse(raw []byte) (*Spec, error) {
	return parse(append([]byte(nil), raw...), nil)
}

// ParseSplit parses split BTF (a kernel module's) whose types and strings
// continue base's. raw is copied.
func ParseSplit(raw []byte, base *Spec) (*Spec, error) {
	if base == nil {
		return nil, errors.New("btf: split BTF needs a base")
	}
	return parse(append([]byte(nil), raw...), base)
}

// parse takes ownership of raw.
func parse(raw []byte, base *Spec) (*Spec, error) {
	if len(raw) < btfHeaderLen {
		return nil, invalidf("%d bytes is too short for a BTF header", len(raw))
	}
	var order binary.ByteOrder
	switch {
	case binary.LittleEndian.Uint16(raw) == btfMagic:
		order = binary.LittleEndian
	case binary.BigEndian.Uint16(raw) == btfMagic:
		order = binary.BigEndian
	default:
		return nil, invalidf("bad magic %#04x", binary.LittleEndian.Uint16(raw))
	}
	if raw[2] != 1 {
		return nil, invalidf("unsupported version %d", raw[2])
	}
	hdrLen := order.Uint32(raw[4:])
	typeOff, typeLen := order.Uint32(raw[8:]), order.Uint32(raw[12:])
	strOff, strLen := order.Uint32(raw[16:]), order.Uint32(raw[20:])
	if hdrLen < btfHeaderLen || uint64(hdrLen) > uint64(len(raw)) {
		return nil, invalidf("header length %d", hdrLen)
	}
	body := raw[hdrLen:]
	if uint64(typeOff)+uint64(typeLen) > uint64(len(body)) || uint64(strOff)+uint64(strLen) > uint64(len(body)) {
		return nil, invalidf("type or string section out of bounds")
	}
	s := &Spec{
		base:    base,
		order:   order,
		raw:     raw,
		types:   body[typeOff : typeOff+typeLen],
		strs:    body[strOff : strOff+strLen],
		firstID: 1,
	}
	if base != nil {
		if base.order != order {
			return nil, invalidf("split BTF byte order differs from its base")
		}
		s.firstID = TypeID(base.NumTypes())
		s.strBase = base.strBase + uint32(len(base.strs))
	}
	if base == nil && (len(s.strs) == 0 || s.strs[0] != 0) {
		return nil, invalidf("string section must start with an empty string")
	}
	if len(s.strs) > 0 && s.strs[len(s.strs)-1] != 0 {
		return nil, invalidf("string section is not NUL-terminated")
	}
	if err := s.index(); err != nil {
		return nil, err
	}
	return s, nil
}

// index records each type's offset and checks that it fits.
func (s *Spec) index() error {
	// A type takes at least 12 bytes: bound the index by that.
	s.offs = make([]uint32, 0, len(s.types)/12)
	strLen := s.strBase + uint32(len(s.strs))
	t := s.types
	for off := 0; off < len(t); {
		if len(t)-off < 12 {
			return invalidf("truncated type at offset %d", off)
		}
		if len(s.offs) >= maxTypes {
			return invalidf("more than %d types", maxTypes)
		}
		nameOff := s.order.Uint32(t[off:])
		info := s.order.Uint32(t[off+4:])
		if nameOff >= strLen {
			return invalidf("type %d: name offset %d out of bounds", int(s.firstID)+len(s.offs), nameOff)
		}
		kind := Kind(info >> 24 & 0x1f)
		vlen := int(info & 0xffff)
		extra, ok := extraSize(kind, vlen)
		if !ok {
			return invalidf("type %d: unknown kind %d", int(s.firstID)+len(s.offs), kind)
		}
		if extra > len(t)-off-12 {
			return invalidf("type %d (%s): truncated", int(s.firstID)+len(s.offs), kind)
		}
		s.offs = append(s.offs, uint32(off))
		off += 12 + extra
	}
	return nil
}

// extraSize is the number of bytes following the common 12-byte header.
func extraSize(k Kind, vlen int) (int, bool) {
	switch k {
	case KindInt, KindVar, KindDeclTag:
		return 4, true
	case KindPtr, KindFwd, KindTypedef, KindVolatile, KindConst, KindRestrict, KindFunc, KindFloat, KindTypeTag:
		return 0, true
	case KindArray:
		return 12, true
	case KindStruct, KindUnion, KindDatasec, KindEnum64:
		return 12 * vlen, true
	case KindEnum, KindFuncProto:
		return 8 * vlen, true
	}
	return 0, false
}

// ByteOrder is the byte order of the BTF (and of the object it came from).
func (s *Spec) ByteOrder() binary.ByteOrder { return s.order }

// NumTypes is the highest type ID plus one (base types included).
func (s *Spec) NumTypes() int { return int(s.firstID) + len(s.offs) }

// Base is the base Spec of split BTF, or nil.
func (s *Spec) Base() *Spec { return s.base }

// FirstID is the first type ID this Spec defines itself (1 unless split).
func (s *Spec) FirstID() TypeID { return s.firstID }

// String returns the string at off in the string table.
func (s *Spec) String(off uint32) (string, error) {
	if off < s.strBase {
		return s.base.String(off)
	}
	off -= s.strBase
	if uint64(off) >= uint64(len(s.strs)) {
		return "", invalidf("string offset %d out of bounds", off+s.strBase)
	}
	return s.cstr(off), nil
}

// name is String without the error: a validated offset, or "".
func (s *Spec) name(off uint32) string {
	n, _ := s.String(off)
	return n
}

// nameIs says whether the string at off (a string table offset) is name,
// without scanning past it.
func (s *Spec) nameIs(off uint32, name string) bool {
	for off < s.strBase {
		s = s.base
	}
	off -= s.strBase
	if uint64(off)+uint64(len(name)) >= uint64(len(s.strs)) {
		return false
	}
	return string(s.strs[off:off+uint32(len(name))]) == name && s.strs[off+uint32(len(name))] == 0
}

// cstr returns the NUL-terminated string at off (validated: the section
// ends with a NUL) without copying: s.raw is never modified.
func (s *Spec) cstr(off uint32) string {
	b := s.strs[off:]
	n := 0
	for n < len(b) && b[n] != 0 {
		n++
	}
	if n == 0 {
		return ""
	}
	return unsafe.String(&b[0], n)
}

// essential returns name up to a "___" flavor suffix.
func essential(name string) string {
	if i := strings.Index(name, "___"); i > 0 {
		return name[:i]
	}
	return name
}

// buildNames indexes this Spec's own named types by essential name: a
// map from the name to the first type, and a chain to the next ones (two
// allocations besides the map, no per-name slices).
func (s *Spec) buildNames() {
	s.byEss = make(map[string]uint32, len(s.offs)/2)
	s.next = make([]uint32, len(s.offs))
	// Walk backwards so that chains come out in ascending ID order.
	for i := len(s.offs) - 1; i >= 0; i-- {
		nameOff := s.order.Uint32(s.types[s.offs[i]:])
		if nameOff == 0 {
			continue
		}
		ess := essential(s.name(nameOff))
		if ess == "" {
			continue
		}
		s.next[i] = s.byEss[ess] // 0: end of chain (index+1 stored)
		s.byEss[ess] = uint32(i) + 1
	}
}

// ownByEssential returns this Spec's own types whose essential name is ess.
func (s *Spec) ownByEssential(ess string) []TypeID {
	s.nameOnce.Do(s.buildNames)
	var out []TypeID
	for i := s.byEss[ess]; i != 0; i = s.next[i-1] {
		out = append(out, s.firstID+TypeID(i-1))
	}
	return out
}

// typeName is the name of an own type (no checks beyond the index).
func (s *Spec) typeName(id TypeID) string {
	return s.name(s.order.Uint32(s.types[s.offs[id-s.firstID]:]))
}

// TypesByName returns the IDs of the types named name (base types first).
func (s *Spec) TypesByName(name string) []TypeID {
	var out []TypeID
	if s.base != nil {
		out = s.base.TypesByName(name)
	}
	for _, id := range s.ownByEssential(essential(name)) {
		if s.typeName(id) == name {
			out = append(out, id)
		}
	}
	return out
}

// TypeByName returns the single type named name of kind k (KindUnknown:
// any kind). None is ErrNotFound; several are ErrAmbiguous.
func (s *Spec) TypeByName(name string, k Kind) (TypeID, error) {
	var found []TypeID
	for _, id := range s.TypesByName(name) {
		if k == KindUnknown || s.kindOf(id) == k {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 0:
		return 0, fmt.Errorf("%w: type %q (%s)", ErrNotFound, name, k)
	case 1:
		return found[0], nil
	}
	return 0, fmt.Errorf("%w: %d types named %q (%s)", ErrAmbiguous, len(found), name, k)
}

// candidates returns own types (not the base's) whose essential name is
// ess, for CO-RE.
func (s *Spec) candidates(ess string) []TypeID { return s.ownByEssential(ess) }
