package bcc

/*
#cgo LDFLAGS: -lbcc
#include <stdlib.h>
#include <bcc/bcc_usdt.h>
#include <bcc/libbpf.h>

extern void gobpfUsdtProbeCb(struct bcc_usdt *probe);
extern void gobpfUsdtUprobeCb(char *bin, char *fn, uint64_t addr, int pid);

static void gobpf_usdt_foreach(void *ctx) {
	bcc_usdt_foreach(ctx, gobpfUsdtProbeCb);
}

static void gobpf_usdt_foreach_uprobe(void *ctx) {
	bcc_usdt_foreach_uprobe(ctx, (bcc_usdt_uprobe_cb)gobpfUsdtUprobeCb);
}
*/
import "C"

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"unsafe"
)

// USDTContext holds the user statically defined tracepoints (USDT probes)
// of a binary or of a running process, and which of them to trace with
// which BPF function. Pass it to NewModuleWithUSDT.
type USDTContext struct {
	mu      sync.Mutex
	p       unsafe.Pointer // bcc's USDT::Context; nil once closed
	pid     int            // -1 for a binary
	path    string
	enabled map[string]string // probe -> function
	used    bool              // handed to a module
}

// USDTProbe describes one probe of a context.
type USDTProbe struct {
	Provider string
	Name     string
	BinPath  string
	// Semaphore is the probe's semaphore address (0: none); a probe
	// with a semaphore only fires while the semaphore is non-zero.
	Semaphore       uint64
	SemaphoreOffset uint64 // file offset of the semaphore
	NumLocations    int
	NumArguments    int
}

// usdtMu serializes libbcc's USDT callbacks (they carry no user pointer)
// and bcc_usdt_genargs (it returns a static buffer).
var usdtMu sync.Mutex

var (
	usdtProbes  []USDTProbe
	usdtUprobes []usdtUprobe
)

type usdtUprobe struct {
	bin, fn string
	addr    uint64
	pid     int
}

//export gobpfUsdtProbeCb
func gobpfUsdtProbeCb(p *C.struct_bcc_usdt) {
	usdtProbes = append(usdtProbes, USDTProbe{
		Provider:        C.GoString(p.provider),
		Name:            C.GoString(p.name),
		BinPath:         C.GoString(p.bin_path),
		Semaphore:       uint64(p.semaphore),
		SemaphoreOffset: uint64(p.semaphore_offset),
		NumLocations:    int(p.num_locations),
		NumArguments:    int(p.num_arguments),
	})
}

//export gobpfUsdtUprobeCb
func gobpfUsdtUprobeCb(bin, fn *C.char, addr C.uint64_t, pid C.int) {
	usdtUprobes = append(usdtUprobes, usdtUprobe{C.GoString(bin), C.GoString(fn), uint64(addr), int(pid)})
}

// NewUSDTContext reads the USDT probes of a binary or shared library:
// a path, a program in $PATH, or a library short name ("c").
func NewUSDTContext(path string) (*USDTContext, error) {
	if path == "" {
		return nil, errorf("USDT context: empty path")
	}
	if strings.Contains(path, "/") {
		if _, err := os.Stat(path); err != nil {
			return nil, errorf("USDT context for %s: %w", path, ErrNotFound)
		}
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
	}
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	var p unsafe.Pointer
	printed := captureStderr(func() { p = C.bcc_usdt_new_frompath(cp) })
	if p == nil {
		return nil, usdtNewError(path, printed)
	}
	return &USDTContext{p: p, pid: -1, path: path, enabled: map[string]string{}}, nil
}

// NewUSDTContextFromPID reads the USDT probes of every binary and library
// mapped by the running process pid. Probes with a semaphore are enabled
// in that process by EnableProbe.
func NewUSDTContextFromPID(pid int) (*USDTContext, error) {
	return newUSDTContextPID(pid, "")
}

// NewUSDTContextFromPIDPath reads the USDT probes of one binary or library
// (an absolute path) as mapped by process pid.
func NewUSDTContextFromPIDPath(pid int, path string) (*USDTContext, error) {
	if !filepath.IsAbs(path) {
		return nil, errorf("USDT context for pid %d: path %q is not absolute", pid, path)
	}
	return newUSDTContextPID(pid, path)
}

