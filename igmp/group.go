package igmp

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"time"
)

// FilterMode is a group's router filter mode (RFC 3376 6.2.1).
type FilterMode uint8

const (
	Include FilterMode = iota
	Exclude
)

func (m FilterMode) String() string {
	if m == Exclude {
		return "exclude"
	}
	return "include"
}

// GroupState is what the querier knows about one group.
type GroupState struct {
	Group    netip.Addr
	Mode     FilterMode
	Sources  []SourceState // the include list, or in EXCLUDE mode both lists (excluded ones with Forward false)
	Version  int           // group compatibility mode: 1, 2 or 3
	Reporter netip.Addr    // the host heard from last
	Expires  time.Time     // group timer; zero in INCLUDE mode
}

// SourceState is one source of a group.
type SourceState struct {
	Source  netip.Addr
	Expires time.Time // zero for an excluded source
	Forward bool
}

// addr4 is an IPv4 address as a number, so that state stays small and sorts
// in address order.
type addr4 uint32

// key returns a as an addr4; a must be an IPv4 address.
func key(a netip.Addr) addr4 {
	b := a.As4()
	return addr4(binary.BigEndian.Uint32(b[:]))
}

func (a addr4) addr() netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(a))
	return netip.AddrFrom4(b)
}

func (a addr4) isLinkLocalMulticast() bool { return a>>8 == 224<<16 }

type sourceRecord struct {
	addr        addr4
	retransmits uint8 // Q(G,A) sends still due that name this source
	expires     tick  // source timer; in EXCLUDE mode zero puts it on the exclude list
}

// groupRecord is one group's state, kept by value in Querier.slots.
type groupRecord struct {
	sources          []sourceRecord // sorted by address
	expires          tick           // group timer, running in EXCLUDE mode only
	v1Host           tick           // IGMPv1 host present timer (7.3.2)
	v2Host           tick           // IGMPv2 host present timer
	groupQueryAt     tick           // next Q(G) retransmission
	sourceQueryAt    tick           // next Q(G,A) retransmission
	addr             addr4
	reporter         addr4
	mode             FilterMode
	groupRetransmits uint8 // Q(G) sends still due
}

func (g *groupRecord) find(a addr4) (int, bool) {
	return slices.BinarySearchFunc(g.sources, a, func(s sourceRecord, a addr4) int {
		return compareAddr4(s.addr, a)
	})
}

func compareAddr4(a, b addr4) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compat is the group compatibility mode: the oldest host version heard
// within the older host present interval.
func (g *groupRecord) compat() int {
	switch {
	case g.v1Host != 0:
		return 1
	case g.v2Host != 0:
		return 2
	}
	return 3
}

func (q *Querier) groupVersion(g *groupRecord) int { return min(g.compat(), q.cfg.Version) }

// forwards answers RFC 3376 6.3 for source i of g. A group with older hosts
// in EXCLUDE mode forwards everything: those hosts cannot exclude.
func (q *Querier) forwards(g *groupRecord, i int, found bool) bool {
	if g.mode == Include {
		return found && g.sources[i].expires != 0
	}
	return !found || g.sources[i].expires != 0 || q.groupVersion(g) < 3
}

// Forward tells whether traffic from source to group is wanted on the
// interface.
func (q *Querier) Forward(source, group netip.Addr) bool {
	source, group = source.Unmap(), group.Unmap()
	if !source.Is4() || !group.Is4() {
		return false
	}
	slot, ok := q.index[key(group)]
	if !ok {
		return false
	}
	g := &q.slots[slot]
	i, found := g.find(key(source))
	return q.forwards(g, i, found)
}

// Groups returns every group's state, sorted by group.
func (q *Querier) Groups() []GroupState {
	groups := make([]GroupState, 0, len(q.index))
	for i := range q.slots {
		if g := &q.slots[i]; g.addr != 0 {
			groups = append(groups, q.groupState(g))
		}
	}
	slices.SortFunc(groups, func(a, b GroupState) int { return a.Group.Compare(b.Group) })
	return groups
}

// GroupCount is how many groups have members, without building their states.
func (q *Querier) GroupCount() int { return len(q.index) }

