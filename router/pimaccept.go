package router

import (
	"net/netip"
	"slices"
	"time"

	"github.com/mrouterd/mrouterd/pim"
)

// Why a PIM message is not believed, each counted as pim_refused_<reason>.
const (
	pimRefusedDestination = "destination"  // a link-local message not sent to ALL-PIM-ROUTERS
	pimRefusedTTL         = "ttl"          // a link-local message with a TTL other than 1
	pimRefusedOffSubnet   = "off_subnet"   // a link-local message from outside the link's subnets
	pimRefusedNotAllowed  = "not_allowed"  // a Hello from outside the interface's allowed-neighbors
	pimRefusedNotNeighbor = "not_neighbor" // a Join/Prune or Assert from a router that sent no live Hello
	pimRefusedNotRP       = "not_rp"       // a Register-Stop from an address other than the group's RP
)

// pimRefusal is why a PIM message received on an interface is not to be believed,
// or "" when it is. Registers are unicast from anywhere; the RIB judges their sender.
func (r *Router) pimRefusal(ifc *iface, pkt pimPacket, msg any, now time.Time) string {
	switch m := msg.(type) {
	case *pim.Hello:
		if why := linkLocalRefusal(pkt, r.linkPeer(ifc)); why != "" {
			return why
		}
		return allowedNeighborRefusal(r.allowedNeighbors(ifc), pkt.src)
	case *pim.JoinPrune, *pim.Assert:
		if why := linkLocalRefusal(pkt, r.linkPeer(ifc)); why != "" {
			return why
		}
		return liveNeighborRefusal(ifc.pim, pkt.src, now)
	case *pim.RegisterStop:
		rp, ok := r.rpOf(m.Group.Addr())
		return registerStopRefusal(rp, ok, pkt.src)
	}
	return ""
}

// linkLocalRefusal applies RFC 7761 6.1.1: Hello, Join/Prune and Assert go to
// ALL-PIM-ROUTERS (224.0.0.13), which no router forwards, so one that came
// addressed otherwise, with a TTL other than 1, or from outside the link's
// subnets was not sent by a router on the link. onLink says who is on the link.
func linkLocalRefusal(pkt pimPacket, onLink func(netip.Addr) bool) string {
	switch {
	case pkt.dst != allPIMRouters:
		return pimRefusedDestination
	case pkt.ttl != 1:
		return pimRefusedTTL
	case !onLink(pkt.src):
		return pimRefusedOffSubnet
	}
	return ""
}

// linkPeer says who is on an interface's link: a host on one of its subnets, or
// on the fabric, whose address is a /32, one of the peers.
func (r *Router) linkPeer(ifc *iface) func(netip.Addr) bool {
	if r.isFabric(ifc) {
		return func(a netip.Addr) bool { return r.fab.isPeer[a] }
	}
	return ifc.connected
}

// allowedNeighborRefusal applies RFC 7761 6.2: a router may limit the neighbours
// it accepts Hellos from; none listed allows every router on the link.
func allowedNeighborRefusal(allowed []netip.Prefix, src netip.Addr) string {
	if len(allowed) == 0 || slices.ContainsFunc(allowed, func(p netip.Prefix) bool { return p.Contains(src) }) {
		return ""
	}
	return pimRefusedNotAllowed
}

// liveNeighborRefusal applies RFC 7761 6.2: Join/Prune and Assert are accepted
// only from a router whose Hello we hold and which has not timed out.
func liveNeighborRefusal(link *pim.Interface, src netip.Addr, now time.Time) string {
	n, ok := link.Neighbor(src)
	if !ok || (!n.Expires.IsZero() && !now.Before(n.Expires)) {
		return pimRefusedNotNeighbor
	}
	return ""
}

// registerStopRefusal applies RFC 7761 6.1.2: only the group's RP, which sends a
// Register-Stop from the RP address the Register went to, may stop registering.
func registerStopRefusal(rp netip.Addr, hasRP bool, src netip.Addr) string {
	if !hasRP || src != rp {
		return pimRefusedNotRP
	}
	return ""
}

// allowedNeighbors is the interface's allowed-neighbors setting.
func (r *Router) allowedNeighbors(ifc *iface) []netip.Prefix {
	settings, _ := r.settingsFor(ifc)
	return settings.AllowedNeighbors
}
