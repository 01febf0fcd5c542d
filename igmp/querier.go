package igmp

import (
	"net/netip"
	"slices"
	"time"
)

// Config is what a Querier is told by the configuration. Zero or negative
// values take the RFC 3376 defaults.
type Config struct {
	Version                 int            // 2 or 3: the version this router speaks (IGMPv2-only mode when 2)
	Robustness              int            // RFC 3376 8.1
	QueryInterval           time.Duration  // 8.2
	QueryResponseInterval   time.Duration  // 8.3
	LastMemberQueryInterval time.Duration  // 8.8
	AllowedGroups           []netip.Prefix // joins outside are ignored and counted; empty = 224.0.0.0/4
	MaxGroups               int            // beyond it new groups are refused and counted; 0 = no limit
	MaxSources              int            // per group; beyond it new sources are refused and counted; 0 = no limit
	// MaxSourcesPerInterface bounds the sources of all groups together, as a
	// flood spreading sources over many groups would otherwise hold up to
	// MaxGroups times MaxSources of them; 0 = no limit.
	MaxSourcesPerInterface int
}

const (
	defaultRobustness              = 2
	defaultQueryInterval           = 125 * time.Second
	defaultQueryResponseInterval   = 10 * time.Second
	defaultLastMemberQueryInterval = time.Second

	// Retransmission counters are bytes, and intervals are capped so that
	// robustness times an interval stays far from overflowing a Duration.
	maxRobustness = 255
	maxInterval   = 24 * time.Hour

	// Sources that fit one v3 query (12 bytes before its sources) in a
	// 1500-byte packet behind an IP header with the router alert option.
	maxSourcesPerQuery = (1500 - 24 - 12) / 4
)

func (c Config) normalized() Config {
	if c.Version != 2 {
		c.Version = 3
	}
	c.Robustness = positiveOr(c.Robustness, defaultRobustness, maxRobustness)
	c.QueryInterval = positiveOr(c.QueryInterval, defaultQueryInterval, maxInterval)
	c.QueryResponseInterval = positiveOr(c.QueryResponseInterval, defaultQueryResponseInterval, maxInterval)
	c.LastMemberQueryInterval = positiveOr(c.LastMemberQueryInterval, defaultLastMemberQueryInterval, maxInterval)
	c.AllowedGroups = slices.Clone(c.AllowedGroups)
	c.MaxGroups = max(c.MaxGroups, 0)
	c.MaxSources = max(c.MaxSources, 0)
	c.MaxSourcesPerInterface = max(c.MaxSourcesPerInterface, 0)
	return c
}

func positiveOr[T int | time.Duration](v, fallback, limit T) T {
	if v <= 0 {
		return fallback
	}
	return min(v, limit)
}

// Stats counts what the querier saw and did. Report and leave counters count
// messages received; Ignored, NotAllowed, Refused and LinkLocal count the
// messages or v3 group records that then changed nothing for that reason.
type Stats struct {
	QueriesSent     uint64
	QueriesReceived uint64 // from other routers
	OlderQueries    uint64 // received queries of a version older than ours (RFC 3376 7.3.1 wants them noticed)
	ReportsV1       uint64
	ReportsV2       uint64
	ReportsV3       uint64
	Leaves          uint64
	Ignored         uint64 // wrong version or mode, unknown message or record type, not a multicast group
	NotAllowed      uint64 // a new group outside the allowed groups
	Refused         uint64 // a new group beyond the maximum
	SourcesRefused  uint64 // sources, one by one, that a record would have added beyond a group's or the interface's maximum
	LinkLocal       uint64 // a report for 224.0.0.0/24, which is never tracked nor routed
}

// Action is something the owner of a Querier must do or know.
type Action interface{ isAction() }

// SendQuery asks for Query to be sent on the interface to Dst: 224.0.0.1 for
// a general query, the group itself for a group(-and-source)-specific one.
type SendQuery struct {
	Query Query
	Dst   netip.Addr
}

// GroupChanged says that the membership of Group, or whether some source of
// it is to be forwarded, may have changed.
type GroupChanged struct{ Group netip.Addr }

// QuerierChanged says who the querier on the interface is now.
type QuerierChanged struct {
	Querier netip.Addr // invalid when no querier is known
	IsSelf  bool
}

