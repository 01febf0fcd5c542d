package mrib

import (
	"net/netip"
	"slices"
	"time"

	"github.com/mrouterd/mrouterd/pim"
)

// This file is the RIB's side of PIM asserts (RFC 7761 4.6): when two routers
// forward the same (S,G) onto one LAN, each sees the other's copies arrive on an
// outgoing interface, and the one with the worse route to the source stops.

// assertTrigger acts on (S,G) data that arrived by one of the route's outgoing
// interfaces: another router forwards it onto that link too.
func (r *RIB) assertTrigger(now time.Time, key Key, in string) {
	if on, _ := r.env.DR(in); !on {
		r.env.Count("wrongvif_ignored")
		return
	}
	rt := r.routes[key]
	r.env.Count("assert_triggers")
	r.treeActions(r.tree.AssertData(now, key, in, r.env.AssertMetric(key, in, rt != nil && rt.Shared)))
}

// Assert acts on an Assert heard on a PIM interface.
func (r *RIB) Assert(now time.Time, iface string, from netip.Addr, m *pim.Assert) []Send {
	r.env.Count("asserts_received")
	if !m.Group.IsMulticast() || m.Source.IsUnspecified() {
		// (*,G) asserts come from shared-tree forwarding on a LAN with two upstream
		// routers for the RP; not handled yet, and counted.
		r.env.Count("asserts_ignored")
		return nil
	}
	key := Key{Source: m.Source, Group: m.Group}
	theirs := pim.AssertMetric{RPT: m.RPT, Preference: m.MetricPreference, Metric: m.Metric, Address: from}
	rt := r.routes[key]
	shared := rt != nil && rt.Shared
	forwarding := rt != nil && rt.IIF != iface && slices.Contains(r.inheritedOList(key, rt.IIF, false), iface)
	r.treeActions(r.tree.ReceiveAssert(now, key, iface, theirs, r.env.AssertMetric(key, iface, shared), forwarding))
	return r.take()
}
