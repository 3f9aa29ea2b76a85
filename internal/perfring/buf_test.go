package perfring

import (
	"bytes"
	"testing"
	"unsafe"
)

// TestFillBuf: ReadBatchBuf's fill copies samples one after another into
// the caller's buffer (wrapped ones too), gives a sample that does not fit
// its own allocation, passes lost notices through and stops once less
// than minRoom bytes are left.
func TestFillBuf(t *testing.T) {
	f, ring := newFakeRing(t, 1)
	f.startAt(ring, uint64(len(f.data))-40) // the second sample wraps
	pr := &PerfReader{rings: []*perfRing{ring}}
	pr.src = pr
	f.sample(payload(0, 60)) // 60 bytes raw (60+4 is a multiple of 8)
	f.sample(payload(1, 60)) // 60 raw
	f.lost(5)
	f.sample(payload(2, 200)) // 204 raw: does not fit the rest of buf
	f.sample(payload(3, 4))   // 4 raw
	f.sample(payload(4, 4))
	f.sample(payload(5, 4)) // left for the next call
	f.publish()

	buf := make([]byte, 0, 132)
	recs := make([]Record, 8)
	k, used, err := pr.fillBuf(recs, buf, 8)
	if err != nil {
		t.Fatal(err)
	}
	// 60 + 60 in buf, the lost notice, 204 apart, 4 in buf (124 used,
	// 8 left: not less than minRoom), 4 in buf (128: 4 left, stop).
	if k != 6 || used != 128 {
		t.Fatalf("stored %d records using %d bytes, want 6 and 128", k, used)
	}
	inBuf := func(b []byte) bool {
		p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		base := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
		return p >= base && p < base+uintptr(cap(buf))
	}
	wantOff := 0
	for i, seq := range []int{0, 1, -1, 2, 3, 4} {
		rec := recs[i]
		if seq < 0 {
			if rec.LostSamples != 5 || len(rec.RawSample) != 0 {
				t.Fatalf("record %d: want a lost notice of 5, got %+v", i, rec)
			}
			continue
		}
		n := map[int]int{0: 60, 1: 60, 2: 200, 3: 4, 4: 4}[seq]
		if rec.LostSamples != 0 || !bytes.Equal(rec.RawSample[:n], payload(seq, n)) {
			t.Fatalf("record %d: got %x", i, rec.RawSample)
		}
		if len(rec.RawSample) != cap(rec.RawSample) {
			t.Fatalf("record %d: len %d cap %d: not a full slice", i, len(rec.RawSample), cap(rec.RawSample))
		}
		if seq == 2 {
			if inBuf(rec.RawSample) {
				t.Fatal("the sample too big for the rest of buf was stored in buf")
			}
			continue
		}
		if !inBuf(rec.RawSample) || &rec.RawSample[0] != &buf[:cap(buf)][wantOff] {
			t.Fatalf("record %d not at offset %d of buf", i, wantOff)
		}
		wantOff += len(rec.RawSample)
	}
	buf2 := make([]byte, 0, 64)
	if k, used, err := pr.fillBuf(recs, buf2, 8); err != nil || k != 1 || used != 4 ||
		&recs[0].RawSample[0] != &buf2[:1][0] || !bytes.Equal(recs[0].RawSample, payload(5, 4)) {
		t.Fatalf("next call: %d records, %d bytes, %v: %+v", k, used, err, recs[0])
	}
	if f.tail() != f.head {
		t.Fatalf("tail %d not written back (head %d)", f.tail(), f.head)
	}
}
