package mroute

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestVIFTable(t *testing.T) {
	tab := NewVIFTable()
	for i := range MaxVIFs {
		vif, err := tab.Alloc(fmt.Sprintf("eth%d", i))
		if err != nil {
			t.Fatalf("Alloc #%d: %v", i, err)
		}
		if int(vif) != i {
			t.Fatalf("Alloc #%d = %d, want the lowest free index %d", i, vif, i)
		}
	}
	if tab.Used() != MaxVIFs {
		t.Errorf("Used = %d, want %d", tab.Used(), MaxVIFs)
	}
	_, err := tab.Alloc("eth32")
	if !errors.Is(err, ErrVIFsExhausted) {
		t.Fatalf("33rd Alloc = %v, want ErrVIFsExhausted", err)
	}
	if msg := err.Error(); !strings.Contains(msg, `"eth32"`) || !strings.Contains(msg, "all 32 VIFs in use (kernel limit MAXVIFS)") {
		t.Errorf("error %q should name the owner and the limit", msg)
	}

	tab.Free(7)
	tab.Free(3)
	tab.Free(3) // twice is harmless
	tab.Free(MaxVIFs)
	if tab.Used() != MaxVIFs-2 {
		t.Errorf("Used after two frees = %d", tab.Used())
	}
	if owner, ok := tab.Owner(3); ok || owner != "" {
		t.Errorf("Owner(3) after Free = %q, %t", owner, ok)
	}
	if owner, ok := tab.Owner(4); !ok || owner != "eth4" {
		t.Errorf("Owner(4) = %q, %t", owner, ok)
	}
	if _, ok := tab.Owner(1000); ok {
		t.Error("Owner(1000) reported in use")
	}
	for _, want := range []uint16{3, 7} {
		vif, err := tab.Alloc("pimreg")
		if err != nil || vif != want {
			t.Errorf("Alloc after free = %d, %v; want %d", vif, err, want)
		}
	}
	if owner, _ := tab.Owner(7); owner != "pimreg" {
		t.Errorf("Owner(7) = %q after reuse", owner)
	}
}

func TestVIFTableReserve(t *testing.T) {
	tab := NewVIFTable()
	if err := tab.Reserve(2, "eth1"); err != nil {
		t.Fatal(err)
	}
	if err := tab.Reserve(2, "eth2"); err == nil || !strings.Contains(err.Error(), `held by "eth1"`) {
		t.Errorf("second Reserve(2) = %v, want held by eth1", err)
	}
	if err := tab.Reserve(MaxVIFs, "eth3"); err == nil {
		t.Error("Reserve out of range succeeded")
	}
	for _, want := range []uint16{0, 1, 3} {
		if vif, err := tab.Alloc("x"); err != nil || vif != want {
			t.Errorf("Alloc around a reserved VIF = %d, %v; want %d", vif, err, want)
		}
	}
	if tab.Used() != 4 {
		t.Errorf("Used = %d, want 4", tab.Used())
	}
}
