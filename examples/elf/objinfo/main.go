// Command objinfo loads a precompiled eBPF object with the elf package and
// prints its programs and maps.
//
//	clang -O2 -g -target bpf -I/usr/include/$(gcc -print-multiarch) -c tests/elf/elf_test.c -o /tmp/elf_test.o
//	sudo go run ./examples/elf/objinfo -obj /tmp/elf_test.o -pin maps/pinned_custom=gobpf_objinfo/pinned_custom
//
// Maps that Load pins are unpinned on exit unless -keep-pins is given (maps
// that were already pinned stay pinned).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/iovisor/gobpf/elf"
	"github.com/iovisor/gobpf/internal/bpfsys"
)

func main() {
	obj := flag.String("obj", "", "eBPF object file (clang -target bpf)")
	keep := flag.Bool("keep-pins", false, "keep the pins Load creates")
	params := map[string]elf.SectionParams{}
	flag.Func("pin", "`maps/NAME=PATH`: pin path (relative to /sys/fs/bpf) of a PIN_CUSTOM_NS map; repeatable", func(s string) error {
		sec, path, ok := strings.Cut(s, "=")
		if !ok || !strings.HasPrefix(sec, "maps/") || path == "" {
			return fmt.Errorf("want maps/NAME=PATH, got %q", s)
		}
		params[sec] = elf.SectionParams{PinPath: path}
		return nil
	})
	flag.Parse()
	if *obj == "" {
		fmt.Fprintln(os.Stderr, "usage: objinfo -obj FILE.o [-pin maps/NAME=PATH]...")
		os.Exit(2)
	}
	if err := run(*obj, params, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "objinfo:", err)
		os.Exit(1)
	}
}

type prog interface {
	Fd() int
	FuncName() string
}

func run(obj string, params map[string]elf.SectionParams, keepPins bool) error {
	m := elf.NewModule(obj)
	if err := m.Load(params); err != nil {
		return err // the verifier log, if any, is in err
	}
	closeOpts := map[string]elf.CloseOptions{}
	for mp := range m.IterMaps() {
		if mp.PinPath() != "" && !mp.Reused() && !keepPins {
			closeOpts["maps/"+mp.Name] = elf.CloseOptions{Unpin: true}
		}
	}
	defer m.CloseExt(closeOpts)

	fmt.Println("programs:")
	show := func(kind, name string, p prog) {
		info, err := bpfsys.GetProgInfo(p.Fd())
		id := "?"
		if err == nil {
			id = fmt.Sprint(info.ID)
		}
		fmt.Printf("  %-14s %-45s func=%-20s id=%s\n", kind, name, p.FuncName(), id)
	}
	for p := range m.IterKprobes() {
		show("kprobe", p.Name, p)
	}
	for p := range m.IterUprobes() {
		show("uprobe", p.Name, p)
	}
	for p := range m.IterTracepointProgram() {
		show("tracepoint", p.Name, p)
	}
	for p := range m.IterRawTracepointProgram() {
		show("raw_tracepoint", p.Name, p)
	}
	for p := range m.IterSocketFilter() {
		show("socket", p.Name, p)
	}
	for p := range m.IterCgroupProgram() {
		show("cgroup", p.Name, p)
	}
	for p := range m.IterXDPProgram() {
		show("xdp", p.Name, p)
	}
	for p := range m.IterSchedProgram() {
		show("sched", p.Name, p)
	}
	fmt.Println("maps:")
	for mp := range m.IterMaps() {
		d := mp.Def()
		src := "maps/" + mp.Name
		if d.BTF {
			src = ".maps"
		}
		fmt.Printf("  %-16s type=%-2d key=%-3d value=%-4d max=%-5d flags=%#x src=%s", mp.Name, d.Type, d.KeySize, d.ValueSize, d.MaxEntries, d.MapFlags, src)
		if p := mp.PinPath(); p != "" {
			fmt.Printf(" pinned=%s", p)
		}
		fmt.Println()
	}
	return nil
}
