package bcc

/*
#cgo LDFLAGS: -lbcc
#include <stdlib.h>
#include <bcc/bcc_syms.h>
#include <bcc/bcc_proc.h>

extern int gobpfForeachSymCb(char *name, uint64_t addr);

static int gobpf_foreach_function_symbol(const char *module) {
	return bcc_foreach_function_symbol(module, (SYM_CB)gobpfForeachSymCb);
}
*/
import "C"

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/pkg/ksym"
)

// Symbol is an address resolved to the function containing it.
type Symbol struct {
	// Name is the function's (demangled) name; empty when only the module
	// containing the address is known.
	Name string
	// Offset is the address's offset from the start of the function, or
	// from the start of Module when Name is empty.
	Offset uint64
	// Module is the binary or shared library holding the function (a
	// path) for user addresses; for kernel addresses it is empty, or the
	// kernel module's name for symbols of loadable modules.
	Module string
	// Kernel reports whether the symbol comes from the kernel.
	Kernel bool
}

// String formats the symbol as "func+0x10" (kernel), "[module]func+0x10"
// (kernel module), "binary:func+0x10" (user) or "binary+0x1234" (user
// address in a binary without a matching symbol); a Symbol with neither
// name nor module prints as its offset ("0x1234"), or "" when zero.
func (s Symbol) String() string {
	switch {
	case s.Name == "" && s.Module == "":
		if s.Offset == 0 {
			return ""
		}
		return fmt.Sprintf("0x%x", s.Offset)
	case s.Kernel && s.Module != "" && s.Module != "kernel" && s.Module != "[kernel]":
		return fmt.Sprintf("%s+0x%x [%s]", s.Name, s.Offset, strings.Trim(s.Module, "[]"))
	case s.Kernel || s.Module == "":
		return fmt.Sprintf("%s+0x%x", s.Name, s.Offset)
	case s.Name == "":
		return fmt.Sprintf("%s+0x%x", s.Module, s.Offset)
	default:
		return fmt.Sprintf("%s:%s+0x%x", s.Module, s.Name, s.Offset)
	}
}

// SymbolCache resolves addresses of the kernel (pid -1) or of one process
// to symbols with libbcc's symbol cache. It is safe for concurrent use.
type SymbolCache struct {
	mu  sync.Mutex
	p   unsafe.Pointer // bcc's SymbolCache; nil once closed
	pid int
}

// NewSymbolCache returns a cache resolving addresses of process pid, or of
// the kernel when pid is -1 (or any negative value).
func NewSymbolCache(pid int) (*SymbolCache, error) {
	if pid < 0 {
		pid = -1
	} else if pid == 0 {
		return nil, errorf("symbol cache: invalid pid 0")
	}
	p := C.bcc_symcache_new(C.int(pid), nil)
	if p == nil {
		return nil, errorf("symbol cache for pid %d: libbcc could not create it", pid)
	}
	return &SymbolCache{p: p, pid: pid}, nil
}

// Pid returns the process whose addresses the cache resolves (-1: kernel).
func (c *SymbolCache) Pid() int { return c.pid }

// Resolve returns the symbol containing addr. When no function contains
// it, the error wraps ErrNotFound; for user addresses inside a mapped
// binary the returned Symbol still names the Module and the offset in it.
func (c *SymbolCache) Resolve(addr uint64) (Symbol, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.p == nil {
		return Symbol{}, errorf("symbol cache: %w", ErrClosed)
	}
	var sym C.struct_bcc_symbol
	var rc C.int
	if c.pid == -1 {
		rc = C.bcc_symcache_resolve_no_demangle(c.p, C.uint64_t(addr), &sym)
	} else {
		rc = C.bcc_symcache_resolve(c.p, C.uint64_t(addr), &sym)
		defer C.bcc_symbol_free_demangle_name(&sym)
	}
	s := Symbol{Kernel: c.pid == -1}
	if sym.module != nil {
		s.Module = C.GoString(sym.module)
	}
	if rc < 0 || sym.name == nil {
		if !s.Kernel {
			// libbcc gives the absolute address for mappings it
			// cannot open (a deleted binary, a memfd): take the
			// offset in the mapped file from the process's maps.
			if mod, off, ok := mappedFileOffset(c.pid, addr); ok {
				s.Module, s.Offset = mod, off
			} else if s.Module != "" {
				s.Offset = uint64(sym.offset)
			}
		}
		return s, errorf("no symbol at 0x%x in %s: %w", addr, c.what(), ErrNotFound)
	}
	s.Name = C.GoString(sym.name)
	if sym.demangle_name != nil {
		s.Name = C.GoString(sym.demangle_name)
	}
	s.Offset = uint64(sym.offset)
	if s.Kernel {
		// kallsyms often lists several names for one function
		// (__ia32_sys_getppid and __x64_sys_getppid); libbcc picks
		// any of them, so choose a preferred one deterministically.
		if name, ok := kernelAliases()[addr-s.Offset]; ok {
			s.Name = name
		}
	}
	return s, nil
}

