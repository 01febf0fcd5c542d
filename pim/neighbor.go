package pim

import (
	"net/netip"
	"slices"
	"time"
)

// Protocol constants for neighbour discovery (RFC 7761 4.11).
const (
	DefaultHelloInterval = 30 * time.Second
	// DefaultHelloHoldtime applies to a neighbour whose Hello has no Holdtime option.
	DefaultHelloHoldtime = 105 * time.Second
	// HoldtimeForever in a Hello means the sender never times out.
	HoldtimeForever = 0xffff

	maxFiniteHoldtime = 0xfffe // seconds; one more would mean forever
	// MaxHelloAddresses bounds the secondary addresses kept from one Hello: a
	// router has a handful, and a 64 KiB Hello could name some 10,900.
	MaxHelloAddresses = 64
	// MaxSourcePrefixes bounds the source prefixes kept from one neighbour.
	MaxSourcePrefixes = 1024
	// What we advertise in the LAN Prune Delay option: the RFC defaults. The T bit
	// is InterfaceConfig.TrackingSupport.
	propagationDelayMs = 500
	overrideIntervalMs = 2500
)

// InterfaceConfig is the PIM configuration of one interface.
type InterfaceConfig struct {
	HelloInterval time.Duration // 0 means DefaultHelloInterval; we advertise 3.5 times it as holdtime
	DRPriority    uint32
	// MaxHoldtime caps how long a neighbour is kept after its last Hello, whatever
	// holdtime it advertises, forever (HoldtimeForever) included; 0 caps nothing.
	MaxHoldtime time.Duration
	// TriggeredHelloDelay bounds the random wait before a triggered hello, so
	// that routers hearing the same newcomer do not all answer at once. 0 sends at once.
	TriggeredHelloDelay time.Duration
	Random              func() float64 // in [0,1), picks the triggered delay; nil always picks 0
	MaxNeighbors        int            // beyond it hellos from new routers are refused and counted; 0 = no limit
	// SourcePrefixes are advertised in our hellos (OptionSourcePrefixes): the
	// sources behind us, for neighbours whose unicast routes do not know the way.
	SourcePrefixes []netip.Prefix
	// TrackingSupport sets the T bit of our LAN Prune Delay option: we do not
	// suppress our joins when a peer's join makes them redundant, so the upstream
	// router can track each downstream router (RFC 7761 4.3.3).
	TrackingSupport bool
}

// Action is something the owner of an Interface must do or know.
type Action interface{ isAction() }

// SendHello asks for Hello to be sent to ALL-PIM-ROUTERS (224.0.0.13) on the interface.
type SendHello struct{ Hello Hello }

// NeighborUp says a new PIM neighbour was heard.
type NeighborUp struct{ Address netip.Addr }

// NeighborDown says a neighbour timed out, said goodbye, or the interface stopped.
type NeighborDown struct{ Address netip.Addr }

// NeighborRestarted says a neighbour's generation ID changed: it has lost its
// state, so whatever we told it must be told again.
type NeighborRestarted struct{ Address netip.Addr }

// SourcePrefixesChanged says a neighbour advertises other source prefixes.
type SourcePrefixesChanged struct{ Address netip.Addr }

// DRChanged says who the designated router on the interface is now.
type DRChanged struct {
	DR     netip.Addr
	IsSelf bool
}

// Refused says a limit turned away new state: Reason names what ("neighbors",
// "hello_addresses"), Count how many. What existed before is kept.
type Refused struct {
	Reason string
	Count  int
}

func (Refused) isAction()               {}
func (SendHello) isAction()             {}
func (NeighborUp) isAction()            {}
func (NeighborDown) isAction()          {}
func (NeighborRestarted) isAction()     {}
func (DRChanged) isAction()             {}
func (SourcePrefixesChanged) isAction() {}

