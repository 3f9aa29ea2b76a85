package perfring

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeBackRing emulates the kernel writing n samples backward into a
// ring of size bytes: record i carries the byte i, 28 data bytes, 40 bytes
// in all.
func fakeBackRing(size uint64, n int) *backRing {
	const page = 2048
	mem := make([]byte, page+size)
	data := mem[page:]
	var head uint64
	for i := 0; i < n; i++ {
		rec := make([]byte, 40)
		binary.LittleEndian.PutUint32(rec[0:], unix.PERF_RECORD_SAMPLE)
		binary.LittleEndian.PutUint16(rec[6:], 40)
		binary.LittleEndian.PutUint32(rec[8:], 28)
		for j := 12; j < 40; j++ {
			rec[j] = byte(i)
		}
		head -= 40
		for j, b := range rec {
			data[(head+uint64(j))&(size-1)] = b
		}
	}
	binary.LittleEndian.PutUint64(mem[offDataHead:], head)
	return &backRing{mem: mem, data: data}
}

func TestBackwardDump(t *testing.T) {
	for _, tc := range []struct {
		size       uint64
		n          int
		first, cnt int // oldest record returned, how many
	}{
		{256, 0, 0, 0},
		{256, 3, 0, 3},
		{256, 6, 0, 6},    // 240 of 256 bytes: not wrapped
		{256, 7, 1, 6},    // wrapped: the oldest is overwritten
		{256, 100, 94, 6}, // wrapped many times
		{4096, 1000, 898, 102},
	} {
		recs, err := fakeBackRing(tc.size, tc.n).dump()
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != tc.cnt {
			t.Errorf("%d records in %d bytes: dump returned %d, want %d", tc.n, tc.size, len(recs), tc.cnt)
			continue
		}
		for i, r := range recs {
			if len(r.RawSample) != 28 || r.RawSample[0] != byte(tc.first+i) || r.RawSample[27] != byte(tc.first+i) {
				t.Errorf("%d records in %d bytes: record %d = %v, want all %d", tc.n, tc.size, i, r.RawSample, byte(tc.first+i))
			}
		}
	}
	// A corrupt size is an error, not a loop.
	r := fakeBackRing(256, 3)
	head := binary.LittleEndian.Uint64(r.mem[offDataHead:])
	binary.LittleEndian.PutUint16(r.data[(head+6)&255:], 3)
	if _, err := r.dump(); err == nil {
		t.Error("no error for a corrupt record size")
	}
}