// Mode returns one group's filter mode, without the copy of its sources that
// Group makes: a route's recomputation asks it once per source of the group.
func (q *Querier) Mode(group netip.Addr) (FilterMode, bool) {
	group = group.Unmap()
	if !group.Is4() {
		return 0, false
	}
	slot, ok := q.index[key(group)]
	if !ok {
		return 0, false
	}
	return q.slots[slot].mode, true
}

// Group returns one group's state.
func (q *Querier) Group(group netip.Addr) (GroupState, bool) {
	group = group.Unmap()
	if !group.Is4() {
		return GroupState{}, false
	}
	slot, ok := q.index[key(group)]
	if !ok {
		return GroupState{}, false
	}
	return q.groupState(&q.slots[slot]), true
}

func (q *Querier) groupState(g *groupRecord) GroupState {
	st := GroupState{
		Group:    g.addr.addr(),
		Mode:     g.mode,
		Version:  q.groupVersion(g),
		Reporter: g.reporter.addr(),
		Expires:  q.timeOf(g.expires),
	}
	if len(g.sources) > 0 {
		st.Sources = make([]SourceState, len(g.sources))
		for i, s := range g.sources {
			st.Sources[i] = SourceState{Source: s.addr.addr(), Expires: q.timeOf(s.expires), Forward: q.forwards(g, i, true)}
		}
	}
	return st
}

// Receiving reports and leaves.

// reportable returns the group a report names, counting it when it names
// one that is never tracked.
func (q *Querier) reportable(group netip.Addr) (addr4, bool) {
	group = group.Unmap()
	if !group.Is4() || !group.IsMulticast() {
		q.stats.Ignored++
		return 0, false
	}
	a := key(group)
	if a.isLinkLocalMulticast() {
		q.stats.LinkLocal++
		return 0, false
	}
	return a, true
}

// admit returns the slot of group a, creating the group when policy allows.
func (q *Querier) admit(a addr4) (int32, bool) {
	if slot, ok := q.index[a]; ok {
		return slot, true
	}
	if !q.allowed(a.addr()) {
		q.stats.NotAllowed++
		return 0, false
	}
	if q.cfg.MaxGroups > 0 && len(q.index) >= q.cfg.MaxGroups {
		q.stats.Refused++
		return 0, false
	}
	var slot int32
	if n := len(q.free); n > 0 {
		slot = q.free[n-1]
		q.free = q.free[:n-1]
	} else {
		slot = int32(len(q.slots))
		q.slots = append(q.slots, groupRecord{})
	}
	q.slots[slot].addr = a
	q.index[a] = slot
	q.markChanged(a)
	return slot, true
}

func (q *Querier) allowed(group netip.Addr) bool {
	if len(q.cfg.AllowedGroups) == 0 {
		return true
	}
	for _, p := range q.cfg.AllowedGroups {
		if p.Contains(group) {
			return true
		}
	}
	return false
}

// deleteGroup frees a group's slot. Its timers' heap entries become stale.
func (q *Querier) deleteGroup(slot int32) {
	g := &q.slots[slot]
	for _, t := range [...]tick{g.expires, g.v1Host, g.v2Host, g.groupQueryAt, g.sourceQueryAt} {
		if t != 0 {
			q.timers.superseded()
		}
	}
	for _, s := range g.sources {
		if s.expires != 0 {
			q.timers.superseded()
		}
	}
	q.sources -= len(g.sources)
	delete(q.index, g.addr)
	q.markChanged(g.addr)
	// A small source array is kept for the slot's next group; a large one
	// would pin memory long after the burst that grew it.
	const keepSources = 8
	sources := g.sources[:0]
	if cap(sources) > keepSources {
		sources = nil
	}
	*g = groupRecord{sources: sources}
	q.free = append(q.free, slot)
}

func (q *Querier) receiveReport(t tick, src netip.Addr, r *Report) {
	switch r.Version {
	case 1:
		q.stats.ReportsV1++
		q.receiveOlderReport(t, src, timerV1Host, r.Group)
	case 2:
		q.stats.ReportsV2++
		q.receiveOlderReport(t, src, timerV2Host, r.Group)
	case 3:
		q.stats.ReportsV3++
		if q.cfg.Version < 3 {
			q.stats.Ignored++
			return
		}
		for i := range r.Records {
			q.receiveRecord(t, src, &r.Records[i])
		}
	default:
		q.stats.Ignored++
	}
}

