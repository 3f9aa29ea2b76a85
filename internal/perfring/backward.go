package perfring

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"golang.org/x/sys/unix"
)

// Backward (overwritable) perf rings: a flight recorder. The kernel writes
// each record just below the previous one (perf_event_attr.write_backward)
// into a ring mapped read-only, which makes it overwritable: when the ring
// is full the newest record replaces the oldest, nothing is lost and
// nobody consumes. data_head points at the newest record, so the records
// from there upwards, until the ring's size or the start of the ring, are
// the newest ones, newest first. Reading pauses the ring
// (PERF_EVENT_IOC_PAUSE_OUTPUT) so that the kernel does not overwrite what
// is being read; records emitted meanwhile are dropped.

// perfEventIOCPauseOutput is PERF_EVENT_IOC_PAUSE_OUTPUT, _IOW('$', 9, __u32).
const perfEventIOCPauseOutput = 1<<30 | 4<<16 | '$'<<8 | 9

// BackwardRings is one backward, overwritable perf ring per online CPU,
// stored in a perf event array. It is not safe for concurrent use.
type BackwardRings struct {
	mapFile int // our own file of the perf event array (see OpenBackwardRings)
	rings   []*backRing
}

type backRing struct {
	cpu  int
	fd   int
	mem  []byte
	data []byte
}

// OpenBackwardRings opens a backward, overwritable ring of pages pages
// (a power of two) on each online CPU and stores it in the perf event array
// mapFD at the CPU's index.
//
// The rings are stored through a file of the map of their own (opened by
// the map's id when the process may, a dup otherwise): the kernel removes a
// perf event array's entries when the map file that stored them is closed,
// so Close removes these rings from the map, and only those still there
// (not rings that another reader stored at the same index since).
func OpenBackwardRings(mapFD, pages int) (*BackwardRings, error) {
	info, err := bpfsys.GetMapInfo(mapFD)
	if err != nil {
		return nil, fmt.Errorf("perfring: map fd %d: %w", mapFD, err)
	}
	if info.Type != bpfsys.BPF_MAP_TYPE_PERF_EVENT_ARRAY {
		return nil, fmt.Errorf("perfring: map %q is of type %d, not a perf event array", info.Name, info.Type)
	}
	if pages <= 0 || pages&(pages-1) != 0 || pages > 1<<20 {
		return nil, fmt.Errorf("perfring: page count %d is not a power of two", pages)
	}
	cpus, err := onlineCPUs()
	if err != nil {
		return nil, err
	}
	if max := cpus[len(cpus)-1]; max >= int(info.MaxEntries) {
		return nil, fmt.Errorf("perfring: perf event array %q has %d entries but CPU %d is online", info.Name, info.MaxEntries, max)
	}
	mf, err := mapFileByID(info.ID)
	if err != nil {
		if mf, err = unix.FcntlInt(uintptr(mapFD), unix.F_DUPFD_CLOEXEC, 0); err != nil {
			return nil, fmt.Errorf("perfring: dup map fd: %w", err)
		}
	}
	b := &BackwardRings{mapFile: mf}
	pageSize := os.Getpagesize()
	for _, cpu := range cpus {
		r, err := openBackRing(cpu, pages, pageSize)
		if err != nil {
			b.Close()
			return nil, err
		}
		b.rings = append(b.rings, r)
		key, val := uint32(cpu), uint32(r.fd)
		if err := bpfsys.MapUpdateElem(b.mapFile, unsafe.Pointer(&key), unsafe.Pointer(&val), bpfsys.BPF_ANY); err != nil {
			b.Close()
			return nil, fmt.Errorf("perfring: storing cpu %d's ring in %q: %w", cpu, info.Name, err)
		}
	}
	return b, nil
}

// mapFileByID opens a new file of the map with that id (BPF_MAP_GET_FD_BY_ID).
func mapFileByID(id uint32) (int, error) {
	attr := struct {
		ID, NextID, OpenFlags uint32
	}{ID: id}
	fd, err := bpfsys.Syscall(bpfsys.BPF_MAP_GET_FD_BY_ID, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return -1, err
	}
	return fd, nil
}