func newUSDTContextPID(pid int, path string) (*USDTContext, error) {
	what := fmt.Sprintf("pid %d", pid)
	if pid <= 0 {
		return nil, errorf("USDT context: invalid pid %d", pid)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return nil, errorf("USDT context: process %d: %w", pid, ErrNotFound)
	}
	var cp *C.char
	if path != "" {
		what += " " + path
		if _, err := os.Stat(path); err != nil {
			return nil, errorf("USDT context for %s: %w", what, ErrNotFound)
		}
		cp = C.CString(path)
		defer C.free(unsafe.Pointer(cp))
	}
	var p unsafe.Pointer
	printed := captureStderr(func() { p = C.bcc_usdt_new_frompid(C.int(pid), cp) })
	if p == nil {
		if procExited(pid) {
			// A zombie, or gone meanwhile: libbcc found no mappings.
			return nil, errorf("USDT context: process %d has exited: %w", pid, ErrNotFound)
		}
		return nil, usdtNewError(what, printed)
	}
	return &USDTContext{p: p, pid: pid, path: path, enabled: map[string]string{}}, nil
}

// procExited tells whether process pid is gone or a zombie.
func procExited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// "pid (comm) S ...": comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	state := b[i+2]
	return state == 'Z' || state == 'X'
}

func usdtNewError(what, printed string) error {
	msg := fmt.Sprintf("bcc: USDT context for %s: libbcc could not read its probes", what)
	if p := strings.TrimSpace(printed); p != "" {
		msg += " (" + strings.ReplaceAll(p, "\n", "; ") + ")"
	}
	return fmt.Errorf("%s: %w", msg, ErrNotFound)
}

// Pid returns the context's process, or -1 for a binary's context.
func (u *USDTContext) Pid() int { return u.pid }

// Probes lists the context's probes.
func (u *USDTContext) Probes() ([]USDTProbe, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.p == nil {
		return nil, errorf("USDT probes: %w", ErrClosed)
	}
	return u.probesLocked(), nil
}

func (u *USDTContext) probesLocked() []USDTProbe {
	usdtMu.Lock()
	defer usdtMu.Unlock()
	usdtProbes = nil
	C.gobpf_usdt_foreach(u.p)
	out := usdtProbes
	usdtProbes = nil
	return out
}

// USDTArg describes an argument of a probe: its size in bytes and
// signedness, and the C type to read it into with bpf_usdt_readarg.
type USDTArg struct {
	Size   int
	Signed bool
	CType  string // e.g. "int32_t", "uint64_t"
}

