package router

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

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
		DeferSends:        true,
	}
}

// rpOf is the RP a group maps to.
func (r *Router) rpOf(group netip.Addr) (netip.Addr, bool) {
	m, ok := r.rps.Lookup(group)
	return m.RP, ok
}

// rpf is the reverse path to an address.
func (r *Router) rpf(addr netip.Addr) pim.RPF { return r.path(addr).rpf }

// reversePath is what the router knows of the way to an address: the RPF, and the
// unicast route behind it, which an assert compares.
type reversePath struct {
	rpf    pim.RPF
	asked  bool // the FIB was asked for the route
	routed bool // and had one
	route  fibRoute
}

// path is the way to an address, from a cache that every unicast route change
// covering the address empties.
func (r *Router) path(addr netip.Addr) *reversePath {
	if p, ok := r.rpfCache[addr]; ok {
		return p
	}
	p := r.lookupPath(addr)
	r.rpfCache[addr] = p
	return p
}

// fibRoute is the kernel's route to addr, asked once per cached path: the one
// place the FIB is asked.
func (r *Router) fibRoute(addr netip.Addr) (fibRoute, bool) {
	p := r.path(addr)
	r.askFIB(p, addr)
	return p.route, p.routed
}

func (r *Router) askFIB(p *reversePath, addr netip.Addr) {
	if p.asked {
		return
	}
	rt, err := r.fib.Route(addr)
	p.asked, p.routed, p.route = true, err == nil, rt
}

// lookupPath finds the reverse path to addr. The next hop is the neighbour to join
// through; on a connected subnet there is none, unless addr is itself a PIM
// neighbour there (an RP next door).
func (r *Router) lookupPath(addr netip.Addr) *reversePath {
	p := &reversePath{}
	if r.isOwn(addr) {
		return p // ourselves: nobody upstream
	}
	// A connected subnet needs no lookup, and has no next hop.
	for _, ifc := range r.sortedInterfaces() {
		if ifc.connected(addr) {
			nbr, _ := pimNeighbor(ifc, addr)
			p.rpf = pim.RPF{Interface: ifc.name, Neighbor: nbr}
			return p
		}
	}
	r.askFIB(p, addr)
	if !p.routed {
		r.counters.inc("rpf_unreachable")
		return p
	}
	ifc := r.byIndex(p.route.ifindex)
	if ifc == nil || p.route.local {
		return p
	}
	next := addr
	if p.route.gateway.IsValid() {
		next = p.route.gateway
	}
	p.rpf.Interface = ifc.name
	if nbr, ok := pimNeighbor(ifc, next); ok {
		p.rpf.Neighbor = nbr
	} else if next != addr {
		// A next hop we have not heard a hello from yet: join it all the same, so the
		// tree forms as soon as it is up.
		p.rpf.Neighbor = next
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
		r.dirtyGroups[group] = true
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
			r.sendPIM(a.Interface, netip.Addr{}, a.Message, "pim_joinprunes_sent")
		case pim.TreeChanged:
			r.dirtyGroups[a.Group] = true
		case pim.JoinPruneIgnored:
			r.counters.inc("pim_joinprune_ignored_" + a.Reason)
		case pim.SendAssert:
			r.sendPIM(a.Interface, netip.Addr{}, &a.Assert, "asserts_sent")
		case pim.SendNullRegister:
			r.sendPIM("", a.RP, nullRegister(a.Key), "null_registers_sent")
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
			// No shared tree in the SSM range (RFC 4604 2.2.1).
			r.counters.inc("igmp_ssm_asm_join_ignored")
			return nil
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
		r.dirtyGroups[g] = true
	}
}

// sourceTree reports whether the Tree holds (S,G) join state: downstream joins or
// local INCLUDE receivers, which make the router forward (S,G) along the source's
// tree whether or not a packet has been seen.
func (r *Router) sourceTree(key sgKey) bool {
	return len(r.tree.Forwards(key)) > 0 || r.tree.HasLocal(key)
}

// refreshDirty recomputes the groups whose state changed since the last time. A
// recomputation may change the Tree again, so it runs until nothing is left, with
// a bound that a bug could never turn into a hung loop.
func (r *Router) refreshDirty() {
	for range 16 {
		if len(r.dirtyGroups) == 0 {
			return
		}
		groups := r.dirtyGroups
		r.dirtyGroups = make(map[netip.Addr]bool)
		for g := range groups {
			r.refreshGroup(g)
		}
	}
	r.counters.inc("refresh_unsettled")
	clear(r.dirtyGroups)
}

// refreshGroup recomputes the routes of a group from the Tree, IGMP and the
// reverse paths: (S,G) join state makes a route of its own, a route neither PIM
// state nor traffic holds goes, and every dynamic route gets its source-side state
// (keepalive, registering, SPT bit) and its interfaces anew.
func (r *Router) refreshGroup(group netip.Addr) {
	now := r.now()
	for _, key := range r.tree.Sources(group) {
		if r.routes[key] == nil && r.sourceTree(key) {
			r.addRoute(&route{key: key, origin: originPIM, created: now})
		}
	}
	for key, rt := range r.byGroup[group] {
		if rt.origin == originStatic || key.Wildcard() {
			continue
		}
		rt.joinState = r.sourceTree(key)
		if !rt.joinState && !rt.learned {
			r.forgetRoute(key)
			continue
		}
		v := r.viewOf(key)
		r.updateSourceState(key, rt, v, now)
		iif, shared := r.routeIIF(key, rt, v)
		oifs := r.routeOIFs(key, iif)
		proto := originIGMP
		if shared || r.tree.Keepalive(key) || r.pimForwards(key) {
			proto = originPIM
		}
		rt.origin, rt.shared = proto, shared
		if iif != rt.iif || !slices.Equal(oifs, rt.oifs) {
			rt.iif, rt.oifs = iif, oifs
			r.dirtyKeys[key] = true
		}
	}
}

