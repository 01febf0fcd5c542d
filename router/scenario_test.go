package router

import (
	"fmt"
	"net"

	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/pim"
	"github.com/mrouterd/mrouterd/router/mrib"
	"github.com/mrouterd/mrouterd/router/netwatch"
)

// These tests drive the router on fakes with the events the kernel and the network
// would send, and check what it installs in the MFC and what it sends.

const withRP = `
[[pim.rp]]
address = "10.0.9.9"
groups = ["224.0.0.0/4"]
`

var (
	hostSrc   = netip.MustParseAddr("10.0.1.2") // a source on eth1
	hostSrc2  = netip.MustParseAddr("10.0.1.3")
	farSrc    = netip.MustParseAddr("10.0.5.5") // a source behind 10.0.3.254 on eth3
	ssmGroup  = netip.MustParseAddr("232.1.1.1")
	rpAddr    = netip.MustParseAddr("10.0.9.9")
	rpGateway = netip.MustParseAddr("10.0.1.254")
)

// threeLinks is a router with a source LAN (eth1), a receiver LAN (eth2) and a
// third link (eth3); the RP is behind eth1, far sources behind eth3.
func threeLinks(t *testing.T, cfg string) (*lab, *iface, *iface, *iface) {
	l := newLab(t, cfg)
	eth1 := l.link("eth1", 11, "10.0.1.1/24")
	eth2 := l.link("eth2", 12, "10.0.2.1/24")
	eth3 := l.link("eth3", 13, "10.0.3.1/24")
	l.route("10.0.9.0/24", 11, rpGateway.String())
	l.route("10.0.5.0/24", 13, "10.0.3.254")
	l.pim.take() // hellos
	return l, eth1, eth2, eth3
}

func include(g netip.Addr, sources ...netip.Addr) igmp.Record {
	return igmp.Record{Type: igmp.AllowNewSources, Group: g, Sources: sources}
}

func exclude(g netip.Addr, sources ...netip.Addr) igmp.Record {
	return igmp.Record{Type: igmp.ChangeToExclude, Group: g, Sources: sources}
}

// joinsOf flattens the Join/Prunes sent into "join|prune IFINDEX UPSTREAM (S,G)[rpt]".
func joinsOf(l *lab) []string {
	var out []string
	for _, s := range l.pim.take() {
		jp, ok := s.msg.(*pim.JoinPrune)
		if !ok {
			continue
		}
		for _, g := range jp.Groups {
			list := func(what string, srcs []pim.JPSource) {
				for _, src := range srcs {
					k := sgKey{Source: src.Source.Addr(), Group: g.Group.Addr()}
					if src.Wildcard {
						k.Source = netip.Addr{}
					}
					e := what + " " + jp.UpstreamNeighbor.String() + " " + k.String()
					if src.RPT && !src.Wildcard {
						e += "rpt"
					}
					out = append(out, e)
				}
			}
			list("join", g.Joins)
			list("prune", g.Prunes)
		}
	}
	slices.Sort(out)
	return out
}

func TestIGMPOnlyIncludeAndExclude(t *testing.T) {
	l, eth1, eth2, eth3 := threeLinks(t, "")
	l.report(eth2, "10.0.2.5", include(grp1, hostSrc))
	l.upcall(mroute.NoCache, eth1, hostSrc, grp1, nil)
	l.upcall(mroute.NoCache, eth1, hostSrc2, grp1, nil)
	l.mfc(sgKey{Source: hostSrc, Group: grp1}, "eth1", "eth2")
	// A source nobody included is installed going nowhere, so the kernel stops asking.
	l.mfc(sgKey{Source: hostSrc2, Group: grp1}, "eth1")

	// EXCLUDE {hostSrc2} on eth3: every source but the one refused.
	l.report(eth3, "10.0.3.5", exclude(grp1, hostSrc2))
	l.mfc(sgKey{Source: hostSrc, Group: grp1}, "eth1", "eth2", "eth3")
	l.mfc(sgKey{Source: hostSrc2, Group: grp1}, "eth1")
	if rt, _ := l.r.rib.Route(sgKey{Source: hostSrc, Group: grp1}); rt.Origin != mrib.OriginIGMP {
		t.Errorf("origin %v, want igmp", rt.Origin)
	}
	// A far source with no state for its group is not routed.
	l.upcall(mroute.NoCache, eth3, farSrc, grp2, nil)
	if l.r.counters["upcall_unrouted"] != 1 {
		t.Errorf("counters %v", l.r.counters)
	}
	if got := joinsOf(l); len(got) != 0 {
		t.Errorf("without an RP nothing is joined: %v", got)
	}
}

