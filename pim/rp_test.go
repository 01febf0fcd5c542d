package pim

import (
	"net/netip"
	"testing"
)

func TestRPSetLongestMatch(t *testing.T) {
	s := NewRPSet([]RPMapping{
		{Groups: prefix("224.0.0.0/4"), RP: addr("10.0.0.1"), Origin: "static"},
		{Groups: prefix("239.1.0.0/16"), RP: addr("10.0.0.2"), Origin: "static"},
		{Groups: prefix("239.1.0.0/16"), RP: addr("10.0.0.3"), Origin: "static"},
	}, prefix("232.0.0.0/8"))
	for _, c := range []struct {
		group string
		rp    netip.Addr
		ok    bool
	}{
		{"239.1.2.3", addr("10.0.0.3"), true}, // most specific; the higher of two equal ranges
		{"239.2.2.3", addr("10.0.0.1"), true},
		{"232.1.1.1", netip.Addr{}, false}, // SSM: no RP
	} {
		m, ok := s.Lookup(addr(c.group))
		if ok != c.ok || m.RP != c.rp {
			t.Errorf("Lookup(%s) = %v %v, want %v %v", c.group, m.RP, ok, c.rp, c.ok)
		}
	}
	if !s.SSM(addr("232.9.9.9")) || s.SSM(addr("239.9.9.9")) {
		t.Error("SSM range")
	}
	if got := s.Mappings(); len(got) != 3 || got[0].RP != addr("10.0.0.3") || got[2].Groups.Bits() != 4 {
		t.Errorf("Mappings() = %v", got)
	}
}
