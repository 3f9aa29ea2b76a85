package elf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/pkg/bpffs"
	"github.com/iovisor/gobpf/pkg/cpupossible"
)

// Pinning settings of a classic map definition (struct bpf_map_def's
// pinning field), as in iproute2's bpf_elf.h.
const (
	PIN_NONE      = 0
	PIN_OBJECT_NS = 1
	PIN_GLOBAL_NS = 2
	PIN_CUSTOM_NS = 3
)

// libbpfPinByName is LIBBPF_PIN_BY_NAME, the pinning value of BTF maps.
const libbpfPinByName = 1

// Map is an eBPF map defined by the object.
type Map struct {
	Name    string
	fd      int
	def     mapSpec
	pinPath string // where it is pinned, "" if not
	reused  bool   // opened from an existing pin
	module  *Module

	pageCount int  // perf ring pages (perf event arrays)
	backward  bool // backward, overwritable perf rings (perf_backward.go)
}

// MapDef describes a map as the object defined it (after SectionParams).
type MapDef struct {
	Type       uint32
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
	MapFlags   uint32
	Pinning    uint32
	Namespace  string
	BTF        bool // defined in the ".maps" section
}

// Fd returns the map's file descriptor (-1 once the module's Close began).
// The fd stays valid until then: a caller that keeps using it must not
// race Close (the module's own map operations are safe to race it).
func (m *Map) Fd() int {
	fd, err := m.acquire()
	if err != nil {
		return -1
	}
	m.release()
	return fd
}

// Def returns the map's definition.
func (m *Map) Def() MapDef {
	d := m.def
	return MapDef{Type: d.Type, KeySize: d.KeySize, ValueSize: d.ValueSize, MaxEntries: d.MaxEntries,
		MapFlags: d.Flags, Pinning: d.Pinning, Namespace: d.Namespace, BTF: d.BTF}
}

// PinPath returns where the map is pinned, or "" when it is not.
func (m *Map) PinPath() string { return m.pinPath }

// Reused reports whether Load opened an already pinned map instead of
// creating one.
func (m *Map) Reused() bool { return m.reused }

// mapPinPath computes where a map is pinned, "" when it is not.
func mapPinPath(ms *mapSpec, objID, customPath string) (string, error) {
	var p string
	if ms.BTF {
		switch ms.Pinning {
		case PIN_NONE:
			return "", nil
		case libbpfPinByName:
			if customPath != "" {
				p = filepath.Join(BPFFSPath, customPath)
			} else {
				p = filepath.Join(BPFFSPath, ms.Name)
			}
		default:
			return "", fmt.Errorf("map %q: unsupported BTF pinning %d (want 0 or LIBBPF_PIN_BY_NAME)", ms.Name, ms.Pinning)
		}
	} else {
		switch ms.Pinning {
		case PIN_NONE:
			return "", nil
		case PIN_OBJECT_NS:
			// Like iproute2's object namespace: one directory per object
			// (by content digest), so that reloading the same object
			// reuses its maps.
			p = filepath.Join(BPFFSPath, "gobpf", objID, ms.Name)
		case PIN_GLOBAL_NS:
			if ms.Namespace == "" {
				return "", fmt.Errorf("map %q has empty namespace", ms.Name)
			}
			p = filepath.Join(BPFFSPath, ms.Namespace, BPFDirGlobals, ms.Name)
		case PIN_CUSTOM_NS:
			if customPath == "" {
				return "", fmt.Errorf("no pin path given for map %q with PIN_CUSTOM_NS (SectionParams.PinPath)", ms.Name)
			}
			p = filepath.Join(BPFFSPath, customPath)
		default:
			return "", fmt.Errorf("map %q: unknown pinning %d", ms.Name, ms.Pinning)
		}
	}
	if !validPinPath(p) {
		return "", fmt.Errorf("map %q: invalid pin path %q", ms.Name, p)
	}
	return p, nil
}