// GetSymbolByAddr returns the (mangled) name of the function containing
// addr in process pid, or in the kernel when pid is -1; "" when no function
// contains it. Each call builds a fresh libbcc symbol cache: for many
// addresses use NewSymbolCache and SymbolCache.Resolve.
func (m *Module) GetSymbolByAddr(addr uint64, pid int) string {
	return symbolByAddr(addr, pid, false)
}

// GetDemangleSymbolByAddr is GetSymbolByAddr returning the demangled name
// (for C++ and Rust functions; other names are unchanged).
func (m *Module) GetDemangleSymbolByAddr(addr uint64, pid int) string {
	return symbolByAddr(addr, pid, true)
}

func symbolByAddr(addr uint64, pid int, demangle bool) string {
	if pid < 0 {
		pid = -1
	}
	p := C.bcc_symcache_new(C.int(pid), nil)
	if p == nil {
		return ""
	}
	defer C.bcc_free_symcache(p, C.int(pid))
	var sym C.struct_bcc_symbol
	if demangle {
		defer C.bcc_symbol_free_demangle_name(&sym)
		if C.bcc_symcache_resolve(p, C.uint64_t(addr), &sym) < 0 {
			return ""
		}
		if sym.demangle_name != nil {
			return C.GoString(sym.demangle_name)
		}
	} else if C.bcc_symcache_resolve_no_demangle(p, C.uint64_t(addr), &sym) < 0 {
		return ""
	}
	if sym.name == nil {
		return ""
	}
	return C.GoString(sym.name)
}

var (
	kernelAliasOnce sync.Once
	kernelAliasMap  map[uint64]string
)

// kernelAliases maps the address of each kernel function that has several
// names in /proc/kallsyms to its preferred name: a global symbol over a
// local one, then one without a compat prefix (__ia32_, __pfx_), then the
// one with the fewest leading underscores, then the first listed.
func kernelAliases() map[uint64]string {
	kernelAliasOnce.Do(func() {
		kernelAliasMap = map[uint64]string{}
		t, err := ksym.Load()
		if err != nil {
			return
		}
		type cand struct {
			name  string
			score [3]int
			n     int
		}
		best := map[uint64]cand{}
		for sym := range t.All() {
			switch sym.Type {
			case 't', 'T', 'w', 'W':
			default:
				continue
			}
			a := sym.Addr
			if a == 0 {
				continue
			}
			name := sym.Name
			c := cand{name: name}
			if sym.Type == 't' || sym.Type == 'w' {
				c.score[0] = 1
			}
			if strings.HasPrefix(name, "__ia32_") || strings.HasPrefix(name, "__pfx_") {
				c.score[1] = 1
			}
			c.score[2] = len(name) - len(strings.TrimLeft(name, "_"))
			old, seen := best[a]
			if !seen {
				c.n = 1
				best[a] = c
				continue
			}
			c.n = old.n + 1
			if !lessScore(c.score, old.score) {
				old.n = c.n
				c = old
			}
			best[a] = c
		}
		for a, c := range best {
			if c.n > 1 {
				kernelAliasMap[a] = c.name
			}
		}
	})
	return kernelAliasMap
}

func lessScore(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// ResolveName returns the address of symbol name in module as mapped in
// the cache's process: module is a path, a library short name ("c"), or
// "" for the process's main binary. For the kernel cache module is
// ignored. A symbol or module the process lacks gives an error wrapping
// ErrNotFound.
func (c *SymbolCache) ResolveName(module, name string) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.p == nil {
		return 0, errorf("symbol cache: %w", ErrClosed)
	}
	if c.pid == -1 {
		cm := C.CString(module)
		defer C.free(unsafe.Pointer(cm))
		cn := C.CString(name)
		defer C.free(unsafe.Pointer(cn))
		var addr C.uint64_t
		if C.bcc_symcache_resolve_name(c.p, cm, cn, &addr) < 0 {
			return 0, errorf("kernel symbol %q: %w", name, ErrNotFound)
		}
		return uint64(addr), nil
	}
	// libbcc 0.26's bcc_symcache_resolve_name misplaces symbols of
	// shared libraries; find the symbol's file offset and map it through
	// the process's mappings instead.
	if module == "" {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", c.pid))
		if err != nil {
			return 0, errorf("main binary of pid %d: %w", c.pid, ErrNotFound)
		}
		module = exe
	}
	path, off, err := bccResolveSymname(module, name, 0, c.pid)
	if err != nil {
		return 0, errorf("symbol %q in %q for %s: %w", name, module, c.what(), ErrNotFound)
	}
	addr, err := fileOffsetToAddr(c.pid, path, off)
	if err != nil {
		return 0, errorf("symbol %q in %q for %s: %w", name, module, c.what(), err)
	}
	return addr, nil
}

