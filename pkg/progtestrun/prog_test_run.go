// Package progtestrun runs a loaded BPF program on test input with the
// kernel's BPF_PROG_TEST_RUN command, without attaching it anywhere. It
// supports the program types the kernel can test-run on packet data: XDP,
// socket filters, tc classifiers and actions, cgroup skb, lwt, flow
// dissector and others.
package progtestrun

import (
	"errors"
	"fmt"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"golang.org/x/sys/unix"
)

// Run runs the program behind progFd repeat times (0 means once) on a copy
// of data. For XDP programs data is the packet (xdp_md->data); for skb
// programs such as socket filters it becomes the skb's data and must hold at
// least an Ethernet header (14 bytes).
//
// The kernel parses the Ethernet header of skb input: for an IPv4 or IPv6
// EtherType the data must also hold the IP header, and programs that see
// packets from layer 3 (socket filters, cgroup skb) get skb->len without the
// Ethernet header and hand it back zeroed in dataOut.
//
// It returns the program's return value (of the last run), the average run
// time in nanoseconds, and the size of the packet after the run. When
// dataOut is not empty, the packet after the run is copied into it; if it
// does not fit, Run copies what fits and returns the values together with an
// error wrapping unix.ENOSPC, with dataOutSize the full size needed.
func Run(progFd int, repeat int, dataIn []byte, dataOut []byte) (returnValue int, duration int, dataOutSize int, err error) {
	if len(dataIn) == 0 {
		return -1, 0, 0, errors.New("progtestrun: no input data (need at least an Ethernet header, 14 bytes)")
	}
	if repeat < 0 || int64(repeat) > int64(^uint32(0)) {
		return -1, 0, 0, fmt.Errorf("progtestrun: repeat count %d out of range", repeat)
	}
	if progFd < 0 {
		return -1, 0, 0, fmt.Errorf("progtestrun: bad program fd %d", progFd)
	}
	a := bpfsys.TestRunAttr{ProgFd: progFd, DataIn: dataIn, DataOut: dataOut, Repeat: uint32(repeat)}
	err = bpfsys.ProgTestRun(&a)
	switch {
	case err == nil:
		return int(int32(a.Retval)), int(a.Duration), int(a.DataSizeOut), nil
	case errors.Is(err, unix.ENOSPC) && len(dataOut) > 0:
		return int(int32(a.Retval)), int(a.Duration), int(a.DataSizeOut),
			fmt.Errorf("progtestrun: output packet is %d bytes, dataOut holds %d: %w", a.DataSizeOut, len(dataOut), err)
	default:
		return -1, 0, 0, fmt.Errorf("progtestrun: %w", err)
	}
}
