package router

import (
	"slices"
	"time"

	"github.com/mrouterd/mrouterd/conf"
	"github.com/mrouterd/mrouterd/mroute"
)

// Route origins, as shown in the protocol column.
const protoStatic = "static"

// route is one entry of the routing table. A static route with a source is installed
// as it is; one without a source is a (*,G) template whose (S,G) instances are learned
// from NOCACHE upcalls and expire when idle.
type route struct {
	key      sgKey
	iif      string
	oifs     []string
	protocol string
	template bool  // a (*,G) template: never installed itself
	learned  *sgKey // the template a learned (S,G) came from
	created  time.Time

	// Idle tracking for learned entries, from the kernel's packet counter.
	lastPackets uint64
	lastActive  time.Time
}

// installable reports whether the route is meant for the kernel's MFC.
func (rt *route) installable() bool { return !rt.template }

// setStaticRoutes makes the configured routes the static ones. Routes whose definition
// did not change keep their identity (and so their uptime); learned instances of a
// template that changed or went away go with it.
func (r *Router) setStaticRoutes(static []conf.Static) {
	now := time.Now()
	want := make(map[sgKey]conf.Static, len(static))
	for _, s := range static {
		want[sgKey{Source: s.Source, Group: s.Group}] = s
	}
	for key, rt := range r.routes {
		if rt.learned != nil {
			tmpl, ok := want[*rt.learned]
			if !ok || tmpl.IIF != rt.iif || !slices.Equal(tmpl.OIFs, rt.oifs) {
				delete(r.routes, key)
			}
			continue
		}
		s, ok := want[key]
		if !ok || s.IIF != rt.iif || !slices.Equal(s.OIFs, rt.oifs) {
			delete(r.routes, key)
		}
	}
	for key, s := range want {
		if _, ok := r.routes[key]; ok {
			continue
		}
		r.routes[key] = &route{
			key: key, iif: s.IIF, oifs: slices.Clone(s.OIFs), protocol: protoStatic,
			template: !s.Source.IsValid(), created: now,
		}
	}
	r.reconcileWanted = true
}

// handleUpcall acts on a message from the kernel's forwarding path.
func (r *Router) handleUpcall(u mroute.Upcall) {
	r.counters.inc("upcall_" + u.Type.String())
	if u.Type != mroute.NoCache {
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
	tmpl := r.routes[sgKey{Group: u.Group}]
	if tmpl == nil || !tmpl.template || tmpl.iif != in.name {
		r.counters.inc("upcall_unrouted")
		return
	}
	now := time.Now()
	r.routes[key] = &route{
		key: key, iif: tmpl.iif, oifs: tmpl.oifs, protocol: tmpl.protocol,
		learned: &tmpl.key, created: now, lastActive: now,
	}
	r.counters.inc("routes_learned")
	r.log.Info("route learned", "route", key.String(), "iif", in.name, "template", tmpl.key.String())
	r.reconcileWanted = true
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
		if rt.learned == nil {
			continue
		}
		if k, ok := r.kernelByKey[key]; ok && k.Packets != rt.lastPackets {
			rt.lastPackets = k.Packets
			rt.lastActive = now
			continue
		}
		if now.Sub(rt.lastActive) >= timeout {
			delete(r.routes, key)
			r.counters.inc("routes_expired")
			r.log.Info("route expired", "route", key.String(), "idle", timeout)
			r.reconcileWanted = true
		}
	}
}

func (r *Router) hasLearned() bool {
	for _, rt := range r.routes {
		if rt.learned != nil {
			return true
		}
	}
	return false
}

// expiresIn is how long a learned entry has left if no packet arrives; 0 for routes
// that do not expire.
func (r *Router) expiresIn(rt *route, now time.Time) time.Duration {
	if rt.learned == nil {
		return 0
	}
	return max(rt.lastActive.Add(r.cfg.Router.IdleTimeout).Sub(now), 0)
}
