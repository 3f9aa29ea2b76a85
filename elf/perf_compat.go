package elf

import (
	"errors"
	"fmt"
	"sort"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/perfring"
)

// This file holds the parts of gobpf's elf perf API that the ring reader in
// perf.go does not need itself but that gobpf users may name.

// PerfEventHeader matches struct perf_event_header of <linux/perf_event.h>.
type PerfEventHeader struct {
	Type      uint32
	Misc      uint16
	TotalSize uint16
}

// PerfEventSample matches the kernel's PERF_RECORD_SAMPLE layout for
// PERF_SAMPLE_RAW: a header, the raw size, then Size bytes of data.
type PerfEventSample struct {
	PerfEventHeader
	Size uint32
	data byte // first of Size bytes of data
}

// PerfEventLost matches the kernel's PERF_RECORD_LOST record.
type PerfEventLost struct {
	PerfEventHeader
	Id   uint64
	Lost uint64
}

// OrderedBytesArray sorts records by the timestamp function a PerfMap was
// given with SetTimestampFunc (it implements sort.Interface). Its zero value
// is empty.
type OrderedBytesArray struct {
	bytesArray [][]byte
	timestamp  func(*[]byte) uint64
}

// Len implements sort.Interface.
func (a OrderedBytesArray) Len() int { return len(a.bytesArray) }

// Swap implements sort.Interface.
func (a OrderedBytesArray) Swap(i, j int) {
	a.bytesArray[i], a.bytesArray[j] = a.bytesArray[j], a.bytesArray[i]
}

// Less implements sort.Interface.
func (a OrderedBytesArray) Less(i, j int) bool {
	return a.timestamp(&a.bytesArray[i]) < a.timestamp(&a.bytesArray[j])
}

// NowNanoseconds returns CLOCK_MONOTONIC in nanoseconds, the clock of
// bpf_ktime_get_ns().
func NowNanoseconds() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return uint64(ts.Sec)*1e9 + uint64(ts.Nsec)
}

// PerfMapStop stops BPF programs from writing to the perf event array
// mapName by removing every CPU's ring from it; records already in the rings
// can still be read.
func (b *Module) PerfMapStop(mapName string) error {
	if err := b.lockOpen("perf map stop", mapName); err != nil {
		return err
	}
	defer b.mu.Unlock()
	m, ok := b.maps[mapName]
	if !ok {
		return fmt.Errorf("elf: map %q not found: %w", mapName, ErrNotFound)
	}
	if m.def.Type != uint32(bpfsys.BPF_MAP_TYPE_PERF_EVENT_ARRAY) {
		return fmt.Errorf("elf: %q is not a perf map", mapName)
	}
	for i := uint32(0); i < m.def.MaxEntries; i++ {
		key := i
		if err := bpfsys.MapDeleteElem(m.fd, unsafe.Pointer(&key)); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("elf: perf map %q: removing cpu %d: %w", mapName, i, err)
		}
	}
	return nil
}

// DumpBackward returns the records currently held in the perf rings without
// waiting, in timestamp order when SetTimestampFunc was called (else oldest
// first on each CPU, CPU after CPU).
//
// With overwritable rings (SectionParams PerfRingBufferBackward and
// PerfRingBufferOverwritable, gobpf's flight recorder) these are the newest
// records, which stay in the rings: the next call returns them again, with
// what came since. With forward rings it drains them instead; it then
// returns nil while PollStart's goroutine is reading the rings. It returns
// nil after PollStop.
func (pm *PerfMap) DumpBackward() (out [][]byte) {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if pm.back != nil {
		return pm.dumpBackward(pm.back)
	}
	if pm.pump.Load() != nil || pm.stopped {
		return nil
	}
	recs := make([]perfring.Record, 64)
	for {
		for i := range recs {
			recs[i].RawSample = nil
		}
		n, err := pm.reader.ReadAvailable(recs)
		if err != nil || n == 0 {
			break
		}
		for _, rec := range recs[:n] {
			if rec.LostSamples == 0 {
				out = append(out, rec.RawSample)
			}
		}
	}
	if pm.timestamp != nil {
		sort.Stable(OrderedBytesArray{bytesArray: out, timestamp: pm.timestamp})
	}
	return out
}

// SwapAndDumpBackward stores fresh overwritable rings in the map, so that
// programs write there from now on, and returns the records of the old
// rings (as DumpBackward), which it then releases. With forward rings it is
// DumpBackward.
func (pm *PerfMap) SwapAndDumpBackward() (out [][]byte) {
	if pm.back == nil {
		return pm.DumpBackward()
	}
	return pm.swapAndDumpBackward()
}
