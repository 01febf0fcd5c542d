package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/mrouterd/mrouterd/router/api"
	"github.com/mrouterd/mrouterd/test/bench/internal/benchlab"
	"github.com/mrouterd/mrouterd/test/lab"
	"github.com/mrouterd/mrouterd/test/peers"
)

// router is one implementation under test, run on every router node of a lab.
type router interface {
	start(l *lab.Lab, n *network) error
	// memory returns the resident set size of each of its processes on node.
	memory(l *lab.Lab, node string) ([]benchlab.ProcessMemory, error)
	// holdsJoin reports whether the router on node holds a (*,G) join of group from
	// its interface ifname; true when the router cannot be asked.
	holdsJoin(l *lab.Lab, node, ifname string, group netip.Addr) (bool, error)
	// asserts says, per group, what the router on node holds of the assert of
	// (source, group) on ifname, in a few words.
	asserts(l *lab.Lab, node, ifname string, source netip.Addr, groups []netip.Addr) (map[netip.Addr]string, error)
	stop(l *lab.Lab) error
}

// implementation is a router to compare: its column heading, the timers it runs, and
// how to make an instance of it for one lab.
type implementation struct {
	kind      string // as -routers names it
	name      string
	timers    string
	available func() error
	instance  func() router
}

func implementations(bin string) map[string]implementation {
	return map[string]implementation{
		"mrouterd": {
			kind: "mrouterd", name: benchlab.MrouterdName(bin), timers: "hello 1s, join/prune 60s",
			available: func() error { return benchlab.CheckMrouterd(bin) },
			instance:  func() router { return &mrouterd{} },
		},
		"frr": {
			kind: "frr", name: benchlab.FRRName(), timers: "hello 1s, join/prune 60s",
			available: peers.CheckFRR,
			instance:  func() router { return &frr{peerRouter{daemons: []string{"pimd", "zebra"}}} },
		},
		"pimd": {
			kind: "pimd", name: benchlab.PimdName(), timers: "hello 30s (its least), join/prune 60s",
			available: peers.CheckPimd,
			instance:  func() router { return &pimd{peerRouter{daemons: []string{"pimd"}}} },
		},
	}
}

