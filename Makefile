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

# Short, bounded fuzzing of the parsers that take untrusted input, bounded
# by executions rather than by time: with a duration, Go 1.26's fuzzing
# coordinator can fail a clean run with "context deadline exceeded" when
# the time is up while a worker is busy (go.dev/issue/75804, fixed in Go
# 1.27). The counts take about 20, 5, 10 and 10 s here. Go's fuzzer may also
# spend up to a minute minimizing each new input by default: bound that
# too, so that the budget is spent fuzzing.
FUZZSCALE ?= 1
FUZZMINIMIZE ?= 200x
fuzz:
	CGO_ENABLED=0 $(GO) test -run '^$$' -fuzz '^FuzzNewModule$$' -fuzztime $$((150000 * $(FUZZSCALE)))x -fuzzminimizetime $(FUZZMINIMIZE) ./elf/
	CGO_ENABLED=0 $(GO) test -run '^$$' -fuzz '^FuzzReadCPURange$$' -fuzztime $$((100000 * $(FUZZSCALE)))x -fuzzminimizetime $(FUZZMINIMIZE) ./pkg/cpurange/
	CGO_ENABLED=0 $(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $$((100000 * $(FUZZSCALE)))x -fuzzminimizetime $(FUZZMINIMIZE) ./internal/btf/
	CGO_ENABLED=0 $(GO) test -run '^$$' -fuzz '^FuzzCORE$$' -fuzztime $$((80000 * $(FUZZSCALE)))x -fuzzminimizetime $(FUZZMINIMIZE) ./internal/btf/

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
