package pim

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	treeEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rpAddr    = netip.MustParseAddr("10.0.2.1")
	srcAddr   = netip.MustParseAddr("10.0.1.2")
	asmGroup  = netip.MustParseAddr("239.1.1.1")
	ssmGroup  = netip.MustParseAddr("232.1.1.1")
	upNbr     = netip.MustParseAddr("10.0.12.2")
	upNbr2    = netip.MustParseAddr("10.0.13.3")
	selfUp    = netip.MustParseAddr("10.0.12.1")
	selfDown  = netip.MustParseAddr("10.0.23.3")
	peerDown  = netip.MustParseAddr("10.0.23.9")
	downNbr   = netip.MustParseAddr("10.0.23.2") // the neighbour the tests hear joins from
)

// treeFixture is a router with an upstream interface eth1 (towards the RP and the
// source, through upNbr) and a downstream interface eth2.
type treeFixture struct {
	t    testing.TB
	tree *Tree
	now  time.Time
	rpf  map[netip.Addr]RPF
}

func newTreeFixture(t testing.TB) *treeFixture {
	f := &treeFixture{t: t, now: treeEpoch, rpf: map[netip.Addr]RPF{
		rpAddr:  {Interface: "eth1", Neighbor: upNbr},
		srcAddr: {Interface: "eth1", Neighbor: upNbr},
	}}
	f.tree = NewTree(TreeConfig{
		JoinPruneInterval: 60 * time.Second,
		RP: func(g netip.Addr) (netip.Addr, bool) {
			if netip.MustParsePrefix("232.0.0.0/8").Contains(g) {
				return netip.Addr{}, false
			}
			return rpAddr, true
		},
		RPF: func(a netip.Addr) RPF { return f.rpf[a] },
	})
	f.tree.SetLink("eth1", Link{Self: selfUp})
	f.tree.SetLink("eth2", Link{Self: selfDown})
	return f
}

func (f *treeFixture) advance(d time.Duration) []Action {
	f.now = f.now.Add(d)
	return f.tree.Advance(f.now)
}

// sent renders the Join/Prunes among actions as "iface>neighbor +(S,G) -(*,G)".
func sent(acts []Action) []string {
	var out []string
	for _, a := range acts {
		jp, ok := a.(SendJoinPrune)
		if !ok {
			continue
		}
		var parts []string
		for _, g := range jp.Message.Groups {
			for _, s := range g.Joins {
				parts = append(parts, "+"+jpName(g, s))
			}
			for _, s := range g.Prunes {
				parts = append(parts, "-"+jpName(g, s))
			}
		}
		out = append(out, fmt.Sprintf("%s>%s %s", jp.Interface, jp.Message.UpstreamNeighbor, strings.Join(parts, " ")))
	}
	return out
}

func jpName(g JPGroup, s JPSource) string {
	switch {
	case s.Wildcard:
		return fmt.Sprintf("(*,%s)", g.Group.Addr())
	case s.RPT:
		return fmt.Sprintf("(%s,%s,rpt)", s.Source.Addr(), g.Group.Addr())
	}
	return fmt.Sprintf("(%s,%s)", s.Source.Addr(), g.Group.Addr())
}

func changedGroups(acts []Action) []string {
	var out []string
	for _, a := range acts {
		if c, ok := a.(TreeChanged); ok {
			out = append(out, c.Group.String())
		}
	}
	return out
}

func expectSent(t *testing.T, acts []Action, want ...string) {
	t.Helper()
	if got := sent(acts); !slices.Equal(got, want) {
		t.Fatalf("sent %q, want %q", got, want)
	}
}

func joinMsg(upstream netip.Addr, holdtime uint16, groups ...JPGroup) *JoinPrune {
	return &JoinPrune{UpstreamNeighbor: upstream, Holdtime: holdtime, Groups: groups}
}

func sg(source netip.Addr) JPSource {
	return JPSource{Source: netip.PrefixFrom(source, 32), Sparse: true}
}

func wc(rp netip.Addr) JPSource {
	return JPSource{Source: netip.PrefixFrom(rp, 32), Sparse: true, Wildcard: true, RPT: true}
}

func rpt(source netip.Addr) JPSource {
	return JPSource{Source: netip.PrefixFrom(source, 32), Sparse: true, RPT: true}
}

func jpGroup(g netip.Addr, joins, prunes []JPSource) JPGroup {
	return JPGroup{Group: netip.PrefixFrom(g, 32), Joins: joins, Prunes: prunes}
}

