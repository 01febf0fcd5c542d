package pim

import (
	"container/heap"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Join/prune timing defaults (RFC 7761 4.11).
const (
	DefaultJoinPruneInterval = 60 * time.Second // t_periodic
	// maxJoinPruneSize keeps a Join/Prune inside one unfragmented packet on any
	// link mrouterd meets, tunnels included.
	maxJoinPruneSize = 1400
)

// Key names a tree entry: (S,G) when Source is valid, (*,G) when it is not.
type Key struct {
	Source, Group netip.Addr
}

// Wildcard reports whether the key is (*,G).
func (k Key) Wildcard() bool { return !k.Source.IsValid() }

func (k Key) String() string {
	if k.Wildcard() {
		return "(*," + k.Group.String() + ")"
	}
	return "(" + k.Source.String() + "," + k.Group.String() + ")"
}

// RPF is the reverse path towards an address: the interface it leaves by and the
// PIM neighbour to join through. Neighbor is invalid when the address is on a
// connected subnet or is our own: there is nobody upstream to join.
type RPF struct {
	Interface string
	Neighbor  netip.Addr
}

// Connected reports whether the address is on a subnet of the interface itself:
// there is a way there, but nobody to join through.
func (p RPF) Connected() bool { return p.Interface != "" && !p.Neighbor.IsValid() }

// TreeConfig is what a Tree needs from its owner.
type TreeConfig struct {
	JoinPruneInterval time.Duration // t_periodic; 0 means DefaultJoinPruneInterval
	// RP maps a group to its rendezvous point; ok is false in the SSM range and for
	// groups no RP serves.
	RP func(group netip.Addr) (rp netip.Addr, ok bool)
	// RPF looks up the reverse path to a source or an RP.
	RPF    func(addr netip.Addr) RPF
	Random func() float64 // in [0,1), spreads suppression and override timers; nil picks 0
	// DeferSends holds Join/Prunes back until Flush, so that an owner under a burst
	// of events (a thousand IGMP reports) sends them in a few packets, not one each.
	DeferSends bool
}

// Link is what the Tree needs to know of one PIM interface.
type Link struct {
	Self netip.Addr // our address there: joins addressed to it are ours
	// Override is J/P_Override_Interval: how long a prune waits for a LAN peer to
	// override it. 0 on a point-to-point link, where nobody else can.
	Override time.Duration
}

// LinkOverride is J/P_Override_Interval for a link with the given neighbours
// (RFC 7761 4.3.3): the largest propagation delay and override interval any of
// them advertises, or the defaults; 0 with a single neighbour, who cannot be
// overridden by anyone.
func LinkOverride(neighbors []Neighbor) time.Duration {
	if len(neighbors) <= 1 {
		return 0
	}
	delay, override := time.Duration(propagationDelayMs)*time.Millisecond, time.Duration(overrideIntervalMs)*time.Millisecond
	for _, n := range neighbors {
		if n.LANPruneDelay == nil {
			continue
		}
		delay = max(delay, time.Duration(n.LANPruneDelay.PropagationDelay)*time.Millisecond)
		override = max(override, time.Duration(n.LANPruneDelay.OverrideInterval)*time.Millisecond)
	}
	return delay + override
}

// SendJoinPrune asks for a Join/Prune to be sent to ALL-PIM-ROUTERS on an interface.
type SendJoinPrune struct {
	Interface string
	Message   *JoinPrune
}

// TreeChanged says the forwarding state of a group changed: an olist, an upstream
// interface or an entry came or went. The owner recomputes that group's routes.
type TreeChanged struct{ Group netip.Addr }

// JoinPruneIgnored says part of a received Join/Prune was not acted on, and why.
type JoinPruneIgnored struct{ Reason string }

func (SendJoinPrune) isAction()    {}
func (TreeChanged) isAction()      {}
func (JoinPruneIgnored) isAction() {}

// DownstreamState is the per-interface join/prune state of an entry (RFC 7761
// 4.5.2, 4.5.3 and 4.5.4).
type DownstreamState uint8

const (
	NoInfo DownstreamState = iota
	Joined
	PrunePending
	Pruned // (S,G,rpt) only: the source is pruned off the shared tree here
)

func (s DownstreamState) String() string {
	return [...]string{"noinfo", "join", "prune-pending", "prune"}[s]
}

// downstream is one interface's state for an entry.
type downstream struct {
	state        DownstreamState
	expiry       time.Time // zero: never
	prunePending time.Time // zero: not running
}

// entry is the state of one (*,G) or (S,G).
type entry struct {
	key        Key
	created    time.Time
	joins      ifaceMap[*downstream] // (*,G) or (S,G) join state by interface
	rptPrunes  ifaceMap[*downstream] // (S,G,rpt) prune state by interface; (S,G) only
	local      ifaceMap[struct{}]    // interfaces with local receivers (IGMP, as DR)
	upstream   RPF                   // where our joins go while joined
	joined     bool                  // upstream state: Joined
	suppressed time.Time             // periodic joins skipped until then (join suppression)
	override   time.Time             // a join is due then, to override a LAN peer's prune
	queued     time.Time             // the deadline this entry has in the timer heap

	// (S,G) only.
	keepalive bool // KeepaliveTimer(S,G) running: the owner sees the source's traffic
	sptBit    bool // traffic arrives along the source's tree
	rptPruned bool // upstream (S,G,rpt) state Pruned: the source is pruned off our shared tree
	register  registerState
	regRP     netip.Addr // the RP we register to
	regStop   time.Time  // Register-Stop timer
	asserts   ifaceMap[*assertState]
}

// Tree holds a router's join/prune state for every (*,G) and (S,G): the
// downstream state machines per interface, the upstream JoinDesired and the
// periodic, batched Join/Prune messages (RFC 7761 4.5). Like Interface it does
// nothing by itself: the owner feeds it messages, membership, route changes and
// the time, and carries out the actions it returns.
type Tree struct {
	cfg       TreeConfig
	links     map[string]Link
	entries   map[Key]*entry
	byGroup   map[netip.Addr][]*entry // few sources per group: a slice beats a map
	upstreams map[upstreamKey]*upstream
	timers    deadlineHeap

	// Built up during one call and flushed at its end.
	outbox  map[upstreamKey]*JoinPrune
	changed map[netip.Addr]bool
	acts    []Action
}

// upstreamKey is one neighbour, on one interface, that we send joins to.
type upstreamKey struct {
	iface    string
	neighbor netip.Addr
}

// upstream paces the periodic joins to one neighbour: every entry joined through
// it goes in the same batch, once per t_periodic.
type upstream struct {
	next   time.Time
	queued time.Time
}

// NewTree returns an empty Tree.
func NewTree(cfg TreeConfig) *Tree {
	if cfg.JoinPruneInterval <= 0 {
		cfg.JoinPruneInterval = DefaultJoinPruneInterval
	}
	if cfg.Random == nil {
		cfg.Random = func() float64 { return 0 }
	}
	return &Tree{
		cfg:       cfg,
		links:     make(map[string]Link),
		entries:   make(map[Key]*entry),
		byGroup:   make(map[netip.Addr][]*entry),
		upstreams: make(map[upstreamKey]*upstream),
	}
}

// holdtime is what our Join/Prunes advertise: 3.5 times t_periodic.
func (t *Tree) holdtime() uint16 {
	return uint16(min(t.cfg.JoinPruneInterval*7/2/time.Second, maxFiniteHoldtime))
}

// SetConfig changes the join/prune interval; the next periodic batch uses it.
func (t *Tree) SetConfig(cfg TreeConfig) {
	if cfg.JoinPruneInterval <= 0 {
		cfg.JoinPruneInterval = DefaultJoinPruneInterval
	}
	if cfg.Random == nil {
		cfg.Random = t.cfg.Random
	}
	t.cfg = cfg
}

// SetLink adds or updates a PIM interface.
func (t *Tree) SetLink(name string, l Link) { t.links[name] = l }

// RemoveLink forgets an interface and every state learned on it.
func (t *Tree) RemoveLink(now time.Time, name string) []Action {
	t.begin()
	delete(t.links, name)
	for _, e := range t.entries {
		if e.joins.has(name) || e.rptPrunes.has(name) || e.asserts.has(name) || e.local.has(name) {
			e.joins.del(name)
			e.rptPrunes.del(name)
			e.asserts.del(name)
			e.local.del(name)
			t.changed[e.key.Group] = true
			t.update(now, e)
		}
	}
	return t.finish()
}

// SetLocal says whether an interface has local receivers for an entry: IGMP
// members, counted only where we are the DR.
func (t *Tree) SetLocal(now time.Time, key Key, iface string, on bool) []Action {
	t.begin()
	e := t.entries[key]
	if on {
		e = t.entry(now, key)
		if !e.local.has(iface) {
			e.local.set(iface, struct{}{})
			t.changed[key.Group] = true
		}
	} else if e != nil && e.local.has(iface) {
		e.local.del(iface)
		t.changed[key.Group] = true
	}
	if e != nil {
		t.update(now, e)
	}
	return t.finish()
}

// ReceiveJoinPrune acts on a Join/Prune heard on an interface: as the upstream
// neighbour it names, on the downstream state machines; as a peer on the LAN,
// by suppressing our own joins or overriding the prunes of others.
func (t *Tree) ReceiveJoinPrune(now time.Time, iface string, m *JoinPrune) []Action {
	t.begin()
	link, ok := t.links[iface]
	switch {
	case !ok:
		t.acts = append(t.acts, JoinPruneIgnored{Reason: "interface"})
	case m.UpstreamNeighbor == link.Self:
		t.receiveDownstream(now, iface, link, m)
	default:
		t.receiveAsPeer(now, iface, m)
	}
	return t.finish()
}

// holdUntil is when state with a message's holdtime expires; zero is never.
func holdUntil(now time.Time, holdtime uint16) time.Time {
	if holdtime == HoldtimeForever {
		return time.Time{}
	}
	return now.Add(time.Duration(holdtime) * time.Second)
}

func (t *Tree) receiveDownstream(now time.Time, iface string, link Link, m *JoinPrune) {
	until := holdUntil(now, m.Holdtime)
	for _, g := range m.Groups {
		group := g.Group.Addr()
		if g.Group.Bits() != 32 || !group.IsMulticast() || g.Bidir {
			t.acts = append(t.acts, JoinPruneIgnored{Reason: "group"})
			continue
		}
		// (S,G,rpt) prunes not repeated alongside a (*,G) join end with it
		// (RFC 7761 4.5.3, the PruneTmp states): remember which this message kept.
		wcJoin := false
		for _, s := range g.Joins {
			switch {
			case !s.Wildcard && !unicastSource(s.Source):
				t.acts = append(t.acts, JoinPruneIgnored{Reason: "source"})
			case s.Wildcard && s.RPT:
				if !t.rpMatches(group, s.Source.Addr()) {
					continue
				}
				wcJoin = true
				t.downstreamJoin(now, Key{Group: group}, iface, until)
			case !s.Wildcard && !s.RPT:
				t.downstreamJoin(now, Key{Source: s.Source.Addr(), Group: group}, iface, until)
			case s.RPT:
				t.rptJoin(now, Key{Source: s.Source.Addr(), Group: group}, iface)
			default:
				t.acts = append(t.acts, JoinPruneIgnored{Reason: "source-flags"})
			}
		}
		keptPrunes := map[netip.Addr]bool{}
		for _, s := range g.Prunes {
			switch {
			case !s.Wildcard && !unicastSource(s.Source):
				t.acts = append(t.acts, JoinPruneIgnored{Reason: "source"})
			case s.Wildcard && s.RPT:
				if t.rpMatches(group, s.Source.Addr()) {
					t.downstreamPrune(now, Key{Group: group}, iface, link)
				}
			case !s.Wildcard && !s.RPT:
				t.downstreamPrune(now, Key{Source: s.Source.Addr(), Group: group}, iface, link)
			case s.RPT:
				keptPrunes[s.Source.Addr()] = true
				t.rptPrune(now, Key{Source: s.Source.Addr(), Group: group}, iface, link, until)
			default:
				t.acts = append(t.acts, JoinPruneIgnored{Reason: "source-flags"})
			}
		}
		if wcJoin {
			// A clone: update may drop entries from the group's list.
			for _, e := range slices.Clone(t.byGroup[group]) {
				if !e.key.Wildcard() && e.rptPrunes.has(iface) && !keptPrunes[e.key.Source] {
					e.rptPrunes.del(iface)
					t.changed[group] = true
					t.update(now, e)
				}
			}
		}
	}
}

// unicastSource reports whether a Join/Prune's source is one host that can send:
// anything else would only build state towards nowhere.
func unicastSource(p netip.Prefix) bool {
	a := p.Addr()
	return p.Bits() == 32 && a.Is4() && !a.IsMulticast() && !a.IsUnspecified() && !a.IsLoopback() &&
		a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// rpMatches reports whether a (*,G) entry names the RP we map the group to; one
// that does not is ignored, as a misconfiguration somewhere (RFC 7761 4.5.3).
func (t *Tree) rpMatches(group, rp netip.Addr) bool {
	want, ok := t.cfg.RP(group)
	switch {
	case !ok:
		t.acts = append(t.acts, JoinPruneIgnored{Reason: "no-rp"})
		return false
	case want != rp:
		t.acts = append(t.acts, JoinPruneIgnored{Reason: "rp-mismatch"})
		return false
	}
	return true
}

func (t *Tree) downstreamJoin(now time.Time, key Key, iface string, until time.Time) {
	e := t.entry(now, key)
	d := e.joins.at(iface)
	if d == nil {
		d = &downstream{}
		e.joins.set(iface, d)
		t.changed[key.Group] = true
	}
	// A join starts the expiry timer or lengthens it, never shortens it (RFC 7761
	// 4.5.2); a zero time means the state never expires.
	switch {
	case d.state == NoInfo, until.IsZero():
		d.expiry = until
	case !d.expiry.IsZero() && until.After(d.expiry):
		d.expiry = until
	}
	d.state, d.prunePending = Joined, time.Time{}
	t.update(now, e)
}

func (t *Tree) downstreamPrune(now time.Time, key Key, iface string, link Link) {
	e := t.entries[key]
	if e == nil {
		return
	}
	d := e.joins.at(iface)
	if d == nil || d.state != Joined {
		return
	}
	if link.Override <= 0 {
		t.downstreamGone(now, e, iface)
		return
	}
	d.state, d.prunePending = PrunePending, now.Add(link.Override)
	t.update(now, e)
}

func (t *Tree) downstreamGone(now time.Time, e *entry, iface string) {
	e.joins.del(iface)
	t.changed[e.key.Group] = true
	t.update(now, e)
}

// rptJoin cancels an (S,G,rpt) prune: a LAN peer still wants the source on the
// shared tree.
func (t *Tree) rptJoin(now time.Time, key Key, iface string) {
	if e := t.entries[key]; e != nil && e.rptPrunes.has(iface) {
		e.rptPrunes.del(iface)
		t.changed[key.Group] = true
		t.update(now, e)
	}
}

func (t *Tree) rptPrune(now time.Time, key Key, iface string, link Link, until time.Time) {
	e := t.entry(now, key)
	d := e.rptPrunes.at(iface)
	if d == nil {
		d = &downstream{}
		e.rptPrunes.set(iface, d)
		if link.Override <= 0 {
			d.state = Pruned
			t.changed[key.Group] = true
		} else {
			d.state, d.prunePending = PrunePending, now.Add(link.Override)
		}
	}
	if until.IsZero() || until.After(d.expiry) {
		d.expiry = until
	}
	t.update(now, e)
}

// receiveAsPeer handles a Join/Prune sent to another router on a LAN we share:
// a join to our upstream neighbour makes ours redundant for a while, a prune to
// it must be overridden if we still want the traffic (RFC 7761 4.5.7, 4.5.9).
func (t *Tree) receiveAsPeer(now time.Time, iface string, m *JoinPrune) {
	target := m.UpstreamNeighbor
	for _, g := range m.Groups {
		group := g.Group.Addr()
		for _, s := range g.Joins {
			if s.RPT && !s.Wildcard {
				continue // an (S,G,rpt) join only cancels prunes
			}
			e := t.entries[peerKey(group, s)]
			if e == nil || !e.joined || e.upstream != (RPF{iface, target}) {
				continue
			}
			if m.Holdtime >= t.holdtime() {
				e.suppressed = now.Add(time.Duration((1.1 + 0.3*t.cfg.Random()) * float64(t.cfg.JoinPruneInterval)))
			}
		}
		for _, s := range g.Prunes {
			e := t.entries[peerKey(group, s)]
			if e == nil || !e.joined || e.upstream != (RPF{iface, target}) {
				continue
			}
			at := now.Add(t.overrideDelay())
			if e.override.IsZero() || at.Before(e.override) {
				e.override = at
				t.schedule(e)
			}
		}
	}
}

// peerKey is our entry that a Join/Prune source concerns. An (S,G,rpt) prune
// concerns our (*,G): a Join(*,G) overrides it, since the upstream router drops
// (S,G,rpt) prunes that a Join(*,G) does not repeat.
func peerKey(group netip.Addr, s JPSource) Key {
	if s.RPT {
		return Key{Group: group}
	}
	return Key{Source: s.Source.Addr(), Group: group}
}

// overrideDelay is t_override: a random wait within the override interval, so
// that of several routers wanting to override a prune, one goes first and the
// others are suppressed by its join.
func (t *Tree) overrideDelay() time.Duration {
	return time.Duration(t.cfg.Random() * float64(overrideIntervalMs*time.Millisecond))
}

// NeighborRestarted makes joins to a neighbour that lost its state (new
// generation ID) or just appeared go out soon, not at the next periodic batch
// (RFC 7761 4.3.1).
func (t *Tree) NeighborRestarted(now time.Time, iface string, addr netip.Addr) []Action {
	t.begin()
	if u := t.upstreams[upstreamKey{iface, addr}]; u != nil {
		u.next = now.Add(t.overrideDelay())
		t.scheduleUpstream(upstreamKey{iface, addr}, u)
	}
	return t.finish()
}

// RPFChanged re-evaluates every entry's upstream after a unicast route change: a
// joined entry whose RPF neighbour moved prunes the old one and joins the new.
func (t *Tree) RPFChanged(now time.Time) []Action {
	t.begin()
	for _, e := range t.entries {
		t.update(now, e)
	}
	return t.finish()
}

// upstreamTarget is where joins for an entry go: towards the RP for (*,G), the
// source for (S,G). ok is false when there is no one to join (SSM (*,G), an RP
// or source of our own, or one on a connected subnet).
func (t *Tree) upstreamTarget(key Key) (RPF, bool) {
	addr := key.Source
	if key.Wildcard() {
		rp, ok := t.cfg.RP(key.Group)
		if !ok {
			return RPF{}, false
		}
		addr = rp
	}
	rpf := t.cfg.RPF(addr)
	// Another router won the assert on our upstream link: it forwards to us, so it
	// is whom we join (RPF'(S,G)).
	if e := t.entries[key]; e != nil && rpf.Interface != "" && e.lostAssert(rpf.Interface) {
		rpf.Neighbor = e.asserts.at(rpf.Interface).theirs.Address
	}
	return rpf, rpf.Neighbor.IsValid() && rpf.Interface != ""
}

// joinDesired is JoinDesired (RFC 7761 4.5.7, 4.5.8): downstream joins or local
// receivers on an interface other than the one traffic comes in by, or, for an
// (S,G) whose traffic we see (keepalive), anywhere the shared tree goes.
func (t *Tree) joinDesired(e *entry, iif string) bool {
	if e.immediate(iif) {
		return true
	}
	if !e.keepalive {
		return false
	}
	wc := t.entries[Key{Group: e.key.Group}]
	if wc == nil {
		return false
	}
	return wantedBeyond(wc.joins, wc.local, iif, func(name string) bool {
		return t.RPTPruned(e.key, name) || e.lostAssert(name)
	})
}

// immediate reports whether the entry's own state forwards anywhere but iif and
// the links where another router won the assert.
func (e *entry) immediate(iif string) bool {
	return wantedBeyond(e.joins, e.local, iif, e.lostAssert)
}

// wantedBeyond reports whether downstream joins or local receivers want traffic
// on an interface other than iif and those skip rules out.
func wantedBeyond(joins ifaceMap[*downstream], local ifaceMap[struct{}], iif string, skip func(string) bool) bool {
	for _, it := range joins {
		if it.name != iif && it.val.state != NoInfo && !skip(it.name) {
			return true
		}
	}
	for _, it := range local {
		if it.name != iif && !skip(it.name) {
			return true
		}
	}
	return false
}

// lostAssert reports whether another router forwards the entry onto a link.
func (e *entry) lostAssert(iface string) bool {
	a := e.asserts.at(iface)
	return a != nil && !a.winner
}

// update runs the upstream state machine of an entry after anything changed, and
// drops the entry once it holds no state at all.
func (t *Tree) update(now time.Time, e *entry) {
	target, ok := t.upstreamTarget(e.key)
	want := ok && t.joinDesired(e, target.Interface)
	if e.joined && (!want || target != e.upstream) {
		t.queue(e.upstream, e.key, false)
		e.joined, e.upstream = false, RPF{}
		t.changed[e.key.Group] = true
	}
	if !e.joined && want {
		e.joined, e.upstream, e.suppressed = true, target, time.Time{}
		t.queue(target, e.key, true)
		t.ensureUpstream(now, target)
		t.changed[e.key.Group] = true
	}
	if !e.key.Wildcard() {
		t.updateRPTPrune(e)
	}
	if !e.joined && len(e.joins) == 0 && len(e.rptPrunes) == 0 && len(e.local) == 0 &&
		!e.keepalive && !e.sptBit && e.register == regNoInfo && len(e.asserts) == 0 {
		t.deleteEntry(e)
		return
	}
	t.schedule(e)
}

// entry returns the key's entry, made if missing.
func (t *Tree) entry(now time.Time, key Key) *entry {
	if e := t.entries[key]; e != nil {
		return e
	}
	return t.newEntry(now, key)
}

func (t *Tree) newEntry(now time.Time, key Key) *entry {
	e := &entry{key: key, created: now}
	t.entries[key] = e
	t.byGroup[key.Group] = append(t.byGroup[key.Group], e)
	t.changed[key.Group] = true
	return e
}

func (t *Tree) deleteEntry(e *entry) {
	delete(t.entries, e.key)
	set := slices.DeleteFunc(t.byGroup[e.key.Group], func(x *entry) bool { return x == e })
	if len(set) == 0 {
		delete(t.byGroup, e.key.Group)
	} else {
		t.byGroup[e.key.Group] = set
	}
	t.changed[e.key.Group] = true
}

// ensureUpstream starts the periodic joins to a neighbour.
func (t *Tree) ensureUpstream(now time.Time, to RPF) {
	k := upstreamKey{to.Interface, to.Neighbor}
	if t.upstreams[k] != nil {
		return
	}
	u := &upstream{next: now.Add(t.cfg.JoinPruneInterval)}
	t.upstreams[k] = u
	t.scheduleUpstream(k, u)
}

// queue adds a join or prune for an entry to the batch going to a neighbour.
func (t *Tree) queue(to RPF, key Key, join bool) {
	k := upstreamKey{to.Interface, to.Neighbor}
	m := t.outbox[k]
	if m == nil {
		m = &JoinPrune{UpstreamNeighbor: to.Neighbor, Holdtime: t.holdtime()}
		t.outbox[k] = m
	}
	src := JPSource{Source: netip.PrefixFrom(key.Source, 32), Sparse: true}
	if key.Wildcard() {
		rp, _ := t.cfg.RP(key.Group)
		src = JPSource{Source: netip.PrefixFrom(rp, 32), Sparse: true, Wildcard: true, RPT: true}
	}
	g := t.outGroup(m, key.Group)
	g.add(src, join)
	if key.Wildcard() && join {
		// A Join(*,G) must repeat the group's (S,G,rpt) prunes, or the upstream
		// router takes it as ending them (RFC 7761 4.5.3).
		for _, e := range t.byGroup[key.Group] {
			if e.rptPruned {
				g.add(JPSource{Source: netip.PrefixFrom(e.key.Source, 32), Sparse: true, RPT: true}, false)
			}
		}
	}
}

// outGroup is the group's block in an outgoing message, added if missing.
func (t *Tree) outGroup(m *JoinPrune, group netip.Addr) *JPGroup {
	for i := range m.Groups {
		if m.Groups[i].Group.Addr() == group {
			return &m.Groups[i]
		}
	}
	m.Groups = append(m.Groups, JPGroup{Group: netip.PrefixFrom(group, 32)})
	return &m.Groups[len(m.Groups)-1]
}

// add puts a source in the join or prune list. A join and a prune of the same
// entry in one message contradict each other: the later decision wins.
func (g *JPGroup) add(src JPSource, join bool) {
	same := func(s JPSource) bool { return s.Source == src.Source && s.RPT == src.RPT }
	g.Joins = slices.DeleteFunc(g.Joins, same)
	g.Prunes = slices.DeleteFunc(g.Prunes, same)
	if join {
		g.Joins = append(g.Joins, src)
	} else {
		g.Prunes = append(g.Prunes, src)
	}
}

// updateRPTPrune runs the upstream (S,G,rpt) state machine (RFC 7761 4.5.9): once
// the source's traffic comes along its own tree by another way than the shared
// tree's, the source is pruned off the shared tree, so no copy comes twice.
func (t *Tree) updateRPTPrune(e *entry) {
	wc := t.entries[Key{Group: e.key.Group}]
	want := false
	if wc != nil && wc.joined && e.sptBit {
		target, ok := t.upstreamTarget(e.key)
		want = !ok || target != wc.upstream
	}
	if want == e.rptPruned {
		return
	}
	e.rptPruned = want
	if wc == nil || !wc.joined {
		return
	}
	if want {
		k := upstreamKey{wc.upstream.Interface, wc.upstream.Neighbor}
		if t.outbox[k] == nil {
			t.outbox[k] = &JoinPrune{UpstreamNeighbor: wc.upstream.Neighbor, Holdtime: t.holdtime()}
		}
		t.outGroup(t.outbox[k], e.key.Group).add(JPSource{Source: netip.PrefixFrom(e.key.Source, 32), Sparse: true, RPT: true}, false)
		return
	}
	// A Join(*,G) that no longer lists the prune ends it upstream.
	t.queue(wc.upstream, wc.key, true)
}

func (t *Tree) begin() {
	if t.outbox == nil {
		t.outbox = make(map[upstreamKey]*JoinPrune)
	}
	if t.changed == nil {
		t.changed = make(map[netip.Addr]bool)
	}
}

// finish turns what a call decided into actions: Join/Prunes split to fit a
// packet, then the groups whose forwarding changed.
func (t *Tree) finish() []Action {
	t.begin()
	acts := t.acts
	if !t.cfg.DeferSends {
		acts = append(acts, t.sends()...)
	}
	groups := make([]netip.Addr, 0, len(t.changed))
	for g := range t.changed {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, netip.Addr.Compare)
	for _, g := range groups {
		acts = append(acts, TreeChanged{Group: g})
	}
	t.acts, t.changed = nil, nil
	if !t.cfg.DeferSends {
		t.outbox = nil
	}
	return acts
}

// Flush returns the Join/Prunes held back under DeferSends.
func (t *Tree) Flush() []Action {
	acts := t.sends()
	t.outbox = nil
	return acts
}

// Pending reports whether Flush has anything to send.
func (t *Tree) Pending() bool { return len(t.outbox) > 0 }

// sends turns the outbox into messages, split to fit a packet, in a stable order.
func (t *Tree) sends() []Action {
	var acts []Action
	keys := make([]upstreamKey, 0, len(t.outbox))
	for k := range t.outbox {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b upstreamKey) int {
		if a.iface != b.iface {
			if a.iface < b.iface {
				return -1
			}
			return 1
		}
		return a.neighbor.Compare(b.neighbor)
	})
	for _, k := range keys {
		for _, m := range split(t.outbox[k]) {
			acts = append(acts, SendJoinPrune{Interface: k.iface, Message: m})
		}
	}
	return acts
}

// split cuts a Join/Prune into messages that each fit one packet.
func split(m *JoinPrune) []*JoinPrune {
	var out []*JoinPrune
	cur := &JoinPrune{UpstreamNeighbor: m.UpstreamNeighbor, Holdtime: m.Holdtime}
	for _, g := range m.Groups {
		for len(g.Joins)+len(g.Prunes) > 0 {
			room := (maxJoinPruneSize - cur.Size() - jpGroupHdrLen) / sourceLen
			if room <= 0 || len(cur.Groups) == 0xff {
				out = append(out, cur)
				cur = &JoinPrune{UpstreamNeighbor: m.UpstreamNeighbor, Holdtime: m.Holdtime}
				continue
			}
			part := JPGroup{Group: g.Group}
			n := min(room, len(g.Joins))
			part.Joins, g.Joins = g.Joins[:n], g.Joins[n:]
			n = min(room-n, len(g.Prunes))
			part.Prunes, g.Prunes = g.Prunes[:n], g.Prunes[n:]
			cur.Groups = append(cur.Groups, part)
		}
	}
	if len(cur.Groups) > 0 {
		out = append(out, cur)
	}
	return out
}

// Advance fires every timer due at now.
func (t *Tree) Advance(now time.Time) []Action {
	t.begin()
	for t.timers.Len() > 0 && !t.timers[0].at.After(now) {
		d := heap.Pop(&t.timers).(deadline)
		if d.upstream != nil {
			if u := t.upstreams[*d.upstream]; u != nil && u.queued.Equal(d.at) {
				u.queued = time.Time{}
				t.periodic(now, *d.upstream, u)
			}
			continue
		}
		if e := t.entries[d.key]; e != nil && e.queued.Equal(d.at) {
			e.queued = time.Time{}
			t.expire(now, e)
		}
	}
	return t.finish()
}

// periodic sends the batch of joins due to a neighbour, or retires the pacing
// when no entry joins through it any more.
func (t *Tree) periodic(now time.Time, k upstreamKey, u *upstream) {
	if now.Before(u.next) {
		t.scheduleUpstream(k, u)
		return
	}
	to := RPF{k.iface, k.neighbor}
	any := false
	for _, e := range t.entries {
		if !e.joined || e.upstream != to {
			continue
		}
		any = true
		if e.suppressed.After(now) {
			continue
		}
		t.queue(to, e.key, true)
	}
	if !any {
		delete(t.upstreams, k)
		return
	}
	u.next = now.Add(t.cfg.JoinPruneInterval)
	t.scheduleUpstream(k, u)
}

// expire fires an entry's due timers: downstream expiry and prune-pending, and
// the override join.
func (t *Tree) expire(now time.Time, e *entry) {
	e.joins.deleteFunc(func(name string, d *downstream) bool {
		switch {
		case d.state == PrunePending && !d.prunePending.After(now):
			t.changed[e.key.Group] = true
			// A prune echo tells the LAN the prune took effect, so a router whose
			// override was lost joins again (RFC 7761 4.5.2).
			if l, ok := t.links[name]; ok && l.Override > 0 {
				t.queue(RPF{Interface: name, Neighbor: l.Self}, e.key, false)
			}
			return true
		case !d.expiry.IsZero() && !d.expiry.After(now):
			t.changed[e.key.Group] = true
			return true
		}
		return false
	})
	e.rptPrunes.deleteFunc(func(_ string, d *downstream) bool {
		switch {
		case !d.expiry.IsZero() && !d.expiry.After(now):
			t.changed[e.key.Group] = true
			return true
		case d.state == PrunePending && !d.prunePending.After(now):
			d.state, d.prunePending = Pruned, time.Time{}
			t.changed[e.key.Group] = true
		}
		return false
	})
	if !e.override.IsZero() && !e.override.After(now) {
		e.override = time.Time{}
		if e.joined {
			t.queue(e.upstream, e.key, true)
		}
	}
	if !e.regStop.IsZero() && !e.regStop.After(now) {
		t.registerStopTimerExpired(now, e)
	}
	t.assertTimersExpired(now, e)
	t.update(now, e)
}

// next is the entry's earliest running timer.
func (e *entry) next() (time.Time, bool) {
	var at time.Time
	consider := func(x time.Time) {
		if !x.IsZero() && (at.IsZero() || x.Before(at)) {
			at = x
		}
	}
	for _, it := range e.joins {
		consider(it.val.expiry)
		consider(it.val.prunePending)
	}
	for _, it := range e.rptPrunes {
		consider(it.val.expiry)
		consider(it.val.prunePending)
	}
	consider(e.override)
	consider(e.regStop)
	for _, it := range e.asserts {
		consider(it.val.timer)
	}
	return at, !at.IsZero()
}

// schedule makes sure the heap holds the entry's earliest deadline. Later ones
// already queued are left and skipped as stale when they surface.
func (t *Tree) schedule(e *entry) {
	at, ok := e.next()
	if !ok || (!e.queued.IsZero() && !at.Before(e.queued)) {
		return
	}
	e.queued = at
	heap.Push(&t.timers, deadline{at: at, key: e.key})
}

func (t *Tree) scheduleUpstream(k upstreamKey, u *upstream) {
	if !u.queued.IsZero() && !u.next.Before(u.queued) {
		return
	}
	u.queued = u.next
	heap.Push(&t.timers, deadline{at: u.next, upstream: &k})
}

// NextDeadline is when Advance must next be called.
func (t *Tree) NextDeadline() (time.Time, bool) {
	if t.timers.Len() == 0 {
		return time.Time{}, false
	}
	return t.timers[0].at, true
}

// deadline is an entry in the timer heap: an entry's earliest timer, or a
// neighbour's periodic batch. Entries are not removed when re-armed; the owner's
// queued field says which one is live.
type deadline struct {
	at       time.Time
	key      Key
	upstream *upstreamKey
}

type deadlineHeap []deadline

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)        { *h = append(*h, x.(deadline)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	*h = old[:len(old)-1]
	return d
}

// EntryView is one entry as shown to operators.
type EntryView struct {
	Key        Key
	Created    time.Time
	Upstream   RPF  // where joins go; zero when not joined
	Joined     bool // upstream state
	Downstream []DownstreamView
	Local      []string // interfaces with local receivers
	Keepalive  bool     // (S,G): the source's traffic flows
	SPTBit     bool     // (S,G): accepted along the source's tree
	Register   string   // (S,G) on a first-hop DR: "join", "join-pending", "prune"; "" otherwise
	Asserts    []AssertView
}

// DownstreamView is one interface's downstream state.
type DownstreamView struct {
	Interface string
	State     DownstreamState
	RPT       bool      // an (S,G,rpt) prune rather than a join
	Expires   time.Time // zero: never
}

// Entries lists the state of every entry of a group, or of all groups when group
// is invalid, sorted by group and then source.
func (t *Tree) Entries(group netip.Addr) []EntryView {
	var out []EntryView
	add := func(e *entry) {
		v := EntryView{Key: e.key, Created: e.created, Upstream: e.upstream, Joined: e.joined,
			Keepalive: e.keepalive, SPTBit: e.sptBit, Asserts: e.assertViews()}
		if e.register != regNoInfo {
			v.Register = e.register.String()
		}
		for _, it := range e.joins {
			v.Downstream = append(v.Downstream, DownstreamView{Interface: it.name, State: it.val.state, Expires: it.val.expiry})
		}
		for _, it := range e.rptPrunes {
			v.Downstream = append(v.Downstream, DownstreamView{Interface: it.name, State: it.val.state, RPT: true, Expires: it.val.expiry})
		}
		slices.SortFunc(v.Downstream, func(a, b DownstreamView) int { return strings.Compare(a.Interface, b.Interface) })
		for _, it := range e.local {
			v.Local = append(v.Local, it.name)
		}
		slices.Sort(v.Local)
		out = append(out, v)
	}
	if group.IsValid() {
		for _, e := range t.byGroup[group] {
			add(e)
		}
	} else {
		for _, e := range t.entries {
			add(e)
		}
	}
	slices.SortFunc(out, func(a, b EntryView) int {
		if c := a.Key.Group.Compare(b.Key.Group); c != 0 {
			return c
		}
		return a.Key.Source.Compare(b.Key.Source)
	})
	return out
}

// Forwards lists the interfaces an entry's downstream state forwards to: joined
// or prune-pending, for (*,G) or (S,G) (RFC 7761 4.1.5 joins()).
func (t *Tree) Forwards(key Key) []string {
	e := t.entries[key]
	if e == nil {
		return nil
	}
	var out []string
	for _, it := range e.joins {
		if it.val.state == Joined || it.val.state == PrunePending {
			out = append(out, it.name)
		}
	}
	slices.Sort(out)
	return out
}

// RPTPruned reports whether a source is pruned off the shared tree on an
// interface: traffic from it that arrives down the shared tree is not sent there.
func (t *Tree) RPTPruned(key Key, iface string) bool {
	if e := t.entries[key]; e != nil {
		if d := e.rptPrunes.at(iface); d != nil {
			return d.state == Pruned
		}
	}
	return false
}

// HasLocal reports whether an entry has local receivers on any interface.
func (t *Tree) HasLocal(key Key) bool {
	e := t.entries[key]
	return e != nil && len(e.local) > 0
}

// Sources lists the (S,G) entries of a group.
func (t *Tree) Sources(group netip.Addr) []Key {
	var out []Key
	for _, e := range t.byGroup[group] {
		if !e.key.Wildcard() {
			out = append(out, e.key)
		}
	}
	return out
}

// Len is the number of entries with state.
func (t *Tree) Len() int { return len(t.entries) }

// Has reports whether the Tree holds state for an entry.
func (t *Tree) Has(key Key) bool { return t.entries[key] != nil }

// HasGroup reports whether the Tree holds any state for a group.
func (t *Tree) HasGroup(group netip.Addr) bool { return len(t.byGroup[group]) > 0 }

// Upstream returns where an entry's joins go, if it is joined.
func (t *Tree) Upstream(key Key) (RPF, bool) {
	if e := t.entries[key]; e != nil && e.joined {
		return e.upstream, true
	}
	return RPF{}, false
}
