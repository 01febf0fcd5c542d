package router

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/pim"
)

// This file joins the PIM join/prune Tree to the rest of the router: reverse paths
// from the kernel's unicast routes, local membership from the IGMP queriers, and
// the merge of both into each group's MFC entries.

// treeConfig is the Tree's view of the router's config and routing table.
func (r *Router) treeConfig() pim.TreeConfig {
	return pim.TreeConfig{
		JoinPruneInterval: r.cfg.PIM.JoinPruneInterval,
		RP:                r.rpOf,
		RPF:               r.rpf,
		Random:            rand.Float64,
	}
}

// rpOf is the RP a group maps to.
func (r *Router) rpOf(group netip.Addr) (netip.Addr, bool) {
	m, ok := r.rps.Lookup(group)
	return m.RP, ok
}

// rpf is the reverse path to an address, from a cache that every unicast route
// change empties.
func (r *Router) rpf(addr netip.Addr) pim.RPF {
	if p, ok := r.rpfCache[addr]; ok {
		return p
	}
	p := r.lookupRPF(addr)
	r.rpfCache[addr] = p
	return p
}

// lookupRPF asks the kernel's FIB for the route to addr. The next hop is the
// neighbour to join through; on a connected subnet there is none, unless addr is
// itself a PIM neighbour there (an RP next door).
func (r *Router) lookupRPF(addr netip.Addr) pim.RPF {
	for _, ifc := range r.ifaces {
		if ifc.own(addr) {
			return pim.RPF{} // ourselves: nobody upstream
		}
	}
	// A connected subnet needs no lookup, and has no next hop.
	for _, ifc := range r.sortedInterfaces() {
		if ifc.connected(addr) {
			nbr, _ := pimNeighbor(ifc, addr)
			return pim.RPF{Interface: ifc.name, Neighbor: nbr}
		}
	}
	routes, err := netlink.RouteGet(addr.AsSlice())
	if err != nil || len(routes) == 0 {
		r.counters.inc("rpf_unreachable")
		return pim.RPF{}
	}
	rt := routes[0]
	ifc := r.byIndex(rt.LinkIndex)
	if ifc == nil || rt.Type == unix.RTN_LOCAL {
		return pim.RPF{}
	}
	next := addr
	if gw, ok := netip.AddrFromSlice(rt.Gw.To4()); ok && rt.Gw != nil {
		next = gw
	}
	p := pim.RPF{Interface: ifc.name}
	if nbr, ok := pimNeighbor(ifc, next); ok {
		p.Neighbor = nbr
	} else if next != addr {
		// A next hop we have not heard a hello from yet: join it all the same, so the
		// tree forms as soon as it is up.
		p.Neighbor = next
	}
	return p
}

// pimNeighbor maps an address to the PIM neighbour on the interface that owns it,
// as its primary or a secondary address.
func pimNeighbor(ifc *iface, addr netip.Addr) (netip.Addr, bool) {
	if ifc.pim == nil {
		return netip.Addr{}, false
	}
	for _, n := range ifc.pim.Neighbors() {
		if n.Address == addr || slices.Contains(n.Secondary, addr) {
			return n.Address, true
		}
	}
	return netip.Addr{}, false
}

// rerunRPF follows a unicast routing change: every entry's reverse path is looked up
// again, joins move, and every group's incoming interfaces are recomputed.
func (r *Router) rerunRPF(now time.Time) {
	r.rpfStale = false
	clear(r.rpfCache)
	r.treeActions(r.tree.RPFChanged(now))
	for group := range r.byGroup {
		r.refreshGroup(group)
	}
}

// syncLink tells the Tree about a PIM interface: our address there, and how long a
// prune waits for an override, which depends on the neighbours.
func (r *Router) syncLink(ifc *iface) {
	r.tree.SetLink(ifc.name, pim.Link{Self: ifc.pimSelf, Override: pim.LinkOverride(ifc.pim.Neighbors())})
}

// treeActions carries out what the Tree asked for.
func (r *Router) treeActions(actions []pim.Action) {
	for _, a := range actions {
		switch a := a.(type) {
		case pim.SendJoinPrune:
			ifc := r.ifaces[a.Interface]
			if ifc == nil || ifc.pim == nil {
				r.counters.inc("pim_send_errors")
				continue
			}
			msg, err := a.Message.Marshal()
			if err == nil {
				err = r.pimIO.send(ifc.index, ifc.pimSelf, msg)
			}
			if err != nil {
				r.counters.inc("pim_send_errors")
				r.log.Warn("send PIM join/prune", "interface", ifc.name, "err", err)
				continue
			}
			r.counters.inc("pim_joinprunes_sent")
		case pim.TreeChanged:
			r.refreshGroup(a.Group)
		case pim.JoinPruneIgnored:
			r.counters.inc("pim_joinprune_ignored_" + a.Reason)
		}
	}
}

