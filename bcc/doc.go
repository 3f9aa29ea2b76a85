// Package bcc is a cgo binding over libbcc, the BPF Compiler Collection.
//
// A Go program hands NewModule C source; libbcc's in-process clang compiles
// it to eBPF. The module then loads its functions as programs
// (LoadTracepoint, LoadUprobe, ...), attaches them (AttachTracepoint,
// AttachUprobe, AttachXDP, ...), and exposes the maps the programs fill as
// Tables, perf maps (InitPerfMap) and ring buffers (InitRingBuf).
//
// The API follows github.com/iovisor/gobpf's bcc package; everything a
// module opens is released by Module.Close.
//
// Errors start with "bcc: " once and wrap the sentinels ErrClosed,
// ErrNotFound, ErrNotSupported and ErrKeyNotExist (errors.Is). A nil
// *Module (what NewModule returns on failure) behaves as a closed one.
//
// While libbcc compiles, fd 2 points at a pipe that collects clang's
// diagnostics for CompileError; whatever reaches fd 2 meanwhile is copied
// to the original stderr as well, and the runtime's crash output is set to
// the original stderr for that window (debug.SetCrashOutput; reset to none
// afterwards, replacing a crash output the program set). Nothing else
// redirects fd 2.
//
// Where the kprobe or uprobe PMU cannot be used, probes are entries of
// tracefs's kprobe_events/uprobe_events named "gobpf_<random nonce>_..."
// (libbcc appends "_bcc_<pid>"); the first probe a process registers
// removes the entries of processes that died without removing theirs.
package bcc
