package mrib

import (
	"net/netip"
	"slices"
	"time"

	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/pim"
)

// This file merges IGMP membership, the PIM Tree and the reverse paths into each
// group's routes: where (S,G) is accepted from and where it goes.

// Refresh recomputes the groups whose state changed since the last time. A
// recomputation may change the Tree again, so it runs until nothing is left, with
// a bound that a bug could never turn into a hung loop.
func (r *RIB) Refresh(now time.Time) []Send {
	for range 16 {
		if len(r.dirtyGroups) == 0 && len(r.dirtyKeys) == 0 {
			return r.take()
		}
		groups, keys := r.dirtyGroups, r.dirtyKeys
		r.dirtyGroups, r.dirtyKeys = make(map[netip.Addr]bool), make(map[Key]bool)
		for g := range groups {
			r.refreshGroup(now, g)
		}
		for key := range keys {
			if !groups[key.Group] {
				r.refreshKey(now, key)
			}
		}
	}
	r.env.Count("refresh_unsettled")
	clear(r.dirtyGroups)
	clear(r.dirtyKeys)
	return r.take()
}

// refreshKey is refreshGroup for one (S,G) route: what a change to that entry
// alone, in the Tree or in local membership, calls for.
func (r *RIB) refreshKey(now time.Time, key Key) {
	rt := r.routes[key]
	if rt == nil && r.joinState(key) {
		rt = &Route{Key: key, Origin: OriginPIM, Created: now}
		r.addRoute(rt)
	}
	if rt != nil && rt.Origin != OriginStatic {
		r.refreshRoute(now, key, rt)
	}
}

// refreshGroup recomputes the routes of a group from the Tree, IGMP and the
// reverse paths: (S,G) join state makes a route of its own, a route neither PIM
// state nor traffic holds goes, and every dynamic route gets its source-side state
// (keepalive, registering, SPT bit) and its interfaces anew.
func (r *RIB) refreshGroup(now time.Time, group netip.Addr) {
	for _, key := range r.tree.Sources(group) {
		if r.routes[key] == nil && r.joinState(key) {
			r.addRoute(&Route{Key: key, Origin: OriginPIM, Created: now})
		}
	}
	for key, rt := range r.byGroup[group] {
		if rt.Origin != OriginStatic && !key.Wildcard() {
			r.refreshRoute(now, key, rt)
		}
	}
}

// refreshRoute recomputes one dynamic (S,G) route: whether it stays, its
// source-side state and its interfaces.
func (r *RIB) refreshRoute(now time.Time, key Key, rt *Route) {
	rt.JoinState = r.joinState(key)
	if !rt.JoinState && !rt.Learned && !r.keepaliveSetByData(now, rt) {
		r.forgetRoute(now, key)
		return
	}
	v := r.viewOf(key)
	r.updateSourceState(now, key, rt, v)
	iif, shared := r.routeIIF(key, rt, v)
	oifs := r.oifs(key, iif)
	if r.fabricForwards(key, iif, v) {
		oifs = append(oifs, r.cfg.Fabric)
		slices.Sort(oifs)
		oifs = slices.Compact(oifs)
	}
	origin := OriginIGMP
	if shared || r.tree.Keepalive(key) || r.pimForwards(key) {
		origin = OriginPIM
	}
	rt.Origin, rt.Shared = origin, shared
	if iif != rt.IIF || !slices.Equal(oifs, rt.OIFs) {
		r.setInterfaces(rt, iif, oifs)
		r.changed[key] = true
	}
}

// keepaliveSetByData applies "on receipt of data from S to G ... set
// KeepaliveTimer(S,G)" (RFC 7761 4.2) to a route that join state alone made: the
// kernel forwarded its packets without asking, so the RIB learns of them from the
// entry's counter when the join state goes. A route that forwarded any stays,
// learned, with nowhere to go until it is idle. Its entry drops what is still on
// the way while upstream prunes; without it the kernel would queue those packets
// as unresolved and release them, late and duplicated, to a join within its
// unresolved timeout.
func (r *RIB) keepaliveSetByData(now time.Time, rt *Route) bool {
	packets, ok := r.env.Forwarded(rt.Key)
	if !ok || packets == 0 || r.learnedFull() {
		return false
	}
	r.learn(rt, now)
	rt.LastPackets = packets
	return true
}

// forgetRoute removes a dynamic route and the source-side state its traffic held.
func (r *RIB) forgetRoute(now time.Time, key Key) {
	r.deleteRoute(key)
	delete(r.registerers, key)
	delete(r.sptPending, key)
	r.treeActions(r.tree.SetKeepalive(now, key, false))
	r.treeActions(r.tree.SetCouldRegister(now, key, netip.Addr{}, false))
	r.treeActions(r.tree.SetSPTBit(now, key, false))
}

// joinState reports whether the Tree holds (S,G) join state: downstream joins or
// local INCLUDE receivers, which make the router forward (S,G) along the source's
// tree whether or not a packet has been seen.
func (r *RIB) joinState(key Key) bool {
	return len(r.tree.Forwards(key)) > 0 || r.tree.HasLocal(key)
}

