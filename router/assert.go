package router

import (
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/pim"
)

// This file is the router's side of PIM asserts (RFC 7761 4.6): when two routers
// forward the same (S,G) onto one LAN, each sees the other's copies arrive on an
// outgoing interface, and the one with the worse route to the source stops.

// assertMetric is our claim on an interface for (S,G): the preference and metric of
// our route to the source, and our address there. A source on a connected subnet
// is as good as it gets. The kernel's routes carry no administrative distance, so
// routes installed by hand or at boot count as static (1) and the rest as learned
// from a routing protocol (110, as OSPF).
func (r *Router) assertMetric(key sgKey, ifc *iface, shared bool) pim.AssertMetric {
	m := pim.AssertMetric{Address: ifc.pimSelf}
	addr := key.Source
	if shared {
		m.RPT = true
		rp, _ := r.rpOf(key.Group)
		addr = rp
	}
	if r.rpf(addr).Connected() {
		return m
	}
	rt, ok := r.fibRoute(addr)
	if !ok {
		m.Preference, m.Metric = 0x7fffffff, 0xffffffff // no route: anyone beats us
		return m
	}
	switch rt.protocol {
	case unix.RTPROT_BOOT, unix.RTPROT_STATIC, unix.RTPROT_KERNEL:
		m.Preference = 1
	default:
		m.Preference = 110
	}
	m.Metric = rt.priority
	return m
}

// handleAssertTrigger acts on (S,G) data that arrived by one of the route's
// outgoing interfaces: another router forwards it onto that link too.
func (r *Router) handleAssertTrigger(key sgKey, in *iface, now time.Time) {
	if in.pim == nil {
		r.counters.inc("wrongvif_ignored")
		return
	}
	rt := r.routes[key]
	r.counters.inc("assert_triggers")
	r.treeActions(r.tree.AssertData(now, key, in.name, r.assertMetric(key, in, rt != nil && rt.shared)))
}

// handleAssert acts on an Assert heard on a PIM interface.
func (r *Router) handleAssert(ifc *iface, from netip.Addr, m *pim.Assert, now time.Time) {
	r.counters.inc("asserts_received")
	if !m.Group.IsMulticast() || m.Source.IsUnspecified() {
		// (*,G) asserts come from shared-tree forwarding on a LAN with two upstream
		// routers for the RP; not handled yet, and counted.
		r.counters.inc("asserts_ignored")
		return
	}
	key := sgKey{Source: m.Source, Group: m.Group}
	theirs := pim.AssertMetric{RPT: m.RPT, Preference: m.MetricPreference, Metric: m.Metric, Address: from}
	rt := r.routes[key]
	shared := rt != nil && rt.shared
	forwarding := rt != nil && rt.iif != ifc.name && r.forwardsTo(key, rt.iif, ifc.name)
	r.treeActions(r.tree.ReceiveAssert(now, key, ifc.name, theirs, r.assertMetric(key, ifc, shared), forwarding))
}

// forwardsTo reports whether (S,G) would go out of an interface, assert aside.
func (r *Router) forwardsTo(key sgKey, iif, name string) bool {
	for _, o := range r.routeOIFsBeforeAssert(key, iif) {
		if o == name {
			return true
		}
	}
	return false
}
