package router

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/router/netwatch"
)

// podNode is a node as a routed-veth CNI leaves it: an uplink with an address,
// and pod interfaces without one, each reaching its pod by a /32 route.
func podNode(t *testing.T, pods int) (*lab, *iface, []*iface) {
	l := newLab(t, "")
	l.fib.node = netip.MustParseAddr("10.0.0.10")
	uplink := l.link("eth0", 2, "10.0.0.10/24")
	var veths []*iface
	for i := range pods {
		index := 100 + i
		veths = append(veths, l.link(fmt.Sprintf("cali%d", i), index, ""))
		l.route(podAddr(i).String()+"/32", index, "")
	}
	l.settle()
	return l, uplink, veths
}

func podAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 244, byte(i / 250), byte(1 + i%250)})
}

func vifsOf(l *lab) (n int) {
	for _, ifc := range l.r.ifaces {
		if ifc.hasVIF() {
			n++
		}
	}
	return n
}

// TestVIFsOnDemand: 300 pod interfaces are watched without a VIF; a pod's join
// gives its interface one, its leave takes it back.
func TestVIFsOnDemand(t *testing.T) {
	l, uplink, veths := podNode(t, 300)
	// Only the uplink, which has an address, holds a VIF, a spare one.
	if n := vifsOf(l); n != 1 || uplink.vifReason != vifSpare {
		t.Fatalf("%d VIFs with nothing to route; the uplink's for %q", n, uplink.vifReason)
	}
	st := l.r.statusView()
	if st.Interfaces != 301 || st.VIFs != 1 {
		t.Fatalf("status: %d interfaces watched, %d VIFs", st.Interfaces, st.VIFs)
	}
	// The querier on an interface without an address speaks from the node's.
	if q := veths[7].querierSelf; q != l.fib.node {
		t.Fatalf("querier on cali7 speaks from %v", q)
	}
	pod := veths[7]
	l.report(pod, podAddr(7).String(), exclude(grp1))
	if !pod.hasVIF() || pod.vifReason != "members" {
		t.Fatalf("a member's interface: vif %d, reason %q", pod.vif, pod.vifReason)
	}
	if !slices.Contains(l.tap.excluded, pod.index) {
		t.Fatalf("the tap still passes data from %s: %v", pod.name, l.tap.excluded)
	}
	l.report(pod, podAddr(7).String(), igmp.Record{Type: igmp.ChangeToInclude, Group: grp1})
	l.clock.advance(10 * time.Second) // the last member queries
	l.r.advanceProtocols(l.r.now())
	l.settle()
	if pod.hasVIF() || len(l.mrt.vifs) != 1 {
		t.Fatalf("the VIF stays after the last member left: %v", l.mrt.vifs)
	}
	if slices.Contains(l.tap.excluded, pod.index) {
		t.Fatal("the tap does not pass data from the idle interface again")
	}
}

// TestVIFsExhausted: with every VIF in use, the next interface that needs one
// waits, named in status and counted once; it gets one as soon as one is free.
func TestVIFsExhausted(t *testing.T) {
	l, uplink, veths := podNode(t, 40)
	for i, pod := range veths[:33] {
		l.report(pod, podAddr(i).String(), exclude(grp1))
	}
	// The uplink gave its spare VIF to a pod, and waits without a word.
	if n := vifsOf(l); n != mroute.MaxVIFs || uplink.hasVIF() || uplink.vifRefused {
		t.Fatalf("%d VIFs; uplink %d", n, uplink.vif)
	}
	l.report(veths[33], podAddr(33).String(), exclude(grp1)) // another report: still counted once
	waiting := []string{}
	for _, pod := range veths[:34] {
		if pod.vifRefused {
			waiting = append(waiting, pod.name)
		}
	}
	if len(waiting) != 2 || l.r.counters["vif_exhausted"] != 2 {
		t.Fatalf("waiting %v, counted %d", waiting, l.r.counters["vif_exhausted"])
	}
	if w := strings.Join(l.r.warnings(), "\n"); !strings.Contains(w, "no VIF for "+waiting[0]+", "+waiting[1]) {
		t.Fatalf("warnings: %s", w)
	}
	// One pod leaves: its VIF goes to the first that waits.
	gone := veths[0]
	l.r.handleNetwork(&netwatch.LinkUpdate{Link: netwatch.Link{Name: gone.name, Index: gone.index}, Gone: true})
	l.settle()
	if !l.r.ifaces[waiting[0]].hasVIF() || l.r.ifaces[waiting[1]].hasVIF() {
		t.Fatalf("after a VIF was freed: %s %v, %s %v", waiting[0], l.r.ifaces[waiting[0]].hasVIF(),
			waiting[1], l.r.ifaces[waiting[1]].hasVIF())
	}
}

