package bcc

import (
	"encoding/binary"
	"fmt"

	"github.com/iovisor/gobpf/internal/bpfsys"
)

// sockMapKey identifies an AttachSockMap attachment for DetachSockMap.
type sockMapKey struct {
	table string
	fd    int
	typ   AttachType
}

// AttachSockMap attaches the program fd to the sockmap or sockhash table
// (BPF_SOCKMAP, BPF_SOCKHASH): an sk_msg program (LoadSkMsg) with
// BPF_SK_MSG_VERDICT runs on every sendmsg of the sockets in the map, and
// sk_skb programs (LoadSkSkb) with BPF_SK_SKB_STREAM_PARSER,
// BPF_SK_SKB_STREAM_VERDICT or BPF_SK_SKB_VERDICT on what they receive.
// The kernel gives a socket the programs its map has when the socket is
// added (Table.SetSocket): attach before adding sockets. DetachSockMap or
// Module.Close detaches the program.
func (m *Module) AttachSockMap(table string, fd int, attachType AttachType) error {
	what := fmt.Sprintf("attach %v program to table %s", attachType, table)
	t := NewTable(m.TableId(table), m)
	if t.err != nil {
		return fmt.Errorf("bcc: %s: %w", what, t.err)
	}
	if t.mapType != bpfsys.BPF_MAP_TYPE_SOCKMAP && t.mapType != bpfsys.BPF_MAP_TYPE_SOCKHASH {
		return fmt.Errorf("bcc: %s: not a sockmap or sockhash", what)
	}
	if err := m.begin(what); err != nil {
		return err
	}
	defer m.mu.Unlock()
	target, err := dupFd(t.fd)
	if err != nil {
		return fmt.Errorf("bcc: %s: %w", what, err)
	}
	return m.progAttach(what, sockMapKey{table, fd, attachType}, target, fd, attachType, 0)
}

// DetachSockMap detaches the program fd that AttachSockMap attached to
// table for attachType. Sockets already in the map keep running it until
// they leave the map.
func (m *Module) DetachSockMap(table string, fd int, attachType AttachType) error {
	what := fmt.Sprintf("detach %v program from table %s", attachType, table)
	if err := m.begin(what); err != nil {
		return err
	}
	defer m.mu.Unlock()
	return m.removeNet(what, sockMapKey{table, fd, attachType})
}

// SetSocket adds the socket sockFd (a TCP socket, established or
// listening, or a UDP or Unix socket on recent kernels) at key of a
// sockmap or sockhash table. The map holds the socket, not the fd: closing
// sockFd afterwards is fine.
func (t *Table) SetSocket(key []byte, sockFd int) error {
	if err := t.checkKey("Table.SetSocket", key); err != nil {
		return err
	}
	if t.mapType != bpfsys.BPF_MAP_TYPE_SOCKMAP && t.mapType != bpfsys.BPF_MAP_TYPE_SOCKHASH {
		return fmt.Errorf("bcc: Table.SetSocket %s: not a sockmap or sockhash", t.name)
	}
	if sockFd < 0 {
		return fmt.Errorf("bcc: Table.SetSocket %s: invalid socket fd %d", t.name, sockFd)
	}
	leaf := make([]byte, t.valueSize)
	if len(leaf) == 8 {
		binary.NativeEndian.PutUint64(leaf, uint64(sockFd))
	} else if len(leaf) == 4 {
		binary.NativeEndian.PutUint32(leaf, uint32(sockFd))
	} else {
		return fmt.Errorf("bcc: Table.SetSocket %s: %d-byte values, want 4 or 8", t.name, len(leaf))
	}
	if err := t.update(bptr(key), bptr(leaf), bpfsys.BPF_ANY); err != nil {
		return t.opError("Table.SetSocket", key, err)
	}
	return nil
}
