package mrib

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mrouterd/mrouterd/conf"
	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/pim"
)

// The tests run the RIB against a fake world: a router with a source LAN (eth1,
// where the RP's direction is too), a receiver LAN (eth2) and a link towards far
// sources (eth3); the clock moves only when a test moves it.

var (
	hostSrc   = netip.MustParseAddr("10.0.1.2") // on eth1
	hostSrc2  = netip.MustParseAddr("10.0.1.3")
	farSrc    = netip.MustParseAddr("10.0.5.5") // behind 10.0.3.254 on eth3
	grp       = netip.MustParseAddr("239.1.1.1")
	grp2      = netip.MustParseAddr("239.1.1.2")
	ssmGrp    = netip.MustParseAddr("232.1.1.1")
	rpAddr    = netip.MustParseAddr("10.0.9.9")
	rpNbr     = netip.MustParseAddr("10.0.1.254")
	farNbr    = netip.MustParseAddr("10.0.3.254")
	registrar = netip.MustParseAddr("10.0.3.254") // a first-hop DR, registering to us as the RP
)

// membership is IGMP's state on an interface.
type membership map[netip.Addr]igmp.GroupState

func (m membership) Group(g netip.Addr) (igmp.GroupState, bool) {
	s, ok := m[g]
	return s, ok
}

func (m membership) Mode(g netip.Addr) (igmp.FilterMode, bool) {
	s, ok := m[g]
	return s.Mode, ok
}

func (m membership) Forward(s, g netip.Addr) bool {
	st, ok := m[g]
	if !ok {
		return false
	}
	for _, src := range st.Sources {
		if src.Source == s {
			return src.Forward
		}
	}
	return st.Mode == igmp.Exclude
}

type fakeEnv struct {
	rpf     map[netip.Addr]pim.RPF
	rp      netip.Addr // for every group outside the SSM range; invalid: none
	own     map[netip.Addr]bool
	members map[string]membership
	pimOff  map[string]bool
	notDR   map[string]bool
	counts  map[string]int
	fabric  map[Key]bool // what peers on the fabric joined
	// forwarded is the kernel's packet counter of the entries it holds.
	forwarded map[Key]uint64
	// rpfAsked counts RPF's answers: each route recomputed asks for its source's.
	rpfAsked int
}

func (e *fakeEnv) FabricWants(k Key) bool {
	return e.fabric[k] || e.fabric[Key{Group: k.Group}]
}

func (e *fakeEnv) Forwarded(k Key) (uint64, bool) {
	n, ok := e.forwarded[k]
	return n, ok
}

func (e *fakeEnv) RPF(a netip.Addr) pim.RPF {
	e.rpfAsked++
	return e.rpf[a]
}
func (e *fakeEnv) SSM(g netip.Addr) bool   { return netip.MustParsePrefix("232.0.0.0/8").Contains(g) }
func (e *fakeEnv) IsOwn(a netip.Addr) bool { return e.own[a] }
func (e *fakeEnv) Count(name string)       { e.counts[name]++ }

func (e *fakeEnv) RP(g netip.Addr) (netip.Addr, bool) {
	return e.rp, e.rp.IsValid() && !e.SSM(g)
}

func (e *fakeEnv) MemberInterfaces() []string {
	var out []string
	for name := range e.members {
		out = append(out, name)
	}
	return out
}

func (e *fakeEnv) Member(iface string) Membership {
	if m, ok := e.members[iface]; ok {
		return m
	}
	return nil
}

func (e *fakeEnv) DR(iface string) (bool, bool) {
	if e.pimOff[iface] || e.rpf == nil {
		return false, false
	}
	return true, !e.notDR[iface]
}

// AssertMetric: our route to every source is as good as a connected one.
func (e *fakeEnv) AssertMetric(_ Key, iface string, shared bool) pim.AssertMetric {
	return pim.AssertMetric{RPT: shared, Address: netip.MustParseAddr(map[string]string{
		"eth1": "10.0.1.1", "eth2": "10.0.2.1", "eth3": "10.0.3.1"}[iface])}
}

// harness is a RIB in the fake world, and what it sent.
type harness struct {
	t    testing.TB
	env  *fakeEnv
	rib  *RIB
	now  time.Time
	sent []Send
}

