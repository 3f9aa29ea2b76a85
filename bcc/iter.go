package bcc

/*
#include <stdlib.h>
#include <linux/bpf.h>
#include <bcc/libbpf.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// LoadIter loads a BPF_ITER(target) program (an iterator: it runs once per
// object the kernel walks, task or bpf_map for example, and writes its
// output with bpf_seq_write/bpf_seq_printf). name is "bpf_iter__target" or
// "target". On a kernel that refuses tracing programs the error wraps
// ErrNotSupported.
func (m *Module) LoadIter(name string) (int, error) {
	prog, _, err := tracingProgName(name, iterPrefix, kfuncPrefix, kretfuncPrefix, lsmPrefix)
	if err != nil {
		return -1, errorf("load iterator %q: %w", name, err)
	}
	return m.loadTracing(fmt.Sprintf("load iterator %q", prog), prog, progTypeTracing, attachTraceIter)
}

// Iter is an attached BPF iterator. Each Open runs it anew and returns its
// output as a stream. Close detaches it (Module.Close does too); readers
// still open are closed with it.
type Iter struct {
	m    *Module
	name string

	mu      sync.Mutex
	link    int // -1 once closed
	readers map[*IterReader]struct{}
}

// AttachIter attaches an iterator program loaded with LoadIter (bcc's
// BPF_ITER) that needs no parameter, such as task or bpf_map.
func (m *Module) AttachIter(fd int) (*Iter, error) {
	return m.attachIter(fd, -1)
}

// AttachMapIter attaches an iterator over the elements of one map
// (BPF_ITER(bpf_map_elem), or a map type's own element iterator) to the map
// mapFd, e.g. a Table's Config()["fd"].
func (m *Module) AttachMapIter(fd, mapFd int) (*Iter, error) {
	if mapFd < 0 {
		return nil, errorf("attach map iterator: bad map fd %d", mapFd)
	}
	return m.attachIter(fd, mapFd)
}

func (m *Module) attachIter(fd, mapFd int) (*Iter, error) {
	what := fmt.Sprintf("attach iterator program fd %d", fd)
	if err := m.begin(what); err != nil {
		return nil, err
	}
	name := m.progName(fd)
	if name == "" || !strings.HasPrefix(name, iterPrefix) {
		m.mu.Unlock()
		return nil, errorf("%s: not a program this module loaded with LoadIter", what)
	}
	what = "attach iterator " + strings.TrimPrefix(name, iterPrefix)
	var info *C.union_bpf_iter_link_info
	var infoLen C.uint32_t
	if mapFd >= 0 {
		info = (*C.union_bpf_iter_link_info)(C.calloc(1, C.size_t(unsafe.Sizeof(C.union_bpf_iter_link_info{}))))
		defer C.free(unsafe.Pointer(info))
		*(*uint32)(unsafe.Pointer(info)) = uint32(mapFd) // .map.map_fd
		infoLen = C.uint32_t(unsafe.Sizeof(*info))
	}
	var res C.int
	var err error
	res, err = C.bcc_iter_attach(C.int(fd), info, infoLen)
	if res < 0 {
		m.mu.Unlock()
		en := errnoOf(err, unix.EINVAL)
		switch en {
		case unix.EPERM:
			return nil, tracingRefused(what, en)
		case unix.EBADF:
			return nil, errorf("%s: map fd %d is not a map: %v", what, mapFd, en)
		}
		return nil, attachFailure(what, en)
	}
	it := &Iter{m: m, name: name, link: int(res), readers: map[*IterReader]struct{}{}}
	m.owned = append(m.owned, it) // closed by Module.Close
	m.mu.Unlock()
	return it, nil
}

// Open runs the iterator and returns a reader of its output; the run ends
// (io.EOF) when the kernel has walked every object. Close the reader when
// done.
func (it *Iter) Open() (*IterReader, error) {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.link < 0 {
		return nil, errorf("open iterator %s: %w", it.name, ErrClosed)
	}
	fd, err := C.bcc_iter_create(C.int(it.link))
	if fd < 0 {
		en := errnoOf(err, unix.EINVAL)
		if en == unix.EPERM {
			return nil, tracingRefused("open iterator "+it.name, en)
		}
		return nil, errorf("open iterator %s: %w", it.name, en)
	}
	r := &IterReader{it: it, fd: int(fd)}
	it.readers[r] = struct{}{}
	return r, nil
}

// ReadAll runs the iterator once and returns all it wrote.
func (it *Iter) ReadAll() ([]byte, error) {
	r, err := it.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// Close detaches the iterator and closes its open readers. It is safe to
// call more than once.
func (it *Iter) Close() error {
	it.mu.Lock()
	if it.link < 0 {
		it.mu.Unlock()
		return nil
	}
	readers := it.readers
	it.readers = nil
	link := it.link
	it.link = -1
	it.mu.Unlock()
	for r := range readers {
		r.Close()
	}
	err := unix.Close(link)
	it.m.disown(it)
	return err
}

// IterReader is one run of an iterator (an io.ReadCloser). Reads and Close
// may come from different goroutines: a Read racing Close returns ErrClosed
// or finishes first, never reads a reused fd.
type IterReader struct {
	it *Iter
	mu sync.RWMutex // read-held around read(2), held by Close
	fd int          // -1 once closed
}

// Read reads the iterator's output; io.EOF ends it.
func (r *IterReader) Read(p []byte) (int, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.fd < 0 {
		return 0, errorf("read iterator: %w", ErrClosed)
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := unix.Read(r.fd, p)
		switch {
		case err == unix.EINTR || err == unix.EAGAIN:
			continue
		case err != nil:
			if errors.Is(err, unix.EPERM) {
				return 0, tracingRefused("read iterator "+r.it.name, err)
			}
			return 0, errorf("read iterator %s: %w", r.it.name, err)
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// Close ends the run. It is safe to call more than once.
func (r *IterReader) Close() error {
	r.mu.Lock()
	fd := r.fd
	r.fd = -1
	r.mu.Unlock()
	if fd < 0 {
		return nil
	}
	r.it.mu.Lock()
	delete(r.it.readers, r)
	r.it.mu.Unlock()
	return unix.Close(fd)
}
