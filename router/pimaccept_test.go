package router

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mrouterd/mrouterd/conf"
	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/pim"
	"github.com/mrouterd/mrouterd/router/mrib"
)

// marshal is a PIM message's bytes.
func marshal(t *testing.T, m mrib.Message) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPIMHelloRefused(t *testing.T) {
	cfg := "[[interface]]\nmatch = \"eth1\"\nallowed-neighbors = [\"10.0.1.0/28\"]\n[[interface]]\nmatch = \"eth*\"\n"
	tests := []struct {
		name   string
		src    string
		dst    netip.Addr
		ttl    int
		reason string
	}{
		{"off-subnet", "1.0.0.1", allPIMRouters, 1, "off_subnet"},
		{"unicast", "10.0.1.9", netip.MustParseAddr("10.0.1.1"), 1, "destination"},
		{"to all systems", "10.0.1.9", netip.MustParseAddr("224.0.0.1"), 1, "destination"},
		{"TTL 64", "10.0.1.9", allPIMRouters, 64, "ttl"},
		{"TTL 0", "10.0.1.9", allPIMRouters, 0, "ttl"},
		{"outside allowed-neighbors", "10.0.1.99", allPIMRouters, 1, "not_allowed"},
		{"accepted", "10.0.1.9", allPIMRouters, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, eth1, _, _ := threeLinks(t, cfg)
			src := netip.MustParseAddr(tt.src)
			l.receivePIMPacket(eth1, pimPacket{data: marshal(t, &pim.Hello{}), src: src, dst: tt.dst, ttl: tt.ttl})
			_, isNeighbor := eth1.pim.Neighbor(src)
			if tt.reason == "" {
				if !isNeighbor || l.r.counters["pim_refused"] != 0 {
					t.Fatalf("a good Hello: neighbour %v, counters %v", isNeighbor, l.r.counters)
				}
				return
			}
			if isNeighbor || len(eth1.pim.Neighbors()) != 0 {
				t.Fatalf("a refused Hello made a neighbour: %v", eth1.pim.Neighbors())
			}
			if l.r.counters["pim_refused"] != 1 || l.r.counters["pim_refused_"+tt.reason] != 1 {
				t.Fatalf("counters %v, want pim_refused_%s", l.r.counters, tt.reason)
			}
		})
	}
}

func TestPIMJoinPruneFromNonNeighbor(t *testing.T) {
	us := netip.MustParseAddr("10.0.3.1")
	// Many (S,G) joins, each of which would make a route and a join upstream.
	g := pim.JPGroup{Group: netip.PrefixFrom(grp1, 32)}
	for i := range 2000 {
		s := netip.AddrFrom4([4]byte{10, 5, byte(i >> 8), byte(i)})
		g.Joins = append(g.Joins, pim.JPSource{Source: netip.PrefixFrom(s, 32), Sparse: true})
	}
	jp := &pim.JoinPrune{UpstreamNeighbor: us, Holdtime: pim.HoldtimeForever, Groups: []pim.JPGroup{g}}
	tests := []struct {
		name   string
		setup  func(l *lab, eth3 *iface)
		src    string
		ttl    int
		reason string
	}{
		{"no Hello", nil, "10.0.3.254", 1, "not_neighbor"},
		{"another neighbour's address", func(l *lab, eth3 *iface) { l.hello(eth3, "10.0.3.253") }, "10.0.3.254", 1, "not_neighbor"},
		{"neighbour timed out", func(l *lab, eth3 *iface) {
			l.hello(eth3, "10.0.3.254")
			l.clock.advance(pim.DefaultHelloHoldtime)
		}, "10.0.3.254", 1, "not_neighbor"},
		{"neighbour's address, forwarded", func(l *lab, eth3 *iface) { l.hello(eth3, "10.0.3.254") }, "10.0.3.254", 2, "ttl"},
		{"off-subnet", nil, "10.0.4.254", 1, "off_subnet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _, _, eth3 := threeLinks(t, withRP)
			if tt.setup != nil {
				tt.setup(l, eth3)
			}
			l.pim.take()
			l.receivePIMPacket(eth3, pimPacket{data: marshal(t, jp), src: netip.MustParseAddr(tt.src), dst: allPIMRouters, ttl: tt.ttl})
			if n := l.r.rib.Len(); n != 0 {
				t.Fatalf("a refused Join/Prune made %d routes", n)
			}
			if got := joinsOf(l); len(got) != 0 {
				t.Fatalf("a refused Join/Prune sent joins upstream: %d of them", len(got))
			}
			if l.r.counters["pim_refused_"+tt.reason] != 1 || l.r.counters["pim_joinprunes_received"] != 0 {
				t.Fatalf("counters %v, want pim_refused_%s", l.r.counters, tt.reason)
			}
		})
	}
	// From a neighbour it is taken.
	l, _, _, eth3 := threeLinks(t, withRP)
	l.hello(eth3, "10.0.3.254")
	l.receivePIM(eth3, "10.0.3.254", jp)
	if l.r.rib.Len() == 0 || l.r.counters["pim_refused"] != 0 {
		t.Fatalf("a neighbour's Join/Prune: %d routes, counters %v", l.r.rib.Len(), l.r.counters)
	}
}

