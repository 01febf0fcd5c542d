package pim

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

func nullRegisters(acts []Action) []Key {
	return collect(acts, func(a SendNullRegister) Key { return a.Key })
}

func TestRegisterStateMachine(t *testing.T) {
	f := newTreeFixture(t)
	f.rpf[srcAddr] = RPF{Interface: "eth0"} // a connected source
	key := Key{Source: srcAddr, Group: asmGroup}
	acts := f.tree.SetCouldRegister(f.now, key, rpAddr, true)
	if rp, ok := f.tree.Registering(key); !ok || rp != rpAddr {
		t.Fatal("not registering once CouldRegister holds")
	}
	if got := changedGroups(acts); !slices.Equal(got, []string{"239.1.1.1"}) {
		t.Fatalf("changed %v", got)
	}
	// Register-Stop: suppressed for 0.5 × 60 s − 5 s (Random is 0), then a probe.
	f.tree.ReceiveRegisterStop(f.now, asmGroup, srcAddr)
	if _, ok := f.tree.Registering(key); ok {
		t.Fatal("still registering after Register-Stop")
	}
	if n := nullRegisters(f.advance(24 * time.Second)); len(n) != 0 {
		t.Fatal("probe before the suppression time")
	}
	if n := nullRegisters(f.advance(time.Second)); !slices.Equal(n, []Key{key}) {
		t.Fatalf("null registers %v, want one for %v", n, key)
	}
	// The RP answers the probe: suppressed again, no registering in between.
	f.advance(time.Second)
	f.tree.ReceiveRegisterStop(f.now, asmGroup, netip.IPv4Unspecified()) // every source of the group
	if _, ok := f.tree.Registering(key); ok {
		t.Fatal("registering after the probe was answered")
	}
	// A probe nobody answers: registering resumes after Register_Probe_Time.
	f.advance(25 * time.Second)
	f.advance(4 * time.Second)
	if _, ok := f.tree.Registering(key); ok {
		t.Fatal("registering before the probe time ran out")
	}
	f.advance(time.Second)
	if _, ok := f.tree.Registering(key); !ok {
		t.Fatal("not registering after an unanswered probe")
	}
	// The source goes quiet: no more register state.
	f.tree.SetCouldRegister(f.now, key, rpAddr, false)
	if f.tree.Has(key) {
		t.Fatal("state kept after CouldRegister went false")
	}
}

func TestKeepaliveJoinsTheSourceTreeWhereTheSharedTreeGoes(t *testing.T) {
	f := newTreeFixture(t)
	// An RP-side view: downstream (*,G) join on eth2; registers for (S,G) arrive.
	f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, joinMsg(selfDown, 210, jpGroup(asmGroup, []JPSource{wc(rpAddr)}, nil)))
	key := Key{Source: srcAddr, Group: asmGroup}
	expectSent(t, f.tree.SetKeepalive(f.now, key, true), "eth1>10.0.12.2 +(10.0.1.2,239.1.1.1)")
	expectSent(t, f.tree.SetKeepalive(f.now, key, false), "eth1>10.0.12.2 -(10.0.1.2,239.1.1.1)")
}

func TestSPTBitPrunesTheSourceOffADifferentSharedTree(t *testing.T) {
	f := newTreeFixture(t)
	f.rpf[srcAddr] = RPF{Interface: "eth3", Neighbor: upNbr2}
	f.tree.SetLocal(f.now, Key{Group: asmGroup}, "eth2", true)
	key := Key{Source: srcAddr, Group: asmGroup}
	expectSent(t, f.tree.SetKeepalive(f.now, key, true), "eth3>10.0.13.3 +(10.0.1.2,239.1.1.1)")
	// The source's tree delivers: prune it off the shared tree, which comes by eth1.
	expectSent(t, f.tree.SetSPTBit(f.now, key, true), "eth1>10.0.12.2 -(10.0.1.2,239.1.1.1,rpt)")
	// Every Join(*,G) from now on carries the prune along.
	expectSent(t, f.advance(60*time.Second),
		"eth1>10.0.12.2 +(*,239.1.1.1) -(10.0.1.2,239.1.1.1,rpt)", "eth3>10.0.13.3 +(10.0.1.2,239.1.1.1)")
	// Back on the shared tree: a Join(*,G) without the prune ends it.
	expectSent(t, f.tree.SetSPTBit(f.now, key, false), "eth1>10.0.12.2 +(*,239.1.1.1)")
}

