package netlink

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/iovisor/gobpf/internal/bpfsys"
	"github.com/iovisor/gobpf/internal/testutil"
)

func TestAttrsRoundTrip(t *testing.T) {
	b := appendAttrs(nil, []Attr{U32(1, 7), String(2, "bpf"), Nest(3, U32(4, 9), String(5, "x"))})
	as := ParseAttrs(b)
	if len(as) != 3 || as[0].Type != 1 || len(as[0].Data) != 4 || cstr(as[1].Data) != "bpf" || as[2].Type != 3 {
		t.Fatalf("parsed %+v", as)
	}
	inner := ParseAttrs(as[2].Data)
	if len(inner) != 2 || inner[0].Type != 4 || cstr(inner[1].Data) != "x" {
		t.Fatalf("nested %+v", inner)
	}
	if got := ParseAttrs([]byte{200, 0, 1, 0}); len(got) != 0 {
		t.Errorf("attribute longer than its buffer parsed as %+v", got)
	}
}

// TestClsactFilters adds a clsact qdisc and a bpf filter to a veth device,
// lists it, removes it, and checks the kernel's refusals come back with
// their extended-ack text.
func TestClsactFilters(t *testing.T) {
	t.Cleanup(testutil.CheckLeaks(t))
	pid := os.Getpid() % 100000
	dev := fmt.Sprintf("gbnl%d", pid)
	testutil.VethPair(t, fmt.Sprintf("gobpf-nl-%d", pid), dev, fmt.Sprintf("gbnp%d", pid), "10.201.44.1", "10.201.44.2")
	ifc, err := net.InterfaceByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := bpfsys.ProgLoad(&bpfsys.ProgLoadAttr{
		Type:    bpfsys.BPF_PROG_TYPE_SCHED_CLS,
		Insns:   []bpfsys.Insn{bpfsys.MovImm(0, 0), bpfsys.Exit()},
		License: "GPL",
		Name:    "nl_test",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(prog)
	ingress := uint32(TCHClsact&0xFFFF0000 | TCHMinIngress)

	_, err = AddBPFFilter(ifc.Index, ingress, 0, 0, prog, "nl_test")
	if err == nil || !strings.Contains(err.Error(), "(") {
		t.Errorf("filter without a clsact qdisc: %v, want an error with the kernel's message", err)
	}
	created, err := AddClsact(ifc.Index)
	if err != nil || !created {
		t.Fatalf("AddClsact: %v, %v", created, err)
	}
	if created, err := AddClsact(ifc.Index); err != nil || created {
		t.Errorf("second AddClsact: %v, %v; want false, nil", created, err)
	}
	f, err := AddBPFFilter(ifc.Index, ingress, 0, 0, prog, "nl_test")
	if err != nil {
		t.Fatal(err)
	}
	if f.Priority == 0 || f.Handle == 0 || f.Kind != "bpf" {
		t.Errorf("new filter %+v: want the priority and handle the kernel chose", f)
	}
	fs, err := Filters(ifc.Index, ingress)
	if err != nil {
		t.Fatal(err)
	}
	info, err := bpfsys.GetProgInfo(prog)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].Name != "nl_test" || fs[0].ProgID != info.ID || fs[0].Priority != f.Priority {
		t.Errorf("Filters: %+v, want the one added (%+v)", fs, f)
	}
	if out := testutil.Run(t, "tc", "filter", "show", "dev", dev, "ingress"); !strings.Contains(out, "nl_test") || !strings.Contains(out, "direct-action") {
		t.Errorf("tc filter show: %s", out)
	}
	if err := DelFilter(f); err != nil {
		t.Fatal(err)
	}
	if err := DelFilter(f); !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		t.Errorf("second DelFilter: %v", err)
	}
	if fs, err := Filters(ifc.Index, ingress); err != nil || len(fs) != 0 {
		t.Errorf("Filters after delete: %+v, %v", fs, err)
	}
	if err := DelClsact(ifc.Index); err != nil {
		t.Fatal(err)
	}
	if out := testutil.Run(t, "tc", "qdisc", "show", "dev", dev); strings.Contains(out, "clsact") {
		t.Errorf("qdisc left: %s", out)
	}
	if err := SetXDP(1<<30, -1, 0); !errors.Is(err, unix.ENODEV) {
		t.Errorf("SetXDP on a missing device: %v, want ENODEV", err)
	}
}