// newHarness builds the world; rp is the RP's address, "" for none.
func newHarness(t testing.TB, rp string, cfg Config) *harness {
	e := &fakeEnv{
		rpf: map[netip.Addr]pim.RPF{
			hostSrc: {Interface: "eth1"}, hostSrc2: {Interface: "eth1"},
			farSrc: {Interface: "eth3", Neighbor: farNbr},
			rpAddr: {Interface: "eth1", Neighbor: rpNbr},
		},
		own:     make(map[netip.Addr]bool),
		members: map[string]membership{"eth1": {}, "eth2": {}, "eth3": {}},
		pimOff:  make(map[string]bool), notDR: make(map[string]bool),
		counts: make(map[string]int),
	}
	if rp != "" {
		e.rp = netip.MustParseAddr(rp)
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 210 * time.Second
	}
	h := &harness{t: t, env: e, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	h.rib = New(cfg, e, pim.TreeConfig{RP: e.RP, RPF: e.RPF}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i, name := range []string{"eth1", "eth2", "eth3"} {
		h.rib.Tree().SetLink(name, pim.Link{Self: netip.AddrFrom4([4]byte{10, 0, byte(i + 1), 1})})
	}
	return h
}

func (h *harness) add(s []Send) { h.sent = append(h.sent, s...) }

// settle recomputes what changed, as the loop does between events.
func (h *harness) settle() { h.add(h.rib.Refresh(h.now)) }

// member sets IGMP's state of a group on an interface: include or exclude the
// sources; exclude with none is an any-source join, include with none a leave.
func (h *harness) member(iface string, g netip.Addr, mode igmp.FilterMode, sources ...netip.Addr) {
	m := h.env.members[iface]
	if mode == igmp.Include && len(sources) == 0 {
		delete(m, g)
	} else {
		st := igmp.GroupState{Group: g, Mode: mode}
		for _, s := range sources {
			st.Sources = append(st.Sources, igmp.SourceState{Source: s, Forward: mode == igmp.Include})
		}
		m[g] = st
	}
	h.add(h.rib.SyncLocal(h.now, iface, g))
	h.settle()
}

func (h *harness) noCache(key Key, in Arrival) {
	_, s := h.rib.NoCache(h.now, key, in)
	h.add(s)
	h.settle()
}

func (h *harness) tree(actions []pim.Action) {
	h.add(h.rib.TreeActions(actions))
	h.settle()
}

func (h *harness) advance(d time.Duration) {
	h.now = h.now.Add(d)
	h.tree(h.rib.Tree().Advance(h.now))
	h.add(h.rib.Advance(h.now))
	h.settle()
}

// want checks a route's interfaces; no iif and no oifs: no route at all.
func (h *harness) want(key Key, iif string, oifs ...string) {
	h.t.Helper()
	rt, ok := h.rib.Route(key)
	if iif == "" && oifs == nil {
		if ok {
			h.t.Fatalf("%v: route %s -> %v, want none", key, rt.IIF, rt.OIFs)
		}
		return
	}
	if !ok || rt.IIF != iif || !slices.Equal(rt.OIFs, oifs) {
		h.t.Fatalf("%v: %v %+v, want %s -> %v", key, ok, rt, iif, oifs)
	}
}

// sends lists what was sent since the last call, one word each: "joinprune@eth1",
// "register-stop>10.0.3.254", ...
func (h *harness) sends() []string {
	var out []string
	for _, s := range h.sent {
		var what string
		switch m := s.Msg.(type) {
		case *pim.JoinPrune:
			what = "joinprune"
			for _, g := range m.Groups {
				for _, j := range g.Joins {
					what += fmt.Sprintf(" +%s%s", j.Source.Addr(), map[bool]string{true: "rpt"}[j.RPT && !j.Wildcard])
				}
				for _, p := range g.Prunes {
					what += fmt.Sprintf(" -%s%s", p.Source.Addr(), map[bool]string{true: "rpt"}[p.RPT && !p.Wildcard])
				}
			}
		case *pim.RegisterStop:
			what = "register-stop"
		case *pim.Register:
			what = "null-register"
		case *pim.Assert:
			what = "assert"
		}
		if s.On != "" {
			what += "@" + s.On
		} else {
			what += ">" + s.To.String()
		}
		out = append(out, what)
	}
	h.sent = nil
	slices.Sort(out)
	return out
}

func (h *harness) wantSends(want ...string) {
	h.t.Helper()
	if got := h.sends(); !slices.Equal(got, want) {
		h.t.Fatalf("sent %q, want %q", got, want)
	}
}

func sg(s, g netip.Addr) Key { return Key{Source: s, Group: g} }

var onEth1 = Arrival{Interface: "eth1", Connected: true}

func TestLocalRouting(t *testing.T) {
	tests := []struct {
		name    string
		mode    igmp.FilterMode
		sources []netip.Addr
		src     netip.Addr
		oifs    []string
	}{
		{"include the source", igmp.Include, []netip.Addr{hostSrc}, hostSrc, []string{"eth2"}},
		{"include another source", igmp.Include, []netip.Addr{hostSrc2}, hostSrc, nil},
		{"exclude nothing", igmp.Exclude, nil, hostSrc, []string{"eth2"}},
		{"exclude the source", igmp.Exclude, []netip.Addr{hostSrc}, hostSrc, nil},
		{"exclude another source", igmp.Exclude, []netip.Addr{hostSrc2}, hostSrc, []string{"eth2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "", Config{})
			h.member("eth2", grp, tt.mode, tt.sources...)
			h.noCache(sg(tt.src, grp), onEth1)
			rt, ok := h.rib.Route(sg(tt.src, grp))
			if !ok || rt.IIF != "eth1" || !slices.Equal(rt.OIFs, tt.oifs) || rt.Origin != OriginIGMP {
				t.Fatalf("route %+v, want eth1 -> %v by IGMP", rt, tt.oifs)
			}
			if got := h.sends(); len(got) != 0 {
				t.Fatalf("without an RP nothing is sent: %v", got)
			}
			// A member leaving takes the interface off, and the route with it
			// when only the member's join held it.
			h.member("eth2", grp, igmp.Include)
			if rt, ok := h.rib.Route(sg(tt.src, grp)); ok && len(rt.OIFs) != 0 {
				t.Fatalf("after the leave: %+v", rt)
			}
		})
	}
}

func TestMembersCountWhereWeAreDR(t *testing.T) {
	h := newHarness(t, "", Config{})
	h.env.notDR["eth2"] = true
	h.env.pimOff["eth3"] = true // no PIM, no DR to defer to
	h.member("eth2", grp, igmp.Exclude)
	h.member("eth3", grp, igmp.Exclude)
	h.noCache(sg(hostSrc, grp), onEth1)
	h.want(sg(hostSrc, grp), "eth1", "eth3")
	// Elected on eth2.
	delete(h.env.notDR, "eth2")
	h.add(h.rib.SyncAllLocal(h.now, "eth2", []netip.Addr{grp}))
	h.settle()
	h.want(sg(hostSrc, grp), "eth1", "eth2", "eth3")
	if !h.rib.Tree().HasLocal(Key{Group: grp}) {
		t.Fatal("no local (*,G) receivers")
	}
}

func TestUnroutedAndKnownUpcalls(t *testing.T) {
	h := newHarness(t, "", Config{})
	if rec, _ := h.rib.NoCache(h.now, sg(farSrc, grp), Arrival{Interface: "eth3"}); rec || h.env.counts["upcall_unrouted"] != 1 {
		t.Fatalf("a far source without state: %v %v", rec, h.env.counts)
	}
	h.noCache(sg(hostSrc, grp), onEth1)
	if rec, _ := h.rib.NoCache(h.now, sg(hostSrc, grp), onEth1); !rec {
		t.Fatal("a known route the kernel lost asks for no reconcile")
	}
}

func TestSharedTreeAndSPTSwitch(t *testing.T) {
	h := newHarness(t, rpAddr.String(), Config{SPTSwitchover: true})
	h.member("eth2", grp, igmp.Exclude)
	h.wantSends("joinprune +10.0.9.9@eth1")
	// The first packet comes down the shared tree; the last hop joins the source's.
	key := sg(farSrc, grp)
	h.noCache(key, Arrival{Interface: "eth1"})
	h.want(key, "eth1", "eth2")
	if rt, _ := h.rib.Route(key); !rt.Shared || rt.Origin != OriginPIM {
		t.Fatalf("route %+v: on the shared tree, by PIM", rt)
	}
	h.wantSends("joinprune +10.0.5.5@eth3")
	// The source's tree delivers: switch, and prune the source off the shared tree.
	h.add(h.rib.WrongVIF(h.now, key, "eth3"))
	h.settle()
	h.want(key, "eth3", "eth2")
	h.wantSends("joinprune -10.0.5.5rpt@eth1")
	if h.env.counts["spt_switches"] != 1 || !h.rib.Tree().SPTBit(key) {
		t.Fatalf("counts %v", h.env.counts)
	}
}

func TestSPTBitWhenBothTreesArriveTheSameWay(t *testing.T) {
	h := newHarness(t, rpAddr.String(), Config{SPTSwitchover: true})
	h.env.rpf[farSrc] = pim.RPF{Interface: "eth1", Neighbor: rpNbr}
	h.member("eth2", grp, igmp.Exclude)
	key := sg(farSrc, grp)
	h.noCache(key, Arrival{Interface: "eth1"})
	if !h.rib.Tree().SPTBit(key) {
		t.Fatal("joined through the shared tree's neighbour, yet no SPT bit")
	}
	h.want(key, "eth1", "eth2")
	if rt, _ := h.rib.Route(key); rt.Shared {
		t.Fatal("still on the shared tree")
	}
}

func TestSPTSwitchoverNever(t *testing.T) {
	h := newHarness(t, rpAddr.String(), Config{})
	h.member("eth2", grp, igmp.Exclude)
	h.sends()
	h.noCache(sg(farSrc, grp), Arrival{Interface: "eth1"})
	h.wantSends()
	h.want(sg(farSrc, grp), "eth1", "eth2")
}

func TestRPTPrune(t *testing.T) {
	h := newHarness(t, rpAddr.String(), Config{})
	h.env.rpf[farSrc] = pim.RPF{Interface: "eth1", Neighbor: rpNbr}
	other := netip.MustParseAddr("10.0.5.6")
	h.env.rpf[other] = h.env.rpf[farSrc]
	us := netip.MustParseAddr("10.0.3.1")
	wc := pim.JPSource{Source: netip.PrefixFrom(rpAddr, 32), Sparse: true, Wildcard: true, RPT: true}
	rpt := pim.JPSource{Source: netip.PrefixFrom(farSrc, 32), Sparse: true, RPT: true}
	jp := func(prunes ...pim.JPSource) *pim.JoinPrune {
		return &pim.JoinPrune{UpstreamNeighbor: us, Holdtime: 210,
			Groups: []pim.JPGroup{{Group: netip.PrefixFrom(grp, 32), Joins: []pim.JPSource{wc}, Prunes: prunes}}}
	}
	h.tree(h.rib.Tree().ReceiveJoinPrune(h.now, "eth3", farNbr, jp()))
	h.noCache(sg(farSrc, grp), Arrival{Interface: "eth1"})
	h.noCache(sg(other, grp), Arrival{Interface: "eth1"})
	h.want(sg(farSrc, grp), "eth1", "eth3")
	h.tree(h.rib.Tree().ReceiveJoinPrune(h.now, "eth3", farNbr, jp(rpt)))
	h.advance(10 * time.Second) // past the prune override
	h.want(sg(farSrc, grp), "eth1")
	h.want(sg(other, grp), "eth1", "eth3")
}

func TestSSM(t *testing.T) {
	h := newHarness(t, rpAddr.String(), Config{})
	key := sg(farSrc, ssmGrp)
	h.member("eth2", ssmGrp, igmp.Include, farSrc)
	// Joined and routed before the first packet.
	h.want(key, "eth3", "eth2")
	h.wantSends("joinprune +10.0.5.5@eth3")
	if rt, _ := h.rib.Route(key); !rt.JoinState || rt.Learned {
		t.Fatalf("route %+v", rt)
	}
	// No shared tree in the SSM range: an any-source join asks for nothing.
	h.member("eth3", ssmGrp, igmp.Exclude)
	h.want(key, "eth3", "eth2")
	h.wantSends()
	if h.env.counts["igmp_ssm_asm_join_ignored"] != 1 {
		t.Fatalf("counts %v", h.env.counts)
	}
	// The member leaves: the route goes with the join.
	h.member("eth2", ssmGrp, igmp.Include)
	h.want(key, "")
	h.wantSends("joinprune -10.0.5.5@eth3")
}

// TestPrunedRouteThatForwardedDropsUntilIdle: a route join state alone made, whose
// kernel entry forwarded packets, outlives its join state as a learned route with
// no outgoing interface (RFC 7761 4.2, the keepalive set by data), so the kernel
// drops what is still on the way instead of queueing it; it goes once idle. One
// that forwarded nothing goes with its join.
func TestPrunedRouteThatForwardedDropsUntilIdle(t *testing.T) {
	h := newHarness(t, "", Config{IdleTimeout: time.Minute})
	key := sg(farSrc, ssmGrp)
	h.env.forwarded = map[Key]uint64{key: 7}
	h.member("eth2", ssmGrp, igmp.Include, farSrc)
	h.want(key, "eth3", "eth2")
	h.sends()
	h.member("eth2", ssmGrp, igmp.Include)
	h.want(key, "eth3")
	h.wantSends("joinprune -10.0.5.5@eth3")
	if rt := mustRoute(t, h, key); !rt.Learned || rt.JoinState || rt.LastPackets != 7 {
		t.Fatalf("route %+v: want learned from its 7 packets, without join state", rt)
	}
	packets := func(n uint64) func(Key) (uint64, bool) {
		return func(Key) (uint64, bool) { return n, true }
	}
	// Packets still arrive for a while: the route stays.
	h.now = h.now.Add(50 * time.Second)
	h.add(h.rib.ExpireLearned(h.now, packets(9)))
	h.now = h.now.Add(50 * time.Second)
	h.add(h.rib.ExpireLearned(h.now, packets(9)))
	h.want(key, "eth3")
	// Then none for the idle timeout: it goes, and asks nothing upstream.
	h.now = h.now.Add(11 * time.Second)
	h.add(h.rib.ExpireLearned(h.now, packets(9)))
	h.settle()
	h.want(key, "")
	h.wantSends()

	// A route whose entry forwarded nothing goes with its join.
	other := sg(farSrc, netip.MustParseAddr("232.1.1.9"))
	h.env.forwarded[other] = 0
	h.member("eth2", other.Group, igmp.Include, farSrc)
	h.want(other, "eth3", "eth2")
	h.member("eth2", other.Group, igmp.Include)
	h.want(other, "")
}

func TestRouteChangeMovesRPF(t *testing.T) {
	h := newHarness(t, "", Config{})
	key := sg(farSrc, ssmGrp)
	h.member("eth2", ssmGrp, igmp.Include, farSrc)
	h.want(key, "eth3", "eth2")
	h.sends()
	h.rib.TakeChanged()
	h.env.rpf[farSrc] = pim.RPF{Interface: "eth1", Neighbor: rpNbr}
	h.add(h.rib.TreeActions(h.rib.Tree().RPFChanged(h.now)))
	h.rib.MarkAll()
	h.settle()
	h.want(key, "eth1", "eth2")
	h.wantSends("joinprune +10.0.5.5@eth1", "joinprune -10.0.5.5@eth3")
	if got := h.rib.TakeChanged(); !slices.Equal(got, []Key{key}) || h.rib.Changed() {
		t.Fatalf("changed %v", got)
	}
}

func TestRegisterAtFirstHop(t *testing.T) {
	h := newHarness(t, rpAddr.String(), Config{RegisterVIF: "pimreg"})
	key := sg(hostSrc, grp)
	h.noCache(key, onEth1)
	h.want(key, "eth1", "pimreg")
	if rp, ok := h.rib.Tree().RegisterRP(key); !ok || rp != rpAddr {
		t.Fatalf("registering to %v %v", rp, ok)
	}
	// Register-Stop: the tunnel leaves; a Null-Register probes the RP later.
	h.tree(h.rib.Tree().ReceiveRegisterStop(h.now, grp, hostSrc))
	h.want(key, "eth1")
	h.advance(2 * time.Minute)
	h.wantSends("null-register>10.0.9.9")
	// Not the DR of the source's LAN: somebody else registers.
	h.env.notDR["eth1"] = true
	h.rib.MarkAll()
	h.advance(5 * time.Minute)
	if _, ok := h.rib.Tree().Registering(key); ok {
		t.Fatal("registering where another router is the DR")
	}
}

// atRP is a harness where this router is the RP and a first-hop DR registers
// hostSrc to it from behind eth3.
func atRP(t *testing.T, cfg Config) *harness {
	h := newHarness(t, rpAddr.String(), cfg)
	h.env.own[rpAddr] = true
	h.env.rpf[rpAddr] = pim.RPF{}
	h.env.rpf[hostSrc] = pim.RPF{Interface: "eth3", Neighbor: farNbr}
	h.env.rpf[registrar] = pim.RPF{Interface: "eth3"}
	return h
}

// registerPacket is a data packet from hostSrc to a group, as registered.
func registerPacket(g netip.Addr) *pim.Register {
	p := make([]byte, 28)
	p[0], p[9] = 0x45, 17
	copy(p[12:16], hostSrc.AsSlice())
	copy(p[16:20], g.AsSlice())
	return &pim.Register{Packet: p}
}

func TestRegisterAtRP(t *testing.T) {
	h := atRP(t, Config{RegisterVIF: "pimreg"})
	key := sg(hostSrc, grp)
	register := func(m *pim.Register) {
		h.add(h.rib.Register(h.now, registrar, m))
		h.settle()
	}
	tests := []struct {
		name  string
		event func()
		iif   string
		oifs  []string
		sends []string
		count string
	}{
		{"nobody wants it", func() { register(registerPacket(grp)) },
			"pimreg", nil, []string{"register-stop>10.0.3.254"}, "register_stop_no_receivers"},
		{"a member joins", func() { h.member("eth2", grp, igmp.Exclude) },
			"pimreg", []string{"eth2"}, []string{"joinprune +10.0.1.2@eth3"}, ""},
		{"registers flow", func() { register(registerPacket(grp)) },
			"pimreg", []string{"eth2"}, nil, ""},
		{"native traffic overtakes them", func() { h.add(h.rib.WrongVIF(h.now, key, "eth3")); h.settle() },
			"pimreg", []string{"eth2"}, nil, ""},
		{"the next register catches up", func() { register(registerPacket(grp)) },
			"eth3", []string{"eth2"}, []string{"register-stop>10.0.3.254"}, "register_stop_spt"},
		{"registers in flight are stopped", func() { register(registerPacket(grp)) },
			"eth3", []string{"eth2"}, []string{"register-stop>10.0.3.254"}, "register_stop_spt"},
	}
	for _, tt := range tests {
		before := h.env.counts[tt.count]
		tt.event()
		h.want(key, tt.iif, tt.oifs...)
		if got := h.sends(); !slices.Equal(got, tt.sends) {
			t.Fatalf("%s: sent %q, want %q", tt.name, got, tt.sends)
		}
		if tt.count != "" && h.env.counts[tt.count] != before+1 {
			t.Fatalf("%s: counts %v", tt.name, h.env.counts)
		}
	}
}

// TestArrivingNativelyAtRP: an RP that, after a restart, would take a source from
// registers that no longer come learns from the adopted entry that the source's
// packets arrive natively, and switches at once.
func TestArrivingNativelyAtRP(t *testing.T) {
	h := atRP(t, Config{RegisterVIF: "pimreg"})
	key := sg(hostSrc, grp)
	h.member("eth2", grp, igmp.Exclude)
	h.noCache(key, Arrival{Interface: "eth3"})
	h.want(key, "pimreg", "eth2")
	if s := h.rib.ArrivingNatively(h.now, key, "eth2"); s != nil || h.rib.Tree().SPTBit(key) {
		t.Fatal("packets off the reverse path switched the route")
	}
	h.add(h.rib.ArrivingNatively(h.now, key, "eth3"))
	h.settle()
	h.want(key, "eth3", "eth2")
	if !h.rib.Tree().SPTBit(key) {
		t.Fatal("no SPT bit")
	}
}

func TestRegisterRefused(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *harness)
		m     *pim.Register
		count string
	}{
		{"malformed", nil, &pim.Register{Packet: []byte{0x45}}, "register_malformed"},
		{"not the RP", func(h *harness) { h.env.own[rpAddr] = false }, registerPacket(grp), "register_stop_not_rp"},
		{"outside register-accept", func(h *harness) {
			h.rib.SetConfig(Config{RegisterVIF: "pimreg", RegisterAccept: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}}, pim.TreeConfig{})
		}, registerPacket(grp), "register_stop_refused"},
		// Without register-accept: only from where PIM runs on the way back.
		{"the way back is not a PIM interface", func(h *harness) { h.env.pimOff["eth3"] = true },
			registerPacket(grp), "register_stop_refused"},
		{"no way back", func(h *harness) { delete(h.env.rpf, registrar) }, registerPacket(grp), "register_stop_refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := atRP(t, Config{RegisterVIF: "pimreg"})
			if tt.setup != nil {
				tt.setup(h)
			}
			h.add(h.rib.Register(h.now, registrar, tt.m))
			if h.env.counts[tt.count] != 1 {
				t.Fatalf("counts %v", h.env.counts)
			}
			if h.rib.Len() != 0 {
				t.Fatal("a refused register made a route")
			}
		})
	}
}

