package perfring

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fakeRing is a perf ring in ordinary memory with a producer that writes
// records the way the kernel does.
type fakeRing struct {
	mem  []byte
	data []byte
	head uint64
}

func newFakeRing(t *testing.T, dataPages int) (*fakeRing, *perfRing) {
	t.Helper()
	ps := os.Getpagesize()
	mem := make([]byte, (1+dataPages)*ps)
	binary.LittleEndian.PutUint64(mem[offDataOffset:], uint64(ps))
	binary.LittleEndian.PutUint64(mem[offDataSize:], uint64(dataPages*ps))
	r, err := newPerfRing(3, mem, ps)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeRing{mem: mem, data: mem[ps:]}, r
}

func (f *fakeRing) put(b []byte) {
	for i, c := range b {
		f.data[(f.head+uint64(i))%uint64(len(f.data))] = c
	}
	f.head += uint64(len(b))
}

func (f *fakeRing) publish() {
	atomic.StoreUint64((*uint64)(unsafeAt(f.mem, offDataHead)), f.head)
}

// startAt makes an empty ring whose positions are pos.
func (f *fakeRing) startAt(r *perfRing, pos uint64) {
	f.head = pos
	f.publish()
	atomic.StoreUint64((*uint64)(unsafeAt(f.mem, offDataTail)), pos)
	r.head, r.tail, r.stored = pos, pos, pos
}

func (f *fakeRing) tail() uint64 {
	return atomic.LoadUint64((*uint64)(unsafeAt(f.mem, offDataTail)))
}

func (f *fakeRing) sample(raw []byte) {
	size := (8 + 4 + len(raw) + 7) &^ 7
	rec := make([]byte, size)
	binary.LittleEndian.PutUint32(rec[0:], unix.PERF_RECORD_SAMPLE)
	binary.LittleEndian.PutUint16(rec[6:], uint16(size))
	binary.LittleEndian.PutUint32(rec[8:], uint32(size-12)) // the kernel counts the padding
	copy(rec[12:], raw)
	f.put(rec)
}

func (f *fakeRing) lost(n uint64) {
	rec := make([]byte, 24)
	binary.LittleEndian.PutUint32(rec[0:], unix.PERF_RECORD_LOST)
	binary.LittleEndian.PutUint16(rec[6:], 24)
	binary.LittleEndian.PutUint64(rec[8:], 77) // id
	binary.LittleEndian.PutUint64(rec[16:], n)
	f.put(rec)
}

func (f *fakeRing) other(size int) {
	rec := make([]byte, size)
	binary.LittleEndian.PutUint32(rec[0:], unix.PERF_RECORD_THROTTLE)
	binary.LittleEndian.PutUint16(rec[6:], uint16(size))
	f.put(rec)
}

func payload(seq, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seq*31 + i)
	}
	return b
}

// TestPerfRingWraparound pushes records of many sizes through a one-page
// ring so that headers, size fields and payloads all straddle its end.
func TestPerfRingWraparound(t *testing.T) {
	f, r := newFakeRing(t, 1)
	var rec Record
	seq, want := 0, 0
	sawLost := false
	sizes := []int{1, 4, 7, 60, 64, 100, 250, 1000, 13, 3}
	for round := 0; round < 200; round++ {
		// Fill up to ~3/4 of the ring, then drain it.
		for f.head-f.tail() < uint64(len(f.data))*3/4-1100 {
			n := sizes[seq%len(sizes)]
			switch seq % 17 {
			case 5:
				f.lost(uint64(seq))
			case 11:
				f.other(16)
			}
			f.sample(payload(seq, n))
			seq++
		}
		f.publish()
		for want < seq {
			ok := false
			for !ok {
				if r.tail == r.head && !r.refresh() {
					t.Fatalf("ring empty at record %d of %d", want, seq)
				}
				var err error
				if ok, err = r.next(&rec); err != nil {
					t.Fatal(err)
				}
			}
			if want%17 == 5 && !sawLost {
				if rec.LostSamples != uint64(want) || len(rec.RawSample) != 0 || rec.CPU != 3 {
					t.Fatalf("record %d: want lost notice of %d, got %+v", want, want, rec)
				}
				sawLost = true
				continue
			}
			sawLost = false
			if rec.LostSamples != 0 {
				t.Fatalf("record %d: unexpected lost notice %d", want, rec.LostSamples)
			}
			exp := payload(want, sizes[want%len(sizes)])
			if rec.CPU != 3 || !bytes.Equal(rec.RawSample[:len(exp)], exp) {
				t.Fatalf("record %d: cpu %d got %x want %x", want, rec.CPU, rec.RawSample, exp)
			}
			if pad := len(rec.RawSample) - len(exp); pad < 0 || pad > 7 || (len(rec.RawSample)+4)%8 != 0 {
				t.Fatalf("record %d: raw size %d for %d bytes", want, len(rec.RawSample), len(exp))
			}
			want++
		}
		if r.tail == r.head && r.refresh() {
			t.Fatal("ring not empty after draining")
		}
		if f.tail() != f.head {
			t.Fatalf("tail %d not written back (head %d)", f.tail(), f.head)
		}
	}
	if f.head < 50*uint64(len(f.data)) {
		t.Fatalf("ring wrapped only %d times", f.head/uint64(len(f.data)))
	}
}