// forgetRoute removes a dynamic route and the source-side state its traffic held.
func (r *Router) forgetRoute(key sgKey) {
	r.deleteRoute(key)
	delete(r.registerers, key)
	delete(r.sptPending, key)
	now := r.now()
	r.treeActions(r.tree.SetKeepalive(now, key, false))
	r.treeActions(r.tree.SetCouldRegister(now, key, netip.Addr{}, false))
	r.treeActions(r.tree.SetSPTBit(now, key, false))
}

// sourceView is how a route's source and group look from this router.
type sourceView struct {
	rpf       pim.RPF // towards the source
	connected bool    // the source is on one of our subnets
	rp        netip.Addr
	asm       bool // the group has an RP
	rpIsSelf  bool
}

func (r *Router) viewOf(key sgKey) sourceView {
	v := sourceView{rpf: r.rpf(key.Source)}
	v.connected = v.rpf.Connected()
	v.rp, v.asm = r.rpOf(key.Group)
	v.rpIsSelf = v.asm && r.isOwn(v.rp)
	return v
}

// updateSourceState derives what the source's traffic means for PIM. Traffic that
// is seen (a learned route) runs the keepalive where this router is on the
// source's side of things: its first hop, the RP, a router already on the
// source's tree, or a last hop switching to it. A first-hop DR registers the
// source to its RP.
func (r *Router) updateSourceState(key sgKey, rt *route, v sourceView, now time.Time) {
	connected, asm, rpIsSelf := v.connected, v.asm, v.rpIsSelf
	// A last hop with any-source members switches to the source's tree, unless the
	// source is next door anyway.
	lastHop := asm && !connected && r.cfg.PIM.SPTSwitchover == "immediate" && r.tree.HasLocal(sgKey{Group: key.Group})
	// A source on our own subnet needs the keepalive only to register it.
	keepalive := rt.learned && ((connected && asm && !rpIsSelf) || (!connected && rpIsSelf) || lastHop || r.tree.SPTBit(key))
	r.treeActions(r.tree.SetKeepalive(now, key, keepalive))

	src := r.ifaces[v.rpf.Interface]
	couldRegister := keepalive && connected && asm && !rpIsSelf && src != nil && src.pim != nil && src.pim.IsDR()
	r.treeActions(r.tree.SetCouldRegister(now, key, v.rp, couldRegister))

	// Joined towards the source through the very neighbour the shared tree comes
	// from: the two trees arrive by the same way, so the traffic is on the source's
	// tree already (RFC 7761 4.2.2, Update_SPTbit).
	if up, ok := r.tree.Upstream(key); ok && keepalive && !r.tree.SPTBit(key) {
		if wc, ok := r.tree.Upstream(sgKey{Group: key.Group}); ok && wc == up {
			r.treeActions(r.tree.SetSPTBit(now, key, true))
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

// routeIIF is where (S,G) traffic is accepted from (RFC 7761 4.2): the source's
// subnet on its first hop; the reverse path to the source in the SSM range, once
// the source's tree delivers (SPT bit), or where no shared tree exists here; and
// otherwise the shared tree's (shared true): the reverse path to the RP, or the
// register tunnel on the RP itself. "" when there is no such path.
func (r *Router) routeIIF(key sgKey, rt *route, v sourceView) (iif string, shared bool) {
	switch {
	case v.connected, !v.asm, r.tree.SPTBit(key):
		return v.rpf.Interface, false
	case rt.joinState && !r.tree.Has(sgKey{Group: key.Group}) && !v.rpIsSelf:
		return v.rpf.Interface, false
	case v.rpIsSelf:
		if r.regVIF < 0 {
			return "", true
		}
		return r.registerName(), true
	}
	return r.rpf(v.rp).Interface, true
}

// sharedOIFs is where the shared tree takes (S,G): its joined interfaces and local
// any-source members, less those where the source is pruned off it or that
// exclude it.
func (r *Router) sharedOIFs(key sgKey, iif string) []string {
	wc := sgKey{Group: key.Group}
	var out []string
	for _, name := range r.tree.Forwards(wc) {
		if name != iif && !r.tree.RPTPruned(key, name) {
			out = append(out, name)
		}
	}
	for _, ifc := range r.ifaces { // routeOIFs sorts
		if ifc.name != iif && slices.Contains(ifc.local[key.Group], wc) && ifc.querier != nil && ifc.querier.Forward(key.Source, key.Group) {
			out = append(out, ifc.name)
		}
	}
	return out
}

// routeOIFs is where (S,G) goes: everywhere routeOIFsBeforeAssert says, except
// links where another router won the assert.
func (r *Router) routeOIFs(key sgKey, iif string) []string {
	return slices.DeleteFunc(r.routeOIFsBeforeAssert(key, iif), func(name string) bool {
		return r.tree.AssertLost(key, name)
	})
}

// routeOIFsBeforeAssert merges what (S,G) is forwarded to: the shared tree's
// interfaces, the source tree's, local members, and the register tunnel while
// registering; never the incoming interface.
func (r *Router) routeOIFsBeforeAssert(key sgKey, iif string) []string {
	out := r.sharedOIFs(key, iif)
	out = append(out, r.tree.Forwards(key)...)
	out = append(out, r.memberOIFs(key, iif)...)
	if _, ok := r.tree.Registering(key); ok && r.regVIF >= 0 {
		out = append(out, r.registerName())
	}
	slices.Sort(out)
	out = slices.Compact(out)
	return slices.DeleteFunc(out, func(name string) bool { return name == iif })
}
