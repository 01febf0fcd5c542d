package main

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/mrouterd/mrouterd/test/lab"
)

// The hosts of both topologies and the traffic they exchange.
const (
	receiverNode = "rcv"
	hostIfname   = "eth1" // each host's only link
	port         = 5001
	ratePPS      = 1000
	sendTTL      = 16
)

// mode is one kind of multicast delivery a network is measured with: source-specific
// (SSM, the receiver joins (S,G)) or any-source through the RP (ASM, it joins (*,G)).
// Each measurement uses groups of its own, so no state is left from another.
type mode struct {
	name       string
	sourceNode string
	source     netip.Addr // the sender's address; the receiver names it in SSM joins
	ssm        bool
	probe      netip.Addr // group of the first-forward probe
	trials     netip.Addr // first group of the join trials
	rpfGroup   netip.Addr // group of the RPF-change runs
	many       netip.Addr // first group of the many-groups run
	sources    netip.Addr // first group of the source starts
}

// join returns the mcast recv options that join g as the mode does.
func (m mode) join(g netip.Addr) []string {
	args := []string{"-group", g.String(), "-port", fmt.Sprint(port), "-ifname", hostIfname}
	if m.ssm {
		args = append(args, "-source", m.source.String())
	}
	return args
}

// joinSource is the source of the mode's joins: invalid for any-source joins.
func (m mode) joinSource() netip.Addr {
	if m.ssm {
		return m.source
	}
	return netip.Addr{}
}

var (
	// src sends SSM on both networks, to 232.0.0.0/8, the default SSM range of all three.
	ssmMode = mode{
		name: "SSM", sourceNode: "src", source: netip.MustParseAddr("10.0.1.2"), ssm: true,
		probe:    netip.MustParseAddr("232.1.0.1"),
		trials:   netip.MustParseAddr("232.1.1.1"),
		rpfGroup: netip.MustParseAddr("232.1.1.1"),
		many:     netip.MustParseAddr("232.2.0.0"),
	}
	// On the chain src2 sends ASM from the RP's own LAN, so the shared tree is the
	// whole path and no register is needed.
	chainASM = mode{
		name: "ASM", sourceNode: "src2", source: netip.MustParseAddr("10.0.2.2"),
		probe:  netip.MustParseAddr("239.1.0.1"),
		trials: netip.MustParseAddr("239.1.1.1"),
		many:   netip.MustParseAddr("239.2.0.0"),
	}
	// On the diamond src sends ASM too: its router r1 is the RP.
	diamondASM = mode{
		name: "ASM", sourceNode: "src", source: netip.MustParseAddr("10.0.1.2"),
		probe:    netip.MustParseAddr("239.1.0.1"),
		rpfGroup: netip.MustParseAddr("239.1.1.1"),
	}
	// On the chain src sends ASM to groups of its own for the source starts: behind r1,
	// away from the RP, its first packets reach the RP in Registers.
	registerASM = mode{
		name: "ASM", sourceNode: "src", source: netip.MustParseAddr("10.0.1.2"),
		sources: netip.MustParseAddr("239.3.1.1"),
	}
	// On the assert network src, behind r1, is the only source.
	assertASM = mode{
		name: "ASM", sourceNode: "src", source: netip.MustParseAddr("10.0.1.2"),
		probe:   netip.MustParseAddr("239.1.0.1"),
		sources: netip.MustParseAddr("239.4.1.1"),
	}
	asmRange = netip.MustParsePrefix("239.0.0.0/8") // the RP's groups
)

// network is a topology file made ready for any router: the nodes whose image names
// mrouterd are the routers, and get a plain image so that the lab starts nothing on
// them; the benchmark starts the router under test there instead. A node that is not
// a router but has several links is a switch: the routers on it share a LAN.
type network struct {
	name    string
	topo    *lab.Topology
	routers []string            // in file order
	ifaces  map[string][]string // each router's interfaces, sorted
	hostIfs map[string][]string // the ones towards hosts, where receivers may be
	rp      netip.Addr
	modes   []mode
	// The RP's router and its interface towards the receiver, where it holds the
	// receiver's (*,G) join.
	rpNode, rpDown string
	// The routers' interfaces onto the receiver's router's LAN, if it has one.
	lan []lab.Endpoint
}

// loadNetwork loads a topology for a network whose RP is rp.
func loadNetwork(name, path string, rp netip.Addr, modes ...mode) (*network, error) {
	topo, err := lab.Load(path)
	if err != nil {
		return nil, err
	}
	n := &network{name: name, topo: topo, ifaces: map[string][]string{}, hostIfs: map[string][]string{}, rp: rp, modes: modes}
	for _, node := range topo.NodeOrder {
		if topo.Nodes[node].Daemon() {
			n.routers = append(n.routers, node)
			topo.Nodes[node].Image = "alpine:3"
		}
	}
	isRouter := func(node string) bool { return slices.Contains(n.routers, node) }
	links := map[string]int{}
	for _, link := range topo.Links {
		links[link.A.Node]++
		links[link.B.Node]++
	}
	for _, link := range topo.Links {
		for _, ends := range [][2]lab.Endpoint{{link.A, link.B}, {link.B, link.A}} {
			if here, there := ends[0], ends[1]; isRouter(here.Node) {
				n.ifaces[here.Node] = append(n.ifaces[here.Node], here.Iface)
				if !isRouter(there.Node) && links[there.Node] == 1 {
					n.hostIfs[here.Node] = append(n.hostIfs[here.Node], here.Iface)
				}
			}
		}
	}
	for _, node := range n.routers {
		slices.Sort(n.ifaces[node])
	}
	if len(n.routers) == 0 {
		return nil, fmt.Errorf("%s: no node runs mrouterd, so none is a router to compare", path)
	}
	if _, ok := topo.Nodes[receiverNode]; !ok {
		return nil, fmt.Errorf("%s: no receiver host %q", path, receiverNode)
	}
	return n, nil
}