func TestPerfRingCorrupt(t *testing.T) {
	f, r := newFakeRing(t, 1)
	f.sample([]byte("ok"))
	bad := make([]byte, 8)
	binary.LittleEndian.PutUint32(bad, unix.PERF_RECORD_SAMPLE)
	binary.LittleEndian.PutUint16(bad[6:], 4000) // longer than what is pending
	f.put(bad)
	f.publish()
	var rec Record
	r.refresh()
	if ok, err := r.next(&rec); !ok || err != nil || string(rec.RawSample[:2]) != "ok" {
		t.Fatalf("first record: %v %v %q", ok, err, rec.RawSample)
	}
	if _, err := r.next(&rec); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt record: got %v", err)
	}
	if f.tail() != f.head {
		t.Fatal("corrupt ring not skipped")
	}
}

func unsafeAt(b []byte, off int) unsafe.Pointer { return unsafe.Pointer(&b[off]) }

// kernel is a fake producer that, like the kernel, writes into a ring only
// the space data_tail has handed back, and reports the samples it had to
// drop with a PERF_RECORD_LOST before its next sample.
type kernel struct {
	f       *fakeRing
	seq     uint64 // next sample's sequence number
	pending uint64 // dropped samples not yet reported
	lost    uint64 // dropped samples in all
}

func (k *kernel) space() uint64 { return uint64(len(k.f.data)) - (k.f.head - k.f.tail()) }

// emit submits one 64-byte sample (an 80-byte record).
func (k *kernel) emit() {
	if k.pending > 0 && k.space() >= 24+80 {
		k.f.lost(k.pending)
		k.pending = 0
	}
	if k.pending == 0 && k.space() >= 80 {
		k.f.sample(seqPayload(k.seq))
	} else {
		k.pending++
		k.lost++
	}
	k.seq++
	k.f.publish()
}

func seqPayload(seq uint64) []byte {
	b := make([]byte, 64)
	for i := 0; i < 8; i++ {
		binary.LittleEndian.PutUint64(b[8*i:], seq*7+uint64(i))
	}
	return b
}

// TestPerfRingTailAfterCopy: a record's space goes back to the kernel only
// once the record has been copied out. The fake kernel here refills the
// ring the moment data_tail moves, as a CPU flooding the ring does; a
// reader that wrote data_tail before copying the record would read what
// the kernel wrote over it (an empty or garbled sample).
func TestPerfRingTailAfterCopy(t *testing.T) {
	f, r := newFakeRing(t, 1)
	k := &kernel{f: f}
	r.onStore = func() {
		for i := 0; i < 100; i++ { // more than the ring holds
			k.emit()
		}
	}
	r.onStore() // start with a full ring
	var rec Record
	var received, lost uint64
	next := uint64(0) // lowest sequence number the next sample may have
	for round := 0; round < 5000; round++ {
		if r.tail == r.head && !r.refresh() {
			t.Fatal("ring empty although the kernel refills it")
		}
		ok, err := r.next(&rec)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		if rec.LostSamples > 0 {
			lost += rec.LostSamples
			continue
		}
		if len(rec.RawSample) != 68 {
			t.Fatalf("record %d: %d bytes, want 68: %x", received, len(rec.RawSample), rec.RawSample)
		}
		seq := binary.LittleEndian.Uint64(rec.RawSample) / 7
		if seq < next || !bytes.Equal(rec.RawSample[:64], seqPayload(seq)) || !bytes.Equal(rec.RawSample[64:], make([]byte, 4)) {
			t.Fatalf("record %d: got %x, want sequence number %d or more", received, rec.RawSample, next)
		}
		next = seq + 1
		received++
	}
	// Drain what is left: every sample is received or reported lost.
	r.onStore = nil
	for {
		if r.tail == r.head && !r.refresh() {
			break
		}
		if ok, err := r.next(&rec); err != nil {
			t.Fatal(err)
		} else if ok && rec.LostSamples > 0 {
			lost += rec.LostSamples
		} else if ok {
			received++
		}
	}
	lost += k.pending // not reported yet: no sample came after them
	if received+lost != k.seq || lost != k.lost || lost == 0 {
		t.Fatalf("received %d + lost %d != emitted %d (kernel dropped %d)", received, lost, k.seq, k.lost)
	}
}