func TestRegisterAcceptAndTheWaitRunsOut(t *testing.T) {
	accept := []netip.Prefix{netip.MustParsePrefix("10.0.3.0/24")}
	h := atRP(t, Config{RegisterVIF: "pimreg", RegisterAccept: accept})
	key := sg(hostSrc, grp)
	h.member("eth2", grp, igmp.Exclude)
	// Decapsulated before the Register was checked: wait for it.
	h.noCache(key, Arrival{Interface: "pimreg", Register: true})
	if h.env.counts["register_upcall_unchecked"] != 1 || h.rib.Len() != 0 {
		t.Fatalf("counts %v", h.env.counts)
	}
	h.add(h.rib.Register(h.now, registrar, registerPacket(grp)))
	h.settle()
	h.want(key, "pimreg", "eth2")
	h.add(h.rib.WrongVIF(h.now, key, "eth3"))
	if at, ok := h.rib.NextDeadline(); !ok || at.After(h.now.Add(sptSwitchWait)) {
		t.Fatalf("next deadline %v %v", at, ok)
	}
	h.advance(time.Second)
	h.want(key, "eth3", "eth2")
	if h.env.counts["spt_switches"] != 1 {
		t.Fatalf("counts %v", h.env.counts)
	}
	// Registers keep the source alive; without them and traffic it goes.
	if left := h.rib.ExpiresIn(mustRoute(t, h, key), h.now); left <= 0 {
		t.Fatalf("expires in %v", left)
	}
}