// onRouters runs fn for every router node of n at once and joins the errors.
func onRouters(n *network, fn func(node string) error) error {
	errs := make([]error, len(n.routers))
	var wg sync.WaitGroup
	for i, node := range n.routers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(node)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// mrouterd is the daemon under test. Every eth interface runs IGMP and PIM by
// default, and 232.0.0.0/8 is its SSM range.
type mrouterd struct {
	nodes []string
}

func mrouterdConfig(rp string) string {
	return fmt.Sprintf(`[pim]
hello-interval = "1s"

[[pim.rp]]
address = %q
groups = [%q]
`, rp, asmRange)
}

func (m *mrouterd) start(l *lab.Lab, n *network) error {
	m.nodes = n.routers
	return onRouters(n, func(node string) error {
		return benchlab.StartMrouterd(l, node, mrouterdConfig(n.rp.String()))
	})
}

func (m *mrouterd) memory(l *lab.Lab, node string) ([]benchlab.ProcessMemory, error) {
	return benchlab.MrouterdMemory(l, node)
}

// joins reads node's PIM join state from its control API.
func (m *mrouterd) joins(l *lab.Lab, node string) ([]api.PIMJoin, error) {
	body, err := l.APIGet(node, api.PathPIMJoins)
	if err != nil {
		return nil, err
	}
	var joins api.PIMJoins
	if err := json.Unmarshal(body, &joins); err != nil {
		return nil, fmt.Errorf("%s: %s: %v", node, api.PathPIMJoins, err)
	}
	return joins.Joins, nil
}

func (m *mrouterd) holdsJoin(l *lab.Lab, node, ifname string, group netip.Addr) (bool, error) {
	joins, err := m.joins(l, node)
	for _, j := range joins {
		if j.Source == "*" && j.Group == group.String() {
			for _, ds := range j.Downstream {
				if ds.Interface == ifname && ds.State == "join" {
					return true, nil
				}
			}
		}
	}
	return false, err
}

func (m *mrouterd) asserts(l *lab.Lab, node, ifname string, source netip.Addr, groups []netip.Addr) (map[netip.Addr]string, error) {
	joins, err := m.joins(l, node)
	if err != nil {
		return nil, err
	}
	states := map[netip.Addr]string{}
	for _, g := range groups {
		states[g] = "none"
		for _, j := range joins {
			if j.Source != source.String() || j.Group != g.String() {
				continue
			}
			for _, a := range j.Asserts {
				switch {
				case a.Interface != ifname:
				case a.WeWin:
					states[g] = "won"
				default:
					states[g] = "lost to " + a.Winner
				}
			}
		}
	}
	return states, nil
}

func (m *mrouterd) stop(l *lab.Lab) error {
	var errs []error
	for _, node := range m.nodes {
		if _, running := l.DaemonPID(node); running {
			errs = append(errs, l.StopDaemon(node, syscall.SIGTERM))
		}
	}
	return errors.Join(errs...)
}

// peerRouter is a reference router: a process of test/peers per router node.
type peerRouter struct {
	daemons []string // whose memory counts, in order
	mu      sync.Mutex
	procs   map[string]*peers.Process
}

// startAll starts a peer on every router node with the configuration config makes.
func (p *peerRouter) startAll(l *lab.Lab, n *network, start func(*lab.Lab, string, string) (*peers.Process, error), config func(node string) string) error {
	p.procs = map[string]*peers.Process{}
	return onRouters(n, func(node string) error {
		proc, err := start(l, node, config(node))
		if err == nil {
			p.mu.Lock()
			p.procs[node] = proc
			p.mu.Unlock()
		}
		return err
	})
}

func (p *peerRouter) stop(*lab.Lab) error {
	var errs []error
	for _, proc := range p.procs {
		errs = append(errs, proc.Stop())
	}
	return errors.Join(errs...)
}

func (p *peerRouter) memory(_ *lab.Lab, node string) ([]benchlab.ProcessMemory, error) {
	proc := p.procs[node]
	if proc == nil {
		return nil, fmt.Errorf("nothing runs on %s", node)
	}
	return benchlab.PeerMemory(proc, p.daemons...)
}

// frr is FRR's pimd with zebra, which hands it the kernel's static routes. 232.0.0.0/8
// is its default SSM range; IGMP (version 3 by default) runs towards the hosts. As RP,
// FRR 8.4 installs a new source's (S,G) from the source's side at its first Register,
// so its kernel drops what it takes out of the Registers for arriving on the wrong
// interface: the source's first datagram is lost, the next come natively. On the
// assert LAN it gets the kernel's WRONGVIF upcalls on ra and rb but sends no assert
// (its log: "interface eth2 is not downstream for channel"), and rc never sets the
// SPT bit of the source's (S,G), so it never prunes the source off the RP's tree:
// both forward onto the LAN for as long as the source sends.
type frr struct{ peerRouter }

func frrConfig(n *network, node string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ip pim rp %s %s\n!\n", n.rp, asmRange)
	for _, ifname := range n.ifaces[node] {
		fmt.Fprintf(&b, "interface %s\n ip pim\n ip pim hello 1\n", ifname)
		if slices.Contains(n.hostIfs[node], ifname) {
			b.WriteString(" ip igmp\n")
		}
		b.WriteString("!\n")
	}
	return b.String()
}

func (f *frr) start(l *lab.Lab, n *network) error {
	return f.startAll(l, n, peers.StartFRR, func(node string) string { return frrConfig(n, node) })
}

// holdsJoin looks for the join in "show ip pim join", a line per interface and entry:
// interface, its address, source, group, state, timers.
func (f *frr) holdsJoin(l *lab.Lab, node, ifname string, group netip.Addr) (bool, error) {
	out, err := peers.FRRVtysh(l, node, "show ip pim join")
	if err != nil {
		return false, err
	}
	for _, f := range frrRows(out, ifname, "*", group) {
		if f[4] == "JOIN" {
			return true, nil
		}
	}
	return false, nil
}

// frrRows returns the fields of the lines of an FRR table of (S,G) state per
// interface that are about (source, group) on ifname: interface, its address, source,
// group, state, and more.
func frrRows(out, ifname, source string, group netip.Addr) [][]string {
	var rows [][]string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 5 && f[0] == ifname && f[2] == source && f[3] == group.String() {
			rows = append(rows, f)
		}
	}
	return rows
}