// TestPerfRingValidates: what the reader finds in a damaged ring is an
// error, never a record, a loop or a bad data_tail (one beyond data_head,
// not a multiple of 8, or behind where the kernel can accept it).
func TestPerfRingValidates(t *testing.T) {
	hdr := func(typ uint32, size uint16, rest ...byte) []byte {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint32(b, typ)
		binary.LittleEndian.PutUint16(b[6:], size)
		return append(b, rest...)
	}
	u32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	u64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for _, tc := range []struct {
		name string
		bad  []byte // written after a good sample
		err  string // "" means: silently skipped
	}{
		{"zero size", hdr(unix.PERF_RECORD_SAMPLE, 0), "corrupt record"},
		{"size not a multiple of 8", cat(hdr(unix.PERF_RECORD_SAMPLE, 20), u32(8), make([]byte, 12)), "corrupt record"},
		{"size beyond head", cat(hdr(unix.PERF_RECORD_SAMPLE, 4000), u32(4), make([]byte, 4)), "corrupt record"},
		{"empty sample", cat(hdr(unix.PERF_RECORD_SAMPLE, 16), u32(0), make([]byte, 4)), "sample of 0 bytes"},
		{"sample overflows record", cat(hdr(unix.PERF_RECORD_SAMPLE, 16), u32(12), make([]byte, 4)), "sample of 12 bytes"},
		{"short sample", cat(hdr(unix.PERF_RECORD_SAMPLE, 8)), "short sample"},
		{"short lost", cat(hdr(unix.PERF_RECORD_LOST, 16), u64(1)), "short lost"},
		{"zero lost", cat(hdr(unix.PERF_RECORD_LOST, 24), u64(77), u64(0)), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, r := newFakeRing(t, 1)
			f.startAt(r, uint64(len(f.data))-96) // records straddle the end of the ring
			f.sample([]byte("first"))
			f.put(tc.bad)
			f.sample([]byte("after"))
			f.publish()
			var rec Record
			r.refresh()
			if ok, err := r.next(&rec); !ok || err != nil || string(rec.RawSample[:5]) != "first" {
				t.Fatalf("first record: %v %v %q", ok, err, rec.RawSample)
			}
			ok, err := r.next(&rec)
			if tc.err == "" {
				if !ok || err != nil || rec.LostSamples != 0 || string(rec.RawSample[:5]) != "after" {
					t.Fatalf("want the bad record skipped, got %v %v %+v", ok, err, rec)
				}
			} else if ok || err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("want error %q, got %v %v %+v", tc.err, ok, err, rec)
			}
			// Whatever happened, the ring can be read on to its end and
			// the tail handed back is the kernel's head.
			for i := 0; i < 10 && r.tail != r.head; i++ {
				r.next(&rec)
			}
			r.refresh()
			if r.tail != f.head || f.tail() != f.head {
				t.Fatalf("tail %d (written back %d), head %d", r.tail, f.tail(), f.head)
			}
		})
	}
}

// TestPerfRingBadHead: a data_head that moved backwards, is misaligned or
// claims more than the ring holds is reported, and never makes the reader
// write a data_tail beyond it.
func TestPerfRingBadHead(t *testing.T) {
	for _, tc := range []struct {
		name   string
		head   uint64
		resync bool // the reader skips to the head
	}{
		{"backwards", 4096 - 8, true},
		{"misaligned", 4096 + 28, false},
		{"beyond the ring", 4096 + 2<<20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, r := newFakeRing(t, 1)
			f.startAt(r, 4096)
			f.head = tc.head
			f.publish()
			var rec Record
			for i := 0; i < 3; i++ {
				more := r.refresh()
				ok, err := r.next(&rec)
				if i == 0 && (!more || ok || err == nil || !strings.Contains(err.Error(), "bad data_head")) {
					t.Fatalf("want a bad data_head error, got %v %v", ok, err)
				}
				if ok {
					t.Fatalf("bad ring produced a record: %+v", rec)
				}
				if tail := f.tail(); tail&7 != 0 || (tail != 4096 && tail != f.head) {
					t.Fatalf("data_tail %d written (head %d)", tail, f.head)
				}
			}
			if want := uint64(4096); tc.resync {
				if f.tail() != f.head {
					t.Fatalf("data_tail %d, want the head %d", f.tail(), f.head)
				}
			} else if f.tail() != want {
				t.Fatalf("data_tail %d moved", f.tail())
			}
		})
	}
}