func mustRoute(t *testing.T, h *harness, key Key) *Route {
	t.Helper()
	rt, ok := h.rib.Route(key)
	if !ok {
		t.Fatalf("no route %v", key)
	}
	return rt
}

func TestAssertLoser(t *testing.T) {
	h := newHarness(t, "", Config{})
	key := sg(hostSrc, grp)
	h.member("eth2", grp, igmp.Exclude)
	h.noCache(key, onEth1)
	h.want(key, "eth1", "eth2")
	// Our copies meet another router's on eth2: we assert.
	h.add(h.rib.WrongVIF(h.now, key, "eth2"))
	h.wantSends("assert@eth2")
	// Its assert is as good and its address higher: it wins, we stop forwarding there.
	h.add(h.rib.Assert(h.now, "eth2", netip.MustParseAddr("10.0.2.9"), &pim.Assert{Group: grp, Source: hostSrc}))
	h.settle()
	h.want(key, "eth1")
	tests := []struct {
		name  string
		do    func() []Send
		count string
	}{
		{"(*,G) assert", func() []Send {
			return h.rib.Assert(h.now, "eth2", netip.MustParseAddr("10.0.2.9"), &pim.Assert{Group: grp, Source: netip.IPv4Unspecified()})
		}, "asserts_ignored"},
		{"data from an unknown VIF", func() []Send { return h.rib.WrongVIF(h.now, key, "") }, "wrongvif_ignored"},
		{"data where we do not forward", func() []Send { return h.rib.WrongVIF(h.now, key, "eth3") }, "wrongvif_ignored"},
		{"data on a link without PIM", func() []Send {
			h.env.pimOff["eth3"] = true
			rt := mustRoute(t, h, key)
			rt.OIFs = []string{"eth3"}
			return h.rib.WrongVIF(h.now, key, "eth3")
		}, "wrongvif_ignored"},
	}
	for _, tt := range tests {
		before := h.env.counts[tt.count]
		if s := tt.do(); len(s) != 0 || h.env.counts[tt.count] != before+1 {
			t.Fatalf("%s: sent %v, counts %v", tt.name, s, h.env.counts)
		}
	}
}

