package testutil

import (
	"bufio"
	"io"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The record generator of the perf delivery benchmarks: a process that
// makes n getppid calls in a tight loop once told to go (a byte on its
// stdin), pinned to the last CPU, and prints the loop's time in ns. A
// tracepoint program filtered to its pid submits a record per call.
const generatorSource = `
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 0;
	char c;
	if (read(0, &c, 1) != 1) /* wait for the go */
		return 1;
	if (argc > 2) { /* pin to one CPU: the reader gets the other */
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(atoi(argv[2]), &set);
		sched_setaffinity(0, sizeof set, &set);
	}
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%ld\n", (long)((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec)));
	return 0;
}
`

// GeneratorBinary builds the generator in tb's temporary folder and
// returns its path.
func GeneratorBinary(tb testing.TB) string {
	tb.Helper()
	return BuildC(tb, generatorSource, "-O2")
}

// Generator is a started generator process waiting for its go.
type Generator struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// StartGenerator starts bin (GeneratorBinary) for n calls; it waits for Go.
func StartGenerator(tb testing.TB, bin string, n int) *Generator {
	tb.Helper()
	// Pin the generator to the last CPU so that it and the reader do not
	// take turns on one core (the scheduler otherwise may stack them).
	cmd := exec.Command(bin, strconv.Itoa(n), strconv.Itoa(runtime.NumCPU()-1))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	return &Generator{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
}

// Pid is the generator's pid (the tgid its records carry).
func (g *Generator) Pid() int { return g.cmd.Process.Pid }

// Go starts the calls.
func (g *Generator) Go() { g.stdin.Write([]byte{1}) }

// Wait waits for the generator to end and returns its loop time.
func (g *Generator) Wait(tb testing.TB) time.Duration {
	tb.Helper()
	line, _ := g.out.ReadString('\n')
	g.stdin.Close()
	if err := g.cmd.Wait(); err != nil {
		tb.Fatalf("generator: %v", err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	if err != nil {
		tb.Fatalf("generator printed %q", line)
	}
	return time.Duration(ns)
}