func TestTreeLocalSSMJoinsTowardsSource(t *testing.T) {
	f := newTreeFixture(t)
	key := Key{Source: srcAddr, Group: ssmGroup}
	acts := f.tree.SetLocal(f.now, key, "eth2", true)
	expectSent(t, acts, "eth1>10.0.12.2 +(10.0.1.2,232.1.1.1)")
	if got := changedGroups(acts); !slices.Equal(got, []string{"232.1.1.1"}) {
		t.Fatalf("changed %v", got)
	}
	if up, ok := f.tree.Upstream(key); !ok || up != (RPF{"eth1", upNbr}) {
		t.Fatalf("upstream %v %v", up, ok)
	}
	// Nothing until t_periodic, then the join again.
	expectSent(t, f.advance(59*time.Second))
	expectSent(t, f.advance(time.Second), "eth1>10.0.12.2 +(10.0.1.2,232.1.1.1)")
	// The last receiver leaves: a prune at once, and the entry goes.
	expectSent(t, f.tree.SetLocal(f.now, key, "eth2", false), "eth1>10.0.12.2 -(10.0.1.2,232.1.1.1)")
	if f.tree.Has(key) {
		t.Fatal("entry kept after its last receiver left")
	}
	// The periodic pacing retires with no entry left.
	expectSent(t, f.advance(60*time.Second))
	if _, ok := f.tree.NextDeadline(); ok {
		t.Fatal("a timer is still running with no state")
	}
}

func TestTreeLocalASMJoinsTowardsRP(t *testing.T) {
	f := newTreeFixture(t)
	expectSent(t, f.tree.SetLocal(f.now, Key{Group: asmGroup}, "eth2", true), "eth1>10.0.12.2 +(*,239.1.1.1)")
	acts := f.tree.SetLocal(f.now, Key{Group: asmGroup}, "eth2", false)
	expectSent(t, acts, "eth1>10.0.12.2 -(*,239.1.1.1)")
	// The encoded RP goes in the (*,G) entry, with the S, W and R bits.
	jp := acts[0].(SendJoinPrune).Message
	if s := jp.Groups[0].Prunes[0]; s.Source.Addr() != rpAddr || !s.Sparse || !s.Wildcard || !s.RPT {
		t.Fatalf("(*,G) entry %+v", s)
	}
	if jp.Holdtime != 210 {
		t.Fatalf("holdtime %d, want 3.5 × 60 s", jp.Holdtime)
	}
}

func TestTreeNoJoinWithoutUpstreamNeighbour(t *testing.T) {
	f := newTreeFixture(t)
	f.rpf[rpAddr] = RPF{} // we are the RP
	f.rpf[srcAddr] = RPF{Interface: "eth1"}
	expectSent(t, f.tree.SetLocal(f.now, Key{Group: asmGroup}, "eth2", true))
	expectSent(t, f.tree.SetLocal(f.now, Key{Source: srcAddr, Group: ssmGroup}, "eth2", true))
	// No (*,G) in the SSM range either.
	expectSent(t, f.tree.SetLocal(f.now, Key{Group: ssmGroup}, "eth2", true))
}

func TestTreeDownstreamJoinAndPrunePointToPoint(t *testing.T) {
	f := newTreeFixture(t)
	key := Key{Source: srcAddr, Group: ssmGroup}
	acts := f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, joinMsg(selfDown, 210, jpGroup(ssmGroup, []JPSource{sg(srcAddr)}, nil)))
	// A transit router joins on towards the source.
	expectSent(t, acts, "eth1>10.0.12.2 +(10.0.1.2,232.1.1.1)")
	if got := f.tree.Forwards(key); !slices.Equal(got, []string{"eth2"}) {
		t.Fatalf("forwards %v", got)
	}
	// On a link with one neighbour a prune takes effect at once.
	acts = f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, joinMsg(selfDown, 210, jpGroup(ssmGroup, nil, []JPSource{sg(srcAddr)})))
	expectSent(t, acts, "eth1>10.0.12.2 -(10.0.1.2,232.1.1.1)")
	if f.tree.Has(key) {
		t.Fatal("entry kept after the prune")
	}
}

