package router

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/test/netnstest"
)

// TestNetlinkFIB asks a namespace's kernel for routes: the way each takes, and the
// entry it comes from: prefix (the default route's too), protocol and metric.
func TestNetlinkFIB(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	ns, h := netnstest.New(t, fmt.Sprintf("fibtest-%06x", rand.Uint32()&0xffffff))
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "up0"}, PeerName: "up1"}); err != nil {
		t.Fatal(err)
	}
	link, err := h.LinkByName("up0")
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("10.9.0.1/24")
	if err := h.AddrAdd(link, addr); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	gw := net.ParseIP("10.9.0.254")
	_, far, _ := net.ParseCIDR("10.8.0.0/16")
	for _, rt := range []*netlink.Route{
		{LinkIndex: link.Attrs().Index, Dst: far, Gw: gw, Protocol: unix.RTPROT_OSPF, Priority: 20},
		{LinkIndex: link.Attrs().Index, Gw: gw},
	} {
		if err := h.RouteAdd(rt); err != nil {
			t.Fatal(err)
		}
	}
	index := link.Attrs().Index
	cases := []struct {
		addr  string
		route fibRoute
		entry fibEntry
	}{
		{"10.8.1.1", fibRoute{ifindex: index, gateway: netip.MustParseAddr("10.9.0.254")},
			fibEntry{prefix: netip.MustParsePrefix("10.8.0.0/16"), protocol: unix.RTPROT_OSPF, priority: 20}},
		{"192.0.2.1", fibRoute{ifindex: index, gateway: netip.MustParseAddr("10.9.0.254")},
			fibEntry{prefix: netip.MustParsePrefix("0.0.0.0/0"), protocol: unix.RTPROT_BOOT}},
		{"10.9.0.7", fibRoute{ifindex: index}, fibEntry{prefix: netip.MustParsePrefix("10.9.0.0/24"), protocol: unix.RTPROT_KERNEL}},
		{"10.9.0.1", fibRoute{ifindex: 1, local: true}, fibEntry{prefix: netip.MustParsePrefix("10.9.0.1/32"), protocol: unix.RTPROT_KERNEL}},
	}
	err = netnstest.InNetns(ns, func() error {
		var fib netlinkFIB
		for _, c := range cases {
			addr := netip.MustParseAddr(c.addr)
			if rt, err := fib.Route(addr); err != nil || rt != c.route {
				t.Errorf("route to %s: %+v, %v; want %+v", c.addr, rt, err, c.route)
			}
			if e, err := fib.Entry(addr); err != nil || e != c.entry {
				t.Errorf("entry for %s: %+v, %v; want %+v", c.addr, e, err, c.entry)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
