package perfring

import (
	"sync"
	"unsafe"

	"github.com/iovisor/gobpf/internal/bpfsys"
)

// A perf event array slot (one per CPU) holds one perf event: the ring
// that receives what programs submit on that CPU. Several readers of this
// process may be open on one array (a PerfReader and a PerfMap, or a new
// reader opened before the old one is closed). The kernel cannot tell
// userspace which fd a slot holds (lookups of perf event arrays fail) nor
// delete a slot only if it holds a given fd, so readers keep the record
// here, per map id and CPU, under one lock:
//
//   - opening a reader installs its rings: the newest reader receives;
//   - closing a reader whose ring is the newest in a slot hands the slot
//     back to the previous reader still open (or empties it when there is
//     none); closing an older reader leaves the slot alone.
//
// So closing one reader never unplugs another. Readers in other processes
// writing the same array are beyond this record: the last writer wins.
var slots = struct {
	mu     sync.Mutex
	owners map[slotKey][]*perfRing // oldest first
}{owners: map[slotKey][]*perfRing{}}

type slotKey struct {
	mapID uint32
	cpu   int
}

// plug stores ring in its CPU's slot of the perf event array mapFD (whose
// id is mapID) and records it as the slot's newest owner.
func plug(mapFD int, mapID uint32, ring *perfRing) error {
	slots.mu.Lock()
	defer slots.mu.Unlock()
	key, val := uint32(ring.cpu), uint32(ring.fd)
	if err := bpfsys.MapUpdateElem(mapFD, unsafe.Pointer(&key), unsafe.Pointer(&val), bpfsys.BPF_ANY); err != nil {
		return err
	}
	k := slotKey{mapID, ring.cpu}
	slots.owners[k] = append(slots.owners[k], ring)
	return nil
}

// unplug forgets ring as an owner of its slot. If it was the newest, the
// slot goes to the previous owner still open, or is emptied. A ring that
// plug never stored is ignored. The caller closes ring's fd afterwards.
func unplug(mapFD int, mapID uint32, ring *perfRing) {
	slots.mu.Lock()
	defer slots.mu.Unlock()
	k := slotKey{mapID, ring.cpu}
	owners := slots.owners[k]
	i := len(owners) - 1
	for i >= 0 && owners[i] != ring {
		i--
	}
	if i < 0 {
		return
	}
	newest := i == len(owners)-1
	owners = append(owners[:i], owners[i+1:]...)
	if len(owners) == 0 {
		delete(slots.owners, k)
	} else {
		slots.owners[k] = owners
	}
	if !newest {
		return
	}
	key := uint32(ring.cpu)
	if len(owners) > 0 {
		val := uint32(owners[len(owners)-1].fd)
		if bpfsys.MapUpdateElem(mapFD, unsafe.Pointer(&key), unsafe.Pointer(&val), bpfsys.BPF_ANY) == nil {
			return
		}
	}
	bpfsys.MapDeleteElem(mapFD, unsafe.Pointer(&key))
}