// Neighbor is what we know of one PIM router on the link.
type Neighbor struct {
	Address       netip.Addr
	Since         time.Time
	Expires       time.Time     // zero when it never times out
	Holdtime      time.Duration // as advertised; HoldtimeForever seconds for forever
	DRPriority    uint32
	HasDRPriority bool
	GenerationID  uint32
	LANPruneDelay *LANPruneDelay
	Secondary     []netip.Addr
	// SourcePrefixes are the sources the neighbour says are behind it.
	SourcePrefixes []netip.Prefix
}

// neighbor is a Neighbor plus what the public view does not need.
type neighbor struct {
	Neighbor
	hasGenerationID bool
}

// Interface is PIM neighbour discovery and DR election on one interface
// (RFC 7761 4.3). It does nothing on its own: the owner feeds it hellos and
// the current time, and carries out the actions it returns.
type Interface struct {
	cfg          InterfaceConfig
	self         netip.Addr
	generationID uint32
	started      bool
	nextHello    time.Time
	helloOwed    bool // a triggered hello waits for its random delay
	neighbors    map[netip.Addr]*neighbor
	dr           netip.Addr
	drIsSelf     bool // apart from dr, since taking over a neighbour's address keeps dr but not who it is
}

// NewInterface returns a stopped Interface for the router at self.
func NewInterface(cfg InterfaceConfig, self netip.Addr, generationID uint32) *Interface {
	return &Interface{
		cfg:          normalize(cfg),
		self:         self,
		generationID: generationID,
		neighbors:    make(map[netip.Addr]*neighbor),
	}
}

func normalize(cfg InterfaceConfig) InterfaceConfig {
	if cfg.HelloInterval <= 0 {
		cfg.HelloInterval = DefaultHelloInterval
	}
	if cfg.TriggeredHelloDelay < 0 {
		cfg.TriggeredHelloDelay = 0
	}
	return cfg
}

// Start sends the first hello at once and elects ourselves DR until we hear
// better. Starting a started Interface does nothing.
func (i *Interface) Start(now time.Time) []Action {
	if i.started {
		return nil
	}
	i.started = true
	i.dr, i.drIsSelf = i.self, true
	acts := []Action{DRChanged{DR: i.self, IsSelf: true}}
	return i.sendHello(now, acts)
}

// Stop says goodbye to the link and forgets every neighbour. Start begins afresh.
func (i *Interface) Stop(now time.Time) []Action {
	if !i.started {
		return nil
	}
	acts := []Action{SendHello{Hello: i.hello(0)}}
	for _, n := range i.sortedNeighbors() {
		acts = append(acts, NeighborDown{Address: n.Address})
	}
	clear(i.neighbors)
	i.started = false
	i.dr, i.drIsSelf = netip.Addr{}, false
	i.nextHello = time.Time{}
	return acts
}

// SetConfig applies a new configuration. A change to what we advertise is
// announced at once; a priority change may move the DR.
func (i *Interface) SetConfig(cfg InterfaceConfig, now time.Time) []Action {
	cfg = normalize(cfg)
	old := i.cfg
	i.cfg = cfg
	if !i.started {
		return nil
	}
	acts := i.elect(nil)
	if old.DRPriority != cfg.DRPriority || old.HelloInterval != cfg.HelloInterval || old.TrackingSupport != cfg.TrackingSupport ||
		!slices.Equal(old.SourcePrefixes, cfg.SourcePrefixes) {
		acts = i.sendHello(now, acts)
	} else if i.nextHello.After(now.Add(cfg.HelloInterval)) {
		i.nextHello = now.Add(cfg.HelloInterval)
	}
	return acts
}

// SetAddress changes our primary address. Neighbours are told to forget the
// old one with a goodbye, which the owner should send from the old address,
// and then learn the new one from a fresh hello.
func (i *Interface) SetAddress(self netip.Addr, now time.Time) []Action {
	if self == i.self {
		return nil
	}
	if !i.started {
		i.self = self
		return nil
	}
	acts := []Action{SendHello{Hello: i.hello(0)}}
	i.self = self
	// A neighbour known by our new address is stale: the address is ours now.
	if _, ok := i.neighbors[self]; ok {
		delete(i.neighbors, self)
		acts = append(acts, NeighborDown{Address: self})
	}
	acts = i.elect(acts)
	return i.sendHello(now, acts)
}

