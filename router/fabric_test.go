package router

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mrouterd/mrouterd/conf"
	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/pim"
	"github.com/mrouterd/mrouterd/router/fabric"
	"github.com/mrouterd/mrouterd/router/netwatch"
)

// fakeFabric is the fabric device: Ensure makes the interface appear to netlink.
type fakeFabric struct {
	net     *fakeNet
	ensured int
	flood   []netip.Addr
	groups  map[netip.Addr][]netip.Addr
	removed bool
}

const fabricIndex = 50

func (f *fakeFabric) Ensure(cfg fabric.Config, local netip.Addr, peers []netip.Addr) (fabric.Link, error) {
	f.ensured++
	if !slices.ContainsFunc(f.net.links, func(l netwatch.Link) bool { return l.Name == cfg.Name }) {
		f.net.links = append(f.net.links, netwatch.Link{Name: cfg.Name, Index: fabricIndex, Flags: net.FlagUp | net.FlagRunning | net.FlagMulticast})
		f.net.addrs[fabricIndex] = []netip.Prefix{netip.PrefixFrom(local, 32)}
	}
	return fabric.Link{Index: fabricIndex, MTU: 1450, Underlay: "eth0"}, nil
}

func (f *fakeFabric) SetFlood(peers []netip.Addr) error {
	f.flood = slices.Clone(peers)
	return nil
}

func (f *fakeFabric) SetGroups(want map[netip.Addr][]netip.Addr) error {
	f.groups = want
	return nil
}

func (f *fakeFabric) Remove(string) error {
	f.removed = true
	return nil
}

const fabricConf = `
[fabric]
peers = ["10.0.1.2", "10.0.2.2", "10.0.3.2"]
`

var (
	node1 = netip.MustParseAddr("10.0.1.2") // this node
	node2 = netip.MustParseAddr("10.0.2.2")
	node3 = netip.MustParseAddr("10.0.3.2")
	pod1  = netip.MustParseAddr("10.244.1.5") // on node 1's cali0
	pod2  = netip.MustParseAddr("10.244.2.5") // behind node 2
)

// fabricNode is node 1 of three: an underlay interface, a pod on a routed veth,
// and the fabric up with nodes 2 and 3 as peers.
func fabricNode(t *testing.T, cfg string) (*lab, *fakeFabric, *iface, *iface) {
	l := newLab(t, cfg)
	dev := &fakeFabric{net: l.net}
	l.r.fab.dev = dev
	l.fib.node = node1
	l.link("eth0", 2, "10.0.1.2/24")
	pod := l.link("cali0", 10, "")
	l.route("10.244.1.5/32", 10, "")
	l.route("0.0.0.0/0", 2, "10.0.1.1")
	l.r.fabricResolved([]fabric.Peer{{Addr: node2, Origin: fabric.OriginConfig}, {Addr: node3, Origin: fabric.OriginConfig}}, node1, true, nil)
	if err := l.r.syncInterfaces(); err != nil { // as netlink reports the new interface
		t.Fatal(err)
	}
	l.settle()
	fab := l.r.ifaces["mrfabric"]
	if fab == nil || fab.pim == nil || !fab.hasVIF() || fab.querier != nil {
		t.Fatalf("fabric interface %+v", fab)
	}
	return l, dev, fab, pod
}

// peerHello is a hello from another node, with the sources behind it.
func (l *lab) peerHello(fab *iface, from netip.Addr, prefixes ...string) {
	l.t.Helper()
	h := &pim.Hello{Holdtime: new(uint16(105))}
	for _, p := range prefixes {
		h.SourcePrefixes = append(h.SourcePrefixes, netip.MustParsePrefix(p))
	}
	l.receivePIM(fab, from.String(), h)
}

