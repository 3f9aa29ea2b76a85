package perfring

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"golang.org/x/sys/unix"
)

// Defaults for PerfReaderOptions.
const (
	DefaultPageCount    = 64
	DefaultPollInterval = 3 * time.Millisecond
)

// PerfReaderOptions tunes a PerfReader. The zero value is sensible.
type PerfReaderOptions struct {
	// PageCount is the size of each CPU's ring in pages: a power of two.
	// 0 means DefaultPageCount (64 pages, 256 KiB with 4 KiB pages).
	PageCount int
	// Watermark is how many bytes of records must be pending in a ring
	// before the kernel wakes the reader. 0 means a quarter of the ring;
	// 1 wakes the reader for every record (the costly classic behaviour).
	// It must be smaller than the ring.
	Watermark int
	// PollInterval bounds the latency of records that sit below the
	// watermark: while it has nothing to read, the reader looks at the
	// rings at least this often. 0 means DefaultPollInterval (3 ms);
	// negative disables polling (records then wait for the watermark).
	PollInterval time.Duration
}

// perf_event_mmap_page field offsets (include/uapi/linux/perf_event.h).
const (
	offDataHead   = 1024
	offDataTail   = 1032
	offDataOffset = 1040
	offDataSize   = 1048
)

// perfRing is one CPU's ring: the mmap'd metadata page and data area.
type perfRing struct {
	cpu   int
	fd    int    // perf event fd; -1 for rings built over test memory
	mem   []byte // the whole mapping
	headp *uint64
	tailp *uint64
	data  []byte
	mask  uint64

	head   uint64 // producer position last loaded
	tail   uint64 // our read position
	stored uint64 // last tail written back to the kernel
	flush  uint64 // write the tail back after consuming this many bytes

	onStore func() // tests: called after the tail is written back
}

// newPerfRing interprets mem (a metadata page followed by a power-of-two
// data area) as a perf ring.
func newPerfRing(cpu int, mem []byte, pageSize int) (*perfRing, error) {
	if len(mem) < 2*pageSize || pageSize < offDataSize+8 {
		return nil, fmt.Errorf("perfring: ring mapping of %d bytes is too small", len(mem))
	}
	off := binary.LittleEndian.Uint64(mem[offDataOffset:])
	size := binary.LittleEndian.Uint64(mem[offDataSize:])
	if size == 0 { // kernels before 4.1 leave these zero
		off, size = uint64(pageSize), uint64(len(mem)-pageSize)
	}
	if size&(size-1) != 0 || off+size > uint64(len(mem)) {
		return nil, fmt.Errorf("perfring: bad ring geometry (offset %d, size %d, mapping %d)", off, size, len(mem))
	}
	r := &perfRing{
		cpu:   cpu,
		fd:    -1,
		mem:   mem,
		headp: (*uint64)(unsafe.Pointer(&mem[offDataHead])),
		tailp: (*uint64)(unsafe.Pointer(&mem[offDataTail])),
		data:  mem[off : off+size],
		mask:  size - 1,
		flush: size / 4,
	}
	r.tail = atomic.LoadUint64(r.tailp)
	r.head, r.stored = r.tail, r.tail
	return r, nil
}

// storeTail writes our position back to the kernel, which may reuse the
// space before it from then on.
func (r *perfRing) storeTail() {
	atomic.StoreUint64(r.tailp, r.tail)
	r.stored = r.tail
	if r.onStore != nil {
		r.onStore()
	}
}

// refresh writes our position back and loads the producer's; it reports
// whether records are pending.
func (r *perfRing) refresh() bool {
	if r.stored != r.tail {
		r.storeTail()
	}
	r.head = atomic.LoadUint64(r.headp)
	return r.head != r.tail
}

// copyAt copies len(dst) bytes of the ring from position pos, wrapping
// around the end of the data area.
func (r *perfRing) copyAt(dst []byte, pos uint64) {
	n := copy(dst, r.data[pos&r.mask:])
	if n < len(dst) {
		copy(dst[n:], r.data)
	}
}

// resync abandons the pending records: it moves our position to the
// producer's, which is always a state the kernel accepts (an empty ring),
// and writes it back.
func (r *perfRing) resync() {
	r.tail = r.head
	r.storeTail()
}