func (SendQuery) isAction()      {}
func (GroupChanged) isAction()   {}
func (QuerierChanged) isAction() {}

// Querier is the router side of IGMP on one interface: querier election,
// queries, and the group and source state of RFC 3376 section 6 with the
// compatibility rules of section 7. It does nothing on its own: the owner feeds
// it messages and the current time, and carries out the actions it returns.
type Querier struct {
	cfg     Config
	self    netip.Addr // invalid until the interface has an address
	started bool

	epoch    time.Time // tick 0
	hasEpoch bool
	now      tick // latest time seen; an earlier time given afterwards counts as this

	otherQuerier      netip.Addr
	otherQuerierUntil tick
	adoptedQRV        int           // from the elected querier's last v3 query; 0 = use ours
	adoptedQQI        time.Duration // likewise
	olderV1Until      tick          // an IGMPv1 querier was heard
	olderV2Until      tick          // an IGMPv2 querier was heard
	generalQueryAt    tick
	startupLeft       int // startup queries still to send after the pending one

	index   map[addr4]int32 // group → slot
	slots   []groupRecord   // by value; a slot with addr 0 is free
	free    []int32
	sources int // source records of all groups, for MaxSourcesPerInterface

	timers timerHeap
	stats  Stats

	// Built during one call and handed back by finish.
	out     []Action
	changed []addr4
	scratch []addr4
	added   []addr4 // the sources insertSources added
}

// NewQuerier returns a querier for an interface whose primary address is
// self (invalid when it has none yet). It starts no timers until Start.
func NewQuerier(cfg Config, self netip.Addr) *Querier {
	return &Querier{cfg: cfg.normalized(), self: usableAddress(self), index: make(map[addr4]int32)}
}

// usableAddress returns a as an IPv4 address this router can send from, or
// the invalid Addr.
func usableAddress(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if !a.Is4() || a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}
	}
	return a
}

// Start begins as querier, unless another querier has already been heard or
// there is no address yet: R startup general queries QI/4 apart, then one
// every QI.
func (q *Querier) Start(now time.Time) []Action {
	t := q.clock(now)
	before := q.view()
	q.runDue(t)
	if !q.started {
		q.started = true
		if q.IsQuerier() {
			q.beginQuerying(t, true)
		}
	}
	return q.finish(before)
}

// SetConfig applies a reloaded configuration. Running timers keep their
// deadlines; the new values apply whenever a timer is next set. Limits on
// groups apply to groups created from now on.
func (q *Querier) SetConfig(cfg Config, now time.Time) []Action {
	t := q.clock(now)
	before := q.view()
	q.runDue(t)
	q.cfg = cfg.normalized()
	return q.finish(before)
}

// SetAddress changes this router's address on the interface, which may win
// or lose the querier role.
func (q *Querier) SetAddress(self netip.Addr, now time.Time) []Action {
	t := q.clock(now)
	before := q.view()
	q.runDue(t)
	self = usableAddress(self)
	if self == q.self {
		return q.finish(before)
	}
	wasQuerier := q.IsQuerier()
	q.self = self
	switch {
	case q.IsQuerier() && !wasQuerier:
		// The first address, with nobody else querying: as at start.
		q.beginQuerying(t, true)
	case wasQuerier && !q.IsQuerier():
		q.stopQuerying()
	case q.started && self.IsValid() && q.otherQuerierUntil != 0 && self.Less(q.otherQuerier):
		// Now lower than the elected querier: take over at once.
		q.otherQuerier = netip.Addr{}
		q.setTimer(&q.otherQuerierUntil, timerOtherQuerier, 0, 0, 0)
		q.beginQuerying(t, false)
	}
	return q.finish(before)
}

// Receive handles one decoded message (*Query, *Report or *Leave) from src,
// after any timers already due.
func (q *Querier) Receive(now time.Time, src netip.Addr, msg any) []Action {
	t := q.clock(now)
	before := q.view()
	q.runDue(t)
	src = src.Unmap()
	switch m := msg.(type) {
	case *Query:
		if m != nil {
			q.receiveQuery(t, src, m)
			return q.finish(before)
		}
	case *Report:
		if m != nil {
			q.receiveReport(t, src, m)
			return q.finish(before)
		}
	case *Leave:
		if m != nil {
			q.receiveLeave(t, src, m)
			return q.finish(before)
		}
	}
	q.stats.Ignored++ // nil, or not an IGMP message
	return q.finish(before)
}