// asserts reads "show ip pim assert", a line per interface and (S,G): interface, its
// address, source, group, state (NOINFO, WINNER or LOSER), winner, timers.
func (f *frr) asserts(l *lab.Lab, node, ifname string, source netip.Addr, groups []netip.Addr) (map[netip.Addr]string, error) {
	out, err := peers.FRRVtysh(l, node, "show ip pim assert")
	if err != nil {
		return nil, err
	}
	return frrAsserts(out, ifname, source, groups), nil
}

// frrAsserts reads the assert state of (source, g) on ifname for each of groups from
// "show ip pim assert".
func frrAsserts(out, ifname string, source netip.Addr, groups []netip.Addr) map[netip.Addr]string {
	states := map[netip.Addr]string{}
	for _, g := range groups {
		states[g] = "none"
		for _, f := range frrRows(out, ifname, source.String(), g) {
			switch {
			case f[4] == "WINNER":
				states[g] = "won"
			case f[4] == "LOSER" && len(f) > 5:
				states[g] = "lost to " + f[5]
			default:
				states[g] = strings.ToLower(f[4])
			}
		}
	}
	return states
}

// pimd is troglobit's pimd, on every interface of the router with IGMPv3, the default.
// Its hello interval cannot go below 30 s, and it asks the kernel for route changes
// only every 20 s. pimd 2.3.2 puts every pending join into one Join/Prune message and
// cannot send one longer than the link's MTU ("Message too long" in its log), so a
// receiver that joins a few hundred groups at once gets none of them. Its RP takes a
// new source's datagrams out of Registers until it joins the source, on a timer tick
// of its own up to 5 s later; its first-hop router builds the Registers from what veth
// hands up, UDP checksum unfinished, so the receiver's kernel drops all that came
// through them. Its last-hop router leaves the RP's tree only at its spt-threshold
// check, every 100 s by default: on the assert LAN only the RP forwards.
type pimd struct{ peerRouter }

func pimdConfig(n *network, node string) string {
	var b strings.Builder
	for _, ifname := range n.ifaces[node] {
		fmt.Fprintf(&b, "phyint %s enable\n", ifname)
	}
	fmt.Fprintf(&b, "rp-address %s %s\n", n.rp, asmRange)
	return b.String()
}

func (p *pimd) start(l *lab.Lab, n *network) error {
	return p.startAll(l, n, peers.StartPimd, func(node string) string { return pimdConfig(n, node) })
}

// holdsJoin cannot ask pimd: its only way to tell is a dump, and dumps asked for often
// stall its timers (see peers.PimdDumpInterval).
func (p *pimd) holdsJoin(*lab.Lab, string, string, netip.Addr) (bool, error) { return true, nil }

func (p *pimd) asserts(l *lab.Lab, node, ifname string, source netip.Addr, groups []netip.Addr) (map[netip.Addr]string, error) {
	dump, err := peers.PimdDump(l, node)
	if err != nil {
		return nil, err
	}
	return pimdAsserts(dump, source, groups), nil
}

// pimdAsserts reads the assert state of (source, g) for each of groups from a pimd
// dump. Its routing table gives each entry a line with the source, group, RP and
// flags, then a line per set of interfaces: "Asserted oifs:" marks, by VIF, those
// where the entry lost an assert; the ASSERTED flag says that the upstream neighbour
// is an assert winner.
func pimdAsserts(dump string, source netip.Addr, groups []netip.Addr) map[netip.Addr]string {
	states := map[netip.Addr]string{}
	for _, g := range groups {
		states[g] = "none"
	}
	lines := strings.Split(dump, "\n")
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != source.String() {
			continue
		}
		g, err := netip.ParseAddr(f[1])
		if _, ok := states[g]; err != nil || !ok {
			continue
		}
		if slices.Contains(f[3:], "ASSERTED") {
			states[g] = "upstream is an assert winner"
		}
		for _, next := range lines[i+1 : min(i+8, len(lines))] {
			if marks, ok := strings.CutPrefix(next, "Asserted oifs:"); ok && strings.Trim(strings.TrimSpace(marks), ".") != "" {
				states[g] = "lost"
			}
		}
	}
	return states
}
