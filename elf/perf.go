package elf

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/chanpump"
	"github.com/iovisor/gobpf/internal/perfring"
)

// PerfMap reads the records BPF programs write to a perf event array with
// bpf_perf_event_output, and sends them to a channel.
type PerfMap struct {
	name         string
	module       *Module
	receiverChan chan []byte
	lostChan     chan uint64
	timestamp    func(*[]byte) uint64

	mu     sync.Mutex
	reader *perfring.PerfReader
	back   *perfring.BackwardRings // overwritable rings instead of reader
	pages  int
	// pump is set by PollStart, under mu; Lost reads it without mu,
	// which a graceful PollStop holds while it waits for the receiver.
	pump    atomic.Pointer[chanpump.Pump]
	stopped bool
}

// InitPerfMap sets up the perf rings of the perf event array mapName (one
// per online CPU, SectionParams.PerfRingBufferPageCount pages each, 8 by
// default): from now on the kernel keeps the records until PollStart sends
// them to receiverChan. Lost-record counts go to lostChan when it is not
// nil. Each record is the program's data as the kernel delivers it: padded
// so that its length plus 4 is a multiple of 8. For a map loaded with
// overwritable rings (SectionParams PerfRingBufferBackward and
// PerfRingBufferOverwritable) it sets up those instead, read with
// DumpBackward and SwapAndDumpBackward.
func InitPerfMap(b *Module, mapName string, receiverChan chan []byte, lostChan chan uint64) (*PerfMap, error) {
	if b == nil {
		return nil, errors.New("elf: nil module")
	}
	if receiverChan == nil {
		return nil, errors.New("elf: receiverChan is nil")
	}
	if err := b.lockOpen("perf map", mapName); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	m, ok := b.maps[mapName]
	if !ok {
		return nil, fmt.Errorf("elf: no map with name %s: %w", mapName, ErrNotFound)
	}
	if m.def.Type != uint32(bpfsys.BPF_MAP_TYPE_PERF_EVENT_ARRAY) {
		return nil, fmt.Errorf("elf: map %s is not a perf event array (type %d)", mapName, m.def.Type)
	}
	pm := &PerfMap{name: mapName, module: b, receiverChan: receiverChan, lostChan: lostChan, pages: m.pageCount}
	if m.backward {
		back, err := perfring.OpenBackwardRings(m.fd, m.pageCount)
		if err != nil {
			return nil, fmt.Errorf("elf: perf map %s: %w", mapName, err)
		}
		pm.back = back
		b.perfMaps[pm] = true
		return pm, nil
	}
	r, err := perfring.NewPerfReader(m.fd, perfring.PerfReaderOptions{PageCount: m.pageCount})
	if err != nil {
		return nil, fmt.Errorf("elf: perf map %s: %w", mapName, err)
	}
	pm.reader = r
	b.perfMaps[pm] = true
	return pm, nil
}

// SetTimestampFunc registers a function that extracts a timestamp from a
// record (typically bpf_ktime_get_ns() written by the program): records
// read together are then sent in timestamp order.
func (pm *PerfMap) SetTimestampFunc(timestamp func(*[]byte) uint64) {
	pm.timestamp = timestamp
}

// PollStart starts sending records to the channels, from a goroutine
// that reads the rings in batches (see bcc's PerfMap: the same pump). It
// does nothing for a map with overwritable rings (SectionParams
// PerfRingBufferBackward and PerfRingBufferOverwritable): those are read
// with DumpBackward or SwapAndDumpBackward.
func (pm *PerfMap) PollStart() {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if pm.pump.Load() != nil || pm.stopped || pm.back != nil {
		return // overwritable rings are read with DumpBackward
	}
	r := pm.reader
	o := chanpump.Options{
		DrainPrep: func() { r.Pause() },
		Done: func() {
			close(pm.receiverChan)
			if pm.lostChan != nil {
				close(pm.lostChan)
			}
		},
	}
	if ts := pm.timestamp; ts != nil {
		o.Order = func(batch []perfring.Record) {
			sort.SliceStable(batch, func(i, j int) bool {
				if batch[i].LostSamples != 0 || batch[j].LostSamples != 0 {
					return false
				}
				return ts(&batch[i].RawSample) < ts(&batch[j].RawSample)
			})
		}
	}
	p := chanpump.New(r, pm.receiverChan, pm.lostChan, o)
	pm.pump.Store(p)
	p.Start()
}

// Lost returns how many records were lost so far: dropped by the kernel
// because a ring was full, and read but never handed over because
// PollStop gave up on the receiver or the module was closed.
func (pm *PerfMap) Lost() uint64 {
	p := pm.pump.Load()
	if p == nil {
		return 0
	}
	return p.Lost()
}

// PollStop stops the polling goroutine and releases the perf rings. It
// pauses the rings and hands over the records already read and those
// still in the rings as long as the receiver keeps taking them; once the
// receiver has taken nothing for 200 ms it counts the rest as lost (see
// Lost) and returns. When PollStart ran, the channels are then closed by
// the sender side: callers must not close them.
func (pm *PerfMap) PollStop() {
	pm.stop(true)
	pm.module.mu.Lock()
	delete(pm.module.perfMaps, pm)
	pm.module.mu.Unlock()
}

func (pm *PerfMap) stop(graceful bool) {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if pm.stopped {
		return
	}
	pm.stopped = true
	if pm.back != nil {
		pm.back.Close()
		return
	}
	if p := pm.pump.Load(); p != nil {
		p.Stop(graceful) // closes the reader
	} else {
		pm.reader.Close()
	}
}
