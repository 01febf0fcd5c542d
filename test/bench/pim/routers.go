package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/mrouterd/mrouterd/test/bench/internal/benchlab"
	"github.com/mrouterd/mrouterd/test/lab"
	"github.com/mrouterd/mrouterd/test/peers"
)

// router is one implementation under test, run on every router node of a lab.
type router interface {
	start(l *lab.Lab, n *network) error
	// memory returns the resident set size of each of its processes on node.
	memory(l *lab.Lab, node string) ([]benchlab.ProcessMemory, error)
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
// is its default SSM range; IGMP (version 3 by default) runs towards the hosts.
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

// pimd is troglobit's pimd, on every interface of the router with IGMPv3, the default.
// Its hello interval cannot go below 30 s, and it asks the kernel for route changes
// only every 20 s. pimd 2.3.2 puts every pending join into one Join/Prune message and
// cannot send one longer than the link's MTU ("Message too long" in its log), so a
// receiver that joins a few hundred groups at once gets none of them.
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