func wildcardJoin(rp, group netip.Addr, prune bool) *pim.JoinPrune {
	src := []pim.JPSource{{Source: netip.PrefixFrom(rp, 32), Sparse: true, Wildcard: true, RPT: true}}
	g := pim.JPGroup{Group: netip.PrefixFrom(group, 32), Joins: src}
	if prune {
		g = pim.JPGroup{Group: netip.PrefixFrom(group, 32), Prunes: src}
	}
	return &pim.JoinPrune{UpstreamNeighbor: rp, Holdtime: 210, Groups: []pim.JPGroup{g}}
}

func TestFabricUpAndPeers(t *testing.T) {
	l, dev, fab, _ := fabricNode(t, fabricConf)
	if dev.ensured != 1 || !slices.Equal(dev.flood, []netip.Addr{node2, node3}) {
		t.Fatalf("ensured %d, flood %v", dev.ensured, dev.flood)
	}
	// Only the peers are believed on the fabric.
	l.peerHello(fab, netip.MustParseAddr("10.9.9.9"))
	if l.r.counters["pim_refused_off_subnet"] != 1 {
		t.Fatalf("a stranger's hello: %v", l.r.counters)
	}
	l.peerHello(fab, node2, "10.244.2.0/24", "10.0.2.2/32")
	if !fab.pim.HasNeighbors() {
		t.Fatal("node 2 is no neighbour")
	}
	// The reverse path to a pod behind node 2 is over the fabric, not the default route.
	if got := l.r.rpf(pod2); got != (pim.RPF{Interface: "mrfabric", Neighbor: node2}) {
		t.Fatalf("RPF(%v) = %+v", pod2, got)
	}
	// Our hellos advertise what is behind us: our address and our pod.
	l.clock.advance(2 * time.Second)
	l.r.advanceProtocols(l.r.now())
	l.settle()
	want := []netip.Prefix{netip.MustParsePrefix("10.0.1.2/32"), netip.MustParsePrefix("10.244.1.5/32")}
	if !slices.Equal(l.r.fab.prefixes, want) {
		t.Fatalf("advertised %v, want %v", l.r.fab.prefixes, want)
	}
	var sent *pim.Hello
	for _, s := range l.pim.take() {
		if h, ok := s.msg.(*pim.Hello); ok && s.ifindex == fabricIndex {
			sent = h
		}
	}
	if sent == nil || !slices.Equal(sent.SourcePrefixes, want) {
		t.Fatalf("hello on the fabric: %+v", sent)
	}
	// A node that leaves the list is forgotten.
	l.r.fabricResolved([]fabric.Peer{{Addr: node3, Origin: fabric.OriginDNS, Name: "peers"}}, node1, true, nil)
	l.settle()
	if fab.pim.HasNeighbors() || !slices.Equal(dev.flood, []netip.Addr{node3}) {
		t.Fatalf("after node 2 left: flood %v", dev.flood)
	}
	v := l.r.fabricView()
	if v.Self != "10.0.1.2" || len(v.Peers) != 1 || v.Peers[0].Origin != "dns" || v.Peers[0].Name != "peers" {
		t.Fatalf("view %+v", v)
	}
	l.r.stopFabric()
	if !dev.removed {
		t.Fatal("the fabric interface stays after a stop")
	}
}

// TestFabricRPElection: the lowest live address is the RP; when it goes, the
// next takes over.
func TestFabricRPElection(t *testing.T) {
	l, _, fab, _ := fabricNode(t, `
[fabric]
peers = ["10.0.1.2", "10.0.0.2", "10.0.3.2"]
`)
	if rp, _ := l.r.rpOf(grp1); rp != node1 {
		t.Fatalf("alone: RP %v", rp)
	}
	low := netip.MustParseAddr("10.0.0.2")
	l.r.fabricResolved([]fabric.Peer{{Addr: low}, {Addr: node3}}, node1, true, nil)
	l.peerHello(fab, low)
	if rp, _ := l.r.rpOf(grp1); rp != low {
		t.Fatalf("with 10.0.0.2: RP %v", rp)
	}
	if _, ok := l.r.rpOf(ssmGroup); ok {
		t.Fatal("an RP for the SSM range")
	}
	l.receivePIM(fab, low.String(), &pim.Hello{Holdtime: new(uint16(0))}) // goodbye
	if rp, _ := l.r.rpOf(grp1); rp != node1 {
		t.Fatalf("after 10.0.0.2 left: RP %v", rp)
	}
	if l.r.fabricView().RP != "10.0.1.2" {
		t.Fatalf("view %+v", l.r.fabricView())
	}
}