// sourceView is how a route's source and group look from this router.
type sourceView struct {
	rpf       pim.RPF // towards the source
	connected bool    // the source is on one of our subnets
	rp        netip.Addr
	asm       bool // the group has an RP
	rpIsSelf  bool
}

func (r *RIB) viewOf(key Key) sourceView {
	v := sourceView{rpf: r.env.RPF(key.Source)}
	v.connected = v.rpf.Connected()
	v.rp, v.asm = r.env.RP(key.Group)
	v.rpIsSelf = v.asm && r.env.IsOwn(v.rp)
	return v
}

// updateSourceState derives what the source's traffic means for PIM: whether the
// keepalive runs, whether a first-hop DR registers the source, and whether the
// traffic is on the source's tree.
func (r *RIB) updateSourceState(now time.Time, key Key, rt *Route, v sourceView) {
	keepalive := r.keepaliveRunning(key, rt, v)
	r.treeActions(r.tree.SetKeepalive(now, key, keepalive))
	r.treeActions(r.tree.SetCouldRegister(now, key, v.rp, r.couldRegister(keepalive, v)))
	r.updateSPTbit(now, key, false, keepalive)
}

// keepaliveRunning is whether KeepaliveTimer(S,G) runs (RFC 7761 4.1.3, 4.2):
// traffic is seen (a learned route) where this router is on the source's side of
// things: its first hop, the RP, a router already on the source's tree, or a last
// hop switching to it (SwitchToSptDesired, 4.2.1).
func (r *RIB) keepaliveRunning(key Key, rt *Route, v sourceView) bool {
	// A last hop with any-source members switches to the source's tree, unless the
	// source is next door anyway.
	lastHop := v.asm && !v.connected && r.cfg.SPTSwitchover && r.tree.HasLocal(Key{Group: key.Group})
	// A source on our own subnet needs the keepalive only to register it.
	return rt.Learned && ((v.connected && v.asm && !v.rpIsSelf) || (!v.connected && v.rpIsSelf) || lastHop || r.tree.SPTBit(key))
}

// couldRegister is CouldRegister(S,G) (RFC 7761 4.4.1): the DR of a source's own
// subnet registers the source's traffic to the RP while the keepalive runs, unless
// it is the RP itself.
func (r *RIB) couldRegister(keepalive bool, v sourceView) bool {
	return keepalive && v.connected && v.asm && !v.rpIsSelf && r.countsMembers(v.rpf.Interface) && !r.rpOnFabric(v)
}

// The node fabric is one LAN on which every node sees every other's joins. The
// DR of a source's own subnet therefore puts the source's traffic on the fabric
// as soon as any peer there joined the group, (*,G) or (S,G), whoever the RP:
// the peers accept it from the fabric, where their joins went. No register
// tunnel, no switch from the RP's tree to the source's, so no packet arrives
// twice, and the stream does not stop while an RP fails over.

// fabricForwards reports whether (S,G) goes onto the fabric from its first hop.
func (r *RIB) fabricForwards(key Key, iif string, v sourceView) bool {
	return r.cfg.Fabric != "" && iif != r.cfg.Fabric && v.connected && r.countsMembers(v.rpf.Interface) && r.env.FabricWants(key)
}

// rpOnFabric reports whether a group's RP is reached over the fabric, where a
// first hop forwards instead of registering.
func (r *RIB) rpOnFabric(v sourceView) bool {
	return r.cfg.Fabric != "" && r.env.RPF(v.rp).Interface == r.cfg.Fabric
}

// updateSPTbit is Update_SPTbit(S,G,iif) (RFC 7761 4.2.2): the SPT bit says (S,G)
// traffic comes along the source's own tree. It does once a packet arrived by the
// reverse path to the source (fromRPF: a WRONGVIF upcall there, or the RP's wait
// for the register tunnel to catch up), or once our join towards the source goes
// through the very neighbour the shared tree comes from: the two trees arrive by
// the same way (RPF'(S,G) == RPF'(*,G)). An RP then tells the registering DR to
// stop.
func (r *RIB) updateSPTbit(now time.Time, key Key, fromRPF, keepalive bool) {
	if !fromRPF {
		up, ok := r.tree.Upstream(key)
		if !ok || !keepalive || r.tree.SPTBit(key) {
			return
		}
		if wc, ok := r.tree.Upstream(Key{Group: key.Group}); ok && wc == up {
			r.treeActions(r.tree.SetSPTBit(now, key, true))
		}
		return
	}
	delete(r.sptPending, key)
	r.env.Count("spt_switches")
	r.log.Info("traffic on the source's tree", "route", key.String(), "iif", r.env.RPF(key.Source).Interface)
	r.treeActions(r.tree.SetSPTBit(now, key, true))
	if dr, ok := r.registerers[key]; ok {
		r.sendRegisterStop(dr, key)
		r.env.Count("register_stop_spt")
	}
}