// receiveOlderReport handles a v1 or v2 report: it marks the older host
// present and counts as IS_EX({}) (7.3.2).
func (q *Querier) receiveOlderReport(t tick, src netip.Addr, hostTimer timerKind, group netip.Addr) {
	a, ok := q.reportable(group)
	if !ok {
		return
	}
	slot, ok := q.admit(a)
	if !ok {
		return
	}
	g := &q.slots[slot]
	compat := g.compat()
	field := &g.v2Host
	if hostTimer == timerV1Host {
		field = &g.v1Host
	}
	q.setTimer(field, hostTimer, a, 0, t.add(q.olderPresentInterval()))
	if g.compat() != compat {
		q.markChanged(a)
	}
	g.reporter = reporterKey(src)
	q.applyRecord(t, slot, ModeIsExclude, nil)
}

// receiveLeave handles a v2 leave as TO_IN({}), except where v1 rules
// (a v1 host present, or a v1 querier), under which leaves do not exist.
func (q *Querier) receiveLeave(t tick, src netip.Addr, m *Leave) {
	q.stats.Leaves++
	a, ok := q.reportable(m.Group)
	if !ok {
		return
	}
	slot, ok := q.index[a]
	if !ok {
		return
	}
	g := &q.slots[slot]
	if g.compat() == 1 || q.queryVersion() == 1 {
		q.stats.Ignored++
		return
	}
	g.reporter = reporterKey(src)
	q.applyRecord(t, slot, ChangeToInclude, nil)
}

func (q *Querier) receiveRecord(t tick, src netip.Addr, r *Record) {
	a, ok := q.reportable(r.Group)
	if !ok {
		return
	}
	if r.Type < ModeIsInclude || r.Type > BlockOldSources {
		q.stats.Ignored++
		return
	}
	sources := q.sourceSet(r.Sources)
	slot, exists := q.index[a]
	if exists && q.slots[slot].compat() < 3 {
		// Older hosts cannot exclude sources, so their presence overrides
		// a v3 host's wish to (7.3.2).
		switch r.Type {
		case BlockOldSources:
			q.stats.Ignored++
			return
		case ChangeToExclude:
			sources = sources[:0]
		}
	}
	if !exists {
		// No state is INCLUDE({}): only records that leave something
		// behind in that state create a group.
		switch r.Type {
		case BlockOldSources:
			return
		case ModeIsInclude, AllowNewSources, ChangeToInclude:
			if len(sources) == 0 {
				return
			}
		}
		if slot, ok = q.admit(a); !ok {
			return
		}
	}
	q.slots[slot].reporter = reporterKey(src)
	q.applyRecord(t, slot, r.Type, sources)
}

// reporterKey keeps the sender of a report, which may be 0.0.0.0.
func reporterKey(src netip.Addr) addr4 {
	if !src.Is4() {
		return 0
	}
	return key(src)
}

// sourceSet returns a record's IPv4 sources sorted and without repeats, in a
// buffer reused from call to call.
func (q *Querier) sourceSet(sources []netip.Addr) []addr4 {
	set := q.scratch[:0]
	for _, s := range sources {
		if s = s.Unmap(); s.Is4() {
			set = append(set, key(s))
		}
	}
	slices.Sort(set)
	set = slices.Compact(set)
	q.scratch = set
	return set
}

func contains(set []addr4, a addr4) bool {
	_, found := slices.BinarySearch(set, a)
	return found
}