func TestASMSharedTreeAndSPTSwitch(t *testing.T) {
	l, eth1, eth2, eth3 := threeLinks(t, withRP)
	l.report(eth2, "10.0.2.5", exclude(grp1))
	if got, want := joinsOf(l), []string{"join 10.0.1.254 (*,239.1.1.1)"}; !slices.Equal(got, want) {
		t.Fatalf("joins %v, want %v", got, want)
	}
	// The first packet comes down the shared tree; the last hop joins the source's tree.
	key := sgKey{Source: farSrc, Group: grp1}
	l.upcall(mroute.NoCache, eth1, farSrc, grp1, nil)
	l.mfc(key, "eth1", "eth2")
	if got, want := joinsOf(l), []string{"join 10.0.3.254 (10.0.5.5,239.1.1.1)"}; !slices.Equal(got, want) {
		t.Fatalf("joins %v, want %v", got, want)
	}
	if rt, _ := l.r.rib.Route(key); !rt.Shared {
		t.Error("not on the shared tree")
	}
	// The source's tree delivers: switch, and prune the source off the shared tree.
	l.upcall(mroute.WrongVIF, eth3, farSrc, grp1, nil)
	l.mfc(key, "eth3", "eth2")
	if got, want := joinsOf(l), []string{"prune 10.0.1.254 (10.0.5.5,239.1.1.1)rpt"}; !slices.Equal(got, want) {
		t.Fatalf("joins %v, want %v", got, want)
	}
	if l.r.counters["spt_switches"] != 1 || !l.r.rib.Tree().SPTBit(key) {
		t.Errorf("counters %v", l.r.counters)
	}
}

func TestRPTPruneFromDownstream(t *testing.T) {
	l, eth1, _, eth3 := threeLinks(t, withRP)
	l.route("10.0.5.0/24", 11, "10.0.1.254") // sources and RP both behind eth1
	wc := pim.JPSource{Source: netip.PrefixFrom(rpAddr, 32), Sparse: true, Wildcard: true, RPT: true}
	rpt := pim.JPSource{Source: netip.PrefixFrom(farSrc, 32), Sparse: true, RPT: true}
	us := netip.MustParseAddr("10.0.3.1")
	l.hello(eth3, "10.0.3.254")
	l.receivePIM(eth3, "10.0.3.254", &pim.JoinPrune{UpstreamNeighbor: us, Holdtime: 210,
		Groups: []pim.JPGroup{{Group: netip.PrefixFrom(grp1, 32), Joins: []pim.JPSource{wc}}}})
	key := sgKey{Source: farSrc, Group: grp1}
	other := sgKey{Source: netip.MustParseAddr("10.0.5.6"), Group: grp1}
	l.upcall(mroute.NoCache, eth1, farSrc, grp1, nil)
	l.upcall(mroute.NoCache, eth1, other.Source, grp1, nil)
	l.mfc(key, "eth1", "eth3")

	l.receivePIM(eth3, "10.0.3.254", &pim.JoinPrune{UpstreamNeighbor: us, Holdtime: 210,
		Groups: []pim.JPGroup{{Group: netip.PrefixFrom(grp1, 32), Joins: []pim.JPSource{wc}, Prunes: []pim.JPSource{rpt}}}})
	l.clock.advance(10 * time.Second) // past the prune override
	l.r.advanceProtocols(l.r.now())
	l.settle()
	l.mfc(key, "eth1")
	l.mfc(other, "eth1", "eth3")
}

