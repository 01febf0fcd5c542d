package netwatch

import (
	"context"
	"net"
	"net/netip"
	"reflect"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func ipnet(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

func route(dst string, table, typ int) netlink.RouteUpdate {
	u := netlink.RouteUpdate{Route: netlink.Route{Table: table, Type: typ}}
	if dst != "" {
		u.Dst = ipnet(dst)
	}
	return u
}

func TestEvents(t *testing.T) {
	link := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: 3, Name: "eth1", Flags: net.FlagUp}}
	del := netlink.LinkUpdate{Link: link}
	del.Header.Type = unix.RTM_DELLINK
	eth1 := Link{Index: 3, Name: "eth1", Flags: net.FlagUp}
	tests := []struct {
		name string
		got  Event
		want Event
	}{
		{"link", linkEvent(netlink.LinkUpdate{Link: link}), &LinkUpdate{Link: eth1}},
		{"link gone", linkEvent(del), &LinkUpdate{Link: eth1, Gone: true}},
		{"address", addrEvent(netlink.AddrUpdate{LinkIndex: 3, LinkAddress: *ipnet("10.0.1.1/24"), NewAddr: true}),
			&AddrUpdate{Index: 3, Prefix: netip.MustParsePrefix("10.0.1.1/24")}},
		{"address gone", addrEvent(netlink.AddrUpdate{LinkIndex: 3, LinkAddress: *ipnet("10.0.1.1/24")}),
			&AddrUpdate{Index: 3, Prefix: netip.MustParsePrefix("10.0.1.1/24"), Gone: true}},
		{"IPv6 address", addrEvent(netlink.AddrUpdate{LinkIndex: 3, LinkAddress: *ipnet("fe80::1/64"), NewAddr: true}), nil},
		{"route", routeEvent(route("10.0.5.7/24", unix.RT_TABLE_MAIN, unix.RTN_UNICAST)),
			&RouteUpdate{Dst: netip.MustParsePrefix("10.0.5.0/24")}},
		{"default route", routeEvent(route("", unix.RT_TABLE_MAIN, unix.RTN_UNICAST)),
			&RouteUpdate{Dst: netip.MustParsePrefix("0.0.0.0/0")}},
		{"local route", routeEvent(route("10.0.0.1/32", unix.RT_TABLE_MAIN, unix.RTN_LOCAL)), nil},
		{"other table", routeEvent(route("10.0.0.0/8", 100, unix.RTN_UNICAST)), nil},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
}

func TestForward(t *testing.T) {
	links, addrs, routes := make(chan netlink.LinkUpdate, 1), make(chan netlink.AddrUpdate, 1), make(chan netlink.RouteUpdate, 2)
	out := make(chan Event, 4)
	routes <- route("10.0.0.1/32", unix.RT_TABLE_MAIN, unix.RTN_LOCAL) // not passed on
	routes <- route("10.0.5.0/24", unix.RT_TABLE_MAIN, unix.RTN_UNICAST)
	done := make(chan struct{})
	go func() { forward(context.Background(), out, links, addrs, routes); close(done) }()
	if ev, ok := (<-out).(*RouteUpdate); !ok || ev.Dst != netip.MustParsePrefix("10.0.5.0/24") {
		t.Fatalf("got %#v", ev)
	}
	close(links) // a subscription closed: forward returns
	<-done
	if len(out) != 0 {
		t.Fatalf("%d events more", len(out))
	}
}