func TestAssert(t *testing.T) {
	f := newTreeFixture(t)
	key := Key{Source: srcAddr, Group: asmGroup}
	ours := AssertMetric{Preference: 1, Metric: 10, Address: selfDown}
	acts := f.tree.AssertData(f.now, key, "eth2", ours)
	var sentAsserts []Assert
	for _, a := range acts {
		if s, ok := a.(SendAssert); ok && s.Interface == "eth2" {
			sentAsserts = append(sentAsserts, s.Assert)
		}
	}
	if len(sentAsserts) != 1 || sentAsserts[0].MetricPreference != 1 || sentAsserts[0].Metric != 10 {
		t.Fatalf("asserts sent %+v", sentAsserts)
	}
	if f.tree.AssertLost(key, "eth2") {
		t.Fatal("lost an assert nobody contested")
	}
	// A better metric wins: we stop forwarding there, for Assert_Time.
	better := AssertMetric{Preference: 1, Metric: 5, Address: peerDown}
	f.tree.ReceiveAssert(f.now, key, "eth2", better, ours, true)
	if as := f.tree.Entries(asmGroup)[0].Asserts; len(as) != 1 || as[0].Winner != peerDown || as[0].WeWin || !f.tree.AssertLost(key, "eth2") {
		t.Fatalf("asserts %+v", as)
	}
	f.advance(AssertTime - time.Second)
	if !f.tree.AssertLost(key, "eth2") {
		t.Fatal("loser state gone before Assert_Time")
	}
	f.advance(time.Second)
	if f.tree.AssertLost(key, "eth2") {
		t.Fatal("loser state outlived Assert_Time")
	}
	// An inferior assert is answered with ours.
	worse := AssertMetric{RPT: true, Address: netip.MustParseAddr("10.0.23.250")}
	acts = f.tree.ReceiveAssert(f.now, key, "eth2", worse, ours, true)
	if !slices.ContainsFunc(acts, func(a Action) bool { _, ok := a.(SendAssert); return ok }) {
		t.Fatal("an inferior assert went unanswered")
	}
}

func TestAssertWinnerBecomesTheUpstreamNeighbour(t *testing.T) {
	f := newTreeFixture(t)
	key := Key{Source: srcAddr, Group: ssmGroup}
	expectSent(t, f.tree.SetLocal(f.now, key, "eth2", true), "eth1>10.0.12.2 +(10.0.1.2,232.1.1.1)")
	// Two routers upstream on eth1; the other one wins the assert and forwards to
	// us: our joins move to it.
	winner := AssertMetric{Preference: 1, Address: netip.MustParseAddr("10.0.12.9")}
	acts := f.tree.ReceiveAssert(f.now, key, "eth1", winner, AssertMetric{Address: selfUp}, false)
	expectSent(t, acts, "eth1>10.0.12.2 -(10.0.1.2,232.1.1.1)", "eth1>10.0.12.9 +(10.0.1.2,232.1.1.1)")
	// Our RPF neighbour's own assert, worse than the winner's, changes nothing.
	loser := AssertMetric{Preference: 5, Address: upNbr}
	expectSent(t, f.tree.ReceiveAssert(f.now, key, "eth1", loser, AssertMetric{Address: selfUp}, false))
	// The winner's state times out: back to the unicast RPF neighbour.
	expectSent(t, f.advance(AssertTime), "eth1>10.0.12.2 +(10.0.1.2,232.1.1.1)", "eth1>10.0.12.9 -(10.0.1.2,232.1.1.1)")
}

func TestAssertMetricOrder(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.1")
	b := netip.MustParseAddr("10.0.0.2")
	cases := []struct {
		x, y AssertMetric
		want bool
	}{
		{AssertMetric{Address: a}, AssertMetric{RPT: true, Address: b}, true},
		{AssertMetric{Preference: 1, Address: a}, AssertMetric{Preference: 2, Address: b}, true},
		{AssertMetric{Preference: 1, Metric: 3, Address: a}, AssertMetric{Preference: 1, Metric: 2, Address: b}, false},
		{AssertMetric{Address: a}, AssertMetric{Address: b}, false},
		{AssertMetric{Address: b}, AssertMetric{Address: a}, true},
	}
	for i, c := range cases {
		if got := c.x.Better(c.y); got != c.want {
			t.Errorf("case %d: %+v better than %+v = %v", i, c.x, c.y, got)
		}
	}
}