// ReceiveHello handles a Hello from src on this interface.
func (i *Interface) ReceiveHello(now time.Time, src netip.Addr, h *Hello) []Action {
	if !i.started || h == nil || !src.Is4() || src == i.self {
		return nil
	}
	acts := i.expire(now, nil)
	holdtime := advertisedHoldtime(h)
	n, known := i.neighbors[src]
	if holdtime == 0 {
		return i.finish(now, i.forget(src, acts))
	}
	switch {
	case !known && i.cfg.MaxNeighbors > 0 && len(i.neighbors) >= i.cfg.MaxNeighbors:
		acts = append(acts, Refused{Reason: "neighbors", Count: 1})
		return i.finish(now, acts)
	case !known:
		n = &neighbor{Neighbor: Neighbor{Address: src, Since: now}}
		i.neighbors[src] = n
		acts = append(acts, NeighborUp{Address: src})
		i.triggerHello(now)
	case h.GenerationID != nil && n.hasGenerationID && *h.GenerationID != n.GenerationID:
		n.Since = now
		acts = append(acts, NeighborRestarted{Address: src})
		i.triggerHello(now)
	}
	n.Holdtime = holdtime
	n.Expires = i.expiry(now, h, holdtime)
	n.DRPriority, n.HasDRPriority = 0, h.DRPriority != nil
	if h.DRPriority != nil {
		n.DRPriority = *h.DRPriority
	}
	if h.GenerationID != nil {
		n.GenerationID, n.hasGenerationID = *h.GenerationID, true
	}
	n.LANPruneDelay = nil
	if h.LANPruneDelay != nil {
		d := *h.LANPruneDelay
		n.LANPruneDelay = &d
	}
	if excess := i.setSecondary(n, h.Addresses); excess > 0 {
		acts = append(acts, Refused{Reason: "hello_addresses", Count: excess})
	}
	prefixes := h.SourcePrefixes
	if excess := len(prefixes) - MaxSourcePrefixes; excess > 0 {
		prefixes = prefixes[:MaxSourcePrefixes]
		acts = append(acts, Refused{Reason: "source_prefixes", Count: excess})
	}
	if !slices.Equal(prefixes, n.SourcePrefixes) {
		n.SourcePrefixes = slices.Clone(prefixes)
		acts = append(acts, SourcePrefixesChanged{Address: src})
	}
	acts = i.elect(acts)
	return i.finish(now, acts)
}

// Forget drops the neighbours that keep does not keep, as if they had said
// goodbye: a change of config no longer allows them.
func (i *Interface) Forget(now time.Time, keep func(netip.Addr) bool) []Action {
	if !i.started {
		return nil
	}
	acts := i.expire(now, nil)
	for _, n := range i.sortedNeighbors() {
		if !keep(n.Address) {
			acts = i.forget(n.Address, acts)
		}
	}
	return i.finish(now, acts)
}

// forget drops the neighbour at a, if there is one, and elects the DR again.
func (i *Interface) forget(a netip.Addr, acts []Action) []Action {
	if _, ok := i.neighbors[a]; !ok {
		return acts
	}
	delete(i.neighbors, a)
	acts = append(acts, NeighborDown{Address: a})
	return i.elect(acts)
}

// advertisedHoldtime is the holdtime a Hello asks for (RFC 7761 4.9.2): its
// option, or the default when it has none.
func advertisedHoldtime(h *Hello) time.Duration {
	if h.Holdtime == nil {
		return DefaultHelloHoldtime
	}
	return time.Duration(*h.Holdtime) * time.Second
}

// expiry is when a neighbour whose Hello h, advertising holdtime, arrived at now
// times out: after holdtime (RFC 7761 4.3.1), never for HoldtimeForever, and in
// either case no later than MaxHoldtime allows, so that a router gone silent, or
// one that only claims to be there, does not stay a neighbour for ever.
func (i *Interface) expiry(now time.Time, h *Hello, holdtime time.Duration) time.Time {
	capped := i.cfg.MaxHoldtime > 0 && holdtime > i.cfg.MaxHoldtime
	switch {
	case capped:
		return now.Add(i.cfg.MaxHoldtime)
	case h.Holdtime != nil && *h.Holdtime == HoldtimeForever:
		return time.Time{}
	}
	return now.Add(holdtime)
}

