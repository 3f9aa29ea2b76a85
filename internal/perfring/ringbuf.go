package perfring

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"golang.org/x/sys/unix"
)

// Ring buffer record header bits (include/uapi/linux/bpf.h).
const (
	ringbufBusy    = 1 << 31
	ringbufDiscard = 1 << 30
	ringbufHdrSize = 8
)

// ringBuf is the consumer's view of a BPF ring buffer: the consumer
// position (read-write page), the producer position and the data area,
// which the kernel maps twice in a row so that no record wraps.
type ringBuf struct {
	consp *uint64
	prodp *uint64
	data  []byte // 2*size bytes
	mask  uint64
	size  uint64

	pos    uint64 // our consumer position
	stored uint64 // last position written back
	head   uint64 // producer position last loaded
	busy   bool   // the record at pos is reserved but not yet committed
}

func (r *ringBuf) store() {
	if r.stored != r.pos {
		atomic.StoreUint64(r.consp, r.pos)
		r.stored = r.pos
	}
}

// next stores the next committed record in rec, skipping discarded ones.
// It returns false when there is none (yet).
func (r *ringBuf) next(rec *Record) (bool, error) {
	r.busy = false
	for {
		if r.pos == r.head {
			r.store()
			r.head = atomic.LoadUint64(r.prodp)
			if r.pos == r.head {
				return false, nil
			}
			// The producer only moves forward, by 8-byte aligned
			// records, at most the ring's size past us.
			if r.head-r.pos > r.size || r.head&7 != 0 {
				err := fmt.Errorf("perfring: bad ring buffer producer position %d (consumer %d, ring %d bytes)", r.head, r.pos, r.size)
				r.head = r.pos // never adopt it
				return false, err
			}
		}
		off := r.pos & r.mask
		hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[off])))
		if hdr&ringbufBusy != 0 {
			r.store()
			r.busy = true
			return false, nil
		}
		n := uint64(hdr &^ (ringbufBusy | ringbufDiscard))
		if n+ringbufHdrSize > r.head-r.pos {
			pending := r.head - r.pos
			r.pos = r.head
			r.store()
			return false, fmt.Errorf("perfring: corrupt ring buffer record (length %d, %d bytes pending); skipped pending records", n, pending)
		}
		r.pos += (n + ringbufHdrSize + 7) &^ 7
		if hdr&ringbufDiscard == 0 {
			rec.CPU, rec.LostSamples = -1, 0
			rec.RawSample = append(rec.RawSample[:0], r.data[off+ringbufHdrSize:off+ringbufHdrSize+n]...)
		}
		if r.pos-r.stored >= r.size/4 {
			r.store()
		}
		if hdr&ringbufDiscard == 0 {
			return true, nil
		}
	}
}

// RingBufReader reads a BPF_MAP_TYPE_RINGBUF map. Records arrive in the
// order they were submitted.
type RingBufReader struct {
	reader
	fd   int // our dup of the map fd
	cons []byte
	prod []byte
	ring ringBuf
}

// NewRingBufReader maps the ring buffer mapFD and returns a reader over
// it. The reader keeps its own reference to the map.
func NewRingBufReader(mapFD int) (*RingBufReader, error) {
	info, err := bpfsys.GetMapInfo(mapFD)
	if err != nil {
		return nil, fmt.Errorf("perfring: map fd %d: %w", mapFD, err)
	}
	if info.Type != bpfsys.BPF_MAP_TYPE_RINGBUF {
		return nil, fmt.Errorf("perfring: map %q is of type %d, not a ring buffer", info.Name, info.Type)
	}
	size := uint64(info.MaxEntries)
	pageSize := os.Getpagesize()
	if size == 0 || size&(size-1) != 0 || size%uint64(pageSize) != 0 {
		return nil, fmt.Errorf("perfring: ring buffer %q has bad size %d", info.Name, size)
	}
	fd, err := unix.FcntlInt(uintptr(mapFD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("perfring: dup map fd: %w", err)
	}
	r := &RingBufReader{fd: fd}
	r.src = r
	fail := func(err error) (*RingBufReader, error) {
		r.free()
		return nil, err
	}
	if r.cons, err = unix.Mmap(fd, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return fail(fmt.Errorf("perfring: mmap of %q's consumer page: %w", info.Name, err))
	}
	if r.prod, err = unix.Mmap(fd, int64(pageSize), pageSize+2*int(size), unix.PROT_READ, unix.MAP_SHARED); err != nil {
		return fail(fmt.Errorf("perfring: mmap of %q's data: %w", info.Name, err))
	}
	r.ring = ringBuf{
		consp: (*uint64)(unsafe.Pointer(&r.cons[0])),
		prodp: (*uint64)(unsafe.Pointer(&r.prod[0])),
		data:  r.prod[pageSize:],
		mask:  size - 1,
		size:  size,
	}
	r.ring.pos = atomic.LoadUint64(r.ring.consp)
	r.ring.stored, r.ring.head = r.ring.pos, r.ring.pos
	if r.poll, err = newPoller(); err != nil {
		return fail(err)
	}
	if err := r.poll.add(fd, 0); err != nil {
		return fail(err)
	}
	return r, nil
}

func (r *RingBufReader) free() {
	if r.prod != nil {
		unix.Munmap(r.prod)
		r.prod = nil
	}
	if r.cons != nil {
		unix.Munmap(r.cons)
		r.cons = nil
	}
	if r.poll != nil {
		r.poll.close()
	}
	unix.Close(r.fd)
}

// Size returns the size of the ring's data area in bytes.
func (r *RingBufReader) Size() int { return int(r.ring.size) }

// wait blocks until the ring may have records. A record reserved but not
// yet committed keeps the ring readable for epoll, so then it sleeps
// briefly instead.
func (r *RingBufReader) wait(ctx context.Context) error {
	if r.ring.busy {
		time.Sleep(20 * time.Microsecond)
		if r.poll.closed.Load() {
			return ErrClosed
		}
		return ctxDone(ctx)
	}
	return r.poll.wait(ctx, -1)
}

func (r *RingBufReader) next(rec *Record) (bool, error) { return r.ring.next(rec) }

// release writes the consumer position back after a non-empty batch.
func (r *RingBufReader) release(k int) {
	if k > 0 {
		r.ring.store()
	}
}
