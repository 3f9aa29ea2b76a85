// Package btf reads, fixes up and loads BPF Type Format (BTF) data and
// applies CO-RE (compile once, run everywhere) relocations, in pure Go.
//
// It is the BTF engine of the elf loader. Everything it parses may be
// untrusted: malformed input gives an error wrapping ErrInvalid, never a
// panic, and allocations are bounded by the input's size. Errors start
// with "btf: " and wrap ErrInvalid, ErrNotFound, ErrNotSupported or
// ErrAmbiguous where one fits.
//
// # Types
//
//	Parse(raw []byte) (*Spec, error)                  // a .BTF section or raw BTF file (copied)
//	ParseSplit(raw []byte, base *Spec) (*Spec, error) // split BTF (a module's) on top of base
//	LoadKernel() (*Spec, error)                       // /sys/kernel/btf/vmlinux, parsed once per process
//	LoadKernelModule(name string) (*Spec, error)      // /sys/kernel/btf/<name>, base LoadKernel()
//	LoadFile(path string) (*Spec, error)              // raw BTF, or an ELF file's .BTF section
//	LoadKernelModules() ([]*Spec, error)               // every loaded module with BTF (read anew each call)
//
// A Spec holds the raw bytes plus an offset index and decodes types on
// demand; the index by name is built on the first lookup by name. It is
// safe for concurrent use. Type IDs are TypeID; 0 is void.
//
//	(*Spec).NumTypes() int                          // highest id + 1, base types included
//	(*Spec).FirstID() TypeID                        // 1, or the first id of split BTF
//	(*Spec).Type(id) (Type, error)                  // kind, name, size or referenced type, vlen, kind_flag
//	(*Spec).Members(id) ([]Member, error)           // STRUCT, UNION (bit offsets, bitfield sizes)
//	(*Spec).Enums(id) ([]EnumValue, error)          // ENUM, ENUM64
//	(*Spec).Params(id) ([]Param, error)             // FUNC_PROTO
//	(*Spec).Array(id) (Array, error)
//	(*Spec).Int(id) (Int, error)
//	(*Spec).Var(id) (Var, error)                    // VAR linkage
//	(*Spec).SecInfos(id) ([]SecInfo, error)         // DATASEC
//	(*Spec).DeclTag(id) (int32, error)              // component_idx
//	(*Spec).TypesByName(name) []TypeID              // exact name, base types first
//	(*Spec).TypeByName(name, kind) (TypeID, error)  // ErrNotFound / ErrAmbiguous; KindUnknown: any kind
//	(*Spec).Resolve(id) (TypeID, error)             // skip typedefs and CV/type-tag modifiers
//	(*Spec).Size(id) (uint32, error)                // byte size of a type (VARs: of their type)
//	(*Spec).String(off) (string, error)             // from the string table
//	(*Spec).ByteOrder() binary.ByteOrder            // from the BTF magic
//
// # .BTF.ext
//
//	ParseExt(raw []byte, s *Spec) (*Ext, error)
//	(*Ext).Section(name) *ExtSection // never nil
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
//	LoadIntoKernel(raw []byte) (fd int, err error) // BPF_BTF_LOAD; caller closes fd; a rejection is a *LoadError with the kernel's log
//	ProbeFeatures() Features                       // what the running kernel's BTF accepts (probed once)
//
// Marshal does libbpf's fixups: a DATASEC clang left without a size
// (.data, .rodata, .bss, .rodata.*, .data.*, .kconfig) takes it from
// MarshalOptions.Sections[name].Size and its global VARs' offsets from
// .Symbols (ELF symbol values), supplied by the caller; a DATASEC it
// cannot size is ErrNotFound naming the section. Kinds the kernel lacks
// (MarshalOptions.Features, nil = ProbeFeatures()) are replaced as libbpf
// does, keeping every type ID, so map key/value and func_info type IDs
// stay valid: FUNC linkage → static, VAR/DATASEC → INT/STRUCT, FLOAT →
// empty STRUCT, DECL_TAG → INT, TYPE_TAG → CONST, ENUM64 → UNION of
// same-size INTs (appended after the last ID), FUNC/FUNC_PROTO →
// TYPEDEF/ENUM.
//
// # CO-RE
//
//	Relocate(insns []byte, section string, local *Spec, ext *Ext, targets []*Spec) ([]Fixup, error)
//	PoisonError(verifierLog string, fixups []Fixup) error
//
// Relocate patches insns (the raw bytes of ELF program section `section`
// in local's byte order, already map-relocated by the caller) in place for
// every CO-RE record of that section, and returns one Fixup per record.
// targets[0] is the kernel's BTF (LoadKernel, or LoadFile for a kernel
// without /sys/kernel/btf/vmlinux); further entries are module BTFs
// (LoadKernelModule), searched only when vmlinux has no candidate. Candidate
// rules are libbpf's: names compared up to a "___flavor" suffix,
// compatible kinds, field paths matched recursively through anonymous
// structs/unions and arrays, typedefs and modifiers skipped; candidates
// that disagree are ErrAmbiguous. Patched: ALU/ALU64 immediates, LDX/ST/STX
// offsets (and load/store size when an unsigned integer or pointer field
// has another size in the kernel), LD_IMM64 64-bit immediates.
//
// What no target has: existence checks (field, type, enumerator) and type
// relocations yield 0. Any other use is poisoned (the instruction becomes
// a call to helper PoisonHelper+Fixup.Index, 0xbad2310+N, which the
// verifier rejects only if it is reachable) when the section checks that
// thing's existence (bpf_core_field_exists on the same type and access or
// a prefix of it, bpf_core_type_exists/matches on its type); unguarded, it
// is a *COREError naming the program (from func_info), the type and the
// field path ("task_struct___v1.real_parent.tgid"), wrapping ErrNotFound.
// PoisonError turns a verifier log that hit a poisoned call back into
// that *COREError.
package btf
