package pim

import (
	"maps"
	"net/netip"
	"slices"
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

// Compare orders keys by group, then source, (*,G) first.
func (k Key) Compare(o Key) int {
	if c := k.Group.Compare(o.Group); c != 0 {
		return c
	}
	return k.Source.Compare(o.Source)
}

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
	// Limits on the downstream join state that neighbours' joins create: in all,
	// and per neighbour. Beyond them, joins for new state are ignored and counted;
	// the state already held stays. 0 = no limit.
	MaxJoins            int
	MaxJoinsPerNeighbor int
}

// Link is what the Tree needs to know of one PIM interface.
type Link struct {
	Self netip.Addr // our address there: joins addressed to it are ours
	// Override is J/P_Override_Interval: how long a prune waits for a LAN peer to
	// override it. 0 on a point-to-point link, where nobody else can.
	Override time.Duration
	// Tracking turns join suppression off (Suppression_Enabled false, RFC 7761
	// 4.3.3), so that an upstream router hears every downstream router's own
	// joins. Never suppressing costs a few Join/Prunes and is always safe.
	Tracking bool
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
// interface or an entry came or went. Sources are the (S,G) entries that changed
// when only they did, in order; nil when the (*,G) entry changed, which every
// (S,G) of the group inherits from. The owner recomputes those routes, so that a
// new source of a large group costs its own route, not the group's.
type TreeChanged struct {
	Group   netip.Addr
	Sources []netip.Addr
}

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
	from         netip.Addr // the neighbour whose join made the state, counted against it
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
	joins     int                // downstream join states, on every entry and interface
	joinsBy   map[netip.Addr]int // of those, made by each neighbour

	// Built up during one call and flushed at its end.
	outbox  map[upstreamKey]*JoinPrune
	changed map[Key]bool
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
		joinsBy:   make(map[netip.Addr]int),
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
			t.forgetJoin(e.joins.at(name))
			e.joins.del(name)
			e.rptPrunes.del(name)
			e.asserts.del(name)
			e.local.del(name)
			t.changed[e.key] = true
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
			t.changed[key] = true
		}
	} else if e != nil && e.local.has(iface) {
		e.local.del(iface)
		t.changed[key] = true
	}
	if e != nil {
		t.update(now, e)
	}
	return t.finish()
}

// update runs the upstream state machine of an entry after anything changed, and
// drops the entry once it holds no state at all.
func (t *Tree) update(now time.Time, e *entry) {
	target, ok := t.upstreamTarget(e.key)
	want := ok && t.joinDesired(e, target.Interface)
	if e.joined && (!want || target != e.upstream) {
		t.queue(e.upstream, e.key, false)
		e.joined, e.upstream = false, RPF{}
		t.changed[e.key] = true
	}
	if !e.joined && want {
		e.joined, e.upstream, e.suppressed = true, target, time.Time{}
		t.queue(target, e.key, true)
		t.ensureUpstream(now, target)
		t.changed[e.key] = true
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
	t.changed[key] = true
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
	t.changed[e.key] = true
}

func (t *Tree) begin() {
	if t.outbox == nil {
		t.outbox = make(map[upstreamKey]*JoinPrune)
	}
	if t.changed == nil {
		t.changed = make(map[Key]bool)
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
	sources := make(map[netip.Addr][]netip.Addr) // nil: the whole group
	for k := range t.changed {
		if list, seen := sources[k.Group]; k.Wildcard() || seen && list == nil {
			sources[k.Group] = nil
		} else {
			sources[k.Group] = append(list, k.Source)
		}
	}
	groups := slices.SortedFunc(maps.Keys(sources), netip.Addr.Compare)
	for _, g := range groups {
		slices.SortFunc(sources[g], netip.Addr.Compare)
		acts = append(acts, TreeChanged{Group: g, Sources: sources[g]})
	}
	t.acts, t.changed = nil, nil
	if !t.cfg.DeferSends {
		t.outbox = nil
	}
	return acts
}