// next consumes records of the current snapshot (tail..head) until one is
// for the caller (a sample, or a notice of lost samples), which it stores
// in rec. It returns false when the snapshot is exhausted.
//
// A record's space goes back to the kernel (data_tail) only once the
// record has been copied out: from then on the kernel may overwrite it.
// Everything read from the ring is validated first, so that a damaged ring
// yields an error, never a loop, a bogus record or a bad data_tail.
func (r *perfRing) next(rec *Record) (bool, error) {
	if r.tail == r.head {
		return false, nil
	}
	// The kernel only moves data_head forward, in steps of 8-byte aligned
	// records, and never more than the ring's size past our data_tail.
	if pending := r.head - r.tail; pending > uint64(len(r.data)) || r.head&7 != 0 {
		err := fmt.Errorf("perfring: bad data_head %d on cpu %d (our data_tail %d, ring %d bytes)", r.head, r.cpu, r.tail, len(r.data))
		if r.head&7 == 0 {
			r.resync()
			return false, fmt.Errorf("%w; skipped the ring's records", err)
		}
		r.head = r.tail // never adopt a misaligned position
		return false, err
	}
	for r.tail != r.head {
		var hdr [8]byte
		pos := r.tail
		if off := pos & r.mask; off+8 <= uint64(len(r.data)) {
			copy(hdr[:], r.data[off:off+8])
		} else {
			r.copyAt(hdr[:], pos)
		}
		typ := binary.LittleEndian.Uint32(hdr[0:])
		size := uint64(binary.LittleEndian.Uint16(hdr[6:]))
		if size < 8 || size&7 != 0 || size > r.head-pos {
			pending := r.head - pos
			r.resync()
			return false, fmt.Errorf("perfring: corrupt record on cpu %d (size %d, %d bytes pending); skipped the rest of the ring", r.cpu, size, pending)
		}
		ok, err := r.parse(rec, typ, pos, size)
		// The record is copied (or skipped): its space may go back.
		r.tail = pos + size
		if r.tail-r.stored >= r.flush {
			r.storeTail()
		}
		if ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

// parse stores the record of type typ and size bytes at pos in rec if it is
// one for the caller: a sample, or a notice of lost samples. Other record
// types carry nothing for us and are skipped.
func (r *perfRing) parse(rec *Record, typ uint32, pos, size uint64) (bool, error) {
	switch typ {
	case unix.PERF_RECORD_SAMPLE:
		// PERF_SAMPLE_RAW: u32 size, then that many bytes (which the
		// kernel pads so that the record is a multiple of 8 bytes).
		if size < 16 {
			return false, fmt.Errorf("perfring: short sample record (%d bytes) on cpu %d", size, r.cpu)
		}
		var b [4]byte
		r.copyAt(b[:], pos+8)
		n := uint64(binary.LittleEndian.Uint32(b[:]))
		if n == 0 || 12+n > size {
			return false, fmt.Errorf("perfring: sample of %d bytes in a %d-byte record on cpu %d", n, size, r.cpu)
		}
		rec.CPU, rec.LostSamples = r.cpu, 0
		if off := (pos + 12) & r.mask; off+n <= uint64(len(r.data)) {
			rec.RawSample = append(rec.RawSample[:0], r.data[off:off+n]...)
		} else {
			if uint64(cap(rec.RawSample)) < n {
				rec.RawSample = make([]byte, n)
			}
			rec.RawSample = rec.RawSample[:n]
			r.copyAt(rec.RawSample, pos+12)
		}
		return true, nil
	case unix.PERF_RECORD_LOST:
		// u64 id, u64 lost.
		if size < 24 {
			return false, fmt.Errorf("perfring: short lost record (%d bytes) on cpu %d", size, r.cpu)
		}
		var b [8]byte
		r.copyAt(b[:], pos+16)
		lost := binary.LittleEndian.Uint64(b[:])
		if lost == 0 {
			return false, nil // nothing lost: no notice
		}
		rec.CPU, rec.LostSamples, rec.RawSample = r.cpu, lost, rec.RawSample[:0]
		return true, nil
	}
	return false, nil
}

// PerfReader reads a BPF_MAP_TYPE_PERF_EVENT_ARRAY through one ring per
// online CPU. Its Close also removes the rings from the map.
type PerfReader struct {
	reader
	mapFD  int    // our dup of the perf event array
	mapID  uint32 // its id: the key of its slots' owners (see slots.go)
	rings  []*perfRing
	pollMs int
	cur    int // ring to look at first
}

// NewPerfReader opens a perf ring on each online CPU, stores the rings in
// the perf event array mapFD at the CPU's index, and returns a reader over
// them. The reader keeps its own reference to the map; Close removes the
// rings from it. Of several readers of this process open on one array the
// newest receives; closing a reader never unplugs another (see slots.go):
// closing the newest hands the slots back to the previous one.
func NewPerfReader(mapFD int, opts PerfReaderOptions) (*PerfReader, error) {
	info, err := bpfsys.GetMapInfo(mapFD)
	if err != nil {
		return nil, fmt.Errorf("perfring: map fd %d: %w", mapFD, err)
	}
	if info.Type != bpfsys.BPF_MAP_TYPE_PERF_EVENT_ARRAY {
		return nil, fmt.Errorf("perfring: map %q is of type %d, not a perf event array", info.Name, info.Type)
	}
	pages := opts.PageCount
	if pages == 0 {
		pages = DefaultPageCount
	}
	if pages < 0 || pages&(pages-1) != 0 || pages > 1<<20 {
		return nil, fmt.Errorf("perfring: page count %d is not a power of two", opts.PageCount)
	}
	pageSize := os.Getpagesize()
	size := pages * pageSize
	wm := opts.Watermark
	if wm == 0 {
		wm = size / 4
	}
	if wm < 0 || wm >= size {
		return nil, fmt.Errorf("perfring: watermark %d must be in [1, %d)", opts.Watermark, size)
	}
	pollMs := -1
	if opts.PollInterval >= 0 {
		iv := opts.PollInterval
		if iv == 0 {
			iv = DefaultPollInterval
		}
		pollMs = int((iv + time.Millisecond - 1) / time.Millisecond)
	}
	cpus, err := onlineCPUs()
	if err != nil {
		return nil, err
	}
	if max := cpus[len(cpus)-1]; max >= int(info.MaxEntries) {
		return nil, fmt.Errorf("perfring: perf event array %q has %d entries but CPU %d is online", info.Name, info.MaxEntries, max)
	}
	dup, err := unix.FcntlInt(uintptr(mapFD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("perfring: dup map fd: %w", err)
	}
	r := &PerfReader{mapFD: dup, mapID: info.ID, pollMs: pollMs}
	r.src = r
	if r.poll, err = newPoller(); err != nil {
		unix.Close(dup)
		return nil, err
	}
	for _, cpu := range cpus {
		ring, err := openPerfRing(cpu, 1+pages, pageSize, wm)
		if err != nil {
			r.free()
			return nil, err
		}
		r.rings = append(r.rings, ring)
		if err := r.poll.add(ring.fd, int32(len(r.rings)-1)); err != nil {
			r.free()
			return nil, err
		}
		if err := plug(r.mapFD, r.mapID, ring); err != nil {
			r.free()
			return nil, fmt.Errorf("perfring: storing cpu %d's ring in %q: %w", cpu, info.Name, err)
		}
	}
	return r, nil
}

func openPerfRing(cpu, pages, pageSize, watermark int) (*perfRing, error) {
	attr := unix.PerfEventAttr{
		Type:        unix.PERF_TYPE_SOFTWARE,
		Config:      unix.PERF_COUNT_SW_BPF_OUTPUT,
		Size:        uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Sample:      1,
		Sample_type: unix.PERF_SAMPLE_RAW,
		Wakeup:      uint32(watermark),
		Bits:        unix.PerfBitWatermark | unix.PerfBitDisabled,
	}
	fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("perfring: perf_event_open on cpu %d: %w", cpu, err)
	}
	mem, err := unix.Mmap(fd, 0, pages*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("perfring: mmap of cpu %d's ring (%d pages): %w", cpu, pages, err)
	}
	ring, err := newPerfRing(cpu, mem, pageSize)
	if err == nil {
		ring.fd = fd
		err = unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0)
	}
	if err != nil {
		unix.Munmap(mem)
		unix.Close(fd)
		return nil, fmt.Errorf("perfring: cpu %d: %w", cpu, err)
	}
	return ring, nil
}

// free releases everything; the caller holds mu or is the only user.
func (r *PerfReader) free() {
	for _, ring := range r.rings {
		unplug(r.mapFD, r.mapID, ring)
		unix.Munmap(ring.mem)
		unix.Close(ring.fd)
	}
	r.rings = nil
	unix.Close(r.mapFD)
	r.poll.close()
}

// next finds the next record over all rings, taking the rings in turn so
// that a busy CPU cannot starve the others.
func (r *PerfReader) next(rec *Record) (bool, error) {
	n := len(r.rings)
	for i := 0; i < n; i++ {
		ring := r.rings[r.cur]
		if ring.tail != ring.head || ring.refresh() {
			ok, err := ring.next(rec)
			if ring.tail == ring.head {
				r.cur++
				if r.cur == n {
					r.cur = 0
				}
			}
			if ok || err != nil {
				return ok, err
			}
			continue
		}
		r.cur++
		if r.cur == n {
			r.cur = 0
		}
	}
	return false, nil
}

// release writes every ring's read position back, even after an empty
// batch: records skipped on the way consumed space too.
func (r *PerfReader) release(k int) {
	for _, ring := range r.rings {
		if ring.stored != ring.tail {
			ring.storeTail()
		}
	}
}

func (r *PerfReader) wait(ctx context.Context) error { return r.poll.wait(ctx, r.pollMs) }

// Pause stops the kernel from writing to this reader's rings (programs'
// bpf_perf_event_output calls then fail); records already written stay
// readable. Resume undoes it.
func (r *PerfReader) Pause() error { return r.ioctlAll(unix.PERF_EVENT_IOC_DISABLE) }

// Resume lets the kernel write to the rings again after Pause.
func (r *PerfReader) Resume() error { return r.ioctlAll(unix.PERF_EVENT_IOC_ENABLE) }

func (r *PerfReader) ioctlAll(req uint) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.poll.closed.Load() {
		return ErrClosed
	}
	for _, ring := range r.rings {
		if err := unix.IoctlSetInt(ring.fd, req, 0); err != nil {
			return fmt.Errorf("perfring: cpu %d: %w", ring.cpu, err)
		}
	}
	return nil
}
