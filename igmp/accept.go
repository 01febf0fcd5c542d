package igmp

import "net/netip"

// Reasons a well-formed message is refused by its addresses, one counter each.
const (
	ReasonOffSubnet   = "off-subnet"  // source not on the link's subnets
	ReasonDestination = "destination" // not sent to a group, all-systems, all-routers or all-v3-routers
)

// CheckAddresses applies RFC 3376 9.1-9.3: a message is believed only from the
// link. Its source must be on one of the link's subnets (onLink says which are),
// so that a forged query from afar neither takes the querier's place nor sets
// its robustness and interval, and a forged report creates no state. 0.0.0.0 is
// allowed, as a host without an address yet reports from it (4.2.13); a query
// from it takes no part in the election. Its destination must be one of the
// multicast addresses IGMP is sent to (4.1.12, 4.2.14): unicast IGMP was not
// sent to the link. It returns a *DecodeError naming the reason, or nil.
func CheckAddresses(src, dst netip.Addr, msg any, onLink func(netip.Addr) bool) error {
	if !src.IsUnspecified() && !onLink(src) {
		return decodeError(ReasonOffSubnet, "from %v", src)
	}
	if !linkDestination(dst, msg) {
		return decodeError(ReasonDestination, "to %v", dst)
	}
	return nil
}

// linkDestination reports whether dst is where msg is sent on a link: a query to
// all-systems or its group, a v1 or v2 report to its group, a leave to
// all-routers (or, as some hosts do, its group), a v3 report to all-v3-routers.
func linkDestination(dst netip.Addr, msg any) bool {
	if dst == AllSystems || dst == AllRouters || dst == AllV3Routers {
		return true
	}
	var group netip.Addr
	switch m := msg.(type) {
	case *Query:
		group = m.Group
	case *Report:
		group = m.Group
	case *Leave:
		group = m.Group
	}
	return group.IsValid() && group.IsMulticast() && dst == group
}
