// Package compattest holds only a test: compat_test.go checks at compile
// time that the pkg/... packages keep the exported API of upstream
// github.com/iovisor/gobpf's pkg/... packages.
package compattest
