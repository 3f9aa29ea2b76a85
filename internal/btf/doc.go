// Package btf reads, fixes up and loads BPF Type Format (BTF) data and
// applies CO-RE (compile once, run everywhere) relocations, in pure Go.
//
// It is the BTF engine of the elf loader. Everything it parses may be
// untrusted: malformed input gives an error wrapping ErrInvalid, never a
// panic, and allocations are bounded by the input's size.
//
// # Types
//
//	Parse(raw []byte) (*Spec, error)                 // a .BTF section or raw BTF file (copied)
//	ParseSplit(raw []byte, base *Spec) (*Spec, error) // split BTF (a module's) on top of base
//	LoadKernel() (*Spec, error)                       // /sys/kernel/btf/vmlinux, parsed once per process
//	LoadKernelModule(name string) (*Spec, error)      // /sys/kernel/btf/<name>, base LoadKernel()
//	LoadFile(path string) (*Spec, error)              // raw BTF, or an ELF file's .BTF section
//
// A Spec holds the raw bytes plus an offset index, and decodes types on
// demand. Type IDs are TypeID; 0 is void. The accessors are
//
//	(*Spec).NumTypes() int                 // highest id + 1, base types included
//	(*Spec).Type(id) (Type, error)          // kind, name, size or referenced type, vlen, kind_flag
//	(*Spec).Members(id) ([]Member, error)  // STRUCT, UNION (bit offsets, bitfield sizes)
//	(*Spec).Enums(id) ([]EnumValue, error) // ENUM, ENUM64
//	(*Spec).Params(id) ([]Param, error)    // FUNC_PROTO
//	(*Spec).Array(id) (Array, error)
//	(*Spec).Int(id) (Int, error)
//	(*Spec).Var(id) (Var, error)           // VAR linkage
//	(*Spec).SecInfos(id) ([]SecInfo, error) // DATASEC
//	(*Spec).DeclTag(id) (int32, error)     // component_idx
//	(*Spec).TypesByName(name) []TypeID     // exact name, index built once
//	(*Spec).TypeByName(name, kind) (TypeID, error) // ErrNotFound if none
//	(*Spec).Resolve(id) (TypeID, error)    // skip typedefs and CV/type-tag modifiers
//	(*Spec).Size(id) (uint32, error)       // byte size of a type
//	(*Spec).String(off) (string, error)    // from the string table
//	(*Spec).ByteOrder() binary.ByteOrder   // from the BTF magic
//
// # .BTF.ext
//
//	ParseExt(raw []byte, s *Spec) (*Ext, error)
//
// Ext.Sections maps an ELF section name to its FuncInfos, LineInfos and
// COREs. Every record's Insn is an INSTRUCTION INDEX within that section
// (the file stores byte offsets; they are divided by 8). For
// BPF_PROG_LOAD, the caller rebases Insn to the program's first
// instruction and encodes the records with
//
//	MarshalFuncInfos(recs []FuncInfo, order) []byte // FuncInfoSize (8) bytes each
//	MarshalLineInfos(recs []LineInfo, order) []byte // LineInfoSize (16) bytes each
//
// # Loading an object's BTF into the kernel
//
//	(*Spec).Marshal(opts MarshalOptions) ([]byte, error)
//	LoadIntoKernel(raw []byte) (fd int, err error) // BPF_BTF_LOAD; a rejection is a *LoadError with the kernel log
//	ProbeFeatures() Features                       // what the running kernel's BTF accepts (cached)
//
// Marshal does libbpf's fixups: DATASEC sizes and VAR offsets of .data,
// .rodata, .bss, .rodata.*, .data.* from MarshalOptions.Sections (ELF
// section sizes and symbol values, supplied by the caller), and replaces
// what the kernel lacks (Features) with equivalents of the same size,
// keeping every type ID, so map and func_info type IDs stay valid.
//
// # CO-RE
//
//	Relocate(insns []byte, section string, local *Spec, ext *Ext, targets []*Spec) ([]Fixup, error)
//
// patches insns (the raw bytes of ELF program section `section`, already
// map-relocated by the caller) in place for every CO-RE record of that
// section. targets[0] is the kernel's BTF; more entries are split module
// BTFs searched after it. A relocation no candidate satisfies is an error
// (*COREError naming program, type and field) unless it is an existence
// check (it then yields 0) or the instruction can be poisoned the way
// libbpf does (a call to helper 0xbad2310, which the verifier rejects only
// if it is reachable). Several candidates giving different values is
// ErrAmbiguous.
package btf