// setSecondary records n's secondary addresses (RFC 7761 4.3.4), sorted, the
// lowest MaxHelloAddresses of them, and returns how many more there were. An
// address can belong to one neighbour only, so the latest to claim it takes it
// from any other. Sorting makes each lookup a binary search: the whole Hello
// costs O(n log n), however many addresses it lists.
func (i *Interface) setSecondary(n *neighbor, addrs []netip.Addr) (excess int) {
	var list []netip.Addr
	for _, a := range addrs {
		if a.Is4() && a != n.Address && a != i.self {
			list = append(list, a)
		}
	}
	slices.SortFunc(list, netip.Addr.Compare)
	list = slices.Compact(list)
	if len(list) > MaxHelloAddresses {
		excess = len(list) - MaxHelloAddresses
		list = slices.Clip(list[:MaxHelloAddresses])
	}
	n.Secondary = list
	if len(list) == 0 {
		return excess
	}
	for _, other := range i.neighbors {
		if other == n || len(other.Secondary) == 0 {
			continue
		}
		other.Secondary = slices.DeleteFunc(other.Secondary, func(a netip.Addr) bool {
			_, claimed := slices.BinarySearchFunc(list, a, netip.Addr.Compare)
			return claimed
		})
	}
	return excess
}

// Advance times out neighbours and sends the hello when due.
func (i *Interface) Advance(now time.Time) []Action {
	if !i.started {
		return nil
	}
	return i.finish(now, i.expire(now, nil))
}

// NextDeadline returns when Advance next has work to do.
func (i *Interface) NextDeadline() (time.Time, bool) {
	if !i.started {
		return time.Time{}, false
	}
	next := i.nextHello
	for _, n := range i.neighbors {
		if !n.Expires.IsZero() && n.Expires.Before(next) {
			next = n.Expires
		}
	}
	return next, true
}

// Neighbors returns every neighbour, sorted by address.
func (i *Interface) Neighbors() []Neighbor {
	ns := i.sortedNeighbors()
	out := make([]Neighbor, len(ns))
	for k, n := range ns {
		out[k] = n.view()
	}
	return out
}

// Neighbor returns the neighbour at a, if there is one.
func (i *Interface) Neighbor(a netip.Addr) (Neighbor, bool) {
	n, ok := i.neighbors[a]
	if !ok {
		return Neighbor{}, false
	}
	return n.view(), true
}

// HasNeighbors reports whether any PIM router is heard on the interface.
func (i *Interface) HasNeighbors() bool { return len(i.neighbors) > 0 }

// DR returns the designated router, or the zero address when stopped.
func (i *Interface) DR() netip.Addr { return i.dr }

// IsDR says whether we are the designated router.
func (i *Interface) IsDR() bool { return i.drIsSelf }

// GenerationID returns the generation ID we advertise.
func (i *Interface) GenerationID() uint32 { return i.generationID }

// view copies n so that callers cannot change our state through it.
func (n *neighbor) view() Neighbor {
	v := n.Neighbor
	v.Secondary = slices.Clone(n.Secondary)
	v.SourcePrefixes = slices.Clone(n.SourcePrefixes)
	if n.LANPruneDelay != nil {
		d := *n.LANPruneDelay
		v.LANPruneDelay = &d
	}
	return v
}

func (i *Interface) sortedNeighbors() []*neighbor {
	ns := make([]*neighbor, 0, len(i.neighbors))
	for _, n := range i.neighbors {
		ns = append(ns, n)
	}
	slices.SortFunc(ns, func(a, b *neighbor) int { return a.Address.Compare(b.Address) })
	return ns
}