// localKeys is what an interface's members ask the Tree for in a group: (*,G) for
// any-source membership, (S,G) for each source of an INCLUDE list. Members count
// only where we are the DR, or where PIM does not run: elsewhere the DR serves them
// (RFC 7761 4.1.6, pim_include).
func (r *Router) localKeys(ifc *iface, group netip.Addr) []sgKey {
	q := ifc.querier
	if q == nil || (ifc.pim != nil && !ifc.pim.IsDR()) {
		return nil
	}
	g, ok := q.Group(group)
	if !ok {
		return nil
	}
	if g.Mode == igmp.Exclude {
		if r.rps.SSM(group) {
			return nil // no shared tree in the SSM range (RFC 4604 2.2.1)
		}
		return []sgKey{{Group: group}}
	}
	var keys []sgKey
	for _, s := range g.Sources {
		if s.Forward {
			keys = append(keys, sgKey{Source: s.Source, Group: group})
		}
	}
	return keys
}

// syncLocal brings the Tree's local receivers of one group on one interface in line
// with IGMP.
func (r *Router) syncLocal(ifc *iface, group netip.Addr, now time.Time) {
	want := r.localKeys(ifc, group)
	had := ifc.local[group]
	for _, k := range had {
		if !slices.Contains(want, k) {
			r.treeActions(r.tree.SetLocal(now, k, ifc.name, false))
		}
	}
	for _, k := range want {
		if !slices.Contains(had, k) {
			r.treeActions(r.tree.SetLocal(now, k, ifc.name, true))
		}
	}
	switch {
	case len(want) == 0:
		delete(ifc.local, group)
	case ifc.local == nil:
		ifc.local = map[netip.Addr][]sgKey{group: want}
	default:
		ifc.local[group] = want
	}
}

// syncAllLocal re-derives every group's local receivers on an interface, after the
// DR or the querier changed.
func (r *Router) syncAllLocal(ifc *iface, now time.Time) {
	groups := make(map[netip.Addr]bool)
	for g := range ifc.local {
		groups[g] = true
	}
	if ifc.querier != nil {
		for _, g := range ifc.querier.Groups() {
			groups[g.Group] = true
		}
	}
	for g := range groups {
		r.syncLocal(ifc, g, now)
		r.refreshGroup(g)
	}
}

// sourceTree reports whether the Tree holds (S,G) join state: downstream joins or
// local INCLUDE receivers, which make the router forward (S,G) along the source's
// tree whether or not a packet has been seen.
func (r *Router) sourceTree(key sgKey) bool {
	return len(r.tree.Forwards(key)) > 0 || r.tree.HasLocal(key)
}

// refreshGroup recomputes the routes of a group from the Tree, IGMP and the
// reverse paths: (S,G) join state makes a route of its own, a route neither PIM
// state nor traffic holds goes, and every dynamic route gets its incoming and
// outgoing interfaces anew.
func (r *Router) refreshGroup(group netip.Addr) {
	now := time.Now()
	for _, e := range r.tree.Entries(group) {
		if e.Key.Wildcard() || r.routes[e.Key] != nil || !r.sourceTree(e.Key) {
			continue
		}
		r.addRoute(&route{key: e.Key, protocol: protoPIM, created: now})
	}
	for key, rt := range r.byGroup[group] {
		if rt.protocol == protoStatic || key.Wildcard() {
			continue
		}
		rt.spt = r.sourceTree(key)
		if !rt.spt && !rt.learned {
			r.deleteRoute(key)
			continue
		}
		iif, shared := r.routeIIF(key, rt.spt)
		oifs := r.routeOIFs(key, iif)
		proto := protoIGMP
		if shared || r.pimForwards(key) {
			proto = protoPIM
		}
		rt.protocol, rt.shared = proto, shared
		if iif != rt.iif || !slices.Equal(oifs, rt.oifs) {
			rt.iif, rt.oifs = iif, oifs
			r.reconcileWanted = true
		}
	}
}

// pimForwards reports whether PIM, not only local membership, has a say in where
// (S,G) goes: joins from downstream routers, or our own join upstream.
func (r *Router) pimForwards(key sgKey) bool {
	wc := sgKey{Group: key.Group}
	_, sgJoined := r.tree.Upstream(key)
	_, wcJoined := r.tree.Upstream(wc)
	return sgJoined || wcJoined || len(r.tree.Forwards(key)) > 0 || len(r.tree.Forwards(wc)) > 0
}

// routeIIF is where (S,G) traffic is accepted from: the source's own subnet, the
// reverse path to the source on its tree, or else the reverse path to the RP on the
// shared tree (shared true). "" when there is no such path.
func (r *Router) routeIIF(key sgKey, spt bool) (iif string, shared bool) {
	s := r.rpf(key.Source)
	if spt || (s.Interface != "" && !s.Neighbor.IsValid()) {
		return s.Interface, false
	}
	rp, ok := r.rpOf(key.Group)
	if !ok {
		return "", false
	}
	return r.rpf(rp).Interface, true
}

// routeOIFs merges what (S,G) is forwarded to: the shared tree's joined interfaces
// less those where the source is pruned off it, the source tree's, and local
// members; never the incoming interface.
func (r *Router) routeOIFs(key sgKey, iif string) []string {
	var out []string
	for _, name := range r.tree.Forwards(sgKey{Group: key.Group}) {
		if !r.tree.RPTPruned(key, name) {
			out = append(out, name)
		}
	}
	out = append(out, r.tree.Forwards(key)...)
	out = append(out, r.memberOIFs(key, iif)...)
	slices.Sort(out)
	out = slices.Compact(out)
	return slices.DeleteFunc(out, func(name string) bool { return name == iif })
}
