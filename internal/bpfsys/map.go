package bpfsys

import (
	"unsafe"
)

// MapType is a BPF map type (enum bpf_map_type).
type MapType uint32

// Map types.
const (
	BPF_MAP_TYPE_UNSPEC MapType = iota
	BPF_MAP_TYPE_HASH
	BPF_MAP_TYPE_ARRAY
	BPF_MAP_TYPE_PROG_ARRAY
	BPF_MAP_TYPE_PERF_EVENT_ARRAY
	BPF_MAP_TYPE_PERCPU_HASH
	BPF_MAP_TYPE_PERCPU_ARRAY
	BPF_MAP_TYPE_STACK_TRACE
	BPF_MAP_TYPE_CGROUP_ARRAY
	BPF_MAP_TYPE_LRU_HASH
	BPF_MAP_TYPE_LRU_PERCPU_HASH
	BPF_MAP_TYPE_LPM_TRIE
	BPF_MAP_TYPE_ARRAY_OF_MAPS
	BPF_MAP_TYPE_HASH_OF_MAPS
	BPF_MAP_TYPE_DEVMAP
	BPF_MAP_TYPE_SOCKMAP
	BPF_MAP_TYPE_CPUMAP
	BPF_MAP_TYPE_XSKMAP
	BPF_MAP_TYPE_SOCKHASH
	BPF_MAP_TYPE_CGROUP_STORAGE
	BPF_MAP_TYPE_REUSEPORT_SOCKARRAY
	BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE
	BPF_MAP_TYPE_QUEUE
	BPF_MAP_TYPE_STACK
	BPF_MAP_TYPE_SK_STORAGE
	BPF_MAP_TYPE_DEVMAP_HASH
	BPF_MAP_TYPE_STRUCT_OPS
	BPF_MAP_TYPE_RINGBUF
)

// Flags for element updates.
const (
	BPF_ANY     = 0
	BPF_NOEXIST = 1
	BPF_EXIST   = 2
	BPF_F_LOCK  = 4
)

// Map creation flags (a subset).
const (
	BPF_F_NO_PREALLOC = 1 << 0
	BPF_F_RDONLY_PROG = 1 << 7
	BPF_F_WRONLY_PROG = 1 << 8
	BPF_F_MMAPABLE    = 1 << 10
)

// MapCreateAttr is the BPF_MAP_CREATE member of union bpf_attr.
type MapCreateAttr struct {
	MapType               MapType
	KeySize               uint32
	ValueSize             uint32
	MaxEntries            uint32
	MapFlags              uint32
	InnerMapFd            uint32
	NumaNode              uint32
	MapName               [16]byte
	MapIfindex            uint32
	BtfFd                 uint32
	BtfKeyTypeID          uint32
	BtfValueTypeID        uint32
	BtfVmlinuxValueTypeID uint32
	MapExtra              uint64
}

// SetName sets the map's name (truncated to 15 bytes; the kernel accepts
// only letters, digits, '_' and '.').
func (a *MapCreateAttr) SetName(name string) { setObjName(&a.MapName, name) }

func setObjName(dst *[16]byte, name string) {
	n := 0
	for i := 0; i < len(name) && n < 15; i++ {
		c := name[i]
		if c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			dst[n] = c
			n++
		}
	}
}

// MapCreate creates a map and returns its fd.
func MapCreate(attr *MapCreateAttr) (int, error) {
	return Syscall(BPF_MAP_CREATE, unsafe.Pointer(attr), unsafe.Sizeof(*attr))
}

type mapElemAttr struct {
	MapFd uint32
	_     uint32
	Key   unsafe.Pointer
	Value unsafe.Pointer // or next_key
	Flags uint64
}

