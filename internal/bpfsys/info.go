package bpfsys

import (
	"bytes"
	"unsafe"
)

func objInfo(fd int, info unsafe.Pointer, size uint32) error {
	attr := struct {
		BpfFd   uint32
		InfoLen uint32
		Info    unsafe.Pointer
	}{BpfFd: uint32(fd), InfoLen: size, Info: info}
	_, err := Syscall(BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// MapInfo is the part of struct bpf_map_info that callers use.
type MapInfo struct {
	Type       MapType
	ID         uint32
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
	Flags      uint32
	Name       string
}

// GetMapInfo describes the map behind fd.
func GetMapInfo(fd int) (MapInfo, error) {
	var raw struct {
		Type       uint32
		ID         uint32
		KeySize    uint32
		ValueSize  uint32
		MaxEntries uint32
		MapFlags   uint32
		Name       [16]byte
		Rest       [64]byte
	}
	if err := objInfo(fd, unsafe.Pointer(&raw), uint32(unsafe.Sizeof(raw))); err != nil {
		return MapInfo{}, err
	}
	return MapInfo{
		Type: MapType(raw.Type), ID: raw.ID, KeySize: raw.KeySize,
		ValueSize: raw.ValueSize, MaxEntries: raw.MaxEntries, Flags: raw.MapFlags,
		Name: cname(raw.Name[:]),
	}, nil
}

// ProgInfo is the part of struct bpf_prog_info that callers use.
type ProgInfo struct {
	Type ProgType
	ID   uint32
	Tag  [8]byte
	Name string
}

// GetProgInfo describes the program behind fd.
func GetProgInfo(fd int) (ProgInfo, error) {
	var raw struct {
		Type            uint32
		ID              uint32
		Tag             [8]byte
		JitedProgLen    uint32
		XlatedProgLen   uint32
		JitedProgInsns  uint64
		XlatedProgInsns uint64
		LoadTime        uint64
		CreatedByUID    uint32
		NrMapIDs        uint32
		MapIDs          uint64
		Name            [16]byte
		Rest            [128]byte
	}
	if err := objInfo(fd, unsafe.Pointer(&raw), uint32(unsafe.Sizeof(raw))); err != nil {
		return ProgInfo{}, err
	}
	return ProgInfo{Type: ProgType(raw.Type), ID: raw.ID, Tag: raw.Tag, Name: cname(raw.Name[:])}, nil
}

func cname(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
