package elf

import (
	"fmt"
	"sort"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/perfring"
)

// Overwritable perf rings (gobpf's flight recorder): a perf event array
// loaded with SectionParams PerfRingBufferBackward and
// PerfRingBufferOverwritable gets, at InitPerfMap, one backward-written,
// overwritable ring per online CPU (internal/perfring.BackwardRings). The
// kernel keeps the newest records there, overwriting the oldest; nobody
// consumes them. DumpBackward reads them (the rings are paused meanwhile);
// SwapAndDumpBackward swaps in fresh rings first.

// checkBackward validates the section parameters of overwritable rings.
func checkBackward(name string, def *mapSpec, params SectionParams) error {
	if def.Type != uint32(bpfsys.BPF_MAP_TYPE_PERF_EVENT_ARRAY) {
		return fmt.Errorf("elf: map %q: backward/overwritable perf rings need a perf event array, not map type %d", name, def.Type)
	}
	if !params.PerfRingBufferBackward || !params.PerfRingBufferOverwritable {
		return fmt.Errorf("elf: map %q: perf rings that are only backward or only overwritable are %w (set both PerfRingBufferBackward and PerfRingBufferOverwritable)",
			name, ErrNotSupported)
	}
	return nil
}

// dumpBackward reads rings; the caller holds pm.mu.
func (pm *PerfMap) dumpBackward(rings *perfring.BackwardRings) [][]byte {
	if pm.stopped {
		return nil
	}
	recs, _ := rings.Dump() // on a damaged ring: what could be read
	out := make([][]byte, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.RawSample)
	}
	if pm.timestamp != nil {
		sort.Stable(OrderedBytesArray{bytesArray: out, timestamp: pm.timestamp})
	}
	return out
}

func (pm *PerfMap) swapAndDumpBackward() [][]byte {
	// Lock order: the module's lock (map fd guard), then pm.mu.
	mp := get(pm.module, &pm.module.maps, pm.name)
	fd, err := mp.acquire()
	if err != nil {
		return nil
	}
	defer mp.release()
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if pm.stopped {
		return nil
	}
	fresh, err := perfring.OpenBackwardRings(fd, pm.pages)
	if err != nil {
		return nil
	}
	old := pm.back
	pm.back = fresh
	out := pm.dumpBackward(old)
	old.Close()
	return out
}