func TestTreeDownstreamJoinOnTheUpstreamInterfaceIsNotForwarded(t *testing.T) {
	f := newTreeFixture(t)
	// A join arriving on the interface towards the source must not pull traffic
	// back out of it: no upstream join either.
	acts := f.tree.ReceiveJoinPrune(f.now, "eth1", downNbr, joinMsg(selfUp, 210, jpGroup(ssmGroup, []JPSource{sg(srcAddr)}, nil)))
	expectSent(t, acts)
}

func TestTreeDownstreamExpiry(t *testing.T) {
	f := newTreeFixture(t)
	key := Key{Group: asmGroup}
	f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, joinMsg(selfDown, 10, jpGroup(asmGroup, []JPSource{wc(rpAddr)}, nil)))
	// A refresh with a shorter holdtime does not shorten the expiry.
	f.advance(2 * time.Second)
	f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, joinMsg(selfDown, 5, jpGroup(asmGroup, []JPSource{wc(rpAddr)}, nil)))
	f.advance(7 * time.Second)
	if !f.tree.Has(key) {
		t.Fatal("expired before its holdtime")
	}
	acts := f.advance(time.Second)
	expectSent(t, acts, "eth1>10.0.12.2 -(*,239.1.1.1)")
	if f.tree.Has(key) {
		t.Fatal("join state outlived its holdtime")
	}
}

func TestTreePrunePendingOnALAN(t *testing.T) {
	f := newTreeFixture(t)
	f.tree.SetLink("eth2", Link{Self: selfDown, Override: 3 * time.Second})
	key := Key{Group: asmGroup}
	join := joinMsg(selfDown, 210, jpGroup(asmGroup, []JPSource{wc(rpAddr)}, nil))
	prune := joinMsg(selfDown, 210, jpGroup(asmGroup, nil, []JPSource{wc(rpAddr)}))
	f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, join)
	expectSent(t, f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, prune))
	// Still forwarding while another router on the LAN may override.
	if got := f.tree.Forwards(key); !slices.Equal(got, []string{"eth2"}) {
		t.Fatalf("forwards %v during prune-pending", got)
	}
	// An override join cancels the prune.
	f.advance(time.Second)
	f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, join)
	expectSent(t, f.advance(5*time.Second))
	if !slices.Equal(f.tree.Forwards(key), []string{"eth2"}) {
		t.Fatal("override join did not keep the interface")
	}
	// Without an override the prune takes effect after the override interval, and
	// is echoed on the LAN.
	f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, prune)
	expectSent(t, f.advance(2999*time.Millisecond))
	expectSent(t, f.advance(time.Millisecond), "eth1>10.0.12.2 -(*,239.1.1.1)", "eth2>10.0.23.3 -(*,239.1.1.1)")
}

func TestTreeRPFChangeMovesTheJoin(t *testing.T) {
	f := newTreeFixture(t)
	key := Key{Source: srcAddr, Group: ssmGroup}
	f.tree.SetLocal(f.now, key, "eth2", true)
	f.rpf[srcAddr] = RPF{Interface: "eth3", Neighbor: upNbr2}
	acts := f.tree.RPFChanged(f.now)
	expectSent(t, acts, "eth1>10.0.12.2 -(10.0.1.2,232.1.1.1)", "eth3>10.0.13.3 +(10.0.1.2,232.1.1.1)")
	if got := changedGroups(acts); !slices.Equal(got, []string{"232.1.1.1"}) {
		t.Fatalf("changed %v", got)
	}
	// Periodic joins now go to the new neighbour only.
	expectSent(t, f.advance(60*time.Second), "eth3>10.0.13.3 +(10.0.1.2,232.1.1.1)")
	// An unchanged RPF sends nothing.
	expectSent(t, f.tree.RPFChanged(f.now))
}

