package bcc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// sockFilterKey identifies a socket by its inode, for DetachSocketFilter
// and for Close to tell a socket from a later one reusing its fd number.
type sockFilterKey struct {
	dev, ino uint64
}

// socketIdentity returns the identity of the socket behind fd.
func socketIdentity(fd int) (sockFilterKey, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return sockFilterKey{}, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return sockFilterKey{}, errors.New("not a socket")
	}
	return sockFilterKey{st.Dev, st.Ino}, nil
}

// AttachSocketFilter attaches the BPF_PROG_TYPE_SOCKET_FILTER program
// progFd (LoadSocketFilter) to the socket sockFd with
// setsockopt(SO_ATTACH_BPF), as bcc's attach_socket does: the program sees
// each packet the socket receives and returns how many of its bytes to
// keep (0 drops it, -1 keeps it whole). It replaces any filter the socket
// had. DetachSocketFilter or Module.Close detaches it, Close only if
// sockFd still refers to the same socket.
func (m *Module) AttachSocketFilter(sockFd, progFd int) error {
	what := fmt.Sprintf("attach socket filter to fd %d", sockFd)
	key, err := socketIdentity(sockFd)
	if err != nil {
		return fmt.Errorf("bcc: %s: %w", what, err)
	}
	if err := m.begin(what); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if err := unix.SetsockoptInt(sockFd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, progFd); err != nil {
		return fmt.Errorf("bcc: %s: %w", what, err)
	}
	m.forgetNet(key) // the kernel replaced the socket's previous filter
	m.addNet(key, func() error {
		if k, err := socketIdentity(sockFd); err != nil || k != key {
			return nil // the socket is closed, and its filter with it
		}
		err := unix.SetsockoptInt(sockFd, unix.SOL_SOCKET, unix.SO_DETACH_BPF, 0)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	})
	return nil
}

// DetachSocketFilter detaches the filter AttachSocketFilter attached to
// the socket sockFd.
func (m *Module) DetachSocketFilter(sockFd int) error {
	what := fmt.Sprintf("detach socket filter from fd %d", sockFd)
	key, err := socketIdentity(sockFd)
	if err != nil {
		return fmt.Errorf("bcc: %s: %w", what, err)
	}
	if err := m.begin(what); err != nil {
		return err
	}
	defer m.mu.Unlock()
	return m.removeNet(what, key)
}

// forgetNet drops the records with key without undoing them. m.mu is held.
func (m *Module) forgetNet(key any) {
	if m.net == nil {
		return
	}
	l := m.net.list[:0]
	for _, a := range m.net.list {
		if a.key != key {
			l = append(l, a)
		}
	}
	m.net.list = l
}

// RawSocket is a packet socket bound to a network device with a socket
// filter program attached (AttachRawSocket). Read returns one packet,
// from its Ethernet header on, per call.
type RawSocket struct {
	f   *os.File
	fd  int
	m   *Module
	key *int // identity of its record in the module

	mu     sync.Mutex
	closed bool
	err    error
}

// AttachRawSocket opens a raw packet socket (AF_PACKET, all protocols)
// bound to devName and attaches the socket filter program progFd to it,
// as bcc Python's attach_raw_socket: the program chooses which packets the
// socket receives and how many bytes of each. The filter is attached
// before the socket is bound, so no unfiltered packet is ever queued.
// Close the RawSocket to detach; Module.Close closes it too.
func (m *Module) AttachRawSocket(devName string, progFd int) (*RawSocket, error) {
	what := fmt.Sprintf("attach raw socket to %s", devName)
	ifindex, err := deviceIndex(devName)
	if err != nil {
		return nil, fmt.Errorf("bcc: %s: %w", what, err)
	}
	if err := m.begin(what); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	// Protocol 0: the socket receives nothing until bound with a protocol.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("bcc: %s: socket: %w", what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, progFd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bcc: %s: %w", what, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bcc: %s: bind: %w", what, netErr(err))
	}
	s := &RawSocket{f: os.NewFile(uintptr(fd), "raw socket on "+devName), fd: fd, m: m, key: new(int)}
	m.addNet(s.key, s.close)
	return s, nil
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// Fd returns the socket's file descriptor (-1 once closed), for
// setsockopt and friends; the RawSocket keeps owning it.
func (s *RawSocket) Fd() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return -1
	}
	return s.fd
}

// Read reads one packet into p (truncated to len(p)), waiting for one.
func (s *RawSocket) Read(p []byte) (int, error) { return s.f.Read(p) }

// SetReadDeadline sets the deadline of Read (see os.File.SetReadDeadline).
func (s *RawSocket) SetReadDeadline(t time.Time) error { return s.f.SetReadDeadline(t) }

// Close closes the socket, which detaches its filter. It is safe to call
// more than once and after Module.Close.
func (s *RawSocket) Close() error {
	s.m.mu.Lock()
	s.m.forgetNet(s.key)
	s.m.mu.Unlock()
	return s.close()
}

func (s *RawSocket) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.err = s.f.Close()
	}
	return s.err
}