func elemOp(cmd Cmd, fd int, key, value unsafe.Pointer, flags uint64) error {
	attr := mapElemAttr{MapFd: uint32(fd), Key: key, Value: value, Flags: flags}
	_, err := Syscall(cmd, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// MapLookupElem copies the value stored at key into value.
func MapLookupElem(fd int, key, value unsafe.Pointer) error {
	return elemOp(BPF_MAP_LOOKUP_ELEM, fd, key, value, 0)
}

// MapLookupElemFlags is MapLookupElem with flags (BPF_F_LOCK).
func MapLookupElemFlags(fd int, key, value unsafe.Pointer, flags uint64) error {
	return elemOp(BPF_MAP_LOOKUP_ELEM, fd, key, value, flags)
}

// MapUpdateElem stores value at key (flags: BPF_ANY, BPF_NOEXIST, BPF_EXIST).
func MapUpdateElem(fd int, key, value unsafe.Pointer, flags uint64) error {
	return elemOp(BPF_MAP_UPDATE_ELEM, fd, key, value, flags)
}

// MapDeleteElem deletes key.
func MapDeleteElem(fd int, key unsafe.Pointer) error {
	return elemOp(BPF_MAP_DELETE_ELEM, fd, key, nil, 0)
}

// MapGetNextKey writes the key after key into next (key nil: the first key).
// At the end it returns an error wrapping unix.ENOENT.
func MapGetNextKey(fd int, key, next unsafe.Pointer) error {
	return elemOp(BPF_MAP_GET_NEXT_KEY, fd, key, next, 0)
}

// MapLookupAndDeleteElem pops the value at key (queues/stacks: key nil).
func MapLookupAndDeleteElem(fd int, key, value unsafe.Pointer) error {
	return elemOp(BPF_MAP_LOOKUP_AND_DELETE_ELEM, fd, key, value, 0)
}

// MapFreeze makes a map read-only for user space.
func MapFreeze(fd int) error {
	attr := mapElemAttr{MapFd: uint32(fd)}
	_, err := Syscall(BPF_MAP_FREEZE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// BatchAttr is the batch member of union bpf_attr.
type BatchAttr struct {
	InBatch   unsafe.Pointer
	OutBatch  unsafe.Pointer
	Keys      unsafe.Pointer
	Values    unsafe.Pointer
	Count     uint32
	MapFd     uint32
	ElemFlags uint64
	Flags     uint64
}

// MapBatch runs one of the BPF_MAP_*_BATCH commands.
//
// inBatch and outBatch point to an opaque cursor of the map's key size
// (for hash maps) or 4 bytes (arrays); inBatch nil starts from the
// beginning. keys and values point to arrays of *count elements; on
// return *count holds how many were processed. The end of a lookup is an
// error wrapping unix.ENOENT, with *count still valid.
func MapBatch(cmd Cmd, fd int, inBatch, outBatch, keys, values unsafe.Pointer, count *uint32, elemFlags uint64) error {
	attr := BatchAttr{
		InBatch: inBatch, OutBatch: outBatch,
		Keys: keys, Values: values,
		Count: *count, MapFd: uint32(fd), ElemFlags: elemFlags,
	}
	_, err := Syscall(cmd, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	*count = attr.Count
	return err
}

// MapLookupBatch is MapBatch(BPF_MAP_LOOKUP_BATCH, ...).
func MapLookupBatch(fd int, inBatch, outBatch, keys, values unsafe.Pointer, count *uint32) error {
	return MapBatch(BPF_MAP_LOOKUP_BATCH, fd, inBatch, outBatch, keys, values, count, 0)
}

// MapLookupAndDeleteBatch is MapBatch(BPF_MAP_LOOKUP_AND_DELETE_BATCH, ...).
func MapLookupAndDeleteBatch(fd int, inBatch, outBatch, keys, values unsafe.Pointer, count *uint32) error {
	return MapBatch(BPF_MAP_LOOKUP_AND_DELETE_BATCH, fd, inBatch, outBatch, keys, values, count, 0)
}

// MapUpdateBatch stores *count keys and values.
func MapUpdateBatch(fd int, keys, values unsafe.Pointer, count *uint32, elemFlags uint64) error {
	return MapBatch(BPF_MAP_UPDATE_BATCH, fd, nil, nil, keys, values, count, elemFlags)
}

// MapDeleteBatch deletes *count keys.
func MapDeleteBatch(fd int, keys unsafe.Pointer, count *uint32) error {
	return MapBatch(BPF_MAP_DELETE_BATCH, fd, nil, nil, keys, nil, count, 0)
}
