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
package bcc