func TestTreeJoinSuppressionAndPruneOverride(t *testing.T) {
	f := newTreeFixture(t)
	key := Key{Group: asmGroup}
	f.tree.SetLocal(f.now, key, "eth2", true)
	// Another router on eth1 joins the same (*,G) through the same neighbour: our
	// next periodic join is redundant.
	f.advance(10 * time.Second)
	other := joinMsg(upNbr, 210, jpGroup(asmGroup, []JPSource{wc(rpAddr)}, nil))
	expectSent(t, f.tree.ReceiveJoinPrune(f.now, "eth1", downNbr, other))
	expectSent(t, f.advance(50*time.Second))
	expectSent(t, f.advance(60*time.Second), "eth1>10.0.12.2 +(*,239.1.1.1)")
	// It prunes: we still want the traffic, so we override within the override
	// interval (Random is 0 here, so at once).
	prune := joinMsg(upNbr, 210, jpGroup(asmGroup, nil, []JPSource{wc(rpAddr)}))
	expectSent(t, f.tree.ReceiveJoinPrune(f.now, "eth1", downNbr, prune))
	expectSent(t, f.advance(0), "eth1>10.0.12.2 +(*,239.1.1.1)")
	// An (S,G,rpt) prune that would cut a source off our shared tree is overridden too.
	sgrpt := joinMsg(upNbr, 210, jpGroup(asmGroup, nil, []JPSource{rpt(srcAddr)}))
	f.tree.ReceiveJoinPrune(f.now, "eth1", downNbr, sgrpt)
	expectSent(t, f.advance(0), "eth1>10.0.12.2 +(*,239.1.1.1)")
}

func TestTreeRPTPrune(t *testing.T) {
	f := newTreeFixture(t)
	key := Key{Source: srcAddr, Group: asmGroup}
	f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, joinMsg(selfDown, 210,
		jpGroup(asmGroup, []JPSource{wc(rpAddr)}, []JPSource{rpt(srcAddr)})))
	if !f.tree.RPTPruned(key, "eth2") {
		t.Fatal("(S,G,rpt) prune not in effect")
	}
	// The periodic Join(*,G) repeats the prune: it stays.
	f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, joinMsg(selfDown, 210,
		jpGroup(asmGroup, []JPSource{wc(rpAddr)}, []JPSource{rpt(srcAddr)})))
	if !f.tree.RPTPruned(key, "eth2") {
		t.Fatal("a repeated (S,G,rpt) prune was dropped")
	}
	// A Join(*,G) without it ends it.
	f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, joinMsg(selfDown, 210, jpGroup(asmGroup, []JPSource{wc(rpAddr)}, nil)))
	if f.tree.RPTPruned(key, "eth2") || f.tree.Has(key) {
		t.Fatal("(S,G,rpt) prune survived a Join(*,G) that did not repeat it")
	}
}

func TestTreeIgnoresWrongRPAndOtherTargets(t *testing.T) {
	f := newTreeFixture(t)
	acts := f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, joinMsg(selfDown, 210,
		jpGroup(asmGroup, []JPSource{wc(netip.MustParseAddr("10.9.9.9"))}, nil),
		jpGroup(ssmGroup, []JPSource{wc(rpAddr)}, nil)))
	var reasons []string
	for _, a := range acts {
		if ig, ok := a.(JoinPruneIgnored); ok {
			reasons = append(reasons, ig.Reason)
		}
	}
	if !slices.Equal(reasons, []string{"rp-mismatch", "no-rp"}) {
		t.Fatalf("ignored %v", reasons)
	}
	if len(f.tree.Entries(netip.Addr{})) != 0 {
		t.Fatal("state from ignored entries")
	}
	// A join for another router on the LAN is not ours to act on.
	f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, joinMsg(peerDown, 210, jpGroup(asmGroup, []JPSource{wc(rpAddr)}, nil)))
	if len(f.tree.Entries(netip.Addr{})) != 0 {
		t.Fatal("state from a join to someone else")
	}
}

func TestTreeNeighborRestartedGetsJoinsSoon(t *testing.T) {
	f := newTreeFixture(t)
	f.tree.SetLocal(f.now, Key{Group: asmGroup}, "eth2", true)
	f.advance(5 * time.Second)
	expectSent(t, f.tree.NeighborRestarted(f.now, "eth1", upNbr))
	expectSent(t, f.advance(0), "eth1>10.0.12.2 +(*,239.1.1.1)")
}

func TestTreeBatchesAndSplits(t *testing.T) {
	f := newTreeFixture(t)
	const n = 1000
	for i := range n {
		g := netip.AddrFrom4([4]byte{239, 2, byte(i >> 8), byte(i)})
		f.tree.SetLocal(f.now, Key{Group: g}, "eth2", true)
	}
	acts := f.advance(60 * time.Second)
	total := 0
	for _, a := range acts {
		jp, ok := a.(SendJoinPrune)
		if !ok {
			continue
		}
		b, err := jp.Message.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > maxJoinPruneSize {
			t.Fatalf("%d-byte Join/Prune", len(b))
		}
		for _, g := range jp.Message.Groups {
			total += len(g.Joins)
		}
	}
	if total != n || len(sent(acts)) > 25 {
		t.Fatalf("%d joins in %d messages", total, len(sent(acts)))
	}
}

