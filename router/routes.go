package router

import (
	"slices"
	"time"

	"github.com/mrouterd/mrouterd/conf"
	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/mroute"
)

// origin is what made a route: the config, IGMP membership alone, or PIM.
type origin uint8

const (
	originStatic origin = iota
	originIGMP
	originPIM
)

// String is the origin as the protocol column and the control API show it.
func (o origin) String() string {
	switch o {
	case originStatic:
		return "static"
	case originIGMP:
		return "igmp"
	}
	return "pim"
}

// route is one entry of the routing table. A static route with a source is installed
// as it is; one without a source is a (*,G) template whose (S,G) instances are learned
// from NOCACHE upcalls. Every other route is dynamic: its interfaces follow IGMP, the
// PIM Tree and the reverse paths (refreshGroup). It exists while PIM holds (S,G) join
// state (joinState) or, learned from traffic, until it goes idle.
type route struct {
	key       sgKey
	iif       string
	oifs      []string
	origin    origin
	template  bool   // a (*,G) template: never installed itself
	from      *sgKey // for an instance of a template: the template
	learned   bool   // created by traffic; removed when idle
	joinState bool   // PIM (S,G) join state, downstream or local: forwarded along the source's tree
	shared    bool   // accepted from the RP's direction: on the shared tree
	created   time.Time

	// Idle tracking for learned entries, from the kernel's packet counter.
	lastPackets uint64
	lastActive  time.Time
}

// installable reports whether the route is meant for the kernel's MFC.
func (rt *route) installable() bool { return !rt.template }

func (r *Router) addRoute(rt *route) {
	r.routes[rt.key] = rt
	set := r.byGroup[rt.key.Group]
	if set == nil {
		set = make(map[sgKey]*route)
		r.byGroup[rt.key.Group] = set
	}
	set[rt.key] = rt
	r.dirtyKeys[rt.key] = true
}

func (r *Router) deleteRoute(key sgKey) {
	delete(r.routes, key)
	if set := r.byGroup[key.Group]; set != nil {
		delete(set, key)
		if len(set) == 0 {
			delete(r.byGroup, key.Group)
		}
	}
	r.dirtyKeys[key] = true
}

// setStaticRoutes makes the configured routes the static ones. Routes whose definition
// did not change keep their identity (and so their uptime); learned instances of a
// template that changed or went away go with it.
func (r *Router) setStaticRoutes(static []conf.Static) {
	now := r.now()
	want := make(map[sgKey]conf.Static, len(static))
	for _, s := range static {
		want[sgKey{Source: s.Source, Group: s.Group}] = s
	}
	for key, rt := range r.routes {
		if rt.origin != originStatic {
			continue
		}
		def := key
		if rt.from != nil {
			def = *rt.from
		}
		s, ok := want[def]
		if !ok || s.IIF != rt.iif || !slices.Equal(s.OIFs, rt.oifs) {
			r.deleteRoute(key)
		}
	}
	for key, s := range want {
		if rt, ok := r.routes[key]; ok && rt.origin == originStatic {
			continue
		}
		// A static route takes the place of one learned from membership.
		r.addRoute(&route{
			key: key, iif: s.IIF, oifs: slices.Clone(s.OIFs), origin: originStatic,
			template: !s.Source.IsValid(), created: now,
		})
	}
}