// applyRecord carries out one row of the tables of RFC 3376 6.4.1 and 6.4.2.
// In the comments A is the include list (INCLUDE mode), X the requested and
// Y the exclude list (EXCLUDE mode), B the record's sources.
func (q *Querier) applyRecord(t tick, slot int32, typ RecordType, b []addr4) {
	g := &q.slots[slot]
	gmi := t.add(q.groupMembershipInterval())
	if g.mode == Include {
		switch typ {
		case ModeIsInclude, AllowNewSources: // INCLUDE(A+B); (B)=GMI
			q.refreshSources(g, b, gmi)
		case ChangeToInclude: // INCLUDE(A+B); (B)=GMI; Q(G,A-B)
			q.refreshSources(g, b, gmi)
			q.querySources(t, g, func(s sourceRecord) bool { return !contains(b, s.addr) })
		case BlockOldSources: // INCLUDE(A); Q(G,A*B)
			q.querySources(t, g, func(s sourceRecord) bool { return contains(b, s.addr) })
		case ModeIsExclude, ChangeToExclude: // EXCLUDE(A*B, B-A); (B-A)=0; delete A-B; group timer=GMI
			q.keepOnly(g, b)
			q.addSources(g, b, 0)
			g.mode = Exclude
			q.markChanged(g.addr)
			q.setTimer(&g.expires, timerGroup, g.addr, 0, gmi)
			if typ == ChangeToExclude { // Q(G,A*B): the sources still timed
				q.querySources(t, g, func(s sourceRecord) bool { return s.expires != 0 })
			}
		}
	} else {
		switch typ {
		case ModeIsInclude, AllowNewSources: // EXCLUDE(X+B, Y-B); (B)=GMI
			q.refreshSources(g, b, gmi)
		case ChangeToInclude: // EXCLUDE(X+B, Y-B); (B)=GMI; Q(G,X-B); Q(G)
			q.refreshSources(g, b, gmi)
			q.querySources(t, g, func(s sourceRecord) bool { return s.expires != 0 && !contains(b, s.addr) })
			q.queryGroup(t, g)
		case BlockOldSources: // EXCLUDE(X+(B-Y), Y); (B-X-Y)=group timer; Q(G,B-Y)
			q.addSources(g, b, g.expires)
			q.querySources(t, g, func(s sourceRecord) bool { return s.expires != 0 && contains(b, s.addr) })
		case ModeIsExclude: // EXCLUDE(B-Y, Y*B); (B-X-Y)=GMI; delete X-B, Y-B; group timer=GMI
			q.keepOnly(g, b)
			q.addSources(g, b, gmi)
			q.setTimer(&g.expires, timerGroup, g.addr, 0, gmi)
		case ChangeToExclude: // as IS_EX but (B-X-Y)=group timer; Q(G,B-Y)
			q.keepOnly(g, b)
			q.addSources(g, b, g.expires)
			q.setTimer(&g.expires, timerGroup, g.addr, 0, gmi)
			q.querySources(t, g, func(s sourceRecord) bool { return s.expires != 0 })
		}
	}
	if g.mode == Include && len(g.sources) == 0 {
		q.deleteGroup(slot)
	}
}

// insertSources adds the sources of b that g lacks, as far as the limit allows,
// with no timer, and returns those it added. b is sorted, so one merge from the
// back inserts them all in O(len(g.sources)+len(b)): a record of thousands of
// sources costs no more than that.
func (q *Querier) insertSources(g *groupRecord, b []addr4) []addr4 {
	added := q.added[:0]
	for _, a := range b {
		if _, found := g.find(a); found {
			continue
		}
		if q.cfg.MaxSources > 0 && len(g.sources)+len(added) >= q.cfg.MaxSources ||
			q.cfg.MaxSourcesPerInterface > 0 && q.sources+len(added) >= q.cfg.MaxSourcesPerInterface {
			q.stats.SourcesRefused++
			continue
		}
		added = append(added, a)
	}
	q.added = added
	if len(added) == 0 {
		return added
	}
	q.sources += len(added)
	old := len(g.sources)
	g.sources = slices.Grow(g.sources, len(added))[:old+len(added)]
	i, j := old-1, len(added)-1
	for k := len(g.sources) - 1; j >= 0; k-- {
		if i >= 0 && g.sources[i].addr > added[j] {
			g.sources[k] = g.sources[i]
			i--
		} else {
			g.sources[k] = sourceRecord{addr: added[j]}
			j--
		}
	}
	return added
}