func TestPIMAssertFromNonNeighbor(t *testing.T) {
	// An assert that would win: as good a metric as ours, from a higher address.
	forged := marshal(t, &pim.Assert{Group: grp1, Source: hostSrc})
	tests := []struct {
		name   string
		pkt    pimPacket
		reason string
	}{
		{"no Hello", pimPacket{data: forged, src: netip.MustParseAddr("10.0.2.8"), dst: allPIMRouters, ttl: 1}, "not_neighbor"},
		{"unicast", pimPacket{data: forged, src: netip.MustParseAddr("10.0.2.9"), dst: netip.MustParseAddr("10.0.2.1"), ttl: 1}, "destination"},
		{"from the neighbour", pimPacket{data: forged, src: netip.MustParseAddr("10.0.2.9"), dst: allPIMRouters, ttl: 1}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, eth1, eth2, _ := threeLinks(t, "")
			key := sgKey{Source: hostSrc, Group: grp1}
			l.report(eth2, "10.0.2.5", exclude(grp1))
			l.upcall(mroute.NoCache, eth1, hostSrc, grp1, nil)
			l.mfc(key, "eth1", "eth2")
			// A neighbour at 10.0.2.9 that leaves us DR, so that only the assert could matter.
			zero := uint32(0)
			l.receivePIM(eth2, "10.0.2.9", &pim.Hello{DRPriority: &zero})
			l.receivePIMPacket(eth2, tt.pkt)
			if tt.reason == "" {
				l.mfc(key, "eth1") // lost to a real neighbour
				return
			}
			l.mfc(key, "eth1", "eth2")
			if l.r.rib.Tree().AssertLost(key, "eth2") || l.r.counters["pim_refused_"+tt.reason] != 1 {
				t.Fatalf("a forged assert: lost %v, counters %v", l.r.rib.Tree().AssertLost(key, "eth2"), l.r.counters)
			}
		})
	}
}

func TestPIMRegisterStopFromNonRP(t *testing.T) {
	tests := []struct {
		name   string
		from   string
		source netip.Addr
		reason string
	}{
		{"from a host", "10.0.1.66", hostSrc, "not_rp"},
		{"every source, from a host", "10.0.1.66", netip.IPv4Unspecified(), "not_rp"},
		{"from the RP's next hop", rpGateway.String(), netip.IPv4Unspecified(), "not_rp"},
		{"from the RP", rpAddr.String(), hostSrc, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, eth1, _, _ := threeLinks(t, withRP)
			l.withRegisterVIF()
			key := sgKey{Source: hostSrc, Group: grp1}
			l.upcall(mroute.NoCache, eth1, hostSrc, grp1, nil)
			l.mfc(key, "eth1", "pimreg")
			l.receivePIM(eth1, tt.from, &pim.RegisterStop{Group: netip.PrefixFrom(grp1, 32), Source: tt.source})
			if tt.reason == "" {
				l.mfc(key, "eth1")
				return
			}
			l.mfc(key, "eth1", "pimreg")
			if _, ok := l.r.rib.Tree().RegisterRP(key); !ok || l.r.counters["pim_refused_"+tt.reason] != 1 {
				t.Fatalf("a forged Register-Stop stopped registering: counters %v", l.r.counters)
			}
		})
	}
}

func TestPIMRegisterStopFromTheRPAddress(t *testing.T) {
	l, _, eth3 := atRP(t, withRP)
	l.receivePIM(eth3, "10.0.3.254", &pim.Register{Packet: udpPacket([]byte("data"), 0)})
	stops := l.pim.take()
	if len(stops) != 1 || stops[0].src != rpAddr {
		t.Fatalf("sent %+v, want one Register-Stop from the RP address %v", stops, rpAddr)
	}
}

func TestPIMNeighborHoldtimeCapped(t *testing.T) {
	forever := uint16(pim.HoldtimeForever)
	goodbye := uint16(0)
	l, eth1, _, _ := threeLinks(t, "[pim]\nmax-holdtime = \"100s\"\n")
	n := "10.0.1.9"
	l.receivePIM(eth1, n, &pim.Hello{Holdtime: &forever})
	l.clock.advance(101 * time.Second)
	l.r.advanceProtocols(l.r.now())
	if len(eth1.pim.Neighbors()) != 0 {
		t.Fatalf("a neighbour advertising forever outlived max-holdtime: %+v", eth1.pim.Neighbors())
	}
	l.receivePIM(eth1, n, &pim.Hello{Holdtime: &forever})
	l.receivePIM(eth1, n, &pim.Hello{Holdtime: &goodbye})
	if len(eth1.pim.Neighbors()) != 0 {
		t.Fatal("a goodbye left the neighbour")
	}
}

func TestPIMReloadForgetsNeighborsNoLongerAllowed(t *testing.T) {
	l, eth1, _, _ := threeLinks(t, "")
	l.hello(eth1, "10.0.1.9")
	l.hello(eth1, "10.0.1.99")
	next, err := conf.Parse("test.toml", []byte("[[interface]]\nmatch = \"eth*\"\nallowed-neighbors = [\"10.0.1.0/28\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.r.apply(next); err != nil {
		t.Fatal(err)
	}
	ns := eth1.pim.Neighbors()
	if len(ns) != 1 || ns[0].Address != netip.MustParseAddr("10.0.1.9") {
		t.Fatalf("neighbours after the reload: %+v, want only 10.0.1.9", ns)
	}
}
