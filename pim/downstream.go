package pim

import (
	"net/netip"
	"slices"
	"time"
)

// This file is the downstream side of the Tree (RFC 7761 4.5): the
// Join/Prune messages neighbours send us, and the per-interface state they make.

// ReceiveJoinPrune acts on a Join/Prune heard on an interface from the neighbour
// from: as the upstream neighbour it names, on the downstream state machines; as
// a peer on the LAN, by suppressing our own joins or overriding the prunes of others.
func (t *Tree) ReceiveJoinPrune(now time.Time, iface string, from netip.Addr, m *JoinPrune) []Action {
	t.begin()
	link, ok := t.links[iface]
	switch {
	case !ok:
		t.acts = append(t.acts, JoinPruneIgnored{Reason: "interface"})
	case m.UpstreamNeighbor == link.Self:
		t.receiveDownstream(now, iface, from, link, m)
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

func (t *Tree) receiveDownstream(now time.Time, iface string, from netip.Addr, link Link, m *JoinPrune) {
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
				t.downstreamJoin(now, Key{Group: group}, iface, from, until)
			case !s.Wildcard && !s.RPT:
				t.downstreamJoin(now, Key{Source: s.Source.Addr(), Group: group}, iface, from, until)
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
					t.changed[e.key] = true
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

func (t *Tree) downstreamJoin(now time.Time, key Key, iface string, from netip.Addr, until time.Time) {
	var d *downstream
	if e := t.entries[key]; e != nil {
		d = e.joins.at(iface)
	}
	if d == nil && t.joinRefused(from) {
		return
	}
	e := t.entry(now, key)
	if d == nil {
		d = &downstream{from: from}
		e.joins.set(iface, d)
		t.joins++
		t.joinsBy[from]++
		t.changed[key] = true
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

// joinRefused applies the limits to a join that would make new downstream state,
// counting a refusal. State already held is refreshed whatever the limits.
func (t *Tree) joinRefused(from netip.Addr) bool {
	switch {
	case t.cfg.MaxJoins > 0 && t.joins >= t.cfg.MaxJoins:
		t.acts = append(t.acts, JoinPruneIgnored{Reason: "max-joins"})
	case t.cfg.MaxJoinsPerNeighbor > 0 && t.joinsBy[from] >= t.cfg.MaxJoinsPerNeighbor:
		t.acts = append(t.acts, JoinPruneIgnored{Reason: "max-joins-per-neighbor"})
	default:
		return false
	}
	return true
}

// forgetJoin uncounts downstream join state that is going; nil is none.
func (t *Tree) forgetJoin(d *downstream) {
	if d == nil {
		return
	}
	t.joins--
	if t.joinsBy[d.from]--; t.joinsBy[d.from] <= 0 {
		delete(t.joinsBy, d.from)
	}
}

func (t *Tree) downstreamGone(now time.Time, e *entry, iface string) {
	t.forgetJoin(e.joins.at(iface))
	e.joins.del(iface)
	t.changed[e.key] = true
	t.update(now, e)
}

// rptJoin cancels an (S,G,rpt) prune: a LAN peer still wants the source on the
// shared tree.
func (t *Tree) rptJoin(now time.Time, key Key, iface string) {
	if e := t.entries[key]; e != nil && e.rptPrunes.has(iface) {
		e.rptPrunes.del(iface)
		t.changed[key] = true
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
			t.changed[key] = true
		} else {
			d.state, d.prunePending = PrunePending, now.Add(link.Override)
		}
	}
	if until.IsZero() || until.After(d.expiry) {
		d.expiry = until
	}
	t.update(now, e)
}
