package btf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
)

// DataSec is what Marshal needs of an ELF data section (.data, .rodata,
// .bss, .rodata.*, .data.*) to fix up its DATASEC.
type DataSec struct {
	Size    uint32            // the section's size
	Symbols map[string]uint32 // global variable name -> offset (symbol value)
}

// Features says which BTF kinds and flags the kernel accepts.
type Features struct {
	Func        bool // FUNC, FUNC_PROTO (4.20)
	FuncLinkage bool // FUNC with global linkage (5.6)
	Datasec     bool // VAR, DATASEC (5.2)
	Float       bool // FLOAT (5.13)
	DeclTag     bool // DECL_TAG (5.16)
	TypeTag     bool // TYPE_TAG (5.17)
	Enum64      bool // ENUM64, signed ENUM (6.0)
}

// AllFeatures is a kernel that accepts everything this package knows.
var AllFeatures = Features{true, true, true, true, true, true, true}

// MarshalOptions are Marshal's inputs.
type MarshalOptions struct {
	// Sections by ELF section name. A DATASEC clang left without a size
	// takes its size and variable offsets from here.
	Sections map[string]DataSec
	// Features of the kernel to load into; nil probes the running kernel.
	Features *Features
}

// Marshal returns the object's BTF ready for BPF_BTF_LOAD: DATASEC sizes
// and VAR offsets filled in from opts.Sections as libbpf does, and kinds
// the kernel lacks replaced by ones of the same size (type IDs unchanged,
// so map and func_info type IDs stay valid; ENUM64 replacements may
// append INT types after the last ID).
func (s *Spec) Marshal(opts MarshalOptions) ([]byte, error) {
	if s.base != nil {
		return nil, fmt.Errorf("%w: marshalling split BTF", ErrNotSupported)
	}
	feat := AllFeatures
	if opts.Features != nil {
		feat = *opts.Features
	} else {
		feat = ProbeFeatures()
	}
	o := s.order
	types := append([]byte(nil), s.types...)
	strs := append([]byte(nil), s.strs...)
	nextID := s.NumTypes()
	placeholders := map[uint32]TypeID{} // ENUM64 size -> INT placeholder
	var extra []byte
	addString := func(str string) uint32 {
		off := uint32(len(strs))
		strs = append(append(strs, str...), 0)
		return off
	}
	placeholder := func(size uint32) TypeID {
		if id, ok := placeholders[size]; ok {
			return id
		}
		id := TypeID(nextID)
		nextID++
		placeholders[size] = id
		h := make([]byte, 16)
		o.PutUint32(h, addString(fmt.Sprintf("enum64_placeholder_%d", size)))
		o.PutUint32(h[4:], uint32(KindInt)<<24)
		o.PutUint32(h[8:], size)
		o.PutUint32(h[12:], size*8)
		extra = append(extra, h...)
		return id
	}
	setInfo := func(b []byte, k Kind, flag bool, vlen int) {
		v := uint32(k)<<24 | uint32(vlen)&0xffff
		if flag {
			v |= 1 << 31
		}
		o.PutUint32(b[4:], v)
	}
	undot := func(nameOff uint32) {
		for i := nameOff; i < uint32(len(strs)) && strs[i] != 0; i++ {
			if strs[i] == '.' || strs[i] == '?' {
				strs[i] = '_'
			}
		}
	}
	for i, off := range s.offs {
		id := s.firstID + TypeID(i)
		b := types[off:]
		t, err := s.Type(id)
		if err != nil {
			return nil, err
		}
		switch t.Kind {
		case KindDatasec:
			if err := s.fixDatasec(id, t, b, opts.Sections); err != nil {
				return nil, err
			}
			if !feat.Datasec {
				// STRUCT with the variables as members.
				undot(o.Uint32(b))
				setInfo(b, KindStruct, false, t.Vlen)
				for j := 0; j < t.Vlen; j++ {
					r := b[12+12*j:]
					vt, voff := o.Uint32(r), o.Uint32(r[4:])
					vty, err := s.Type(TypeID(vt))
					if err != nil {
						return nil, err
					}
					o.PutUint32(r, s.nameOffOf(vty.ID))
					o.PutUint32(r[4:], vt)
					o.PutUint32(r[8:], voff*8)
				}
			}
		case KindVar:
			if !feat.Datasec {
				setInfo(b, KindInt, false, 0)
				o.PutUint32(b[8:], 1)
				o.PutUint32(b[12:], 8)
			}
		case KindFunc:
			if !feat.Func {
				setInfo(b, KindTypedef, false, 0)
			} else if !feat.FuncLinkage {
				setInfo(b, KindFunc, false, 0)
			}
		case KindFuncProto:
			if !feat.Func {
				setInfo(b, KindEnum, false, t.Vlen)
				o.PutUint32(b[8:], 4)
			}
		case KindFloat:
			if !feat.Float {
				o.PutUint32(b, 0)
				setInfo(b, KindStruct, false, 0)
			}
		case KindDeclTag:
			if !feat.DeclTag {
				o.PutUint32(b, 0)
				setInfo(b, KindInt, false, 0)
				o.PutUint32(b[8:], 1)
				o.PutUint32(b[12:], 8)
			}
		case KindTypeTag:
			if !feat.TypeTag {
				o.PutUint32(b, 0)
				setInfo(b, KindConst, false, 0)
			}
		case KindEnum:
			if !feat.Enum64 && t.KindFlag {
				setInfo(b, KindEnum, false, t.Vlen)
			}
		case KindEnum64:
			if !feat.Enum64 {
				// UNION of same-size integers named like the enumerators.
				ph := placeholder(t.Size)
				setInfo(b, KindUnion, false, t.Vlen)
				for j := 0; j < t.Vlen; j++ {
					r := b[12+12*j:]
					o.PutUint32(r[4:], uint32(ph))
					o.PutUint32(r[8:], 0)
				}
			}
		}
	}
	types = append(types, extra...)
	out := make([]byte, btfHeaderLen, btfHeaderLen+len(types)+len(strs))
	o.PutUint16(out, btfMagic)
	out[2] = 1
	o.PutUint32(out[4:], btfHeaderLen)
	o.PutUint32(out[8:], 0)
	o.PutUint32(out[12:], uint32(len(types)))
	o.PutUint32(out[16:], uint32(len(types)))
	o.PutUint32(out[20:], uint32(len(strs)))
	out = append(append(out, types...), strs...)
	return out, nil
}

