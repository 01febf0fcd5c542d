package mrib

import (
	"slices"
	"time"

	"github.com/mrouterd/mrouterd/conf"
)

// This file is the routes that traffic and the config make: static routes, the
// instances of (*,G) templates, and the routes NOCACHE upcalls teach, with their
// idle timeout.

// SetStatic makes the configured routes the static ones. Routes whose definition
// did not change keep their identity (and so their uptime); learned instances of a
// template that changed or went away go with it.
func (r *RIB) SetStatic(now time.Time, static []conf.Static) {
	want := make(map[Key]conf.Static, len(static))
	for _, s := range static {
		want[Key{Source: s.Source, Group: s.Group}] = s
	}
	for key, rt := range r.routes {
		if rt.Origin != OriginStatic {
			continue
		}
		def := key
		if rt.From != nil {
			def = *rt.From
		}
		s, ok := want[def]
		if !ok || s.IIF != rt.IIF || !slices.Equal(s.OIFs, rt.OIFs) {
			r.deleteRoute(key)
		}
	}
	for key, s := range want {
		if rt, ok := r.routes[key]; ok && rt.Origin == OriginStatic {
			continue
		}
		// A static route takes the place of one learned from membership.
		r.addRoute(&Route{
			Key: key, IIF: s.IIF, OIFs: slices.Clone(s.OIFs), Origin: OriginStatic,
			Template: !s.Source.IsValid(), Created: now,
		})
	}
}

// Arrival is the interface a packet without an MFC entry came in by.
type Arrival struct {
	Interface string
	Register  bool // the register tunnel: decapsulated by the kernel on an RP
	Connected bool // the source is on the interface's subnet
}

// NoCache acts on a packet the kernel has no entry for. It reports whether the
// kernel should be reconciled: the route exists and the kernel lost it.
func (r *RIB) NoCache(now time.Time, key Key, in Arrival) (reconcile bool, sends []Send) {
	if rt, ok := r.routes[key]; ok {
		// Known already: the kernel lost or never had it, so the next reconcile
		// installs it. A route only join state held now has traffic too.
		if !rt.Learned && rt.JoinState && !r.learnedFull() {
			r.learn(rt, now)
			r.dirtyGroups[key.Group] = true
		}
		return true, nil
	}
	if tmpl := r.routes[Key{Group: key.Group}]; tmpl != nil && tmpl.Template && tmpl.IIF == in.Interface {
		if r.learnedFull() {
			return false, nil
		}
		r.addRoute(&Route{
			Key: key, IIF: tmpl.IIF, OIFs: tmpl.OIFs, Origin: tmpl.Origin,
			From: &tmpl.Key, Learned: true, Created: now, LastActive: now,
		})
		r.env.Count("routes_learned")
		r.log.Info("route learned", "route", key.String(), "iif", in.Interface, "template", tmpl.Key.String())
		return false, nil
	}
	if in.Register && !r.registerAcceptedFor(key) {
		// Decapsulated before the Register could be checked: wait for it.
		r.env.Count("register_upcall_unchecked")
		return false, nil
	}
	if in.Connected || in.Register || r.tree.HasGroup(key.Group) {
		// A local source, or a group with PIM state: forward to wherever members and
		// joins want it. The entry is installed even with nowhere to go yet, so the
		// kernel stops asking until that changes.
		if r.learnedFull() {
			return false, nil
		}
		rt := &Route{Key: key, Origin: OriginIGMP, Learned: true, Created: now, LastActive: now}
		r.addRoute(rt)
		// The new route alone: the others of its group are as they were, and a
		// flood of new sources to one group must not recompute it each time.
		r.refreshRoute(now, key, rt)
		r.env.Count("routes_learned")
		r.log.Debug("route learned", "route", key.String(), "iif", r.routes[key].IIF)
		return false, r.take()
	}
	r.env.Count("upcall_unrouted")
	return false, nil
}

// learn marks a route join state made as learned from traffic seen now, and counts
// it among the learned.
func (r *RIB) learn(rt *Route, now time.Time) {
	rt.Learned, rt.LastActive = true, now
	r.learned++
}

// HasLearned reports whether any route was learned from traffic.
func (r *RIB) HasLearned() bool { return r.learned > 0 }

// learnedFull applies router.max-learned-routes to a flow about to be learned,
// counting a refusal. The flows already learned keep forwarding; the kernel asks
// again for a refused one, at the pace of its unresolved queue.
func (r *RIB) learnedFull() bool {
	if r.cfg.MaxLearned > 0 && r.learned >= r.cfg.MaxLearned {
		r.env.Count("routes_learned_refused")
		return true
	}
	return false
}

// ExpireLearned applies the idle timeout to learned routes, given the kernel's
// packet counter of each entry it holds.
func (r *RIB) ExpireLearned(now time.Time, packets func(Key) (uint64, bool)) []Send {
	timeout := r.cfg.IdleTimeout
	for key, rt := range r.routes {
		if !rt.Learned {
			continue
		}
		if n, ok := packets(key); ok && n != rt.LastPackets {
			rt.LastPackets = n
			rt.LastActive = now
			continue
		}
		if now.Sub(rt.LastActive) < timeout {
			continue
		}
		r.env.Count("routes_expired")
		r.log.Info("route expired", "route", key.String(), "idle", timeout)
		if rt.JoinState {
			r.uncountLearned(rt)
			rt.Learned = false // PIM join state keeps it
			r.dirtyGroups[key.Group] = true
			continue
		}
		if rt.Origin == OriginStatic {
			r.deleteRoute(key)
		} else {
			r.forgetRoute(now, key)
		}
	}
	return r.take()
}

// ExpiresIn is how long a learned route has left if no packet arrives; 0 for
// routes that do not expire.
func (r *RIB) ExpiresIn(rt *Route, now time.Time) time.Duration {
	if !rt.Learned {
		return 0
	}
	return max(rt.LastActive.Add(r.cfg.IdleTimeout).Sub(now), 0)
}
