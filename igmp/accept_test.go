package igmp

import (
	"errors"
	"net/netip"
	"testing"
)

func TestCheckAddresses(t *testing.T) {
	link := netip.MustParsePrefix("10.0.2.0/24")
	group := netip.MustParseAddr("239.1.1.1")
	a := netip.MustParseAddr
	tests := []struct {
		name     string
		src, dst netip.Addr
		msg      any
		reason   string
	}{
		{"general query", a("10.0.2.9"), AllSystems, &Query{Version: 3}, ""},
		{"group-specific query", a("10.0.2.9"), group, &Query{Version: 3, Group: group}, ""},
		{"query from afar", a("1.0.0.1"), AllSystems, &Query{Version: 3, QRV: 7}, ReasonOffSubnet},
		{"query from 0.0.0.0", a("0.0.0.0"), AllSystems, &Query{Version: 2}, ""},
		{"query unicast", a("10.0.2.9"), a("10.0.2.1"), &Query{Version: 3}, ReasonDestination},
		{"v3 report", a("10.0.2.5"), AllV3Routers, &Report{Version: 3}, ""},
		{"v3 report from 0.0.0.0", a("0.0.0.0"), AllV3Routers, &Report{Version: 3}, ""},
		{"v3 report from afar", a("10.0.9.5"), AllV3Routers, &Report{Version: 3}, ReasonOffSubnet},
		{"v3 report unicast", a("10.0.2.5"), a("10.0.2.1"), &Report{Version: 3}, ReasonDestination},
		{"v3 report to a group", a("10.0.2.5"), group, &Report{Version: 3}, ReasonDestination},
		{"v2 report to its group", a("10.0.2.5"), group, &Report{Version: 2, Group: group}, ""},
		{"v2 report to another group", a("10.0.2.5"), a("239.9.9.9"), &Report{Version: 2, Group: group}, ReasonDestination},
		{"leave to all-routers", a("10.0.2.5"), AllRouters, &Leave{Group: group}, ""},
		{"leave to its group", a("10.0.2.5"), group, &Leave{Group: group}, ""},
		{"leave broadcast", a("10.0.2.5"), a("255.255.255.255"), &Leave{Group: group}, ReasonDestination},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckAddresses(tt.src, tt.dst, tt.msg, link.Contains)
			var de *DecodeError
			switch {
			case tt.reason == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.reason != "" && (!errors.As(err, &de) || de.Reason != tt.reason):
				t.Fatalf("got %v, want %s", err, tt.reason)
			}
		})
	}
}