func TestLinkOverride(t *testing.T) {
	one := []Neighbor{{Address: upNbr}}
	if LinkOverride(one) != 0 {
		t.Fatal("a point-to-point link has no override interval")
	}
	two := []Neighbor{{Address: upNbr}, {Address: upNbr2, LANPruneDelay: &LANPruneDelay{PropagationDelay: 1000, OverrideInterval: 2000}}}
	if got := LinkOverride(two); got != 3500*time.Millisecond {
		t.Fatalf("override %v, want the largest delay and interval: 1 s + 2.5 s", got)
	}
}

func TestMaxJoins(t *testing.T) {
	f := newTreeFixture(t)
	f.tree.cfg.MaxJoins = 2
	f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, sgJoins(2, 0))
	acts := f.tree.ReceiveJoinPrune(f.now, "eth2", peerDown, sgJoins(3, 0))
	if got := ignored(acts); !slices.Equal(got, []string{"max-joins"}) {
		t.Errorf("ignored %v, want the third join refused", got)
	}
	if f.tree.Len() != 2 {
		t.Fatalf("%d entries, want the 2 held", f.tree.Len())
	}
	// The joins held keep being refreshed; a prune makes room.
	f.advance(200 * time.Second)
	f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, sgJoins(2, 0))
	f.advance(20 * time.Second)
	if f.tree.Len() != 2 {
		t.Fatalf("%d entries after a refresh, want 2", f.tree.Len())
	}
	f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, joinMsg(selfDown, 210, jpGroup(sgJoins(1, 0).Groups[0].Group.Addr(), nil, []JPSource{sg(srcAddr)})))
	if acts := f.tree.ReceiveJoinPrune(f.now, "eth2", peerDown, sgJoins(1, 2)); len(ignored(acts)) != 0 || f.tree.Len() != 2 {
		t.Errorf("after a prune: ignored %v, %d entries", ignored(acts), f.tree.Len())
	}
}

func TestMaxJoinsPerNeighbor(t *testing.T) {
	f := newTreeFixture(t)
	f.tree.cfg.MaxJoinsPerNeighbor = 2
	acts := f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, sgJoins(3, 0))
	if got := ignored(acts); !slices.Equal(got, []string{"max-joins-per-neighbor"}) {
		t.Errorf("ignored %v, want the third join refused", got)
	}
	// Another neighbour has its own allowance; state expiring gives it back.
	if acts := f.tree.ReceiveJoinPrune(f.now, "eth2", peerDown, sgJoins(1, 2)); len(ignored(acts)) != 0 || f.tree.Len() != 3 {
		t.Fatalf("other neighbour: ignored %v, %d entries", ignored(acts), f.tree.Len())
	}
	f.advance(211 * time.Second)
	if acts := f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, sgJoins(2, 10)); len(ignored(acts)) != 0 {
		t.Errorf("after expiry: ignored %v", ignored(acts))
	}
}

// ignored lists the reasons of the Join/Prune parts the actions say were ignored.
func ignored(acts []Action) []string {
	return collect(acts, func(a JoinPruneIgnored) string { return a.Reason })
}

// collect returns what field reads from each action of type A among acts.
func collect[A Action, V any](acts []Action, field func(A) V) []V {
	var out []V
	for _, a := range acts {
		if a, ok := a.(A); ok {
			out = append(out, field(a))
		}
	}
	return out
}

// TestTreeNoJoinSuppressionWithTracking: with suppression off, a peer's join to
// our upstream neighbour does not hold ours back (RFC 7761 4.3.3).
func TestTreeNoJoinSuppressionWithTracking(t *testing.T) {
	f := newTreeFixture(t)
	f.tree.SetLink("eth1", Link{Self: selfUp, Override: 3 * time.Second, Tracking: true})
	f.tree.SetLocal(f.now, Key{Group: asmGroup}, "eth2", true)
	f.advance(10 * time.Second)
	other := joinMsg(upNbr, 210, jpGroup(asmGroup, []JPSource{wc(rpAddr)}, nil))
	expectSent(t, f.tree.ReceiveJoinPrune(f.now, "eth1", downNbr, other))
	expectSent(t, f.advance(50*time.Second), "eth1>10.0.12.2 +(*,239.1.1.1)")
}
