package bcc

/*
#cgo LDFLAGS: -lbcc
#include <stdlib.h>
#include <bcc/bcc_common.h>
#include <bcc/libbpf.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Module is a compiled bcc C program: its functions, tables and everything
// attached from it. All methods are safe for concurrent use.
type Module struct {
	mu     sync.Mutex
	p      unsafe.Pointer // bcc's ebpf::BPFModule; nil once closed
	funcs  map[string]int // loaded program fds by function name
	detach []func() error // undo each attachment, in attach order
	owned  []io.Closer    // readers (perf maps, ring buffers) closed with the module

	xdp map[string]uint64 // device -> token of the attachment Close must undo
	seq uint64            // XDP attachment tokens

	net *netAttachments // tc, TCX, cgroup, socket map and socket filter attachments
}

// Program types (enum bpf_prog_type), for Load.
const (
	BPF_PROG_TYPE_UNSPEC = iota
	BPF_PROG_TYPE_SOCKET_FILTER
	BPF_PROG_TYPE_KPROBE
	BPF_PROG_TYPE_SCHED_CLS
	BPF_PROG_TYPE_SCHED_ACT
	BPF_PROG_TYPE_TRACEPOINT
	BPF_PROG_TYPE_XDP
	BPF_PROG_TYPE_PERF_EVENT
	BPF_PROG_TYPE_CGROUP_SKB
	BPF_PROG_TYPE_CGROUP_SOCK
	BPF_PROG_TYPE_LWT_IN
	BPF_PROG_TYPE_LWT_OUT
	BPF_PROG_TYPE_LWT_XMIT
	BPF_PROG_TYPE_SOCK_OPS
	BPF_PROG_TYPE_SK_SKB
	BPF_PROG_TYPE_CGROUP_DEVICE
	BPF_PROG_TYPE_SK_MSG
	BPF_PROG_TYPE_RAW_TRACEPOINT
	BPF_PROG_TYPE_CGROUP_SOCK_ADDR
)

// Probe attach types, as bcc's enum bpf_probe_attach_type.
const (
	BPF_PROBE_ENTRY = iota
	BPF_PROBE_RETURN
)

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

// stderrMu serializes the redirections of fd 2 done by captureStderr.
var stderrMu sync.Mutex

// captureStderr runs f with file descriptor 2 redirected into a pipe and
// returns what was written there: libbcc prints clang's diagnostics, the
// verifier log and attach failures to stderr rather than returning them.
// A goroutine drains the pipe while f runs so that a large output cannot
// block the writer. Anything else the process writes to fd 2 meanwhile is
// captured too. A child process that inherited the redirected fd 2 cannot
// hold the capture open: once f returns, what is in the pipe is taken and
// the rest ignored.
func captureStderr(f func()) string {
	stderrMu.Lock()
	defer stderrMu.Unlock()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		f()
		return ""
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		f()
		return ""
	}
	defer unix.Close(wake)
	defer unix.Close(p[0])
	saved, err := unix.FcntlInt(2, unix.F_DUPFD_CLOEXEC, 3)
	if err == nil {
		if _, err = unix.FcntlInt(uintptr(p[0]), unix.F_SETFL, unix.O_NONBLOCK); err == nil {
			err = unix.Dup3(p[1], 2, 0)
		}
		if err != nil {
			unix.Close(saved)
		}
	}
	unix.Close(p[1])
	if err != nil {
		f()
		return ""
	}
	done := make(chan []byte, 1)
	go func() {
		var out []byte
		buf := make([]byte, 16<<10)
		stopping := false
		for {
			n, err := unix.Read(p[0], buf)
			if n > 0 {
				out = append(out, buf[:n]...)
				continue
			}
			if err == unix.EINTR {
				continue
			}
			if err != unix.EAGAIN || stopping {
				break // EOF, an error, or drained after f returned
			}
			fds := []unix.PollFd{{Fd: int32(p[0]), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}}
			if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
				break
			}
			stopping = fds[1].Revents != 0
		}
		done <- out
	}()
	f()
	unix.Dup3(saved, 2, 0) // drops the pipe's last write end in this process
	unix.Close(saved)
	one := [8]byte{1}
	unix.Write(wake, one[:])
	return string(<-done)
}

// NewModule compiles code with libbcc. It returns nil on failure, as
// gobpf does (clang's diagnostics are printed to stderr); use
// NewModuleWithError to get them in an error instead.
func NewModule(code string, cflags []string) *Module {
	m, err := NewModuleWithError(code, cflags)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return nil
	}
	return m
}

// CompileError is returned by NewModuleWithError when clang or libbcc
// rejects the program. Diagnostics holds what they printed.
type CompileError struct {
	Diagnostics string
}

func (e *CompileError) Error() string {
	d := strings.TrimSpace(e.Diagnostics)
	if d == "" {
		return "bcc: failed to compile module (libbcc printed no diagnostics)"
	}
	return "bcc: failed to compile module:\n" + d
}

// NewModuleWithError compiles code with libbcc, returning clang's
// diagnostics in a *CompileError when it does not compile. Like gobpf,
// -DNUMCPUS=<number of CPUs> is added to cflags.
func NewModuleWithError(code string, cflags []string) (*Module, error) {
	all := append(append([]string(nil), cflags...), fmt.Sprintf("-DNUMCPUS=%d", runtime.NumCPU()))
	cs := C.CString(code)
	defer C.free(unsafe.Pointer(cs))
	arr := C.malloc(C.size_t(len(all)) * C.size_t(unsafe.Sizeof(uintptr(0))))
	defer C.free(arr)
	s := unsafe.Slice((**C.char)(arr), len(all))
	for i, f := range all {
		s[i] = C.CString(f)
		defer C.free(unsafe.Pointer(s[i]))
	}
	var p unsafe.Pointer
	diag := captureStderr(func() {
		p = C.bpf_module_create_c_from_string(cs, 0, (**C.char)(arr), C.int(len(all)), true, nil)
	})
	if p == nil {
		return nil, &CompileError{Diagnostics: diag}
	}
	if diag != "" {
		// Warnings of a successful compile: pass them on as libbcc would.
		os.Stderr.WriteString(diag)
	}
	return &Module{p: p, funcs: map[string]int{}, xdp: map[string]uint64{}}, nil
}

// Close detaches everything the module attached (in reverse order), closes
// its programs and readers, and frees the module. It is safe to call more
// than once; every other method returns ErrClosed afterwards.
func (m *Module) Close() {
	if m == nil {
		return
	}
	m.mu.Lock()
	owned := m.owned
	m.owned = nil
	m.mu.Unlock()
	for i := len(owned) - 1; i >= 0; i-- {
		owned[i].Close()
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

// LoadNet loads a program of type BPF_PROG_TYPE_SCHED_ACT (as gobpf does).
func (m *Module) LoadNet(name string) (int, error) {
	return m.Load(name, BPF_PROG_TYPE_SCHED_ACT, 0, 0)
}

// LoadSocketFilter loads a program of type BPF_PROG_TYPE_SOCKET_FILTER, to
// attach to a socket with setsockopt(SO_ATTACH_BPF).
func (m *Module) LoadSocketFilter(name string) (int, error) {
	return m.Load(name, BPF_PROG_TYPE_SOCKET_FILTER, 0, 0)
}

// LoadKprobe loads a program of type BPF_PROG_TYPE_KPROBE.
func (m *Module) LoadKprobe(name string) (int, error) {
	return m.Load(name, BPF_PROG_TYPE_KPROBE, 0, 0)
}

// LoadUprobe loads a program of type BPF_PROG_TYPE_KPROBE (uprobes share it).
func (m *Module) LoadUprobe(name string) (int, error) {
	return m.Load(name, BPF_PROG_TYPE_KPROBE, 0, 0)
}

// LoadTracepoint loads a program of type BPF_PROG_TYPE_TRACEPOINT.
func (m *Module) LoadTracepoint(name string) (int, error) {
	return m.Load(name, BPF_PROG_TYPE_TRACEPOINT, 0, 0)
}

// LoadRawTracepoint loads a program of type BPF_PROG_TYPE_RAW_TRACEPOINT.
func (m *Module) LoadRawTracepoint(name string) (int, error) {
	return m.Load(name, BPF_PROG_TYPE_RAW_TRACEPOINT, 0, 0)
}

// LoadPerfEvent loads a program of type BPF_PROG_TYPE_PERF_EVENT.
func (m *Module) LoadPerfEvent(name string) (int, error) {
	return m.Load(name, BPF_PROG_TYPE_PERF_EVENT, 0, 0)
}

// LoadXDP loads a program of type BPF_PROG_TYPE_XDP.
func (m *Module) LoadXDP(name string) (int, error) {
	return m.Load(name, BPF_PROG_TYPE_XDP, 0, 0)
}

// LoadError is a program the kernel refused to load.
type LoadError struct {
	Name string // the function
	Err  error  // the errno of bpf(BPF_PROG_LOAD)
	Log  string // the verifier log (and anything else libbcc printed)
}

func (e *LoadError) Error() string {
	s := fmt.Sprintf("bcc: loading program %q: %v", e.Name, e.Err)
	if l := strings.TrimSpace(e.Log); l != "" {
		s += "\nverifier log:\n" + l
	}
	return s
}

func (e *LoadError) Unwrap() error { return e.Err }

// maxLogSize is the verifier log buffer used when a failed load gave no log.
const maxLogSize = 16 << 20

// Load loads the function name as a program of type progType and returns
// its fd, owned by the module. Loading a function again returns the same
// fd. logLevel and logSize ask the verifier for a log (0, 0 for none); a
// rejection returns a *LoadError whose message holds the verifier log,
// retrying with log level 1 when the first attempt produced none.
func (m *Module) Load(name string, progType int, logLevel, logSize uint) (int, error) {
	return m.load(name, progType, -1, logLevel, logSize)
}

// load is Load with the program's expected attach type (enum
// bpf_attach_type), which the kernel requires at load for some program
// types (cgroup sock_addr and sockopt, tracing); -1 passes none.
func (m *Module) load(name string, progType, attachType int, logLevel, logSize uint) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.ptr()
	if err != nil {
		return -1, fmt.Errorf("bcc: load %q: %w", name, err)
	}
	if fd, ok := m.funcs[name]; ok {
		return fd, nil
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	start := C.bpf_function_start(p, cname)
	size := C.bpf_function_size(p, cname)
	if start == nil {
		return -1, fmt.Errorf("bcc: function %q: %w in module", name, ErrNotFound)
	}
	fd, log, errno := m.loadOnce(p, cname, start, size, progType, attachType, logLevel, logSize)
	if fd < 0 && strings.TrimSpace(log) == "" {
		fd, log, errno = m.loadOnce(p, cname, start, size, progType, attachType, 1, maxLogSize)
	}
	if fd < 0 {
		if errno == nil {
			errno = unix.EINVAL
		}
		return -1, &LoadError{Name: name, Err: errno, Log: log}
	}
	m.funcs[name] = fd
	return fd, nil
}

func (m *Module) loadOnce(p unsafe.Pointer, cname *C.char, start unsafe.Pointer, size C.size_t, progType, attachType int, logLevel, logSize uint) (int, string, error) {
	var buf []byte
	var bufp *C.char
	if logSize > 0 {
		buf = make([]byte, logSize)
		bufp = (*C.char)(unsafe.Pointer(&buf[0]))
		if logLevel == 0 {
			logLevel = 1
		}
	}
	var fd C.int
	var errno error
	printed := captureStderr(func() {
		fd, errno = C.bcc_func_load(p, C.int(progType), cname, (*C.struct_bpf_insn)(start), C.int(size),
			C.bpf_module_license(p), C.bpf_module_kern_version(p), C.int(logLevel), bufp, C.uint(len(buf)), nil, C.int(attachType))
	})
	if fd >= 0 {
		return int(fd), "", nil
	}
	var log string
	if len(buf) > 0 {
		if i := strings.IndexByte(string(buf), 0); i >= 0 {
			log = string(buf[:i])
		} else {
			log = string(buf)
		}
	}
	if strings.TrimSpace(log) == "" {
		log = printed
	} else if pr := strings.TrimSpace(printed); pr != "" && !strings.Contains(log, pr) {
		log = log + "\n" + pr
	}
	var en unix.Errno
	if errors.As(errno, &en) && en != 0 {
		return -1, log, en
	}
	return -1, log, nil
}

// GetProgramTag returns the tag (a hash of the instructions) the kernel
// computed for the program behind fd.
func (m *Module) GetProgramTag(fd int) (uint64, error) {
	m.mu.Lock()
	_, err := m.ptr()
	m.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("bcc: program tag: %w", err)
	}
	var tag C.ulonglong
	r, errno := C.bpf_prog_get_tag(C.int(fd), &tag)
	if r < 0 {
		if errno == nil {
			errno = unix.EINVAL
		}
		return 0, fmt.Errorf("bcc: program tag of fd %d: %w", fd, errno)
	}
	return uint64(tag), nil
}