// TestFabricFirstHop: a pod's stream goes onto the fabric as soon as a peer joined
// the group, to whichever RP, without registering; only to the peers that joined.
func TestFabricFirstHop(t *testing.T) {
	l, dev, fab, pod := fabricNode(t, `
[fabric]
peers = ["10.0.1.2", "10.0.2.2", "10.0.0.2"]
`)
	rp := netip.MustParseAddr("10.0.0.2")
	l.r.fabricResolved([]fabric.Peer{{Addr: rp}, {Addr: node2}}, node1, true, nil)
	l.peerHello(fab, rp, "10.0.0.2/32")
	l.peerHello(fab, node2, "10.0.2.2/32")
	key := sgKey{Source: pod1, Group: grp1}
	l.upcall(mroute.NoCache, pod, pod1, grp1, nil)
	l.mfc(key, "cali0")
	// Node 2 joins the shared tree towards the RP: node 1 hears it too.
	l.receivePIM(fab, node2.String(), wildcardJoin(rp, grp1, false))
	l.mfc(key, "cali0", "mrfabric")
	if got := sentOf[*pim.Register](l); len(got) != 0 {
		t.Fatalf("registered to an RP on the fabric: %v", got)
	}
	if got := dev.groups[grp1]; !slices.Equal(got, []netip.Addr{node2}) {
		t.Fatalf("replication of %v: %v", grp1, dev.groups)
	}
	if v := l.r.fabricView(); !slices.Equal(v.Peers[1].Groups, []string{"239.1.1.1"}) {
		t.Fatalf("view %+v", v.Peers)
	}
	// Node 2 prunes: the stream leaves the fabric, and nobody is sent it.
	l.receivePIM(fab, node2.String(), wildcardJoin(rp, grp1, true))
	l.mfc(key, "cali0")
	if len(dev.groups) != 0 {
		t.Fatalf("replication after the prune: %v", dev.groups)
	}
	// A join that is never refreshed runs out.
	l.receivePIM(fab, node2.String(), wildcardJoin(rp, grp1, false))
	l.mfc(key, "cali0", "mrfabric")
	l.clock.advance(211 * time.Second)
	l.r.advanceProtocols(l.r.now())
	l.settle()
	if l.r.fabricWants(key) {
		t.Fatal("the join outlived its holdtime")
	}
}

func TestFabricReplicationAll(t *testing.T) {
	l, dev, fab, _ := fabricNode(t, fabricConf+`replication = "all"`+"\n")
	l.peerHello(fab, node2)
	l.receivePIM(fab, node2.String(), wildcardJoin(node1, grp1, false))
	if dev.groups == nil || len(dev.groups) != 0 {
		t.Fatalf("replication all narrows %v", dev.groups)
	}
}

// TestNotInPeers: a node whose address is not listed runs no fabric.
func TestNotInPeers(t *testing.T) {
	l := newLab(t, fabricConf)
	dev := &fakeFabric{net: l.net}
	l.r.fab.dev = dev
	l.link("eth0", 2, "10.0.7.2/24")
	l.r.fabricResolved([]fabric.Peer{{Addr: node2}}, netip.Addr{}, false, nil)
	l.settle()
	if dev.ensured != 0 || l.r.fabricOn() {
		t.Fatal("a fabric for a node that is not listed")
	}
}

