package router

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/router/netwatch"
)

// This file is the loop's view of the kernel: the multicast routing table it
// programs, the unicast FIB it asks for reverse paths, and the links and addresses
// it runs on. Each is an interface, so that the loop runs on fakes in tests.

// mrtTable is the kernel's multicast routing table: the MRT socket, which also
// carries upcalls and IGMP packets, and the netlink dump of its MFC.
type mrtTable interface {
	Read(buf []byte) (mroute.Message, error)
	AddVIF(v mroute.VIF) error
	DelVIF(vif uint16) error
	AddMFC(e mroute.MFC) error
	DelMFC(source, group netip.Addr) error
	Flush(f mroute.FlushFlags) error
	SetPIM(on bool) error
	VIFCount(vif uint16) (mroute.VIFCount, error)
	SGCount(source, group netip.Addr) (mroute.SGCount, error)
	Dump() ([]mroute.KernelEntry, error)
	// Detach leaves the table's socket open for the program execed next.
	Detach() (int, error)
	// Share runs fn with the socket's descriptor, to hand a copy to a store.
	Share(fn func(fd int) error) error
	Close() error
}

// kernelMRT is the kernel's table behind an MRT socket.
type kernelMRT struct{ *mroute.Socket }

func (k kernelMRT) Dump() ([]mroute.KernelEntry, error) { return mroute.Dump(k.Table()) }

// openTable takes the table handed over by the program before this one, or
// opens it.
func openTable(table uint32, h *Handoff) (*mroute.Socket, error) {
	if h == nil {
		return mroute.Open(table)
	}
	if h.Table != table {
		return nil, fmt.Errorf("the table handed over is %d, the config's %d", h.Table, table)
	}
	return mroute.Adopt(h.MRT, table)
}

// netState is the kernel's links, addresses and unicast route changes.
type netState interface {
	Watch(ctx context.Context, out chan<- netwatch.Event)
	Links() ([]netwatch.Link, error)
	Link(name string) (netwatch.Link, error)
	Addresses() (map[int][]netip.Prefix, error)
}

// fib answers which unicast route the kernel would take to an address.
type fib interface {
	Route(addr netip.Addr) (fibRoute, error)
	// Entry is the table entry Route's answer comes from, which Route does not
	// tell: asserts and show rpf ask, so that most reverse paths cost one question.
	Entry(addr netip.Addr) (fibEntry, error)
	// Source is the address the kernel sends multicast from out of an interface:
	// its own, or, on one without any, another of the host's.
	Source(ifindex int) (netip.Addr, error)
	// DirectRoutes lists the main table's routes straight out of an interface,
	// with no gateway: connected subnets, and a pod's /32 on its veth.
	DirectRoutes() ([]directRoute, error)
}

// directRoute is a route with no gateway.
type directRoute struct {
	dst     netip.Prefix
	ifindex int
}

// fibRoute is the kernel's best unicast route to an address: the way it takes.
type fibRoute struct {
	ifindex int
	gateway netip.Addr // invalid when the address is reached directly
	local   bool       // the address is the host's own
}

// fibEntry is the routing table's entry behind a fibRoute.
type fibEntry struct {
	prefix   netip.Prefix
	protocol int    // who installed the route (RTPROT_*)
	priority uint32 // the route's metric
}

// protocolName is who installed the route, as ip-route(8) names it.
func (e fibEntry) protocolName() string { return netlink.RouteProtocol(e.protocol).String() }

// netlinkFIB asks the kernel with RTM_GETROUTE.
type netlinkFIB struct{}

func (netlinkFIB) Source(ifindex int) (netip.Addr, error) {
	routes, err := netlink.RouteGetWithOptions(allHosts.AsSlice(), &netlink.RouteGetOptions{OifIndex: ifindex})
	if err != nil {
		return netip.Addr{}, err
	}
	for _, rt := range routes {
		if src, ok := netip.AddrFromSlice(rt.Src.To4()); ok && rt.Src != nil {
			return src, nil
		}
	}
	return netip.Addr{}, unix.EADDRNOTAVAIL
}

func (netlinkFIB) DirectRoutes() ([]directRoute, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, err
	}
	var out []directRoute
	for _, rt := range routes {
		if rt.Gw != nil || rt.Dst == nil || rt.Type != unix.RTN_UNICAST || len(rt.MultiPath) > 0 {
			continue
		}
		if p, ok := netipx(rt.Dst); ok {
			out = append(out, directRoute{dst: p, ifindex: rt.LinkIndex})
		}
	}
	return out, nil
}

// netipx converts an IPv4 net.IPNet.
func netipx(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a, bits).Masked(), true
}

// allHosts is the group whose route says which source an interface sends from.
var allHosts = netip.AddrFrom4([4]byte{224, 0, 0, 1})

func (netlinkFIB) Route(addr netip.Addr) (fibRoute, error) {
	routes, err := netlink.RouteGet(addr.AsSlice())
	if err != nil {
		return fibRoute{}, err
	}
	if len(routes) == 0 {
		return fibRoute{}, unix.ENETUNREACH
	}
	rt := routes[0]
	out := fibRoute{ifindex: rt.LinkIndex, local: rt.Type == unix.RTN_LOCAL}
	if gw, ok := netip.AddrFromSlice(rt.Gw.To4()); ok && rt.Gw != nil {
		out.gateway = gw
	}
	return out, nil
}

// Entry asks with RTM_F_FIB_MATCH. The plain question Route asks is answered with
// a route made for the address alone: no prefix, no protocol, no metric.
func (netlinkFIB) Entry(addr netip.Addr) (fibEntry, error) {
	routes, err := netlink.RouteGetWithOptions(addr.AsSlice(), &netlink.RouteGetOptions{FIBMatch: true})
	if err != nil {
		return fibEntry{}, err
	}
	if len(routes) == 0 {
		return fibEntry{}, unix.ENETUNREACH
	}
	rt := routes[0]
	out := fibEntry{prefix: netip.PrefixFrom(netip.IPv4Unspecified(), 0), protocol: int(rt.Protocol), priority: uint32(rt.Priority)}
	if rt.Dst != nil { // else the default route
		p, ok := netipx(rt.Dst)
		if !ok {
			return fibEntry{}, unix.EAFNOSUPPORT
		}
		out.prefix = p
	}
	return out, nil
}