// TestSourceOnInterfaceWithoutVIF: the tap sees a pod's stream, the interface
// gets a VIF, the kernel's upcall makes a route, and the route holds the VIF
// until it goes idle.
func TestSourceOnInterfaceWithoutVIF(t *testing.T) {
	l, uplink, veths := podNode(t, 3)
	l.report(uplink, "10.0.0.20", exclude(grp1))
	sender := veths[1]
	l.r.handleSighting(sighting{ifindex: sender.index, source: podAddr(1), group: grp1, ttl: 16}, l.r.now())
	l.settle()
	if !sender.hasVIF() || sender.vifReason != "source" {
		t.Fatalf("sender: vif %d, reason %q", sender.vif, sender.vifReason)
	}
	l.upcall(mroute.NoCache, sender, podAddr(1), grp1, nil)
	l.mfc(sgKey{Source: podAddr(1), Group: grp1}, sender.name, uplink.name)
	l.clock.advance(time.Minute) // past the sighting's hold: the route holds the VIF
	l.settle()
	if !sender.hasVIF() || sender.vifReason != "routes" {
		t.Fatalf("sender: vif %d, reason %q", sender.vif, sender.vifReason)
	}
	l.clock.advance(time.Hour)
	l.r.expireLearned(l.r.now())
	l.settle()
	if sender.hasVIF() {
		t.Fatal("the VIF stays after the stream went idle")
	}
}

// TestUnroutableSender: a node process sending with TTL 1 is flagged in status
// and routes, counted once, and forgotten once it stops.
func TestUnroutableSender(t *testing.T) {
	l, uplink, veths := podNode(t, 1)
	node := netip.MustParseAddr("10.0.0.10")
	for range 3 {
		l.r.handleSighting(sighting{ifindex: uplink.index, source: node, group: grp1, ttl: 1, outgoing: true}, l.r.now())
	}
	// A packet that arrives with TTL 1 from far away has only reached its scope.
	l.r.handleSighting(sighting{ifindex: uplink.index, source: farSrc, group: grp1, ttl: 1}, l.r.now())
	// A pod sending with TTL 1 is flagged too.
	l.r.handleSighting(sighting{ifindex: veths[0].index, source: podAddr(0), group: grp2, ttl: 1}, l.r.now())
	l.settle()
	if n := l.r.counters["unroutable_sources"]; n != 2 {
		t.Fatalf("counted %d", n)
	}
	st := l.r.statusView()
	if len(st.Unroutable) != 2 || st.Unroutable[0].Source != "10.0.0.10" || st.Unroutable[0].TTL != 1 {
		t.Fatalf("status: %+v", st.Unroutable)
	}
	if w := strings.Join(st.Warnings, "\n"); !strings.Contains(w, "10.0.0.10 -> 239.1.1.1 on eth0: sent with TTL 1") ||
		!strings.Contains(w, "raise IP_MULTICAST_TTL") {
		t.Fatalf("warnings: %s", w)
	}
	routes, err := l.r.routesView(query{})
	if err != nil {
		t.Fatal(err)
	}
	flagged := 0
	for _, rt := range routes.Routes {
		if slices.Contains(rt.Flags, "low-ttl") && rt.Warning != "" {
			flagged++
		}
	}
	if flagged != 2 {
		t.Fatalf("routes: %+v", routes.Routes)
	}
	if uplink.hasVIF() && uplink.vifReason == "source" {
		t.Fatal("a TTL-1 stream took a VIF it cannot use")
	}
	l.clock.advance(unroutableHold)
	if st := l.r.statusView(); len(st.Unroutable) != 0 {
		t.Fatalf("still flagged after the sender stopped: %+v", st.Unroutable)
	}
}

// TestLinkGoneStopsProtocols: an interface that goes away takes its querier and
// PIM with it, VIF or not.
func TestLinkGoneStopsProtocols(t *testing.T) {
	l := newLab(t, "")
	eth1 := l.link("eth1", 11, "10.0.1.1/24")
	if eth1.querier == nil || eth1.pim == nil || eth1.hasVIF() {
		t.Fatalf("querier %v, PIM %v, VIF %d", eth1.querier != nil, eth1.pim != nil, eth1.vif)
	}
	l.r.linkSeen(netwatch.Link{Name: "eth1", Index: 11, Flags: net.FlagUp | net.FlagMulticast}) // no carrier
	if eth1.querier != nil || eth1.pim != nil {
		t.Fatal("protocols run without a carrier")
	}
	l.r.linkGone(11)
	if l.r.ifaces["eth1"] != nil {
		t.Fatal("still known")
	}
}

// TestLocalSender: a process on the node sends out of an interface; its packets
// loop back into routing there and go to the members on another.
func TestLocalSender(t *testing.T) {
	l, uplink, veths := podNode(t, 2)
	node := netip.MustParseAddr("10.0.0.10")
	l.report(veths[0], podAddr(0).String(), exclude(grp1))
	l.upcall(mroute.NoCache, uplink, node, grp1, nil)
	l.mfc(sgKey{Source: node, Group: grp1}, uplink.name, veths[0].name)
}

// TestAddressBeforeLink: netlink reports a new link's address on another
// subscription, and it may come first; the link still gets it.
func TestAddressBeforeLink(t *testing.T) {
	l := newLab(t, "")
	link := netwatch.Link{Name: "eth7", Index: 17, Flags: net.FlagUp | net.FlagRunning | net.FlagMulticast}
	p := netip.MustParsePrefix("10.0.7.1/24")
	l.net.links = append(l.net.links, link)
	l.net.addrs[17] = []netip.Prefix{p}
	l.r.handleNetwork(&netwatch.AddrUpdate{Index: 17, Prefix: p}) // no such link yet: dropped
	l.r.handleNetwork(&netwatch.LinkUpdate{Link: link})
	ifc := l.r.byIndex(17)
	if ifc == nil || !slices.Equal(ifc.addresses, []netip.Prefix{p}) || ifc.pim == nil || ifc.pimSelf != p.Addr() {
		t.Fatalf("eth7: %+v", ifc)
	}
}