func TestStaticRPF(t *testing.T) {
	l, eth1, _, _ := threeLinks(t, `
[[pim.rpf]]
prefix = "10.0.5.0/24"
neighbor = "10.0.1.254"
[[pim.rpf]]
prefix = "10.0.6.0/24"
interface = "eth2"
`)
	_ = eth1
	if got := l.r.rpf(farSrc); got != (pim.RPF{Interface: "eth1", Neighbor: rpGateway}) {
		t.Fatalf("RPF(%v) = %+v, want eth1 via the static route", farSrc, got)
	}
	if got := l.r.rpf(netip.MustParseAddr("10.0.6.1")); got.Interface != "eth2" {
		t.Fatalf("RPF = %+v", got)
	}
}

func TestMergePrefixes(t *testing.T) {
	in := []netip.Prefix{}
	for i := range 256 {
		in = append(in, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, 1, byte(i)}), 32))
	}
	in = append(in, netip.MustParsePrefix("10.244.1.7/32"), netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.1.0/25"), netip.MustParsePrefix("192.168.1.128/25"),
		netip.MustParsePrefix("172.16.0.1/32"), netip.MustParsePrefix("172.16.0.3/32"))
	got := mergePrefixes(in)
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.1/32"),
		netip.MustParsePrefix("172.16.0.3/32"), netip.MustParsePrefix("192.168.1.0/24")}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestFabricRPAnnounces: the RP's own members would join nobody; the RP says on
// the fabric that it wants the group, and takes it back when they leave.
func TestFabricRPAnnounces(t *testing.T) {
	l, _, fab, pod := fabricNode(t, fabricConf)
	l.peerHello(fab, node2)
	l.pim.take()
	l.report(pod, pod1.String(), exclude(grp1))
	announced := func() []string {
		var out []string
		for _, s := range l.pim.take() {
			if jp, ok := s.msg.(*pim.JoinPrune); ok && s.ifindex == fabricIndex && jp.UpstreamNeighbor == node1 {
				for _, g := range jp.Groups {
					out = append(out, fmt.Sprintf("%s +%d -%d", g.Group.Addr(), len(g.Joins), len(g.Prunes)))
				}
			}
		}
		return out
	}
	if got := announced(); !slices.Equal(got, []string{"239.1.1.1 +1 -0"}) {
		t.Fatalf("announced %v", got)
	}
	// Node 2's first hop forwards a pod's stream onto the fabric: the RP takes it
	// from there, the source's tree, with no register tunnel.
	l.peerHello(fab, node2, "10.244.2.0/24")
	l.upcall(mroute.NoCache, fab, pod2, grp1, nil)
	l.mfc(sgKey{Source: pod2, Group: grp1}, "mrfabric", "cali0")
	l.report(pod, pod1.String(), igmp.Record{Type: igmp.ChangeToInclude, Group: grp1})
	l.clock.advance(10 * time.Second)
	l.r.advanceProtocols(l.r.now())
	l.settle()
	if got := announced(); !slices.Equal(got, []string{"239.1.1.1 +0 -1"}) {
		t.Fatalf("after the leave: %v", got)
	}
}

// TestFabricReplicationReload: switching replication by reload takes effect at
// once, not at the next join.
func TestFabricReplicationReload(t *testing.T) {
	l, dev, fab, _ := fabricNode(t, fabricConf)
	l.peerHello(fab, node2)
	l.receivePIM(fab, node2.String(), wildcardJoin(node1, grp1, false))
	if len(dev.groups) != 1 {
		t.Fatalf("selective: %v", dev.groups)
	}
	next, err := conf.Parse("test.toml", []byte(fabricConf+`replication = "all"`+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.r.apply(next); err != nil {
		t.Fatal(err)
	}
	l.settle()
	if len(dev.groups) != 0 {
		t.Fatalf("after the reload to all: %v", dev.groups)
	}
}
