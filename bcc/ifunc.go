package bcc

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>

// gobpf_ifunc_impl looks symbol up in the already loaded library path and
// returns the address the dynamic linker resolved it to (for an indirect
// function, the chosen implementation) and its object's load base. 0 when
// the library is not loaded in this process.
static int gobpf_ifunc_impl(const char *path, const char *symbol, uintptr_t *addr, uintptr_t *base) {
	void *h = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);
	if (!h)
		return -1;
	void *p = dlsym(h, symbol);
	Dl_info info;
	int ok = p && dladdr(p, &info) && info.dli_fname;
	if (ok) {
		struct stat a, b;
		ok = stat(path, &a) == 0 && stat(info.dli_fname, &b) == 0 &&
		     a.st_dev == b.st_dev && a.st_ino == b.st_ino;
		*addr = (uintptr_t)p;
		*base = (uintptr_t)info.dli_fbase;
	}
	dlclose(h);
	return ok ? 0 : -1;
}
*/
import "C"

import (
	"debug/elf"
	"unsafe"
)

// sttGnuIfunc is STT_GNU_IFUNC, a symbol whose value is a resolver that
// returns the implementation to use (glibc's strlen, memcpy, ...).
const sttGnuIfunc = elf.SymType(10)

// ifuncImplOffset returns, when symbol is an indirect function of the
// library path, the file offset of the implementation the dynamic linker
// picks on this machine: a uprobe on the indirect symbol itself would fire
// only when the resolver runs. ok is false otherwise, or when the library
// is not loaded in this process (it is never loaded just for this).
func ifuncImplOffset(path, symbol string) (off uint64, ok bool) {
	f, err := elf.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	isIfunc := false
	for _, list := range []func() ([]elf.Symbol, error){f.DynamicSymbols, f.Symbols} {
		syms, _ := list()
		for _, s := range syms {
			if s.Name == symbol && elf.ST_TYPE(s.Info) == sttGnuIfunc {
				isIfunc = true
			}
		}
	}
	if !isIfunc {
		return 0, false
	}
	cp, cs := C.CString(path), C.CString(symbol)
	defer C.free(unsafe.Pointer(cp))
	defer C.free(unsafe.Pointer(cs))
	var addr, base C.uintptr_t
	if C.gobpf_ifunc_impl(cp, cs, &addr, &base) != 0 || addr < base {
		return 0, false
	}
	vaddr := uint64(addr - base)
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && vaddr >= p.Vaddr && vaddr < p.Vaddr+p.Memsz {
			return vaddr - p.Vaddr + p.Off, true
		}
	}
	return 0, false
}