func TestSSM(t *testing.T) {
	l, _, eth2, _ := threeLinks(t, withRP)
	key := sgKey{Source: farSrc, Group: ssmGroup}
	l.report(eth2, "10.0.2.5", include(ssmGroup, farSrc))
	// Joined and installed before the first packet.
	l.mfc(key, "eth3", "eth2")
	if got, want := joinsOf(l), []string{"join 10.0.3.254 (10.0.5.5,232.1.1.1)"}; !slices.Equal(got, want) {
		t.Fatalf("joins %v, want %v", got, want)
	}
	// No shared tree in the SSM range.
	l.report(eth2, "10.0.2.6", exclude(netip.MustParseAddr("232.2.2.2")))
	if got := joinsOf(l); len(got) != 0 || l.r.counters["igmp_ssm_asm_join_ignored"] == 0 {
		t.Fatalf("an any-source join in the SSM range: %v %v", got, l.r.counters)
	}
}

// TestHelloBeforeJoinToARestartedNeighbor: the upstream neighbour restarted (a new
// generation ID), so it knows us no more and would ignore our join: the join that
// its restart hurries goes out after a Hello of ours on that link, although the
// random draws put the triggered hello (4.95 s) after the join (2.475 s).
func TestHelloBeforeJoinToARestartedNeighbor(t *testing.T) {
	l, _, eth2, eth3 := threeLinks(t, "")
	l.r.random = func() float64 { return 0.99 }
	genID := func(id uint32) *pim.Hello { return &pim.Hello{GenerationID: &id} }
	l.receivePIM(eth3, "10.0.3.254", genID(1))
	l.report(eth2, "10.0.2.5", include(ssmGroup, farSrc))
	l.pim.take()

	l.receivePIM(eth3, "10.0.3.254", genID(2))
	var sent []string
	for range 30 { // past the override interval, 2.5 s
		l.clock.advance(100 * time.Millisecond)
		l.r.advanceProtocols(l.r.now())
		l.settle()
		for _, s := range l.pim.take() {
			if s.ifindex == eth3.index {
				sent = append(sent, fmt.Sprintf("%T", s.msg))
			}
		}
	}
	join := slices.Index(sent, "*pim.JoinPrune")
	if join < 0 || !slices.Contains(sent[:join], "*pim.Hello") {
		t.Fatalf("sent on eth3 after the restart: %v; want a Hello before the JoinPrune", sent)
	}
}

func TestRouteChangeMovesRPF(t *testing.T) {
	l, _, eth2, _ := threeLinks(t, "")
	key := sgKey{Source: farSrc, Group: ssmGroup}
	l.report(eth2, "10.0.2.5", include(ssmGroup, farSrc))
	l.mfc(key, "eth3", "eth2")
	joinsOf(l)
	lookups := l.fib.lookups

	// A route elsewhere changes nothing, and asks the FIB nothing.
	l.routeChanged("192.168.0.0/16")
	if l.fib.lookups != lookups {
		t.Errorf("a change outside every cached path flushed the cache")
	}
	l.route("10.0.5.0/24", 11, "10.0.1.254")
	l.routeChanged("10.0.5.0/24")
	l.mfc(key, "eth1", "eth2")
	want := []string{"join 10.0.1.254 (10.0.5.5,232.1.1.1)", "prune 10.0.3.254 (10.0.5.5,232.1.1.1)"}
	if got := joinsOf(l); !slices.Equal(got, want) {
		t.Fatalf("joins %v, want %v", got, want)
	}
}

// TestFirstResyncFindsWhatCameBeforeTheSubscription: a link made after the start's
// listing but before the first netlink subscription held raises no event; the
// Resync the subscription sends once it holds finds the link, and counts no lost
// events.
func TestFirstResyncFindsWhatCameBeforeTheSubscription(t *testing.T) {
	l, _, _, _ := threeLinks(t, "")
	l.net.links = append(l.net.links, netwatch.Link{Name: "eth4", Index: 14, Flags: net.FlagUp | net.FlagRunning | net.FlagMulticast})
	l.net.addrs[14] = []netip.Prefix{netip.MustParsePrefix("10.0.4.1/24")}
	l.r.handleNetwork(netwatch.Resync{First: true})
	l.settle()
	if ifc := l.r.ifaces["eth4"]; ifc == nil || ifc.primary() != netip.MustParseAddr("10.0.4.1") {
		t.Fatalf("eth4 after the first resync: %+v", ifc)
	}
	if n := l.r.counters["netlink_resyncs"]; n != 0 {
		t.Errorf("netlink_resyncs %d after the first subscription's resync; want 0", n)
	}
}