// refreshSources sets the timers of the sources in b to at, adding those
// that are missing.
func (q *Querier) refreshSources(g *groupRecord, b []addr4, at tick) {
	q.insertSources(g, b)
	for _, a := range b {
		i, found := g.find(a)
		if !found {
			continue // refused: the group holds its most sources
		}
		if g.sources[i].expires == 0 {
			q.markChanged(g.addr) // new, or back from the exclude list
		}
		q.setTimer(&g.sources[i].expires, timerSource, g.addr, a, at)
	}
}

// addSources adds the sources of b that g lacks, with their timers at at
// (zero: on the exclude list).
func (q *Querier) addSources(g *groupRecord, b []addr4, at tick) {
	added := q.insertSources(g, b)
	if len(added) > 0 {
		q.markChanged(g.addr)
	}
	for _, a := range added {
		i, _ := g.find(a)
		q.setTimer(&g.sources[i].expires, timerSource, g.addr, a, at)
	}
}

// keepOnly deletes the sources not in b.
func (q *Querier) keepOnly(g *groupRecord, b []addr4) {
	n := len(g.sources)
	g.sources = slices.DeleteFunc(g.sources, func(s sourceRecord) bool {
		if contains(b, s.addr) {
			return false
		}
		if s.expires != 0 {
			q.timers.superseded()
		}
		return true
	})
	if len(g.sources) != n {
		q.sources -= n - len(g.sources)
		q.markChanged(g.addr)
	}
}

// Group-specific and group-and-source-specific queries (RFC 3376 6.6.3).

// queryGroup is the table's "Send Q(G)": when querier, lower the group timer
// to LMQT and send LMQC group-specific queries LMQI apart. A leave heard
// while those are under way needs no queries of its own.
func (q *Querier) queryGroup(t tick, g *groupRecord) {
	if !q.IsQuerier() || q.queryVersion() < 2 {
		return
	}
	if lmqt := t.add(q.lastMemberQueryTime()); g.expires > lmqt {
		q.setTimer(&g.expires, timerGroup, g.addr, 0, lmqt)
	}
	if g.groupRetransmits == 0 {
		g.groupRetransmits = uint8(q.lastMemberQueryCount())
		q.sendGroupQuery(t, g)
	}
}

// sendGroupQuery sends one Q(G). The S flag is set when a report has raised
// the group timer above LMQT since the queries began, so that other routers
// keep their timers.
func (q *Querier) sendGroupQuery(t tick, g *groupRecord) {
	if g.groupRetransmits == 0 {
		return
	}
	g.groupRetransmits--
	query := q.newQuery(g.addr.addr(), q.cfg.LastMemberQueryInterval)
	query.SuppressRtr = query.Version == 3 && g.expires > t.add(q.lastMemberQueryTime())
	q.send(query, query.Group)
	var next tick
	if g.groupRetransmits > 0 {
		next = t.add(q.cfg.LastMemberQueryInterval)
	}
	q.setTimer(&g.groupQueryAt, timerGroupQuery, g.addr, 0, next)
}

// querySources is the table's "Send Q(G,S)" for the sources that match:
// when querier, each with a timer above LMQT has it lowered to LMQT and is
// named in the next LMQC group-and-source-specific queries, the first sent
// now. Sources at or below LMQT are already being asked about or expiring.
func (q *Querier) querySources(t tick, g *groupRecord, match func(sourceRecord) bool) {
	if !q.IsQuerier() || q.queryVersion() < 3 {
		return
	}
	lmqt := t.add(q.lastMemberQueryTime())
	count := uint8(q.lastMemberQueryCount())
	asked := false
	for i := range g.sources {
		s := &g.sources[i]
		if s.expires > lmqt && match(*s) {
			q.setTimer(&s.expires, timerSource, g.addr, s.addr, lmqt)
			s.retransmits = count
			asked = true
		}
	}
	if asked {
		q.sendSourceQueries(t, g)
	}
}

