package bcc

import "github.com/iovisor/gobpf/internal/chanpump"

// The channel APIs (PerfMap, RingBuf) run one goroutine, a pump
// (internal/chanpump), per reader: it reads the rings in batches and
// hands the records over on the caller's channel, keeping a bounded queue
// of its own while the receiver is slow. The module owns each pump:
// Module.Close stops it without waiting for the receiver.

// StopGrace is how long Stop waits for the receiver to take the next
// pending record before it gives up and counts the rest as lost.
const StopGrace = chanpump.StopGrace

// pump is a chanpump.Pump the module owns.
type pump struct {
	*chanpump.Pump
	m      *Module
	closer *pumpCloser
}

type pumpCloser struct{ p *pump }

// Close is called by Module.Close: stop without waiting for the receiver.
func (c *pumpCloser) Close() error {
	c.p.finish(false)
	return nil
}

// newPump registers a pump over r with m; after Module.Close began it
// returns ErrClosed (the caller closes r).
func newPump(r chanpump.Reader, m *Module, receiver chan []byte, lost chan uint64, o chanpump.Options) (*pump, error) {
	p := &pump{Pump: chanpump.New(r, receiver, lost, o), m: m}
	p.closer = &pumpCloser{p}
	if err := m.own(p.closer); err != nil {
		return nil, err
	}
	return p, nil
}

// finish stops the pump (gracefully: see PerfMap.Stop) and forgets it.
func (p *pump) finish(graceful bool) {
	p.Pump.Stop(graceful)
	p.m.disown(p.closer)
}