// withRegisterVIF adds the register VIF and its device, as at start.
func (l *lab) withRegisterVIF() *iface {
	l.net.links = append(l.net.links, netwatch.Link{Name: "pimreg", Index: 99, Flags: net.FlagUp | net.FlagRunning})
	l.mrt.regIndex = 99
	l.r.updateRegisterVIF()
	l.settle()
	return l.r.ifaces["pimreg"]
}

func TestRegisterAtFirstHop(t *testing.T) {
	l, eth1, _, _ := threeLinks(t, withRP)
	l.withRegisterVIF()
	key := sgKey{Source: hostSrc, Group: grp1}
	l.upcall(mroute.NoCache, eth1, hostSrc, grp1, nil)
	l.mfc(key, "eth1", "pimreg")

	pkt := udpPacket([]byte("data"), 0x1234)
	l.upcall(mroute.WholePkt, l.r.ifaces["pimreg"], hostSrc, grp1, pkt)
	regs := l.pim.take()
	if len(regs) != 1 || regs[0].dst != rpAddr {
		t.Fatalf("sent %+v, want one Register to the RP", regs)
	}
	if reg, ok := regs[0].msg.(*pim.Register); !ok || !udpValid(reg.Packet) {
		t.Fatalf("register %+v: the inner checksum must be complete", regs[0].msg)
	}
	// The RP says stop: the tunnel leaves the entry until the register-stop timer
	// runs out, when a Null-Register probes the RP.
	l.receivePIM(eth1, rpAddr.String(), &pim.RegisterStop{Group: netip.PrefixFrom(grp1, 32), Source: hostSrc})
	l.mfc(key, "eth1")
	l.clock.advance(2 * time.Minute)
	l.r.advanceProtocols(l.r.now())
	l.settle()
	var nulls int
	for _, s := range l.pim.take() {
		if reg, ok := s.msg.(*pim.Register); ok && reg.Null && s.dst == rpAddr {
			nulls++
		}
	}
	if nulls == 0 || l.r.counters["null_registers_sent"] == 0 {
		t.Errorf("no Null-Register after the Register-Stop timer: %v", l.r.counters)
	}
	// A WHOLEPKT for a source not registering is dropped and counted.
	l.upcall(mroute.WholePkt, l.r.ifaces["pimreg"], hostSrc2, grp1, pkt)
	if l.r.counters["register_not_registering"] != 1 {
		t.Errorf("counters %v", l.r.counters)
	}
}

// atRP makes the lab's router the RP: it owns 10.0.9.9 on its loopback, and sources
// register from the first-hop DR 10.0.3.254 behind eth3.
func atRP(t *testing.T, cfg string) (*lab, *iface, *iface) {
	l := newLab(t, cfg)
	eth2 := l.link("eth2", 12, "10.0.2.1/24")
	eth3 := l.link("eth3", 13, "10.0.3.1/24")
	l.pim.take() // hellos
	l.linkWith(netwatch.Link{Name: "lo", Index: 1, Flags: net.FlagUp | net.FlagRunning | net.FlagLoopback}, "10.0.9.9/32")
	l.route("10.0.1.0/24", 13, "10.0.3.254") // udpPacket's source
	l.withRegisterVIF()
	return l, eth2, eth3
}