// expire drops every neighbour whose holdtime ran out by now.
func (i *Interface) expire(now time.Time, acts []Action) []Action {
	var gone []*neighbor
	for _, n := range i.neighbors {
		if !n.Expires.IsZero() && !n.Expires.After(now) {
			gone = append(gone, n)
		}
	}
	if len(gone) == 0 {
		return acts
	}
	slices.SortFunc(gone, func(a, b *neighbor) int { return a.Address.Compare(b.Address) })
	for _, n := range gone {
		delete(i.neighbors, n.Address)
		acts = append(acts, NeighborDown{Address: n.Address})
	}
	return i.elect(acts)
}

// finish sends the hello if it is due.
func (i *Interface) finish(now time.Time, acts []Action) []Action {
	if !i.nextHello.After(now) {
		acts = i.sendHello(now, acts)
	}
	return acts
}

// triggerHello brings the next hello forward to a random point within the
// triggered delay, unless it is due sooner anyway.
func (i *Interface) triggerHello(now time.Time) {
	var delay time.Duration
	if i.cfg.Random != nil && i.cfg.TriggeredHelloDelay > 0 {
		r := i.cfg.Random()
		if r < 0 || r >= 1 {
			r = 0
		}
		delay = time.Duration(r * float64(i.cfg.TriggeredHelloDelay))
	}
	if at := now.Add(delay); at.Before(i.nextHello) {
		i.nextHello = at
	}
	i.helloOwed = true
}

// OwedHello sends at once the triggered hello that still waits for its random
// delay, for a Join/Prune or Assert about to go out on the interface (RFC 7761
// 4.3.1: a router sends its Hello before other PIM messages to a neighbour that
// has not heard it). A neighbour that is new, or restarted, ignores the join of a
// router it does not know, and the join would wait a whole period to be sent again.
func (i *Interface) OwedHello(now time.Time) []Action {
	if !i.started || !i.helloOwed {
		return nil
	}
	return i.sendHello(now, nil)
}

func (i *Interface) sendHello(now time.Time, acts []Action) []Action {
	i.nextHello = now.Add(i.cfg.HelloInterval)
	i.helloOwed = false
	return append(acts, SendHello{Hello: i.hello(i.holdtime())})
}

// holdtime is what we advertise: 3.5 hello intervals, rounded up to whole
// seconds, at least 1 so that it never reads as a goodbye.
func (i *Interface) holdtime() uint16 {
	d := i.cfg.HelloInterval * 7 / 2
	secs := (d + time.Second - 1) / time.Second
	return uint16(min(max(secs, 1), maxFiniteHoldtime))
}

func (i *Interface) hello(holdtime uint16) Hello {
	priority, genID := i.cfg.DRPriority, i.generationID
	return Hello{
		Holdtime:       &holdtime,
		DRPriority:     &priority,
		GenerationID:   &genID,
		LANPruneDelay:  &LANPruneDelay{TrackingSupport: i.cfg.TrackingSupport, PropagationDelay: propagationDelayMs, OverrideInterval: overrideIntervalMs},
		SourcePrefixes: i.cfg.SourcePrefixes,
	}
}

// elect picks the DR (RFC 7761 4.3.2) and reports it if it changed. Priority
// counts only when every router on the link advertises one; otherwise the
// highest address wins.
func (i *Interface) elect(acts []Action) []Action {
	usePriority := true
	for _, n := range i.neighbors {
		if !n.HasDRPriority {
			usePriority = false
			break
		}
	}
	best, bestPriority := i.self, i.cfg.DRPriority
	for _, n := range i.neighbors {
		if usePriority && n.DRPriority != bestPriority {
			if n.DRPriority > bestPriority {
				best, bestPriority = n.Address, n.DRPriority
			}
			continue
		}
		if n.Address.Compare(best) > 0 {
			best, bestPriority = n.Address, n.DRPriority
		}
	}
	isSelf := best == i.self
	if best == i.dr && isSelf == i.drIsSelf {
		return acts
	}
	i.dr, i.drIsSelf = best, isSelf
	return append(acts, DRChanged{DR: best, IsSelf: isSelf})
}