func TestStaticRoutesAndTemplates(t *testing.T) {
	h := newHarness(t, "", Config{})
	static := []conf.Static{
		{Source: hostSrc, Group: grp, IIF: "eth1", OIFs: []string{"eth2", "eth3"}},
		{Group: ssmGrp, IIF: "eth1", OIFs: []string{"eth2"}},
	}
	h.rib.SetStatic(h.now, static)
	h.want(sg(hostSrc, grp), "eth1", "eth2", "eth3")
	if tmpl := mustRoute(t, h, Key{Group: ssmGrp}); tmpl.Installable() || tmpl.Origin != OriginStatic {
		t.Fatalf("template %+v", tmpl)
	}
	// An instance is learned from traffic on the template's interface only.
	h.noCache(sg(hostSrc2, ssmGrp), Arrival{Interface: "eth3"})
	h.want(sg(hostSrc2, ssmGrp), "")
	h.noCache(sg(hostSrc2, ssmGrp), onEth1)
	h.want(sg(hostSrc2, ssmGrp), "eth1", "eth2")
	if !h.rib.HasLearned() {
		t.Fatal("no learned route")
	}
	// Static routes do not switch trees or assert.
	h.add(h.rib.WrongVIF(h.now, sg(hostSrc, grp), "eth2"))
	if h.env.counts["wrongvif_ignored"] != 1 {
		t.Fatalf("counts %v", h.env.counts)
	}
	// Idle: the instance goes when its counter stops; the static route stays.
	packets := uint64(1)
	counter := func(Key) (uint64, bool) { return packets, true }
	h.now = h.now.Add(200 * time.Second)
	h.add(h.rib.ExpireLearned(h.now, counter))
	h.now = h.now.Add(200 * time.Second)
	h.add(h.rib.ExpireLearned(h.now, counter))
	h.want(sg(hostSrc2, ssmGrp), "eth1", "eth2")
	h.now = h.now.Add(211 * time.Second)
	h.add(h.rib.ExpireLearned(h.now, counter))
	h.want(sg(hostSrc2, ssmGrp), "")
	h.want(sg(hostSrc, grp), "eth1", "eth2", "eth3")
	if h.rib.ExpiresIn(mustRoute(t, h, sg(hostSrc, grp)), h.now) != 0 {
		t.Fatal("a static route expires")
	}
	// A changed template takes its instances with it; an unchanged route stays.
	kept := mustRoute(t, h, sg(hostSrc, grp))
	h.noCache(sg(hostSrc2, ssmGrp), onEth1)
	static[1].OIFs = []string{"eth3"}
	h.rib.SetStatic(h.now, static)
	h.want(sg(hostSrc2, ssmGrp), "")
	if mustRoute(t, h, sg(hostSrc, grp)) != kept {
		t.Fatal("an unchanged static route was replaced")
	}
	if h.rib.Len() != 2 {
		t.Fatalf("%d routes", h.rib.Len())
	}
}

