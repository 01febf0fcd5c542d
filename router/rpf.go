package router

import (
	"net/netip"
	"slices"
	"time"

	"github.com/mrouterd/mrouterd/pim"
)

// This file is the reverse path to an address, from the kernel's unicast routes and
// the PIM neighbours: the one cached lookup that RPF, the Tree and asserts share.

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

// pathCache holds reverse paths until a unicast route change covers one of them.
type pathCache struct {
	byAddr map[netip.Addr]*reversePath
	stale  bool // look every path up again before the next event
}

// path is the way to an address, from a cache that every unicast route change
// covering the address empties.
func (r *Router) path(addr netip.Addr) *reversePath {
	if p, ok := r.paths.byAddr[addr]; ok {
		return p
	}
	p := r.lookupPath(addr)
	r.paths.byAddr[addr] = p
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
	if ifc := r.owner(addr); ifc != nil {
		// Ourselves: nobody upstream. A process here sends out of an interface and
		// its packets loop back into routing there, as from a connected source.
		p.rpf.Interface = ifc.name
		return p
	}
	// Before the FIB, the longest of: a connected subnet, which has no next hop; a
	// prefix a node on the fabric advertises, whose unicast route leads elsewhere;
	// a static multicast route, which wins a tie.
	best := -1
	for _, ifc := range r.sortedInterfaces() {
		if r.isFabric(ifc) {
			continue
		}
		for _, a := range ifc.addresses {
			if a.Contains(addr) && a.Bits() > best {
				nbr, _ := pimNeighbor(ifc, addr)
				p.rpf, best = pim.RPF{Interface: ifc.name, Neighbor: nbr}, a.Bits()
			}
		}
	}
	if rpf, bits, ok := r.fabricPath(addr); ok && bits > best {
		p.rpf, best = rpf, bits
	}
	if rpf, bits, ok := r.staticPath(addr); ok && bits >= best {
		p.rpf, best = rpf, bits
	}
	if best >= 0 {
		return p
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

// staticPath is the reverse path a [[pim.rpf]] entry gives addr: the longest
// prefix holding it. An entry with a neighbour only goes out of the interface
// the neighbour is on.
func (r *Router) staticPath(addr netip.Addr) (rpf pim.RPF, bits int, ok bool) {
	bits = -1
	for _, s := range r.cfg.PIM.RPFs {
		if !s.Prefix.Contains(addr) || s.Prefix.Bits() <= bits {
			continue
		}
		name := s.Interface
		if name == "" {
			for _, ifc := range r.sortedInterfaces() {
				if r.linkPeer(ifc)(s.Neighbor) {
					name = ifc.name
					break
				}
			}
		}
		if name != "" {
			rpf, bits = pim.RPF{Interface: name, Neighbor: s.Neighbor}, s.Prefix.Bits()
		}
	}
	return rpf, bits, bits >= 0
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
	r.paths.stale = false
	clear(r.paths.byAddr)
	r.treeActions(r.rib.Tree().RPFChanged(now))
	r.rib.MarkAll()
}
