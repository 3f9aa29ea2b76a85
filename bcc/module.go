package bpf

/*
#cgo LDFLAGS: -lbcc
#include <stdlib.h>
#include <bcc/bcc_common.h>
#include <bcc/libbpf.h>
*/
import "C"

import (
	"fmt"
	"io"
	"sync"
	"unsafe"
)

// Module is a compiled bcc C program: its functions, tables and everything
// attached from it. All methods are safe for concurrent use.
type Module struct {
	mu     sync.Mutex
	p      unsafe.Pointer // bcc's ebpf::BPFModule; nil once closed
	funcs  map[string]int // loaded program fds by function name
	detach []func() error // undo each attachment, in attach order
	owned  []io.Closer    // readers (perf maps, ring buffers) closed with the module
}

// ptr returns the libbcc module pointer, or ErrClosed.
// The caller must hold m.mu.
func (m *Module) ptr() (unsafe.Pointer, error) {
	if m == nil || m.p == nil {
		return nil, ErrClosed
	}
	return m.p, nil
}

// own registers c to be closed when the module closes.
func (m *Module) own(c io.Closer) {
	m.mu.Lock()
	m.owned = append(m.owned, c)
	m.mu.Unlock()
}

// disown forgets c (it was closed by its owner).
func (m *Module) disown(c io.Closer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, o := range m.owned {
		if o == c {
			m.owned = append(m.owned[:i], m.owned[i+1:]...)
			return
		}
	}
}

// NewModule compiles code with libbcc. It returns nil on failure, as
// gobpf does; use NewModuleWithError to learn why.
func NewModule(code string, cflags []string) *Module {
	m, err := NewModuleWithError(code, cflags)
	if err != nil {
		return nil
	}
	return m
}

// NewModuleWithError compiles code with libbcc, returning clang's
// diagnostics in the error when it does not compile.
func NewModuleWithError(code string, cflags []string) (*Module, error) {
	cs := C.CString(code)
	defer C.free(unsafe.Pointer(cs))
	var cf **C.char
	if len(cflags) > 0 {
		arr := C.malloc(C.size_t(len(cflags)) * C.size_t(unsafe.Sizeof(uintptr(0))))
		defer C.free(arr)
		s := unsafe.Slice((**C.char)(arr), len(cflags))
		for i, f := range cflags {
			s[i] = C.CString(f)
			defer C.free(unsafe.Pointer(s[i]))
		}
		cf = (**C.char)(arr)
	}
	p := C.bpf_module_create_c_from_string(cs, 2, cf, C.int(len(cflags)), true, nil)
	if p == nil {
		return nil, fmt.Errorf("bpf: failed to compile module")
	}
	return &Module{p: p, funcs: map[string]int{}}, nil
}

// Close detaches everything the module attached, closes its programs and
// readers, and frees the module. It is safe to call more than once.
func (m *Module) Close() {
	if m == nil {
		return
	}
	m.mu.Lock()
	owned := m.owned
	m.owned = nil
	m.mu.Unlock()
	for _, c := range owned {
		c.Close()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.p == nil {
		return
	}
	for i := len(m.detach) - 1; i >= 0; i-- {
		m.detach[i]()
	}
	m.detach = nil
	for _, fd := range m.funcs {
		closeFd(fd)
	}
	m.funcs = nil
	C.bpf_module_destroy(m.p)
	m.p = nil
}