// iAmDR is I_am_DR(I) (RFC 7761 4.3.2): PIM runs on the interface and elected us.
func (r *RIB) iAmDR(iface string) bool {
	on, dr := r.env.DR(iface)
	return on && dr
}

// countsMembers reports whether we act for an interface's hosts, members and
// sources: where we are the DR, or where PIM does not run and there is no DR to
// defer to (RFC 7761 4.1.5, pim_include), such as a pod's interface, which has no
// address to speak PIM from.
func (r *RIB) countsMembers(iface string) bool {
	on, _ := r.env.DR(iface)
	return !on || r.iAmDR(iface)
}

// ssmAnySource reports whether a group's membership is an any-source join in the
// SSM range, which asks for nothing: there is no shared tree there (RFC 4604
// 2.2.1). known is whether IGMP knows the group at all.
func (r *RIB) ssmAnySource(group netip.Addr, mode igmp.FilterMode, known bool) bool {
	return r.env.SSM(group) && (!known || mode != igmp.Include)
}

// pimInclude reports whether members on an interface want (S,G): pim_include(S,G)
// or pim_include(*,G) less pim_exclude(S,G) (RFC 7761 4.1.5).
func (r *RIB) pimInclude(iface string, key Key) bool {
	q := r.env.Member(iface)
	if q == nil || !q.Forward(key.Source, key.Group) || !r.countsMembers(iface) {
		return false
	}
	mode, ok := q.Mode(key.Group)
	return !r.ssmAnySource(key.Group, mode, ok) // counted where the membership changed (memberKeys)
}

// pimForwards reports whether PIM, not only local membership, has a say in where
// (S,G) goes: joins from downstream routers, or our own join upstream.
func (r *RIB) pimForwards(key Key) bool {
	wc := Key{Group: key.Group}
	_, sgJoined := r.tree.Upstream(key)
	_, wcJoined := r.tree.Upstream(wc)
	return sgJoined || wcJoined || len(r.tree.Forwards(key)) > 0 || len(r.tree.Forwards(wc)) > 0
}

// routeIIF is where (S,G) traffic is accepted from (RFC 7761 4.2): the source's
// subnet on its first hop; the reverse path to the source in the SSM range, once
// the source's tree delivers (SPT bit), or where no shared tree exists here; and
// otherwise the shared tree's (shared true): the reverse path to the RP, or the
// register tunnel on the RP itself. "" when there is no such path.
func (r *RIB) routeIIF(key Key, rt *Route, v sourceView) (iif string, shared bool) {
	switch {
	case v.connected, !v.asm, r.tree.SPTBit(key):
		return v.rpf.Interface, false
	case rt.JoinState && !r.tree.Has(Key{Group: key.Group}) && !v.rpIsSelf:
		return v.rpf.Interface, false
	case v.rpIsSelf && (r.cfg.RegisterVIF == "" || r.cfg.Fabric != "" && v.rpf.Interface == r.cfg.Fabric):
		// An RP without a register tunnel, or whose source is behind another node
		// of the fabric, whose first hop forwards it natively: the source's tree.
		return v.rpf.Interface, false
	case v.rpIsSelf:
		return r.cfg.RegisterVIF, true
	}
	return r.env.RPF(v.rp).Interface, true
}

// inheritedOListRPT is inherited_olist(S,G,rpt) (RFC 7761 4.1.5): where the shared
// tree takes (S,G), its joined interfaces and local any-source members, less
// those where the source is pruned off it or that exclude it.
func (r *RIB) inheritedOListRPT(key Key, iif string) []string {
	wc := Key{Group: key.Group}
	var out []string
	for _, name := range r.tree.Forwards(wc) {
		if name != iif && !r.tree.RPTPruned(key, name) {
			out = append(out, name)
		}
	}
	for name, groups := range r.local { // inheritedOList sorts
		if q := r.env.Member(name); name != iif && anySource(groups[key.Group]) && q != nil && q.Forward(key.Source, key.Group) {
			out = append(out, name)
		}
	}
	return out
}

// inheritedOList is inherited_olist(S,G) (RFC 7761 4.1.5): the shared tree's
// interfaces, the source tree's joins and local members, never the incoming
// interface, and, with assert, not where another router won the assert.
func (r *RIB) inheritedOList(key Key, iif string, withAssert bool) []string {
	out := r.inheritedOListRPT(key, iif)
	out = append(out, r.tree.Forwards(key)...)
	for _, name := range r.env.MemberInterfaces() {
		if name != iif && r.pimInclude(name, key) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	return slices.DeleteFunc(out, func(name string) bool {
		return name == iif || withAssert && r.tree.AssertLost(key, name)
	})
}

// oifs is where (S,G) goes: inherited_olist(S,G), and the register tunnel while
// registering.
func (r *RIB) oifs(key Key, iif string) []string {
	out := r.inheritedOList(key, iif, true)
	if _, ok := r.tree.Registering(key); ok && r.cfg.RegisterVIF != "" && r.cfg.RegisterVIF != iif {
		out = append(out, r.cfg.RegisterVIF)
		slices.Sort(out)
	}
	return out
}