// ProbeArgs describes the arguments of probe ("name" or "provider:name").
// Where the probe's locations disagree, the largest size wins, as in the
// argument readers libbcc generates.
func (u *USDTContext) ProbeArgs(probe string) ([]USDTArg, error) {
	what := fmt.Sprintf("USDT probe %q arguments", probe)
	provider, name := "", probe
	if i := strings.LastIndexByte(probe, ':'); i >= 0 {
		provider, name = probe[:i], probe[i+1:]
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.p == nil {
		return nil, errorf("%s: %w", what, ErrClosed)
	}
	var found []USDTProbe
	for _, p := range u.probesLocked() {
		if p.Name == name && (provider == "" || p.Provider == provider) {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		if len(found) == 0 {
			return nil, errorf("%s: no such probe in %s: %w", what, u.describe(), ErrNotFound)
		}
		return nil, errorf("%s: several providers have it: name it provider:name", what)
	}
	pr := found[0]
	cprov := C.CString(pr.Provider)
	defer C.free(unsafe.Pointer(cprov))
	cname := C.CString(pr.Name)
	defer C.free(unsafe.Pointer(cname))
	args := make([]USDTArg, pr.NumArguments)
	for i := range args {
		best := 0
		for loc := 0; loc < pr.NumLocations; loc++ {
			var a C.struct_bcc_usdt_argument
			if C.bcc_usdt_get_argument(u.p, cprov, cname, C.int(loc), C.int(i), &a) < 0 {
				return nil, errorf("%s: argument %d at location %d unreadable", what, i+1, loc)
			}
			sz := int(a.size)
			if usdtAbs(sz) > usdtAbs(best) {
				best = sz
			}
		}
		if best == 0 {
			best = 8 // libbcc's default: pointer size
		}
		args[i] = USDTArg{Size: usdtAbs(best), Signed: best < 0}
		if best < 0 {
			args[i].CType = fmt.Sprintf("int%d_t", -best*8)
		} else {
			args[i].CType = fmt.Sprintf("uint%d_t", best*8)
		}
	}
	return args, nil
}

func usdtAbs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

var cIdentRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// EnableProbe asks for the BPF function fnName to run at every location of
// probe, named "name" or "provider:name". In the program, the probe's
// arguments are read with bpf_usdt_readarg(N, ctx, &val) (N from 1), val
// of the argument's C type (see the probe's notes, readelf -n).
func (u *USDTContext) EnableProbe(probe, fnName string) error {
	what := fmt.Sprintf("enable USDT probe %q", probe)
	if !cIdentRe.MatchString(fnName) {
		return errorf("%s: %q is not a C function name", what, fnName)
	}
	provider, name := "", probe
	if i := strings.LastIndexByte(probe, ':'); i >= 0 {
		provider, name = probe[:i], probe[i+1:]
	}
	if name == "" {
		return errorf("%s: empty probe name", what)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.p == nil {
		return errorf("%s: %w", what, ErrClosed)
	}
	if u.used {
		return errorf("%s: the context is already used by a module", what)
	}
	var found []USDTProbe
	for _, p := range u.probesLocked() {
		if p.Name == name && (provider == "" || p.Provider == provider) {
			found = append(found, p)
		}
	}
	switch {
	case len(found) == 0:
		return errorf("%s: no such probe in %s: %w", what, u.describe(), ErrNotFound)
	case len(found) > 1:
		return errorf("%s: several providers have it (%s, %s): name it provider:name", what, found[0].Provider, found[1].Provider)
	}
	key := found[0].Provider + ":" + found[0].Name
	if fn, ok := u.enabled[key]; ok {
		return errorf("%s: already enabled (function %s)", what, fn)
	}
	if found[0].Semaphore != 0 && u.pid < 0 {
		return errorf("%s: the probe has a semaphore, which libbcc sets only in a running process: use NewUSDTContextFromPID: %w", what, ErrNotSupported)
	}
	cprov := C.CString(found[0].Provider)
	defer C.free(unsafe.Pointer(cprov))
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	cfn := C.CString(fnName)
	defer C.free(unsafe.Pointer(cfn))
	var rc C.int
	printed := captureStderr(func() {
		rc = C.bcc_usdt_enable_fully_specified_probe(u.p, cprov, cname, cfn)
	})
	if rc < 0 {
		msg := fmt.Sprintf("bcc: %s in %s: libbcc refused", what, u.describe())
		if p := strings.TrimSpace(printed); p != "" {
			msg += " (" + strings.ReplaceAll(p, "\n", "; ") + ")"
		}
		if found[0].Semaphore != 0 {
			msg += ": could not set the probe's semaphore"
		}
		return fmt.Errorf("%s", msg)
	}
	u.enabled[key] = fnName
	return nil
}

func (u *USDTContext) describe() string {
	if u.pid < 0 {
		return u.path
	}
	if u.path != "" {
		return fmt.Sprintf("pid %d (%s)", u.pid, u.path)
	}
	return fmt.Sprintf("pid %d", u.pid)
}

// Close frees the context; for a process's context it also clears the
// semaphores EnableProbe set. A module built from the context closes it
// too. It is safe to call more than once.
func (u *USDTContext) Close() {
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.p != nil {
		C.bcc_usdt_close(u.p)
		u.p = nil
	}
}

// usdtCloser lets a module close the contexts it was built from.
type usdtCloser struct{ u *USDTContext }

func (c *usdtCloser) Close() error {
	c.u.Close()
	return nil
}

// NewModuleWithUSDT compiles code, with the argument readers of the probes
// enabled in ctxs, loads each probe's function as a uprobe program and
// attaches it at every location of the probe (for a process's context,
// only in that process). The module takes ownership of ctxs and closes
// them when it closes.
func NewModuleWithUSDT(code string, cflags []string, ctxs ...*USDTContext) (*Module, error) {
	if len(ctxs) == 0 {
		return NewModuleWithError(code, cflags)
	}
	for i, u := range ctxs {
		if u == nil {
			return nil, errorf("USDT module: context %d is nil", i)
		}
		for _, v := range ctxs[:i] {
			if v == u {
				return nil, errorf("USDT module: context %d given twice", i)
			}
		}
	}
	// Lock every context for the whole build.
	for _, u := range ctxs {
		u.mu.Lock()
		defer u.mu.Unlock()
	}
	for i, u := range ctxs {
		if u.p == nil {
			return nil, errorf("USDT module: context %d: %w", i, ErrClosed)
		}
		if u.used {
			return nil, errorf("USDT module: context %d (%s) already used by a module", i, u.describe())
		}
		if len(u.enabled) == 0 {
			return nil, errorf("USDT module: context %d (%s) has no enabled probe", i, u.describe())
		}
	}
	args, err := usdtGenArgs(ctxs)
	if err != nil {
		return nil, err
	}
	m, err := NewModuleWithError(args+code, cflags)
	if err != nil {
		return nil, err
	}
	for _, u := range ctxs {
		if err := m.attachUSDT(u); err != nil {
			m.Close()
			return nil, err
		}
	}
	for _, u := range ctxs {
		u.used = true
		// m is not shared yet, so nothing can be closing it; checked anyway.
		if err := m.own(&usdtCloser{u}); err != nil {
			m.Close()
			return nil, errorf("USDT module: %w", err)
		}
	}
	return m, nil
}

// usdtGenArgs returns the C code of the bpf_usdt_readarg helpers.
func usdtGenArgs(ctxs []*USDTContext) (string, error) {
	arr := C.malloc(C.size_t(len(ctxs)) * C.size_t(unsafe.Sizeof(uintptr(0))))
	defer C.free(arr)
	s := unsafe.Slice((*unsafe.Pointer)(arr), len(ctxs))
	for i, u := range ctxs {
		s[i] = u.p
	}
	usdtMu.Lock()
	defer usdtMu.Unlock()
	var r *C.char
	printed := captureStderr(func() { r = C.bcc_usdt_genargs((*unsafe.Pointer)(arr), C.int(len(ctxs))) })
	if r == nil {
		msg := "bcc: USDT module: libbcc could not generate the probes' argument readers"
		if p := strings.TrimSpace(printed); p != "" {
			msg += " (" + strings.ReplaceAll(p, "\n", "; ") + ")"
		}
		return "", fmt.Errorf("%s", msg)
	}
	return C.GoString(r), nil
}

// attachUSDT loads and attaches the functions of u's enabled probes.
// u.mu is held.
func (m *Module) attachUSDT(u *USDTContext) error {
	usdtMu.Lock()
	usdtUprobes = nil
	C.gobpf_usdt_foreach_uprobe(u.p)
	ups := usdtUprobes
	usdtUprobes = nil
	usdtMu.Unlock()
	if len(ups) == 0 {
		return errorf("USDT module: %s: no location to attach to: %w", u.describe(), ErrNotFound)
	}
	for _, up := range ups {
		what := fmt.Sprintf("attach USDT function %s at %s:0x%x", up.fn, up.bin, up.addr)
		fd, err := m.LoadUprobe(up.fn)
		if err != nil {
			return err
		}
		// The location is a virtual address in the ELF file: uprobes
		// want a file offset.
		path, off, err := resolveSymbolPath(up.bin, "", up.addr, up.pid)
		if err != nil {
			return errorf("%s: %w", what, err)
		}
		if err := m.begin(what); err != nil {
			return err
		}
		// libbcc set the semaphores of a process's probes in the process, so
		// no reference counter offset is passed.
		err = m.attachUprobeLocked('p', BPF_PROBE_ENTRY, what, "usdt_", path, off, fd, up.pid)
		m.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}