func TestLearnedRouteExpiresButJoinStateKeepsIt(t *testing.T) {
	h := newHarness(t, "", Config{})
	key := sg(hostSrc, ssmGrp)
	h.noCache(key, onEth1)
	h.member("eth2", ssmGrp, igmp.Include, hostSrc)
	if rt := mustRoute(t, h, key); !rt.Learned {
		t.Fatal("seen traffic, not learned")
	}
	h.now = h.now.Add(time.Hour)
	h.add(h.rib.ExpireLearned(h.now, func(Key) (uint64, bool) { return 0, false }))
	h.settle()
	if rt := mustRoute(t, h, key); rt.Learned || !rt.JoinState {
		t.Fatalf("route %+v: join state keeps it", rt)
	}
	// A learned route without join state goes, and so does its source state.
	h.noCache(sg(hostSrc, grp), onEth1)
	h.now = h.now.Add(time.Hour)
	h.add(h.rib.ExpireLearned(h.now, func(Key) (uint64, bool) { return 0, false }))
	h.want(sg(hostSrc, grp), "")
}

// TestTrafficOnAJoinedRouteIsLearned: a route join state alone holds (its traffic
// started before a restart, and the kernel asks nothing for an entry it has) is
// learned when its source is reported, as before the idle timeout took it.
func TestTrafficOnAJoinedRouteIsLearned(t *testing.T) {
	h := newHarness(t, "", Config{})
	key := sg(hostSrc, ssmGrp)
	h.member("eth2", ssmGrp, igmp.Include, hostSrc)
	if rt := mustRoute(t, h, key); rt.Learned || !rt.JoinState {
		t.Fatalf("route %+v: join state only", rt)
	}
	if rec, _ := h.rib.NoCache(h.now, key, onEth1); !rec {
		t.Fatal("a known route asks for no reconcile")
	}
	if rt := mustRoute(t, h, key); !rt.Learned || !h.rib.HasLearned() {
		t.Fatalf("route %+v: its traffic was reported, not learned", rt)
	}
}