func createMap(ms *mapSpec, spec *objectSpec, params SectionParams) (*Map, error) {
	def := *ms
	if params.MapMaxEntries > 0 {
		def.MaxEntries = uint32(params.MapMaxEntries)
	}
	if def.Type == uint32(bpfsys.BPF_MAP_TYPE_PERF_EVENT_ARRAY) && def.MaxEntries == 0 {
		n, err := possibleCPUs()
		if err != nil {
			return nil, fmt.Errorf("elf: map %q: %w", ms.Name, err)
		}
		def.MaxEntries = uint32(n)
	}
	m := &Map{Name: ms.Name, fd: -1, def: def, pageCount: 8}
	if params.PerfRingBufferBackward || params.PerfRingBufferOverwritable {
		if err := checkBackward(ms.Name, &def, params); err != nil {
			return nil, err
		}
		m.backward = true
	}
	if params.PerfRingBufferPageCount > 0 {
		pc := params.PerfRingBufferPageCount
		if pc&(pc-1) != 0 {
			return nil, fmt.Errorf("elf: map %q: number of pages (%d) must be a power of 2", ms.Name, pc)
		}
		m.pageCount = pc
	}
	path, err := mapPinPath(&def, spec.ID, params.PinPath)
	if err != nil {
		return nil, fmt.Errorf("elf: %w", err)
	}
	if path != "" {
		if err := bpffs.Mount(); err != nil {
			return nil, fmt.Errorf("elf: map %q: %w", ms.Name, err)
		}
		if _, err := os.Stat(path); err == nil {
			fd, err := bpfsys.ObjGet(path)
			if err != nil {
				return nil, fmt.Errorf("elf: map %q: opening pinned %s: %w", ms.Name, path, err)
			}
			if err := checkPinned(fd, &def); err != nil {
				unix.Close(fd)
				return nil, fmt.Errorf("elf: map %q: pinned %s: %w", ms.Name, path, err)
			}
			m.fd, m.pinPath, m.reused = fd, path, true
			return m, nil
		}
	}
	attr := &bpfsys.MapCreateAttr{
		MapType: bpfsys.MapType(def.Type), KeySize: def.KeySize, ValueSize: def.ValueSize,
		MaxEntries: def.MaxEntries, MapFlags: def.Flags, InnerMapFd: uint32(def.innerFD),
	}
	attr.SetName(ms.Name)
	if def.btfFD > 0 {
		attr.BtfFd, attr.BtfKeyTypeID, attr.BtfValueTypeID = uint32(def.btfFD), def.btfKey, def.btfValue
	}
	fd, err := createMapRaisingMemlock(attr)
	if err != nil && def.btfFD > 0 && !errors.Is(err, unix.EPERM) {
		// The kernel refuses BTF for this map type: create it without.
		// (EPERM is not about BTF: createMapRaisingMemlock handled it.)
		attr.BtfFd, attr.BtfKeyTypeID, attr.BtfValueTypeID = 0, 0, 0
		fd, err = createMapRaisingMemlock(attr)
	}
	if err != nil {
		return nil, fmt.Errorf("elf: error while loading map %q (type %d, key %d, value %d, max %d, flags %#x): %w",
			ms.Name, def.Type, def.KeySize, def.ValueSize, def.MaxEntries, def.Flags, err)
	}
	m.fd = fd
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("elf: map %q: creating %s: %w", ms.Name, filepath.Dir(path), err)
		}
		if err := bpfsys.ObjPin(fd, path); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("elf: map %q: pinning at %s: %w", ms.Name, path, err)
		}
		m.pinPath = path
	}
	return m, nil
}

// checkPinned verifies that a pinned map matches the object's definition.
func checkPinned(fd int, def *mapSpec) error {
	info, err := bpfsys.GetMapInfo(fd)
	if err != nil {
		return err
	}
	if uint32(info.Type) != def.Type || info.KeySize != def.KeySize || info.ValueSize != def.ValueSize || info.MaxEntries != def.MaxEntries {
		return fmt.Errorf("is type %d key %d value %d max %d, the object wants type %d key %d value %d max %d",
			info.Type, info.KeySize, info.ValueSize, info.MaxEntries, def.Type, def.KeySize, def.ValueSize, def.MaxEntries)
	}
	return nil
}