// sendSourceQueries sends the due round of Q(G,A): sources whose timers a
// report has since raised above LMQT go in a query with the S flag set, the
// rest in one with it clear; an empty one is not sent.
func (q *Querier) sendSourceQueries(t tick, g *groupRecord) {
	lmqt := t.add(q.lastMemberQueryTime())
	var raised, lowered []netip.Addr
	pending := false
	for i := range g.sources {
		s := &g.sources[i]
		if s.retransmits == 0 {
			continue
		}
		if s.expires > lmqt {
			raised = append(raised, s.addr.addr())
		} else {
			lowered = append(lowered, s.addr.addr())
		}
		s.retransmits--
		pending = pending || s.retransmits > 0
	}
	q.sendSourceQuery(g, true, raised)
	q.sendSourceQuery(g, false, lowered)
	var next tick
	if pending {
		next = t.add(q.cfg.LastMemberQueryInterval)
	}
	q.setTimer(&g.sourceQueryAt, timerSourceQuery, g.addr, 0, next)
}

// sendSourceQuery sends Q(G,sources) in as many packets as they need.
func (q *Querier) sendSourceQuery(g *groupRecord, suppress bool, sources []netip.Addr) {
	for len(sources) > 0 {
		n := min(len(sources), maxSourcesPerQuery)
		query := q.newQuery(g.addr.addr(), q.cfg.LastMemberQueryInterval)
		query.SuppressRtr = suppress
		query.Sources = sources[:n:n]
		q.send(query, query.Group)
		sources = sources[n:]
	}
}

// lowerTimersOnQuery applies a group(-and-source)-specific query with the S
// flag clear from another router: the timers it asks about drop to the time
// the querier will wait (6.6.1), LMQT, or for v1/v2 queries LMQC times the
// query's max response time, as RFC 2236 has it.
func (q *Querier) lowerTimersOnQuery(t tick, m *Query) {
	group := m.Group.Unmap()
	if !group.Is4() || !group.IsMulticast() {
		return
	}
	slot, ok := q.index[key(group)]
	if !ok {
		return
	}
	wait := q.lastMemberQueryTime()
	if m.Version < 3 && m.MaxResp > 0 {
		wait = time.Duration(q.lastMemberQueryCount()) * min(m.MaxResp, maxInterval)
	}
	limit := t.add(wait)
	g := &q.slots[slot]
	if len(m.Sources) == 0 {
		if g.mode == Exclude && g.expires > limit {
			q.setTimer(&g.expires, timerGroup, g.addr, 0, limit)
		}
		return
	}
	for _, s := range m.Sources {
		if s = s.Unmap(); !s.Is4() {
			continue
		}
		if i, found := g.find(key(s)); found && g.sources[i].expires > limit {
			q.setTimer(&g.sources[i].expires, timerSource, g.addr, g.sources[i].addr, limit)
		}
	}
}

// groupTimerExpired acts on the expiry of one of a group's timers.
func (q *Querier) groupTimerExpired(t tick, e timerEntry) {
	slot := q.index[e.group]
	g := &q.slots[slot]
	switch e.kind {
	case timerGroup:
		// EXCLUDE(X,Y) becomes INCLUDE(X) (6.5); an empty INCLUDE is no state.
		n := len(g.sources)
		g.sources = slices.DeleteFunc(g.sources, func(s sourceRecord) bool { return s.expires == 0 })
		q.sources -= n - len(g.sources)
		g.mode = Include
		q.markChanged(g.addr)
		if len(g.sources) == 0 {
			q.deleteGroup(slot)
		}
	case timerSource:
		i, found := g.find(e.source)
		if !found {
			return
		}
		q.markChanged(g.addr)
		if g.mode == Exclude {
			g.sources[i].retransmits = 0 // now on the exclude list
			return
		}
		g.sources = slices.Delete(g.sources, i, i+1)
		q.sources--
		if len(g.sources) == 0 {
			q.deleteGroup(slot)
		}
	case timerV1Host, timerV2Host:
		q.markChanged(g.addr)
	// A run of retransmissions, once begun, is finished even if another
	// router has become querier meanwhile (as RFC 2236 3 has it): that one
	// does not query for the leave it heard as a non-querier.
	case timerGroupQuery:
		if q.self.IsValid() && q.queryVersion() >= 2 {
			q.sendGroupQuery(t, g)
		} else {
			g.groupRetransmits = 0
		}
	case timerSourceQuery:
		if q.self.IsValid() && q.queryVersion() == 3 {
			q.sendSourceQueries(t, g)
		} else {
			for i := range g.sources {
				g.sources[i].retransmits = 0
			}
		}
	}
}