// fixDatasec sets a DATASEC's size and variable offsets (b is its copy).
func (s *Spec) fixDatasec(id TypeID, t Type, b []byte, secs map[string]DataSec) error {
	o := s.order
	if t.Size != 0 {
		return nil
	}
	sec, ok := secs[t.Name]
	if !ok || sec.Size == 0 {
		return fmt.Errorf("%w: size of ELF section %s (DATASEC [%d] has none)", ErrNotFound, t.Name, id)
	}
	o.PutUint32(b[8:], sec.Size)
	type vsi struct{ typ, off, size uint32 }
	vs := make([]vsi, t.Vlen)
	for j := range vs {
		r := b[12+12*j:]
		vs[j] = vsi{o.Uint32(r), o.Uint32(r[4:]), o.Uint32(r[8:])}
		vt, err := s.Type(TypeID(vs[j].typ))
		if err != nil {
			return err
		}
		if vt.Kind != KindVar {
			continue // FUNC externs in .ksyms
		}
		v, err := s.Var(vt.ID)
		if err != nil {
			return err
		}
		if v.Linkage == LinkageStatic || v.Linkage == LinkageExtern {
			continue
		}
		off, ok := sec.Symbols[vt.Name]
		if !ok {
			return fmt.Errorf("%w: symbol %s in section %s", ErrNotFound, vt.Name, t.Name)
		}
		if uint64(off)+uint64(vs[j].size) > uint64(sec.Size) {
			return fmt.Errorf("%w: variable %s at %d+%d beyond section %s's %d bytes", ErrInvalid, vt.Name, off, vs[j].size, t.Name, sec.Size)
		}
		vs[j].off = off
	}
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].off < vs[j].off })
	for j, v := range vs {
		r := b[12+12*j:]
		o.PutUint32(r, v.typ)
		o.PutUint32(r[4:], v.off)
		o.PutUint32(r[8:], v.size)
	}
	return nil
}

// LoadError is BTF the kernel rejected, with its log.
type LoadError struct {
	Err error
	Log string
}

func (e *LoadError) Error() string {
	if e.Log == "" {
		return "btf: kernel rejected BTF: " + e.Err.Error()
	}
	return "btf: kernel rejected BTF: " + e.Err.Error() + "\nBTF log:\n" + e.Log
}

func (e *LoadError) Unwrap() error { return e.Err }