func (m *Map) close(opt CloseOptions) error {
	var errs []error
	if opt.Unpin {
		path := m.pinPath
		if opt.PinPath != "" {
			path = filepath.Join(BPFFSPath, opt.PinPath)
		}
		if path == "" {
			errs = append(errs, fmt.Errorf("elf: unpinning map %q: it is not pinned", m.Name))
		} else if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("elf: unpinning map %q: %w", m.Name, err))
		} else {
			m.pinPath = ""
			removeEmptyDirs(filepath.Dir(path))
		}
	}
	errs = append(errs, closeFD(&m.fd))
	return errors.Join(errs...)
}

// removeEmptyDirs removes dir and its parents while they are empty and
// below BPFFSPath (the directories Load created for pins).
func removeEmptyDirs(dir string) {
	for strings.HasPrefix(dir, BPFFSPath) && len(dir) > len(BPFFSPath) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// UpdateElement stores value at key in mp. flags: BPF_ANY (0) creates or
// updates, BPF_NOEXIST (1) only creates, BPF_EXIST (2) only updates.
// key and value point to memory of the map's key and value sizes (for
// per-CPU maps, value holds one aligned value per possible CPU).
func (b *Module) UpdateElement(mp *Map, key, value unsafe.Pointer, flags uint64) error {
	fd, err := mp.acquire()
	if err != nil {
		return err
	}
	defer mp.release()
	if err := bpfsys.MapUpdateElem(fd, key, value, flags); err != nil {
		return fmt.Errorf("unable to update element: %w", err)
	}
	return nil
}

// LookupElement copies the value at key in mp into value.
func (b *Module) LookupElement(mp *Map, key, value unsafe.Pointer) error {
	fd, err := mp.acquire()
	if err != nil {
		return err
	}
	defer mp.release()
	if err := bpfsys.MapLookupElem(fd, key, value); err != nil {
		return fmt.Errorf("unable to lookup element: %w", err)
	}
	return nil
}

// LookupAndDeleteElement pops an element of a queue or stack map into value.
func (b *Module) LookupAndDeleteElement(mp *Map, value unsafe.Pointer) error {
	fd, err := mp.acquire()
	if err != nil {
		return err
	}
	defer mp.release()
	if err := bpfsys.MapLookupAndDeleteElem(fd, nil, value); err != nil {
		return fmt.Errorf("unable to lookup and delete element: %w", err)
	}
	return nil
}

// DeleteElement deletes key from mp.
func (b *Module) DeleteElement(mp *Map, key unsafe.Pointer) error {
	fd, err := mp.acquire()
	if err != nil {
		return err
	}
	defer mp.release()
	if err := bpfsys.MapDeleteElem(fd, key); err != nil {
		return fmt.Errorf("unable to delete element: %w", err)
	}
	return nil
}

// LookupNextElement stores the key after key (key nil: the first key) in
// nextKey and its value in value. It returns false at the end of the map.
func (b *Module) LookupNextElement(mp *Map, key, nextKey, value unsafe.Pointer) (bool, error) {
	fd, err := mp.acquire()
	if err != nil {
		return false, err
	}
	defer mp.release()
	if err := bpfsys.MapGetNextKey(fd, key, nextKey); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("unable to find next element: %w", err)
	}
	if err := bpfsys.MapLookupElem(fd, nextKey, value); err != nil {
		return false, fmt.Errorf("unable to lookup element: %w", err)
	}
	return true, nil
}

// possibleCPUs returns how many CPUs the kernel may ever bring online: one
// more than the highest possible CPU number, the length of per-CPU values.
func possibleCPUs() (int, error) {
	cpus, err := cpupossible.Get()
	if err != nil {
		return 0, err
	}
	if len(cpus) == 0 {
		return 0, errors.New("no possible CPUs")
	}
	return int(slices.Max(cpus)) + 1, nil
}