// Advance runs every timer due at or before now, earliest first. Each acts as
// if it expired at now: new deadlines count from now, so a late call does not
// replay missed periodic queries.
func (q *Querier) Advance(now time.Time) []Action {
	t := q.clock(now)
	before := q.view()
	q.runDue(t)
	return q.finish(before)
}

// runDue fires the timers due at or before t. Every event runs it first, so
// that a message is handled against the state its arrival time implies even
// when the owner has not yet called Advance for a past deadline.
func (q *Querier) runDue(t tick) {
	for q.timers.Len() > 0 && q.timers.peek().at <= t {
		e := q.timers.pop()
		field := q.timerField(e)
		if field == nil || *field != e.at {
			q.timers.droppedStale()
			continue
		}
		*field = 0
		q.fire(t, e)
	}
}

// NextDeadline returns when Advance next has work to do.
func (q *Querier) NextDeadline() (time.Time, bool) {
	if q.timers.Len() == 0 {
		return time.Time{}, false
	}
	return q.timeOf(q.timers.peek().at), true
}

// Stop forgets everything, as when the interface goes away, and reports every
// group it had as changed. Counters are kept; Start begins afresh.
func (q *Querier) Stop() []Action {
	for i := range q.slots {
		if g := &q.slots[i]; g.addr != 0 {
			q.markChanged(g.addr)
		}
	}
	q.started = false
	q.otherQuerier, q.otherQuerierUntil = netip.Addr{}, 0
	q.adoptedQRV, q.adoptedQQI = 0, 0
	q.olderV1Until, q.olderV2Until = 0, 0
	q.generalQueryAt, q.startupLeft = 0, 0
	q.index = make(map[addr4]int32)
	q.slots, q.free, q.sources = nil, nil, 0
	q.timers.reset()
	return q.finish(q.view())
}

// IsQuerier tells whether this router is the querier on the interface.
func (q *Querier) IsQuerier() bool {
	return q.started && q.self.IsValid() && q.otherQuerierUntil == 0
}

// QuerierAddress is this router's address when it is querier, else the
// elected querier's, or the invalid Addr when none is known.
func (q *Querier) QuerierAddress() netip.Addr {
	switch {
	case q.IsQuerier():
		return q.self
	case q.otherQuerierUntil != 0:
		return q.otherQuerier
	}
	return netip.Addr{}
}

// OtherQuerierExpires is when this router takes over unless the elected
// querier is heard again; zero when no other querier is elected.
func (q *Querier) OtherQuerierExpires() time.Time { return q.timeOf(q.otherQuerierUntil) }

// HasMembers reports whether any group has members on the interface.
func (q *Querier) HasMembers() bool { return len(q.index) > 0 }

// Stats returns the counters.
func (q *Querier) Stats() Stats { return q.stats }

// Timing values of RFC 3376 section 8, from the robustness and query interval
// in force: ours, or those adopted from the elected querier.

func (q *Querier) robustness() int {
	if q.adoptedQRV > 0 {
		return q.adoptedQRV
	}
	return q.cfg.Robustness
}

func (q *Querier) queryInterval() time.Duration {
	if q.adoptedQQI > 0 {
		return q.adoptedQQI
	}
	return q.cfg.QueryInterval
}

func (q *Querier) groupMembershipInterval() time.Duration {
	return time.Duration(q.robustness())*q.queryInterval() + q.cfg.QueryResponseInterval
}

func (q *Querier) otherQuerierPresentInterval() time.Duration {
	return time.Duration(q.robustness())*q.queryInterval() + q.cfg.QueryResponseInterval/2
}

// olderPresentInterval serves both the older host present interval (8.13) and
// the older version querier present timeout (8.12), which are equal.
func (q *Querier) olderPresentInterval() time.Duration { return q.groupMembershipInterval() }

func (q *Querier) lastMemberQueryCount() int { return q.robustness() }

func (q *Querier) lastMemberQueryTime() time.Duration {
	return time.Duration(q.lastMemberQueryCount()) * q.cfg.LastMemberQueryInterval
}