// LoadIntoKernel loads raw BTF (from Marshal) with BPF_BTF_LOAD and
// returns its fd, which the caller closes. A rejection is a *LoadError
// carrying the kernel's log.
func LoadIntoKernel(raw []byte) (int, error) {
	fd, err := bpfsys.BTFLoad(raw)
	if err != nil {
		var ve *bpfsys.VerifierError
		if errors.As(err, &ve) {
			return -1, &LoadError{Err: ve.Err, Log: ve.Log}
		}
		return -1, &LoadError{Err: err}
	}
	return fd, nil
}

var features struct {
	once sync.Once
	f    Features
}

// ProbeFeatures finds which BTF kinds the running kernel accepts by
// loading a tiny BTF blob for each (once per process).
func ProbeFeatures() Features {
	features.once.Do(func() {
		f := &features.f
		f.Func = probe(func(b *builder) {
			i := b.int("int", 4)
			p := b.add(KindFuncProto, "", 0, uint32(i))
			b.add(KindFunc, "f", 0, uint32(p))
		})
		f.FuncLinkage = probe(func(b *builder) {
			i := b.int("int", 4)
			p := b.add(KindFuncProto, "", 0, uint32(i))
			b.add(KindFunc, "f", LinkageGlobal, uint32(p))
		})
		f.Datasec = probe(func(b *builder) {
			i := b.int("int", 4)
			v := b.add(KindVar, "v", 0, uint32(i), LinkageGlobal)
			b.add(KindDatasec, ".data", 1, 4, uint32(v), 0, 4)
		})
		f.Float = probe(func(b *builder) { b.add(KindFloat, "float", 0, 4) })
		f.DeclTag = probe(func(b *builder) {
			i := b.int("int", 4)
			td := b.add(KindTypedef, "t", 0, uint32(i))
			b.add(KindDeclTag, "tag", 0, uint32(td), 0xffffffff)
		})
		f.TypeTag = probe(func(b *builder) {
			i := b.int("int", 4)
			tt := b.add(KindTypeTag, "tag", 0, uint32(i))
			b.add(KindPtr, "", 0, uint32(tt))
		})
		f.Enum64 = probe(func(b *builder) {
			b.add(KindEnum64, "e", 1, 8, b.str("E"), 1, 0)
		})
	})
	return features.f
}

func probe(build func(*builder)) bool {
	b := newBuilder(binary.NativeEndian)
	build(b)
	fd, err := bpfsys.BTFLoad(b.bytes())
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// nameOffOf is the name offset of a type (validated by Type before).
func (s *Spec) nameOffOf(id TypeID) uint32 {
	o, off, err := s.locate(id)
	if err != nil {
		return 0
	}
	return o.order.Uint32(o.types[off:])
}

// builder assembles small BTF blobs (feature probes, tests).
type builder struct {
	o     binary.ByteOrder
	types []byte
	strs  []byte
	n     TypeID
}

func newBuilder(o binary.ByteOrder) *builder { return &builder{o: o, strs: []byte{0}} }

func (b *builder) str(s string) uint32 {
	if s == "" {
		return 0
	}
	off := uint32(len(b.strs))
	b.strs = append(append(b.strs, s...), 0)
	return off
}

// add appends a type: kind, name, vlen (or linkage), size/type, then the
// kind's extra words; it returns the new type's ID.
func (b *builder) add(k Kind, name string, vlen int, sizeType uint32, extra ...uint32) TypeID {
	w := []uint32{b.str(name), uint32(k)<<24 | uint32(vlen), sizeType}
	for _, e := range append(w, extra...) {
		var x [4]byte
		b.o.PutUint32(x[:], e)
		b.types = append(b.types, x[:]...)
	}
	b.n++
	return b.n
}

func (b *builder) int(name string, size uint32) TypeID {
	return b.add(KindInt, name, 0, size, IntSigned<<24|size*8)
}

func (b *builder) bytes() []byte {
	h := make([]byte, btfHeaderLen)
	b.o.PutUint16(h, btfMagic)
	h[2] = 1
	b.o.PutUint32(h[4:], btfHeaderLen)
	b.o.PutUint32(h[12:], uint32(len(b.types)))
	b.o.PutUint32(h[16:], uint32(len(b.types)))
	b.o.PutUint32(h[20:], uint32(len(b.strs)))
	return append(append(h, b.types...), b.strs...)
}