func TestRegisterAtRP(t *testing.T) {
	l, eth2, eth3 := atRP(t, withRP)
	dr := "10.0.3.254"
	key := sgKey{Source: hostSrc, Group: grp1}
	register := &pim.Register{Packet: udpPacket([]byte("data"), 0)}

	// Nobody wants the group: stop.
	l.receivePIM(eth3, dr, register)
	if stops := sentOf[*pim.RegisterStop](l); len(stops) != 1 || l.r.counters["register_stop_no_receivers"] != 1 {
		t.Fatalf("register-stops %v, counters %v", stops, l.r.counters)
	}
	l.report(eth2, "10.0.2.5", exclude(grp1))
	l.receivePIM(eth3, dr, register)
	l.mfc(key, "pimreg", "eth2")
	if got, want := joinsOf(l), []string{"join 10.0.3.254 (10.0.1.2,239.1.1.1)"}; !slices.Equal(got, want) {
		t.Fatalf("joins %v, want %v", got, want)
	}
	// Native traffic overtakes the registers: switch when the next register comes.
	l.upcall(mroute.WrongVIF, eth3, hostSrc, grp1, nil)
	l.mfc(key, "pimreg", "eth2")
	l.receivePIM(eth3, dr, register)
	l.mfc(key, "eth3", "eth2")
	stops := l.pim.take()
	if len(stops) != 1 || stops[0].dst.String() != dr || l.r.counters["register_stop_spt"] != 1 {
		t.Fatalf("sent %+v, counters %v", stops, l.r.counters)
	}
	// Registers still in flight are answered with a stop.
	l.receivePIM(eth3, dr, register)
	if l.r.counters["register_stop_spt"] != 2 {
		t.Errorf("counters %v", l.r.counters)
	}
	// Not the RP of a group, and malformed registers.
	l.receivePIM(eth3, dr, &pim.Register{Packet: []byte{0x45}})
	if l.r.counters["register_malformed"] != 1 {
		t.Errorf("counters %v", l.r.counters)
	}
}

func TestRegisterAtRPSwitchesWhenTheWaitEnds(t *testing.T) {
	l, eth2, eth3 := atRP(t, "[pim]\nregister-accept = [\"10.0.3.0/24\"]\n"+withRP)
	key := sgKey{Source: hostSrc, Group: grp1}
	l.report(eth2, "10.0.2.5", exclude(grp1))
	// Decapsulated before the Register was checked: wait for it.
	l.upcall(mroute.NoCache, l.r.ifaces["pimreg"], hostSrc, grp1, nil)
	if l.r.counters["register_upcall_unchecked"] != 1 {
		t.Fatalf("counters %v", l.r.counters)
	}
	l.receivePIM(eth3, "10.0.4.4", &pim.Register{Packet: udpPacket(nil, 0)})
	if l.r.counters["register_stop_refused"] != 1 {
		t.Fatalf("a register from outside register-accept: %v", l.r.counters)
	}
	l.receivePIM(eth3, "10.0.3.254", &pim.Register{Packet: udpPacket(nil, 0)})
	l.upcall(mroute.WrongVIF, eth3, hostSrc, grp1, nil)
	l.clock.advance(time.Second)
	l.r.advanceProtocols(l.r.now())
	l.settle()
	l.mfc(key, "eth3", "eth2")
}

func TestAssertLoser(t *testing.T) {
	l, eth1, eth2, _ := threeLinks(t, "")
	key := sgKey{Source: hostSrc, Group: grp1}
	l.report(eth2, "10.0.2.5", exclude(grp1))
	l.upcall(mroute.NoCache, eth1, hostSrc, grp1, nil)
	l.mfc(key, "eth1", "eth2")

	// Our copies meet another router's on eth2: we assert our (connected) metric.
	l.upcall(mroute.WrongVIF, eth2, hostSrc, grp1, nil)
	if asserts := sentOf[*pim.Assert](l); len(asserts) != 1 || asserts[0].MetricPreference != 0 {
		t.Fatalf("asserts %+v", asserts)
	}
	// Its assert is as good and its address higher: it wins, we stop forwarding there.
	l.hello(eth2, "10.0.2.9")
	l.receivePIM(eth2, "10.0.2.9", &pim.Assert{Group: grp1, Source: hostSrc})
	l.mfc(key, "eth1")
	if !l.r.rib.Tree().AssertLost(key, "eth2") {
		t.Error("assert not lost")
	}
	// A (*,G) assert is not handled, and counted.
	l.receivePIM(eth2, "10.0.2.9", &pim.Assert{Group: grp1, Source: netip.IPv4Unspecified()})
	if l.r.counters["asserts_ignored"] != 1 {
		t.Errorf("counters %v", l.r.counters)
	}
}

