package router

import (
	"net/netip"

	"github.com/mrouterd/mrouterd/pim"
	"github.com/mrouterd/mrouterd/router/mrib"
)

// This file joins the RIB and its PIM Tree to the rest of the router: reverse
// paths (rpf.go), RPs from the config, membership and DR state from the
// interfaces, and the PIM messages the RIB asks to send.

// treeConfig is the Tree's view of the router's config and routing table.
func (r *Router) treeConfig() pim.TreeConfig {
	return pim.TreeConfig{
		JoinPruneInterval:   r.cfg.PIM.JoinPruneInterval,
		RP:                  r.rpOf,
		RPF:                 r.rpf,
		Random:              r.draw,
		DeferSends:          true,
		MaxJoins:            r.cfg.PIM.MaxJoins,
		MaxJoinsPerNeighbor: r.cfg.PIM.MaxJoinsPerNeighbor,
	}
}

// rpOf is the RP a group maps to.
func (r *Router) rpOf(group netip.Addr) (netip.Addr, bool) {
	m, ok := r.rps.Lookup(group)
	return m.RP, ok
}

// syncLink tells the Tree about a PIM interface: our address there, and how long a
// prune waits for an override, which depends on the neighbours.
func (r *Router) syncLink(ifc *iface) {
	// On the fabric every node must hear every other's joins, whatever the T bits
	// of other routers there say: they decide which nodes a group goes to.
	r.rib.Tree().SetLink(ifc.name, pim.Link{Self: ifc.pimSelf, Override: pim.LinkOverride(ifc.pim.Neighbors()),
		Tracking: r.isFabric(ifc)})
}

// treeActions carries out what the Tree asked for.
func (r *Router) treeActions(actions []pim.Action) { r.sendAll(r.rib.TreeActions(actions)) }

// sendAll sends what the RIB asked for.
func (r *Router) sendAll(sends []mrib.Send) {
	for _, s := range sends {
		if ifc := r.ifaces[s.On]; ifc != nil && ifc.pim != nil {
			r.pimActions(ifc, ifc.pim.OwedHello(r.now()))
		}
		r.sendPIM(s.On, s.To, s.Msg, s.What)
	}
}

// ribEnv is what the RIB asks of the router.
type ribEnv struct{ r *Router }

func (e ribEnv) RPF(addr netip.Addr) pim.RPF            { return e.r.rpf(addr) }
func (e ribEnv) RP(group netip.Addr) (netip.Addr, bool) { return e.r.rpOf(group) }
func (e ribEnv) SSM(group netip.Addr) bool              { return e.r.rps.SSM(group) }
func (e ribEnv) IsOwn(addr netip.Addr) bool             { return e.r.isOwn(addr) }
func (e ribEnv) Count(name string)                      { e.r.counters.inc(name) }
func (e ribEnv) FabricWants(key sgKey) bool             { return e.r.fabricWants(key) }

// Forwarded asks the kernel only about entries the router installed: the others
// it does not hold.
func (e ribEnv) Forwarded(key sgKey) (uint64, bool) {
	if _, ok := e.r.installed[key]; !ok {
		return 0, false
	}
	c, err := e.r.mrt.SGCount(key.Source, key.Group)
	return c.Packets, err == nil
}

// MemberInterfaces is asked for every route recomputed: the list is kept, and made
// again only after a querier started or stopped.
func (e ribEnv) MemberInterfaces() []string {
	r := e.r
	if r.memberIfaces == nil {
		for _, ifc := range r.ifaces {
			if ifc.querier != nil {
				r.memberIfaces = append(r.memberIfaces, ifc.name)
			}
		}
	}
	return r.memberIfaces
}

func (e ribEnv) Member(iface string) mrib.Membership {
	if ifc := e.r.ifaces[iface]; ifc != nil && ifc.querier != nil {
		return ifc.querier
	}
	return nil
}

func (e ribEnv) DR(iface string) (pimOn, isDR bool) {
	if ifc := e.r.ifaces[iface]; ifc != nil && ifc.pim != nil {
		return true, ifc.pim.IsDR()
	}
	return false, false
}

func (e ribEnv) AssertMetric(key sgKey, iface string, shared bool) pim.AssertMetric {
	return e.r.assertMetric(key, e.r.ifaces[iface], shared)
}
