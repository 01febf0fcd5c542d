package router

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mrouterd/mrouterd/igmp"
)

func TestIGMPQueryFromOffSubnet(t *testing.T) {
	l, _, eth2, _ := threeLinks(t, "")
	if !eth2.querier.IsQuerier() {
		t.Fatal("not the querier at start")
	}
	// Lower than us, with the robustness and interval that would stretch every timer.
	forged := &igmp.Query{Version: 3, MaxResp: 10 * time.Second, QRV: 7, QQI: 31744 * time.Second}
	l.r.handleIGMP(igmpMessage(t, netip.MustParseAddr("1.0.0.1"), igmp.AllSystems, forged), eth2.index, l.r.now())
	if !eth2.querier.IsQuerier() || eth2.querier.QuerierAddress() != eth2.primary() {
		t.Fatalf("a query from 1.0.0.1 won the election: querier %v", eth2.querier.QuerierAddress())
	}
	if l.r.counters["igmp_refused_off-subnet"] != 1 || l.r.counters["igmp_received"] != 0 {
		t.Fatalf("counters %v", l.r.counters)
	}
	// From a lower address on the link it is the querier, as RFC 3376 6.6.2 says.
	l.r.handleIGMP(igmpMessage(t, netip.MustParseAddr("10.0.2.0"), igmp.AllSystems, forged), eth2.index, l.r.now())
	if eth2.querier.IsQuerier() {
		t.Fatal("a lower querier on the link did not win")
	}
}

func TestIGMPRefused(t *testing.T) {
	join := &igmp.Report{Version: 3, Records: []igmp.Record{exclude(grp1)}}
	v2 := &igmp.Report{Version: 2, Group: grp1}
	tests := []struct {
		name   string
		src    string
		dst    netip.Addr
		msg    interface{ Marshal() ([]byte, error) }
		reason string
	}{
		{"report from off-subnet", "10.0.9.5", igmp.AllV3Routers, join, "off-subnet"},
		{"report unicast to us", "10.0.2.5", netip.MustParseAddr("10.0.2.1"), join, "destination"},
		{"v2 report to another group", "10.0.2.5", netip.MustParseAddr("239.9.9.9"), v2, "destination"},
		{"report from 0.0.0.0", "0.0.0.0", igmp.AllV3Routers, join, ""},
		{"v2 report to its group", "10.0.2.5", grp1, v2, ""},
		{"report on the link", "10.0.2.5", igmp.AllV3Routers, join, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _, eth2, _ := threeLinks(t, "")
			l.r.handleIGMP(igmpMessage(t, netip.MustParseAddr(tt.src), tt.dst, tt.msg), eth2.index, l.r.now())
			l.settle()
			_, member := eth2.querier.Group(grp1)
			if tt.reason == "" {
				if !member || l.r.counters["igmp_refused"] != 0 {
					t.Fatalf("a good report: member %v, counters %v", member, l.r.counters)
				}
				return
			}
			if member || l.r.counters["igmp_refused_"+tt.reason] != 1 {
				t.Fatalf("a refused report: member %v, counters %v", member, l.r.counters)
			}
		})
	}
}