func TestStaticRoutesAndTemplates(t *testing.T) {
	l, eth1, _, _ := threeLinks(t, twoRoutes)
	l.settle()
	l.r.reconcile("start")
	l.mfc(sgKey{Source: src, Group: grp1}, "eth1", "eth2", "eth3")
	l.upcall(mroute.NoCache, eth1, netip.MustParseAddr("10.0.1.9"), grp2, nil)
	l.mfc(sgKey{Source: netip.MustParseAddr("10.0.1.9"), Group: grp2}, "eth1", "eth2")
	// Static routes do not assert or switch trees.
	l.upcall(mroute.WrongVIF, l.r.ifaces["eth2"], src, grp1, nil)
	if l.r.counters["wrongvif_ignored"] != 1 {
		t.Errorf("counters %v", l.r.counters)
	}
	// Drift is repaired by the periodic reconcile.
	l.mrt.DelMFC(src, grp1)
	l.r.reconcile("periodic")
	l.mfc(sgKey{Source: src, Group: grp1}, "eth1", "eth2", "eth3")
	if l.r.counters["mfc_drift"] != 1 {
		t.Errorf("counters %v", l.r.counters)
	}
}

func TestAssertMetricFromTheCachedPath(t *testing.T) {
	l, _, eth2, _ := threeLinks(t, withRP)
	l.fib.entries[netip.MustParsePrefix("10.0.5.0/24")] = fibEntry{protocol: unix.RTPROT_STATIC, priority: 20}
	l.fib.entries[netip.MustParsePrefix("10.0.9.0/24")] = fibEntry{protocol: unix.RTPROT_OSPF, priority: 7}
	lookups, entryLookups := l.fib.lookups, l.fib.entryLookups
	key := sgKey{Source: farSrc, Group: grp1}
	tests := []struct {
		name   string
		key    sgKey
		shared bool
		want   pim.AssertMetric
	}{
		{"source tree", key, false, pim.AssertMetric{Preference: 1, Metric: 20, Address: eth2.pimSelf}},
		{"again, from the cache", key, false, pim.AssertMetric{Preference: 1, Metric: 20, Address: eth2.pimSelf}},
		{"shared tree", key, true, pim.AssertMetric{RPT: true, Preference: 110, Metric: 7, Address: eth2.pimSelf}},
		{"connected source", sgKey{Source: hostSrc, Group: grp1}, false, pim.AssertMetric{Address: eth2.pimSelf}},
		{"no route", sgKey{Source: netip.MustParseAddr("192.0.2.1"), Group: grp1}, false,
			pim.AssertMetric{Preference: 0x7fffffff, Metric: 0xffffffff, Address: eth2.pimSelf}},
	}
	for _, tt := range tests {
		if got := l.r.assertMetric(tt.key, eth2, tt.shared); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
	// One lookup per address, of the route and of its entry: the source, the RP
	// and the unroutable one.
	if got := l.fib.lookups - lookups; got != 3 {
		t.Errorf("%d FIB lookups", got)
	}
	if got := l.fib.entryLookups - entryLookups; got != 3 {
		t.Errorf("%d FIB entry lookups", got)
	}
}

// TestLimitsInStatus checks that the refusals of the limits reach show status.
func TestLimitsInStatus(t *testing.T) {
	l, eth1, eth2, _ := threeLinks(t, `
[router]
max-learned-routes = 1
[igmp]
max-sources = 1
[pim]
max-neighbors = 1
`)
	l.report(eth2, "10.0.2.5", include(ssmGroup, hostSrc, hostSrc2))
	hello := func(from string) {
		holdtime := uint16(105)
		l.receivePIM(eth1, from, &pim.Hello{Holdtime: &holdtime})
	}
	hello("10.0.1.7")
	hello("10.0.1.8")
	hello("10.0.1.7")
	l.upcall(mroute.NoCache, eth1, hostSrc, grp1, nil)
	l.upcall(mroute.NoCache, eth1, hostSrc2, grp1, nil)
	counters := l.r.statusView().Counters
	for name, want := range map[string]uint64{
		"igmp_sources_refused":   1,
		"pim_neighbors_refused":  1,
		"routes_learned_refused": 1,
	} {
		if counters[name] != want {
			t.Errorf("%s = %d, want %d", name, counters[name], want)
		}
	}
	if len(eth1.pim.Neighbors()) != 1 || !l.r.rib.Tree().HasLocal(sgKey{Source: hostSrc, Group: ssmGroup}) {
		t.Error("the state held before the limits was lost")
	}
	l.mfc(sgKey{Source: hostSrc, Group: grp1}, "eth1")
}
