package router

import (
	"time"

	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/router/mrib"
)

// ribConfig is the RIB's part of the config, and the register VIF's device.
func (r *Router) ribConfig() mrib.Config {
	c := mrib.Config{
		SPTSwitchover:  r.cfg.PIM.SPTSwitchover == "immediate",
		RegisterAccept: r.cfg.PIM.RegisterAccept,
		IdleTimeout:    r.cfg.Router.IdleTimeout,
		MaxLearned:     r.cfg.Router.MaxLearned,
		MaxRegistered:  r.cfg.PIM.MaxRegisteredSources,
	}
	if r.regVIF >= 0 {
		c.RegisterVIF = r.registerName()
	}
	if r.cfg.Fabric.Enabled() {
		c.Fabric = r.cfg.Fabric.Interface
	}
	return c
}

// handleUpcall acts on a message from the kernel's forwarding path.
func (r *Router) handleUpcall(u mroute.Upcall) {
	r.counters.inc("upcall_" + u.Type.String())
	key := sgKey{Source: u.Source, Group: u.Group}
	switch u.Type {
	case mroute.WholePkt:
		r.sendRegister(u)
		return
	case mroute.WrongVIF:
		var in string
		if ifc := r.byVIF(u.VIF); ifc != nil {
			in = ifc.name
		}
		r.sendAll(r.rib.WrongVIF(r.now(), key, in))
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
	r.sourceArrived(in, key)
}

// sourceArrived follows a packet of a source, for which the kernel has no entry,
// that arrived on in.
func (r *Router) sourceArrived(in *iface, key sgKey) {
	arrival := mrib.Arrival{Interface: in.name, Register: in.register, Connected: r.onLink(in, key.Source) || r.isOwn(key.Source)}
	reconcile, sends := r.rib.NoCache(r.now(), key, arrival)
	if reconcile {
		r.reconcileWanted = true
	}
	r.sendAll(sends)
	_, routed := r.rib.Route(key)
	_, known := r.waiting[key]
	switch {
	case routed:
		delete(r.waiting, key)
	case !in.register && !r.rib.Tree().HasGroup(key.Group) && (known || len(r.waiting) < maxWaiting):
		r.waiting[key] = waitingSource{ifindex: in.index, since: r.now()}
	}
}

// A source nobody wanted when the kernel asked about it waits: the kernel asks
// once, then holds the source's packets as unresolved, and drops them, for about
// 10 s (ipmr's unresolved entry expiry) without asking again. When its group gets
// state in that time, as when a router restarts while its neighbours keep sending,
// it is routed at once instead of when the kernel next asks.
type waitingSource struct {
	ifindex int
	since   time.Time
}

const (
	unresolvedHold = 10 * time.Second
	maxWaiting     = 1024 // sources; more wait for the kernel to ask again
)

// routeWaiting routes the waiting sources whose groups have state now.
func (r *Router) routeWaiting(now time.Time) {
	for key, w := range r.waiting {
		switch in := r.byIndex(w.ifindex); {
		case now.Sub(w.since) >= unresolvedHold || in == nil || !in.hasVIF():
			delete(r.waiting, key)
		case r.rib.Tree().HasGroup(key.Group):
			delete(r.waiting, key)
			r.counters.inc("waiting_sources_routed")
			r.sourceArrived(in, key)
		}
	}
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
	if r.rib.HasLearned() && r.refreshKernel() {
		r.expireLearned(now)
	}
}

// expireLearned applies the idle timeout to learned entries, given fresh kernel counters.
func (r *Router) expireLearned(now time.Time) {
	r.sendAll(r.rib.ExpireLearned(now, func(key sgKey) (uint64, bool) {
		k, ok := r.kernelByKey[key]
		return k.Packets, ok
	}))
}