// queryVersion is the version of the queries we send: ours, lowered while an
// older querier has been heard recently (7.3.1).
func (q *Querier) queryVersion() int {
	switch {
	case q.olderV1Until != 0:
		return 1
	case q.olderV2Until != 0:
		return min(q.cfg.Version, 2)
	}
	return q.cfg.Version
}

// newQuery fills in what every query we send carries for the version in force.
func (q *Querier) newQuery(group netip.Addr, maxResp time.Duration) Query {
	query := Query{Version: q.queryVersion(), Group: group}
	if query.Version >= 2 {
		query.MaxResp = maxResp
	}
	if query.Version == 3 {
		query.QRV = q.robustness()
		query.QQI = q.queryInterval()
	}
	return query
}

func (q *Querier) send(query Query, dst netip.Addr) {
	q.stats.QueriesSent++
	q.out = append(q.out, SendQuery{Query: query, Dst: dst})
}

// Querier election and general queries (RFC 3376 6.6.2).

// beginQuerying makes this router act as querier from t: a general query now,
// then the startup ones when startup is set, then one every QI. Values adopted
// from a former querier give way to ours, which our queries now advertise.
func (q *Querier) beginQuerying(t tick, startup bool) {
	q.adoptedQRV, q.adoptedQQI = 0, 0
	q.startupLeft = 0
	if startup {
		q.startupLeft = q.cfg.Robustness - 1
	}
	q.sendGeneralQuery(t)
}

func (q *Querier) stopQuerying() {
	q.startupLeft = 0
	q.setTimer(&q.generalQueryAt, timerGeneralQuery, 0, 0, 0)
}

func (q *Querier) sendGeneralQuery(t tick) {
	q.send(q.newQuery(netip.Addr{}, q.cfg.QueryResponseInterval), AllSystems)
	interval := q.queryInterval()
	if q.startupLeft > 0 {
		interval /= 4
		q.startupLeft--
	}
	q.setTimer(&q.generalQueryAt, timerGeneralQuery, 0, 0, t.add(interval))
}

func (q *Querier) receiveQuery(t tick, src netip.Addr, m *Query) {
	if q.self.IsValid() && src == q.self {
		return // our own, looped back
	}
	q.stats.QueriesReceived++
	if m.Version < 1 || m.Version > 3 {
		q.stats.Ignored++
		return
	}
	if m.Version < q.cfg.Version {
		q.stats.OlderQueries++
	}
	// A query without a usable source address (as some snooping switches
	// send) still lowers timers, but takes no part in the election.
	if usableAddress(src).IsValid() && (!q.self.IsValid() || src.Less(q.self)) {
		q.hearLowerQuerier(t, src, m)
	}
	if m.Group.IsValid() && !m.Group.Unmap().IsUnspecified() && !m.SuppressRtr {
		q.lowerTimersOnQuery(t, m)
	}
}

// hearLowerQuerier handles a query from an address lower than ours: its
// sender is (or stays) the querier, unless a still lower one already is.
func (q *Querier) hearLowerQuerier(t tick, src netip.Addr, m *Query) {
	if q.otherQuerierUntil != 0 && q.otherQuerier.Less(src) {
		return
	}
	if q.IsQuerier() {
		q.stopQuerying()
	}
	q.otherQuerier = src
	if m.Version == 3 {
		// Zero in either field means the querier's value is not given:
		// ours applies (RFC 3376 4.1.6, 4.1.7).
		q.adoptedQRV = min(max(m.QRV, 0), maxRobustness)
		q.adoptedQQI = min(max(m.QQI, 0), maxInterval)
	}
	q.setTimer(&q.otherQuerierUntil, timerOtherQuerier, 0, 0, t.add(q.otherQuerierPresentInterval()))
	switch {
	case m.Version == 1:
		q.setTimer(&q.olderV1Until, timerOlderV1Querier, 0, 0, t.add(q.olderPresentInterval()))
	case m.Version == 2 && q.cfg.Version > 2:
		q.setTimer(&q.olderV2Until, timerOlderV2Querier, 0, 0, t.add(q.olderPresentInterval()))
	}
}

// Timer plumbing.