func TestOriginString(t *testing.T) {
	for o, want := range map[Origin]string{OriginStatic: "static", OriginIGMP: "igmp", OriginPIM: "pim"} {
		if o.String() != want {
			t.Errorf("%d: %q, want %q", o, o.String(), want)
		}
	}
}

func TestSyncLocalIncludeList(t *testing.T) {
	h := newHarness(t, "", Config{})
	h.member("eth2", ssmGrp, igmp.Include, hostSrc, farSrc)
	h.member("eth2", ssmGrp, igmp.Include, hostSrc2, farSrc)
	for _, c := range []struct {
		source netip.Addr
		local  bool
	}{{hostSrc, false}, {hostSrc2, true}, {farSrc, true}} {
		if got := h.rib.Tree().HasLocal(Key{Source: c.source, Group: ssmGrp}); got != c.local {
			t.Errorf("(%s,%s) local = %v, want %v", c.source, ssmGrp, got, c.local)
		}
	}
	h.member("eth2", ssmGrp, igmp.Exclude)
	if h.rib.Tree().HasLocal(Key{Source: farSrc, Group: ssmGrp}) || len(h.rib.Tree().Sources(ssmGrp)) != 0 {
		t.Errorf("an any-source join in the SSM range left (S,G) receivers: %v", h.rib.Tree().Sources(ssmGrp))
	}
}

// TestIncludeSourceRecomputesItsRoute: a source added to, or removed from, a
// large INCLUDE list recomputes that source's route, not the group's; an
// any-source join then recomputes them all.
func TestIncludeSourceRecomputesItsRoute(t *testing.T) {
	const n = 1000
	h := newHarness(t, "", Config{})
	source := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 100, byte(i >> 8), byte(i)}) }
	var sources []netip.Addr
	for i := range n + 1 {
		h.env.rpf[source(i)] = pim.RPF{Interface: "eth3", Neighbor: farNbr}
		if i < n {
			sources = append(sources, source(i))
		}
	}
	h.member("eth2", grp, igmp.Include, sources...)
	more := append(slices.Clone(sources), source(n))
	for _, c := range []struct {
		what    string
		sources []netip.Addr
	}{{"one source more", more}, {"one source less", more[1:]}} {
		h.env.rpfAsked = 0
		h.member("eth2", grp, igmp.Include, c.sources...)
		if h.env.rpfAsked > 10 {
			t.Errorf("%s in an INCLUDE list of %d: %d reverse paths asked; want that source's route alone recomputed", c.what, n, h.env.rpfAsked)
		}
	}
	h.want(sg(source(n), grp), "eth3", "eth2")
	h.want(sg(source(0), grp), "")
	h.want(sg(source(1), grp), "eth3", "eth2")
	h.env.rpfAsked = 0
	h.member("eth2", grp, igmp.Exclude)
	if h.env.rpfAsked < n {
		t.Errorf("an any-source join recomputed %d routes of the group's %d", h.env.rpfAsked, n)
	}
}

// BenchmarkSyncLocal brings an SSM group's receivers, and the routes, in line after
// a report added one source to an INCLUDE list of n: the cost per source stays
// flat as n grows.
func BenchmarkSyncLocal(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			h := newHarness(b, "", Config{})
			states := [2]igmp.GroupState{{Group: ssmGrp}, {Group: ssmGrp}}
			for i := range n + 1 {
				s := igmp.SourceState{Source: netip.AddrFrom4([4]byte{10, 100, byte(i >> 8), byte(i)}), Forward: true}
				if i < n {
					states[0].Sources = append(states[0].Sources, s)
				}
				states[1].Sources = append(states[1].Sources, s)
			}
			h.env.members["eth2"][ssmGrp] = states[0]
			h.rib.SyncLocal(h.now, "eth2", ssmGrp)
			b.ResetTimer()
			for i := range b.N {
				h.env.members["eth2"][ssmGrp] = states[(i+1)%2]
				h.rib.SyncLocal(h.now, "eth2", ssmGrp)
				h.rib.Refresh(h.now)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/source")
		})
	}
}