// mappedFileOffset returns the file mapped at addr in process pid and
// addr's offset in that file, from /proc/<pid>/maps.
func mappedFileOffset(pid int, addr uint64) (string, uint64, bool) {
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return "", 0, false
	}
	for _, l := range strings.Split(string(maps), "\n") {
		// start-end perms offset dev inode path (may hold spaces)
		fs := strings.Fields(l)
		if len(fs) < 6 || fs[4] == "0" {
			continue // anonymous
		}
		lo, hi, ok := strings.Cut(fs[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		off, err3 := strconv.ParseUint(fs[2], 16, 64)
		if err1 != nil || err2 != nil || err3 != nil || addr < start || addr >= end {
			continue
		}
		i := strings.Index(l, fs[5])
		return l[i:], addr - start + off, true
	}
	return "", 0, false
}

// fileOffsetToAddr returns where offset off of file path is mapped in pid.
func fileOffsetToAddr(pid int, path string, off uint64) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, ErrNotFound)
	}
	dev := fmt.Sprintf("%02x:%02x", unix.Major(st.Dev), unix.Minor(st.Dev))
	for _, l := range strings.Split(string(maps), "\n") {
		// start-end perms offset dev inode path
		fs := strings.Fields(l)
		if len(fs) < 6 || fs[4] != strconv.FormatUint(st.Ino, 10) || fs[3] != dev {
			continue
		}
		r := strings.SplitN(fs[0], "-", 2)
		if len(r) != 2 {
			continue
		}
		lo, err1 := strconv.ParseUint(r[0], 16, 64)
		hi, err2 := strconv.ParseUint(r[1], 16, 64)
		moff, err3 := strconv.ParseUint(fs[2], 16, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		if off >= moff && off < moff+(hi-lo) {
			return lo + off - moff, nil
		}
	}
	return 0, fmt.Errorf("offset 0x%x of %s is not mapped in pid %d: %w", off, path, pid, ErrNotFound)
}

// Refresh makes the cache re-read the process's mappings (or the kernel's
// symbols), e.g. after the process loaded new libraries.
func (c *SymbolCache) Refresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.p != nil {
		C.bcc_symcache_refresh(c.p)
	}
}

// Close frees the cache. It is safe to call more than once.
func (c *SymbolCache) Close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.p != nil {
		C.bcc_free_symcache(c.p, C.int(c.pid))
		c.p = nil
	}
}

func (c *SymbolCache) what() string {
	if c.pid == -1 {
		return "kernel"
	}
	return fmt.Sprintf("pid %d", c.pid)
}

var (
	kernelSymsOnce sync.Once
	kernelSyms     *SymbolCache
	kernelSymsErr  error
)

// ResolveKernelSymbol resolves a kernel address to its function, using a
// process-wide kernel symbol cache loaded on first use.
func ResolveKernelSymbol(addr uint64) (Symbol, error) {
	kernelSymsOnce.Do(func() {
		kernelSyms, kernelSymsErr = NewSymbolCache(-1)
	})
	if kernelSymsErr != nil {
		return Symbol{}, kernelSymsErr
	}
	return kernelSyms.Resolve(addr)
}

// ResolveSymbolAddress finds symbol in binaryOrLib — a path, or a library
// short name such as "c" for libc — and returns the binary's resolved path
// and the symbol's offset in the file, as uprobes want it. pid (or -1 for
// none) selects the process whose libraries and mount namespace are used.
// A pid that has exited gives an error wrapping ErrNotFound saying so.
func ResolveSymbolAddress(binaryOrLib, symbol string, pid int) (path string, addr uint64, err error) {
	if binaryOrLib == "" || symbol == "" {
		return "", 0, errorf("resolve symbol: binary and symbol must be non-empty")
	}
	return resolveSymbolPath(binaryOrLib, symbol, 0, pid)
}