// clock turns now into a tick, fixing the epoch on first use and never
// letting time run backwards. A zero time fixes no epoch: taken as one, it
// would put every real time beyond maxTick.
func (q *Querier) clock(now time.Time) tick {
	if !q.hasEpoch {
		if now.IsZero() {
			return q.now
		}
		q.epoch, q.hasEpoch = now, true
	}
	q.now = min(max(q.now, tick(now.Sub(q.epoch))), maxTick)
	return q.now
}

func (q *Querier) timeOf(t tick) time.Time {
	if t == 0 {
		return time.Time{}
	}
	return q.epoch.Add(time.Duration(t))
}

// setTimer arms (or with at zero, stops) the timer held in field. The heap
// entry of the deadline it replaces, if any, becomes stale.
func (q *Querier) setTimer(field *tick, kind timerKind, group, source addr4, at tick) {
	if *field == at {
		return
	}
	if *field != 0 {
		q.timers.superseded()
	}
	*field = at
	if at != 0 {
		q.timers.push(timerEntry{at: at, group: group, source: source, kind: kind})
	}
}

// timerField finds the field a heap entry stands for, nil when its group or
// source is gone.
func (q *Querier) timerField(e timerEntry) *tick {
	switch e.kind {
	case timerGeneralQuery:
		return &q.generalQueryAt
	case timerOtherQuerier:
		return &q.otherQuerierUntil
	case timerOlderV1Querier:
		return &q.olderV1Until
	case timerOlderV2Querier:
		return &q.olderV2Until
	}
	slot, ok := q.index[e.group]
	if !ok {
		return nil
	}
	g := &q.slots[slot]
	switch e.kind {
	case timerGroup:
		return &g.expires
	case timerSource:
		if i, found := g.find(e.source); found {
			return &g.sources[i].expires
		}
	case timerV1Host:
		return &g.v1Host
	case timerV2Host:
		return &g.v2Host
	case timerGroupQuery:
		return &g.groupQueryAt
	case timerSourceQuery:
		return &g.sourceQueryAt
	}
	return nil
}

func (q *Querier) timerLive(e timerEntry) bool {
	field := q.timerField(e)
	return field != nil && *field == e.at
}

// fire acts on an expired timer, whose field has already been zeroed.
func (q *Querier) fire(t tick, e timerEntry) {
	switch e.kind {
	case timerGeneralQuery:
		if q.IsQuerier() {
			q.sendGeneralQuery(t)
		}
	case timerOtherQuerier:
		q.otherQuerier = netip.Addr{}
		if q.IsQuerier() {
			q.beginQuerying(t, false)
		}
	case timerOlderV1Querier, timerOlderV2Querier:
		// Nothing to do: queryVersion reads the zeroed field.
	default:
		q.groupTimerExpired(t, e)
	}
}

// Building the result of a call.

type querierView struct {
	isSelf bool
	addr   netip.Addr
}

func (q *Querier) view() querierView {
	return querierView{isSelf: q.IsQuerier(), addr: q.QuerierAddress()}
}

func (q *Querier) markChanged(g addr4) { q.changed = append(q.changed, g) }

// finish drops stale timers from the top of the heap, so that NextDeadline
// is exact, and returns the call's actions: a QuerierChanged first when the
// querier changed, then queries in the order sent, then one GroupChanged per
// changed group in address order.
func (q *Querier) finish(before querierView) []Action {
	q.timers.compact(q.timerLive)
	for q.timers.Len() > 0 && !q.timerLive(q.timers.peek()) {
		q.timers.pop()
		q.timers.droppedStale()
	}
	slices.Sort(q.changed)
	q.changed = slices.Compact(q.changed)
	after := q.view()
	n := len(q.out) + len(q.changed)
	if after != before {
		n++
	}
	if n == 0 {
		return nil
	}
	actions := make([]Action, 0, n)
	if after != before {
		actions = append(actions, QuerierChanged{Querier: after.addr, IsSelf: after.isSelf})
	}
	actions = append(actions, q.out...)
	for _, g := range q.changed {
		actions = append(actions, GroupChanged{Group: g.addr()})
	}
	clear(q.out)
	q.out = q.out[:0]
	q.changed = q.changed[:0]
	return actions
}
