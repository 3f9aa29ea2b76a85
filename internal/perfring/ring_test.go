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
