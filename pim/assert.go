package pim

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Assert timing (RFC 7761 4.11).
const (
	AssertTime             = 180 * time.Second
	AssertOverrideInterval = 3 * time.Second
)

// AssertMetric is what an assert compares (RFC 7761 4.6.1): the route to the
// source's preference and metric, then the sender's address.
type AssertMetric struct {
	RPT        bool // on the shared tree: loses to any source-tree metric
	Preference uint32
	Metric     uint32
	Address    netip.Addr
}

// Better reports whether m wins over o.
func (m AssertMetric) Better(o AssertMetric) bool {
	switch {
	case m.RPT != o.RPT:
		return !m.RPT
	case m.Preference != o.Preference:
		return m.Preference < o.Preference
	case m.Metric != o.Metric:
		return m.Metric < o.Metric
	}
	return m.Address.Compare(o.Address) > 0
}

// SendAssert asks for an Assert to go to ALL-PIM-ROUTERS on an interface.
type SendAssert struct {
	Interface string
	Assert    Assert
}

func (SendAssert) isAction() {}

// assertState is one interface's (S,G) assert state (RFC 7761 4.6.1).
type assertState struct {
	winner bool // we forward here; otherwise we lost to winnerMetric
	ours   AssertMetric
	theirs AssertMetric // the winner's, when we lost
	timer  time.Time
}

// AssertData handles (S,G) data that arrived on an interface we forward it to:
// another router forwards onto the same link, so we assert our metric there.
func (t *Tree) AssertData(now time.Time, key Key, iface string, ours AssertMetric) []Action {
	t.begin()
	e := t.entry(now, key)
	if a := e.asserts.at(iface); a == nil {
		t.assertWin(now, e, iface, ours)
	}
	t.update(now, e)
	return t.finish()
}

// ReceiveAssert handles an (S,G) Assert heard on an interface. ours is our own
// metric there, and forwarding whether the interface is in our outgoing list;
// only then do we contend. Downstream, on the interface our joins leave by, we
// track the winner instead: it is the one forwarding to us, so our joins go to it
// (RFC 7761 4.6.1, AssertTrackingDesired; RPF').
func (t *Tree) ReceiveAssert(now time.Time, key Key, iface string, theirs, ours AssertMetric, forwarding bool) []Action {
	t.begin()
	e := t.entries[key]
	a := (*assertState)(nil)
	if e != nil {
		a = e.asserts.at(iface)
	}
	tracking := !forwarding && e != nil && e.joined && e.upstream.Interface == iface
	switch {
	case tracking:
		if a == nil || a.theirs.Address == theirs.Address || theirs.Better(a.theirs) {
			e.asserts.set(iface, &assertState{theirs: theirs, timer: now.Add(AssertTime)})
		}
	case ours.Better(theirs) && (forwarding || a != nil && a.winner):
		// An inferior assert: answer it, and forward on (or start to win).
		e = t.entry(now, key)
		t.assertWin(now, e, iface, ours)
	case ours.Better(theirs):
		if a != nil && !a.winner && a.theirs.Address == theirs.Address {
			// The winner got worse than us and we do not forward: forget it.
			e.asserts.del(iface)
			t.changed[key] = true
		}
	case forwarding || a != nil:
		e = t.entry(now, key)
		if a == nil || a.winner {
			t.changed[key] = true
		}
		e.asserts.set(iface, &assertState{ours: ours, theirs: theirs, timer: now.Add(AssertTime)})
	}
	if e != nil {
		t.update(now, e)
	}
	return t.finish()
}

// assertWin sends our assert and keeps winning until someone better speaks.
func (t *Tree) assertWin(now time.Time, e *entry, iface string, ours AssertMetric) {
	if a := e.asserts.at(iface); a == nil || !a.winner {
		t.changed[e.key] = true
	}
	e.asserts.set(iface, &assertState{winner: true, ours: ours, timer: now.Add(AssertTime - AssertOverrideInterval)})
	t.acts = append(t.acts, SendAssert{Interface: iface, Assert: Assert{
		Group: e.key.Group, Source: e.key.Source, RPT: ours.RPT,
		MetricPreference: ours.Preference, Metric: ours.Metric}})
}

// assertTimersExpired re-asserts where we win and forgets where we lost.
func (t *Tree) assertTimersExpired(now time.Time, e *entry) {
	var rewin []ifaceItem[*assertState]
	e.asserts.deleteFunc(func(name string, a *assertState) bool {
		switch {
		case a.timer.After(now):
			return false
		case a.winner:
			rewin = append(rewin, ifaceItem[*assertState]{name, a})
			return false
		}
		t.changed[e.key] = true
		return true
	})
	for _, it := range rewin {
		t.assertWin(now, e, it.name, it.val.ours)
	}
}

// AssertLost reports whether another router won the assert for (S,G) on an
// interface: we must not forward there.
func (t *Tree) AssertLost(key Key, iface string) bool {
	e := t.entries[key]
	return e != nil && e.lostAssert(iface)
}

// AssertView is one interface's assert state, as shown to operators.
type AssertView struct {
	Interface string
	Winner    netip.Addr // us, or the router that won
	WeWin     bool
	Expires   time.Time
}

// assertViews lists an entry's assert states by interface.
func (e *entry) assertViews() []AssertView {
	var out []AssertView
	for _, it := range e.asserts {
		a := it.val
		v := AssertView{Interface: it.name, Winner: a.theirs.Address, WeWin: a.winner, Expires: a.timer}
		if a.winner {
			v.Winner = a.ours.Address
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b AssertView) int { return strings.Compare(a.Interface, b.Interface) })
	return out
}
