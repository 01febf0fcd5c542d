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

// reversePath is what the router knows of the way to an address: the RPF, where it
// came from, and the unicast route behind it, whose table entry an assert compares.
type reversePath struct {
	rpf        pim.RPF
	origin     pathOrigin
	prefix     netip.Prefix // what matched; unknown (invalid) for a route of the FIB
	asked      bool         // the FIB was asked for the route
	routed     bool         // and had one
	route      fibRoute
	entryAsked bool // the FIB was asked for the route's entry
	hasEntry   bool // and had one
	entry      fibEntry
}

// pathOrigin says where a reverse path came from.
type pathOrigin string

const (
	originLocal       pathOrigin = "local"     // an address of this host
	originConnected   pathOrigin = "connected" // a subnet of one of its interfaces
	originFabric      pathOrigin = "fabric"    // a prefix a node on the fabric advertises
	originStatic      pathOrigin = "static"    // a [[pim.rpf]] entry
	originFIB         pathOrigin = "fib"       // the kernel's unicast routes
	originUnreachable pathOrigin = "unreachable"
)

// pathCache holds reverse paths until a unicast route change covers one of them.
// Only addresses the router holds state for are looked up through it (sources, RPs,
// neighbours); anything else is asked with lookupPath and not kept.
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
	if p.origin == originUnreachable {
		r.counters.inc("rpf_unreachable")
	}
	r.paths.byAddr[addr] = p
	return p
}

// fibEntry is the table entry of the kernel's route to addr, asked once per
// cached path, and only of the paths whose entry is needed.
func (r *Router) fibEntry(addr netip.Addr) (fibEntry, bool) {
	p := r.path(addr)
	if !p.entryAsked {
		e, err := r.fib.Entry(addr)
		p.entryAsked, p.hasEntry, p.entry = true, err == nil, e
	}
	return p.entry, p.hasEntry
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
	host := netip.PrefixFrom(addr, addr.BitLen())
	if ifc := r.owner(addr); ifc != nil {
		// Ourselves: nobody upstream. A process here sends out of an interface and
		// its packets loop back into routing there, as from a connected source.
		p.rpf.Interface, p.origin, p.prefix = ifc.name, originLocal, host
		return p
	}
	// Before the FIB, the longest of: a connected subnet, which has no next hop; a
	// prefix a node on the fabric advertises, whose unicast route leads elsewhere;
	// a static multicast route, which wins a tie. (No prefix yet has -1 bits.)
	for _, ifc := range r.sortedInterfaces() {
		if r.isFabric(ifc) {
			continue
		}
		for _, a := range ifc.addresses {
			if a.Contains(addr) && a.Bits() > p.prefix.Bits() {
				nbr, _ := pimNeighbor(ifc, addr)
				p.rpf, p.origin, p.prefix = pim.RPF{Interface: ifc.name, Neighbor: nbr}, originConnected, a.Masked()
			}
		}
	}
	if rpf, prefix, ok := r.fabricPath(addr); ok && prefix.Bits() > p.prefix.Bits() {
		p.rpf, p.origin, p.prefix = rpf, originFabric, prefix
	}
	if rpf, prefix, ok := r.staticPath(addr); ok && prefix.Bits() >= p.prefix.Bits() {
		p.rpf, p.origin, p.prefix = rpf, originStatic, prefix
	}
	if p.prefix.IsValid() {
		return p
	}
	r.askFIB(p, addr)
	if !p.routed {
		p.origin = originUnreachable
		return p
	}
	p.origin = originFIB
	if p.route.local {
		p.origin, p.prefix = originLocal, host
		return p
	}
	ifc := r.byIndex(p.route.ifindex)
	if ifc == nil {
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
func (r *Router) staticPath(addr netip.Addr) (rpf pim.RPF, prefix netip.Prefix, ok bool) {
	for _, s := range r.cfg.PIM.RPFs {
		if !s.Prefix.Contains(addr) || s.Prefix.Bits() <= prefix.Bits() {
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
			rpf, prefix = pim.RPF{Interface: name, Neighbor: s.Neighbor}, s.Prefix.Masked()
		}
	}
	return rpf, prefix, prefix.IsValid()
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
