package pim

import (
	"net/netip"
	"slices"
	"time"
)

// This file is the upstream side of the Tree (RFC 7761 4.5): JoinDesired,
// where our joins go, what other routers' joins on the same link tell us, and the
// batching of our Join/Prunes into as few packets as fit.

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
			if m.Holdtime >= t.holdtime() && !t.links[iface].Tracking {
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