// processGone returns an error wrapping ErrNotFound when pid (> 0) is not
// a running process (it exited, or is a zombie), else nil.
func processGone(pid int) error {
	if pid <= 0 {
		return nil
	}
	gone := errorf("process %d has exited: %w", pid, ErrNotFound)
	if err := unix.Kill(pid, 0); err == unix.ESRCH {
		return gone
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return gone
	}
	// "pid (comm) S ...": Z and X are a process that has exited.
	if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X') {
		return gone
	}
	return nil
}

// resolveSymbolPath returns the file and offset to place a uprobe on
// symname in module (gobpf's helper). A non-zero addr is used as the
// offset instead of looking symname up.
func resolveSymbolPath(module, symname string, addr uint64, pid int) (string, uint64, error) {
	if pid < 0 {
		pid = 0
	}
	if err := processGone(pid); err != nil {
		return "", 0, err
	}
	path, off, err := bccResolveSymname(module, symname, addr, pid)
	if err != nil {
		if gone := processGone(pid); gone != nil { // exited meanwhile
			return "", 0, gone
		}
		return "", 0, err
	}
	return path, off, nil
}

// bccResolveSymname wraps bcc_resolve_symname.
func bccResolveSymname(module, symname string, addr uint64, pid int) (string, uint64, error) {
	cm := C.CString(module)
	defer C.free(unsafe.Pointer(cm))
	var cs *C.char
	if symname != "" {
		cs = C.CString(symname)
		defer C.free(unsafe.Pointer(cs))
	}
	var sym C.struct_bcc_symbol
	if C.bcc_resolve_symname(cm, cs, C.uint64_t(addr), C.int(pid), nil, &sym) < 0 {
		if sym.module != nil {
			C.free(unsafe.Pointer(sym.module))
		}
		return "", 0, errorf("unable to locate symbol %q in %q: %w", symname, module, ErrNotFound)
	}
	path := C.GoString(sym.module)
	C.free(unsafe.Pointer(sym.module))
	return path, uint64(sym.offset), nil
}

// bccResolveName returns the address of symname in module as mapped in
// process pid (gobpf's helper).
func bccResolveName(module, symname string, pid int) (uint64, error) {
	c, err := NewSymbolCache(pid)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.ResolveName(module, symname)
}

// symbolAddress is one function symbol of a binary.
type symbolAddress struct {
	name string
	addr uint64
}

// foreachSym collects bcc_foreach_function_symbol's results; the C
// callback has no user pointer, so calls are serialized.
var foreachSym struct {
	mu   sync.Mutex
	syms []*symbolAddress
}

//export gobpfForeachSymCb
func gobpfForeachSymCb(name *C.char, addr C.uint64_t) C.int {
	foreachSym.syms = append(foreachSym.syms, &symbolAddress{C.GoString(name), uint64(addr)})
	return 0
}

var userSyms = struct {
	sync.Mutex
	m map[string][]*symbolAddress
}{m: map[string][]*symbolAddress{}}

// getUserSymbolsAndAddresses lists the function symbols of module (a path
// or library short name), cached per module.
func getUserSymbolsAndAddresses(module string) ([]*symbolAddress, error) {
	userSyms.Lock()
	defer userSyms.Unlock()
	if s, ok := userSyms.m[module]; ok {
		return s, nil
	}
	path := module
	if !strings.Contains(module, "/") {
		cm := C.CString(module)
		p := C.bcc_procutils_which_so(cm, 0)
		C.free(unsafe.Pointer(cm))
		if p == nil {
			return nil, errorf("library %q: %w", module, ErrNotFound)
		}
		path = C.GoString(p)
		C.free(unsafe.Pointer(p))
	}
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	foreachSym.mu.Lock()
	foreachSym.syms = nil
	rc := C.gobpf_foreach_function_symbol(cp)
	syms := foreachSym.syms
	foreachSym.syms = nil
	foreachSym.mu.Unlock()
	if rc < 0 {
		return nil, errorf("unable to list symbols of %q", path)
	}
	userSyms.m[module] = syms
	return syms, nil
}

// matchUserSymbols returns module's function symbols whose name matches
// the regular expression match.
func matchUserSymbols(module, match string) ([]*symbolAddress, error) {
	r, err := regexp.Compile(match)
	if err != nil {
		return nil, errorf("invalid regexp %q: %w", match, err)
	}
	syms, err := getUserSymbolsAndAddresses(module)
	if err != nil {
		return nil, err
	}
	var out []*symbolAddress
	for _, s := range syms {
		if r.MatchString(s.name) {
			out = append(out, s)
		}
	}
	return out, nil
}