func openBackRing(cpu, pages, pageSize int) (*backRing, error) {
	attr := unix.PerfEventAttr{
		Type:        unix.PERF_TYPE_SOFTWARE,
		Config:      unix.PERF_COUNT_SW_BPF_OUTPUT,
		Size:        uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Sample:      1,
		Sample_type: unix.PERF_SAMPLE_RAW,
		Wakeup:      1,
		Bits:        unix.PerfBitWriteBackward,
	}
	fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("perfring: perf_event_open (write_backward) on cpu %d: %w", cpu, err)
	}
	// Read-only: the kernel makes the ring overwritable.
	mem, err := unix.Mmap(fd, 0, (1+pages)*pageSize, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("perfring: mmap of cpu %d's backward ring (%d pages): %w", cpu, pages, err)
	}
	off := binary.LittleEndian.Uint64(mem[offDataOffset:])
	size := binary.LittleEndian.Uint64(mem[offDataSize:])
	if size == 0 { // kernels before 4.1
		off, size = uint64(pageSize), uint64(pages*pageSize)
	}
	if size&(size-1) != 0 || off+size > uint64(len(mem)) {
		unix.Munmap(mem)
		unix.Close(fd)
		return nil, fmt.Errorf("perfring: bad ring geometry (offset %d, size %d)", off, size)
	}
	return &backRing{cpu: cpu, fd: fd, mem: mem, data: mem[off : off+size]}, nil
}

// Dump returns the records held in the rings, oldest first on each CPU,
// CPU after CPU. It does not consume them: a later Dump returns them again
// (with newer ones, the oldest overwritten). Each ring is paused while it
// is read.
func (b *BackwardRings) Dump() ([]Record, error) {
	var out []Record
	for _, r := range b.rings {
		if err := unix.IoctlSetInt(r.fd, perfEventIOCPauseOutput, 1); err != nil {
			return out, fmt.Errorf("perfring: pausing cpu %d's ring: %w", r.cpu, err)
		}
		recs, err := r.dump()
		if perr := unix.IoctlSetInt(r.fd, perfEventIOCPauseOutput, 0); perr != nil && err == nil {
			err = fmt.Errorf("perfring: resuming cpu %d's ring: %w", r.cpu, perr)
		}
		out = append(out, recs...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// dump walks the ring from data_head (the newest record) upwards.
func (r *backRing) dump() ([]Record, error) {
	head := atomic.LoadUint64((*uint64)(unsafe.Pointer(&r.mem[offDataHead])))
	size := uint64(len(r.data))
	mask := size - 1
	written := -head // the head starts at 0 and moves down
	var newestFirst []Record
	copyAt := func(dst []byte, pos uint64) {
		n := copy(dst, r.data[pos&mask:])
		if n < len(dst) {
			copy(dst[n:], r.data)
		}
	}
	for dist := uint64(0); dist < written && dist+8 <= size; {
		pos := head + dist
		var hdr [8]byte
		copyAt(hdr[:], pos)
		typ := binary.LittleEndian.Uint32(hdr[0:])
		rsize := uint64(binary.LittleEndian.Uint16(hdr[6:]))
		if rsize < 8 || rsize&7 != 0 {
			return nil, fmt.Errorf("perfring: corrupt record (size %d) in cpu %d's backward ring", rsize, r.cpu)
		}
		if dist+rsize > size || dist+rsize > written {
			break // partly overwritten by a newer record
		}
		if typ == unix.PERF_RECORD_SAMPLE && rsize >= 16 {
			var nb [4]byte
			copyAt(nb[:], pos+8)
			n := uint64(binary.LittleEndian.Uint32(nb[:]))
			if n == 0 || 12+n > rsize {
				return nil, fmt.Errorf("perfring: sample of %d bytes in a %d-byte record on cpu %d", n, rsize, r.cpu)
			}
			buf := make([]byte, n)
			copyAt(buf, pos+12)
			newestFirst = append(newestFirst, Record{CPU: r.cpu, RawSample: buf})
		}
		dist += rsize
	}
	out := make([]Record, len(newestFirst))
	for i, rec := range newestFirst {
		out[len(out)-1-i] = rec
	}
	return out, nil
}

// Close releases the rings and the map file (which removes the rings from
// the map, where they are still stored). It can be called more than once.
func (b *BackwardRings) Close() error {
	for _, r := range b.rings {
		unix.Munmap(r.mem)
		unix.Close(r.fd)
	}
	b.rings = nil
	if b.mapFile >= 0 {
		unix.Close(b.mapFile)
		b.mapFile = -1
	}
	return nil
}
