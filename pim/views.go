package pim

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// This file is what the Tree shows its owner: forwarding state to merge into
// routes, and entries as operators see them.

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
	slices.SortFunc(out, func(a, b EntryView) int { return a.Key.Compare(b.Key) })
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
