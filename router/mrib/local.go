package mrib

import (
	"net/netip"
	"time"

	"github.com/mrouterd/mrouterd/igmp"
)

// This file passes IGMP membership on to the PIM Tree: what each interface's
// members ask for, as local receivers of (*,G) and (S,G) entries.

// memberKeys is what an interface's members ask the Tree for in a group: (*,G) for
// any-source membership, (S,G) for each source of an INCLUDE list, in source order.
func (r *RIB) memberKeys(iface string, group netip.Addr) []Key {
	q := r.env.Member(iface)
	if q == nil || !r.countsMembers(iface) {
		return nil
	}
	g, ok := q.Group(group)
	if !ok {
		return nil
	}
	if r.ssmAnySource(group, g.Mode, true) {
		r.env.Count("igmp_ssm_asm_join_ignored")
		return nil
	}
	if g.Mode != igmp.Include {
		return []Key{{Group: group}}
	}
	keys := make([]Key, 0, len(g.Sources))
	for _, s := range g.Sources {
		if s.Forward {
			keys = append(keys, Key{Source: s.Source, Group: group})
		}
	}
	return keys
}

// SyncLocal brings the Tree's local receivers of one group on one interface in
// line with IGMP. Any-source members (EXCLUDE), before or after, have Refresh
// recompute the group: IGMP says what they take of each source, and every route
// of the group asks it. Of INCLUDE lists, only the routes of the sources that
// came or went change, and the Tree reports those as it takes them: a report
// adding a source to a large group costs that source's route.
func (r *RIB) SyncLocal(now time.Time, iface string, group netip.Addr) []Send {
	had := r.local[iface][group]
	if want := r.syncLocal(now, iface, group); anySource(had) || anySource(want) {
		r.dirtyGroups[group] = true
	}
	return r.take()
}

// anySource reports whether an interface's local receivers of a group, as
// memberKeys lists them, are any-source members: (*,G), which comes alone.
func anySource(keys []Key) bool { return len(keys) == 1 && keys[0].Wildcard() }

// syncLocal brings the Tree's local receivers of the group on iface in line with
// IGMP and returns them.
func (r *RIB) syncLocal(now time.Time, iface string, group netip.Addr) []Key {
	want := r.memberKeys(iface, group)
	had := r.local[iface][group]
	// Both lists are in source order: one pass finds what changed, so an INCLUDE
	// list of thousands of sources costs no more than its length.
	i, j := 0, 0
	for i < len(had) || j < len(want) {
		c := 1
		switch {
		case i == len(had):
		case j == len(want):
			c = -1
		default:
			c = had[i].Source.Compare(want[j].Source)
		}
		switch {
		case c < 0:
			r.treeActions(r.tree.SetLocal(now, had[i], iface, false))
			i++
		case c > 0:
			r.treeActions(r.tree.SetLocal(now, want[j], iface, true))
			j++
		default:
			i++
			j++
		}
	}
	switch {
	case len(want) == 0:
		delete(r.local[iface], group)
		if len(r.local[iface]) == 0 {
			delete(r.local, iface)
		}
	case r.local[iface] == nil:
		r.local[iface] = map[netip.Addr][]Key{group: want}
	default:
		r.local[iface][group] = want
	}
	return want
}

// SyncAllLocal re-derives every group's local receivers on an interface, after
// the DR or the querier changed. groups are the groups IGMP knows there.
func (r *RIB) SyncAllLocal(now time.Time, iface string, groups []netip.Addr) []Send {
	all := make(map[netip.Addr]bool)
	for g := range r.local[iface] {
		all[g] = true
	}
	for _, g := range groups {
		all[g] = true
	}
	for g := range all {
		r.syncLocal(now, iface, g)
		r.dirtyGroups[g] = true
	}
	return r.take()
}