func TestMaxLearned(t *testing.T) {
	h := newHarness(t, "", Config{MaxLearned: 1})
	h.member("eth2", grp, igmp.Exclude)
	h.noCache(sg(hostSrc, grp), onEth1)
	h.noCache(sg(hostSrc2, grp), onEth1)
	if h.env.counts["routes_learned_refused"] != 1 {
		t.Fatalf("counts %v", h.env.counts)
	}
	if _, ok := h.rib.Route(sg(hostSrc2, grp)); ok {
		t.Fatal("a flow beyond the limit was learned")
	}
	h.want(sg(hostSrc, grp), "eth1", "eth2")
	// The first goes idle, which makes room.
	h.advance(300 * time.Second)
	h.add(h.rib.ExpireLearned(h.now, func(Key) (uint64, bool) { return 0, false }))
	h.noCache(sg(hostSrc2, grp), onEth1)
	h.want(sg(hostSrc2, grp), "eth1", "eth2")
}

func TestMaxRegistered(t *testing.T) {
	h := atRP(t, Config{RegisterVIF: "pimreg", MaxRegistered: 1})
	h.member("eth2", grp, igmp.Exclude)
	h.member("eth2", grp2, igmp.Exclude)
	h.add(h.rib.Register(h.now, registrar, registerPacket(grp)))
	h.add(h.rib.Register(h.now, registrar, registerPacket(grp2)))
	h.settle()
	if h.env.counts["registers_refused"] != 1 {
		t.Fatalf("counts %v", h.env.counts)
	}
	if _, ok := h.rib.Route(sg(hostSrc, grp2)); ok {
		t.Fatal("a source beyond the limit was registered")
	}
	// The source held keeps registering.
	h.add(h.rib.Register(h.now, registrar, registerPacket(grp)))
	h.want(sg(hostSrc, grp), "pimreg", "eth2")
	if h.env.counts["registers_refused"] != 1 {
		t.Fatalf("the registered source was refused: %v", h.env.counts)
	}
}

// BenchmarkNoCache learns one more flow from a connected source into a group
// whose members already receive n of them: the cost per upcall stays flat.
func BenchmarkNoCache(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			h := newHarness(b, "", Config{})
			h.member("eth2", grp, igmp.Exclude)
			source := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
			for i := range n {
				h.rib.NoCache(h.now, sg(source(i), grp), onEth1)
			}
			h.settle()
			b.ResetTimer()
			for i := range b.N {
				h.rib.NoCache(h.now, sg(source(n+i), grp), onEth1)
				h.rib.Refresh(h.now)
			}
		})
	}
}

// TestUses follows the count of routes naming each interface through a route's
// life: it is what decides whether an interface keeps a VIF.
func TestUses(t *testing.T) {
	h := newHarness(t, "", Config{})
	uses := func() map[string]int {
		out := map[string]int{}
		for _, name := range []string{"eth1", "eth2", "eth3"} {
			if n := h.rib.Uses(name); n > 0 {
				out[name] = n
			}
		}
		return out
	}
	check := func(when string, want map[string]int) {
		t.Helper()
		if got := uses(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: uses %v, want %v", when, got, want)
		}
	}
	check("empty", map[string]int{})
	h.rib.SetStatic(h.now, []conf.Static{{Group: ssmGrp, IIF: "eth3", OIFs: []string{"eth2"}}})
	check("a template", map[string]int{"eth2": 1, "eth3": 1})
	h.member("eth2", grp, igmp.Exclude)
	h.noCache(sg(hostSrc, grp), onEth1)
	check("a learned route", map[string]int{"eth1": 1, "eth2": 2, "eth3": 1})
	h.member("eth2", grp, igmp.Include)
	check("its receiver gone", map[string]int{"eth1": 1, "eth2": 1, "eth3": 1})
	h.now = h.now.Add(time.Hour)
	h.add(h.rib.ExpireLearned(h.now, func(Key) (uint64, bool) { return 0, false }))
	check("the learned route idle", map[string]int{"eth2": 1, "eth3": 1})
	h.rib.SetStatic(h.now, nil)
	check("no static routes", map[string]int{})
}

// TestFabricFirstHop: where the RP is reached over the fabric, a first hop does
// not register; it puts the source on the fabric while a peer there joined the
// group, and takes it off when none has. A source on a PIM-less interface (a
// pod's veth) counts: no DR there to defer to.
func TestFabricFirstHop(t *testing.T) {
	h := newHarness(t, rpAddr.String(), Config{RegisterVIF: "pimreg", Fabric: "fab"})
	h.env.rpf[rpAddr] = pim.RPF{Interface: "fab", Neighbor: rpNbr}
	h.env.pimOff["eth1"] = true
	h.env.fabric = map[Key]bool{}
	key := sg(hostSrc, grp)
	h.noCache(key, onEth1)
	h.want(key, "eth1")
	if _, ok := h.rib.Tree().Registering(key); ok {
		t.Fatal("registering to an RP on the fabric")
	}
	h.env.fabric[Key{Group: grp}] = true
	h.rib.MarkGroup(grp)
	h.settle()
	h.want(key, "eth1", "fab")
	delete(h.env.fabric, Key{Group: grp})
	h.rib.MarkGroup(grp)
	h.settle()
	h.want(key, "eth1")
	// The same router with the RP off the fabric registers as ever.
	h2 := newHarness(t, rpAddr.String(), Config{RegisterVIF: "pimreg", Fabric: "fab"})
	h2.env.pimOff["eth1"] = true
	h2.noCache(key, onEth1)
	h2.want(key, "eth1", "pimreg")
}
