# gobpf — see README.md. Every target that touches the kernel runs as root.
GO       ?= go
GOFLAGS  ?=
TESTFLAGS ?= -count=1 -timeout 12m
export GOFLAGS

.PHONY: all build setup setup-vm test test-vm fuzz bench demo fmt vet clean

all: build

build:
	$(GO) build ./...

setup:
	bash tests/setup

setup-vm:
	SETUP_VM=1 bash tests/setup

vet:
	$(GO) vet ./...

fmt:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The whole suite on this kernel, with real eBPF programs: the pure-Go
# packages as CGO_ENABLED=0 builds them, then every package (cgo) under the
# race detector, then bounded fuzzing.
test: setup fmt vet
	CGO_ENABLED=0 $(GO) test $(TESTFLAGS) ./elf/... ./pkg/... ./internal/...
	$(GO) test -race $(TESTFLAGS) ./...
	$(MAKE) fuzz

# Short, bounded fuzzing of the parsers that take untrusted input. Go's
# fuzzer may spend up to a minute minimizing each new input by default:
# bound it, so that the budget is spent fuzzing.
FUZZTIME ?= 20s
FUZZMINIMIZETIME ?= 3s
fuzz:
	CGO_ENABLED=0 $(GO) test -run '^$$' -fuzz '^FuzzNewModule$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./elf/
	CGO_ENABLED=0 $(GO) test -run '^$$' -fuzz '^FuzzReadCPURange$$' -fuzztime 5s -fuzzminimizetime $(FUZZMINIMIZETIME) ./pkg/cpurange/
	CGO_ENABLED=0 $(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 10s -fuzzminimizetime $(FUZZMINIMIZETIME) ./internal/btf/
	CGO_ENABLED=0 $(GO) test -run '^$$' -fuzz '^FuzzCORE$$' -fuzztime 10s -fuzzminimizetime $(FUZZMINIMIZETIME) ./internal/btf/

# The suite again in Debian's 6.1 and 6.12 kernels under qemu, requiring the
# kprobe, fentry/fexit, LSM, kprobe.multi and iterator tests each kernel can
# run (tests/vm/kernels, tests/vm/README.md).
test-vm: setup-vm
	bash tests/vm/run

bench: setup
	bash tests/bench

demo: setup
	bash tests/demo

clean:
	$(GO) clean -testcache