// handleUpcall acts on a message from the kernel's forwarding path.
func (r *Router) handleUpcall(u mroute.Upcall) {
	r.counters.inc("upcall_" + u.Type.String())
	switch u.Type {
	case mroute.WholePkt:
		r.sendRegister(u)
		return
	case mroute.WrongVIF:
		r.handleWrongVIF(u, r.now())
		return
	case mroute.NoCache:
	default:
		return
	}
	in := r.byVIF(u.VIF)
	if in == nil {
		r.counters.inc("upcall_unknown_vif")
		return
	}
	key := sgKey{Source: u.Source, Group: u.Group}
	if _, ok := r.routes[key]; ok {
		// Known already: the kernel lost or never had it, so the next reconcile installs it.
		r.reconcileWanted = true
		return
	}
	now := r.now()
	if tmpl := r.routes[sgKey{Group: u.Group}]; tmpl != nil && tmpl.template && tmpl.iif == in.name {
		r.addRoute(&route{
			key: key, iif: tmpl.iif, oifs: tmpl.oifs, origin: tmpl.origin,
			from: &tmpl.key, learned: true, created: now, lastActive: now,
		})
		r.counters.inc("routes_learned")
		r.log.Info("route learned", "route", key.String(), "iif", in.name, "template", tmpl.key.String())
		return
	}
	if in.register && !r.registerAcceptedFor(key) {
		// Decapsulated before the Register could be checked: wait for it.
		r.counters.inc("register_upcall_unchecked")
		return
	}
	if in.connected(u.Source) || in.register || r.tree.HasGroup(u.Group) {
		// A local source, or a group with PIM state: forward to wherever members and
		// joins want it. The entry is installed even with nowhere to go yet, so the
		// kernel stops asking until that changes.
		r.addRoute(&route{key: key, origin: originIGMP, learned: true, created: now, lastActive: now})
		r.refreshGroup(u.Group)
		r.counters.inc("routes_learned")
		r.log.Debug("route learned", "route", key.String(), "iif", r.routes[key].iif)
		return
	}
	r.counters.inc("upcall_unrouted")
}

// memberOIFs lists the interfaces, other than the incoming one, whose IGMP state asks
// for traffic from the source to the group. In the SSM range only source-specific
// (INCLUDE) membership counts: an any-source join there is ignored (RFC 4604 2.2.1).
// On a LAN with other PIM routers only the DR forwards to members.
func (r *Router) memberOIFs(key sgKey, iif string) []string {
	ssm := r.rps.SSM(key.Group)
	var out []string
	for _, ifc := range r.ifaces { // routeOIFs sorts

		q := ifc.querier
		if ifc.name == iif || q == nil || !q.Forward(key.Source, key.Group) {
			continue
		}
		if ifc.pim != nil && !ifc.pim.IsDR() {
			continue
		}
		if g, ok := q.Group(key.Group); ssm && (!ok || g.Mode != igmp.Include) {
			continue // counted where the membership changed (localKeys)
		}
		out = append(out, ifc.name)
	}
	return out
}

func (r *Router) byVIF(vif uint16) *iface {
	for _, ifc := range r.ifaces {
		if ifc.vif == int(vif) {
			return ifc
		}
	}
	return nil
}

// expireIdle removes learned entries whose kernel packet counter has not moved for the
// idle timeout.
func (r *Router) expireIdle(now time.Time) {
	if r.hasLearned() && r.refreshKernel() {
		r.expireLearned(now)
	}
}

// expireLearned applies the idle timeout to learned entries, given fresh kernel counters.
func (r *Router) expireLearned(now time.Time) {
	timeout := r.cfg.Router.IdleTimeout
	for key, rt := range r.routes {
		if !rt.learned {
			continue
		}
		if k, ok := r.kernelByKey[key]; ok && k.Packets != rt.lastPackets {
			rt.lastPackets = k.Packets
			rt.lastActive = now
			continue
		}
		if now.Sub(rt.lastActive) < timeout {
			continue
		}
		r.counters.inc("routes_expired")
		r.log.Info("route expired", "route", key.String(), "idle", timeout)
		if rt.joinState {
			rt.learned = false // PIM join state keeps it
			r.dirtyGroups[key.Group] = true
			continue
		}
		if rt.origin == originStatic {
			r.deleteRoute(key)
		} else {
			r.forgetRoute(key)
		}
	}
}

func (r *Router) hasLearned() bool {
	for _, rt := range r.routes {
		if rt.learned {
			return true
		}
	}
	return false
}

// expiresIn is how long a learned entry has left if no packet arrives; 0 for routes
// that do not expire.
func (r *Router) expiresIn(rt *route, now time.Time) time.Duration {
	if !rt.learned {
		return 0
	}
	return max(rt.lastActive.Add(r.cfg.Router.IdleTimeout).Sub(now), 0)
}
