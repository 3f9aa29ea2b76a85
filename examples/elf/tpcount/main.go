// Command tpcount counts tracepoint hits with a precompiled eBPF object,
// loaded by the elf package (no libbcc, no clang at run time when -obj is
// given). By default it counts every system call on the machine with
// tests/elf/tpcount.c, which it compiles with clang if -obj is not given:
//
//	clang -O2 -g -target bpf -I/usr/include/$(gcc -print-multiarch) -c tests/elf/tpcount.c -o /tmp/tpcount.o
//	sudo go run ./examples/elf/tpcount -obj /tmp/tpcount.o -duration 3s
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
	"unsafe"

	"github.com/iovisor/gobpf/elf"
)

func main() {
	obj := flag.String("obj", "", "eBPF object (default: compile tests/elf/tpcount.c with clang)")
	src := flag.String("src", "tests/elf/tpcount.c", "C source to compile when -obj is not given")
	sec := flag.String("section", "tracepoint/raw_syscalls/sys_enter", "tracepoint section to enable")
	mapName := flag.String("map", "counts", "array map whose entry 0 the program increments")
	duration := flag.Duration("duration", 5*time.Second, "how long to count")
	interval := flag.Duration("interval", time.Second, "how often to print")
	flag.Parse()
	if err := run(*obj, *src, *sec, *mapName, *duration, *interval); err != nil {
		fmt.Fprintln(os.Stderr, "tpcount:", err)
		os.Exit(1)
	}
}

func compile(src string) (string, func(), error) {
	dir, err := os.MkdirTemp("", "tpcount-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	out := filepath.Join(dir, "tpcount.o")
	args := []string{"-O2", "-g", "-target", "bpf"}
	incs, _ := filepath.Glob("/usr/include/*-linux-gnu*")
	for _, d := range incs {
		if _, err := os.Stat(filepath.Join(d, "asm", "types.h")); err == nil {
			args = append(args, "-I"+d)
		}
	}
	args = append(args, "-c", src, "-o", out)
	if b, err := exec.Command("clang", args...).CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("clang: %v\n%s", err, b)
	}
	return out, cleanup, nil
}

func run(obj, src, sec, mapName string, duration, interval time.Duration) error {
	if obj == "" {
		o, cleanup, err := compile(src)
		if err != nil {
			return err
		}
		defer cleanup()
		obj = o
	}
	m := elf.NewModule(obj)
	if err := m.Load(nil); err != nil {
		return err
	}
	defer m.Close()
	if err := m.EnableTracepoint(sec); err != nil {
		return err
	}
	counts := m.Map(mapName)
	if counts == nil {
		return fmt.Errorf("no map %q in %s", mapName, obj)
	}
	read := func() (uint64, error) {
		var k uint32
		var v uint64
		err := m.LookupElement(counts, unsafe.Pointer(&k), unsafe.Pointer(&v))
		return v, err
	}
	start := time.Now()
	var last uint64
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for range tick.C {
		v, err := read()
		if err != nil {
			return err
		}
		fmt.Printf("%6.1fs %s: %d (+%d)\n", time.Since(start).Seconds(), sec, v, v-last)
		last = v
		if time.Since(start) >= duration {
			return nil
		}
	}
	return nil
}
