// Command pim compares PIM-SM between routers running mrouterd, FRR's pimd or
// troglobit's pimd, one implementation after the other, each on fresh labs of the
// same three topologies: test/topologies/pim-chain.clab.yml (three routers, the RP in
// the middle), test/topologies/pim-diamond.clab.yml (two paths between the source's
// and the receiver's router) and test/topologies/pim-assert.clab.yml (two routers
// that may both forward onto the receiver's router's LAN). It measures join to first
// packet across three routers, for SSM and through the RP's shared tree; a new source
// behind the first-hop router, its first packets through the register tunnel and the
// switches to the source's tree; the gap in a stream when the receiver's router loses
// its link on the preferred path; a thousand groups joined at once across the chain,
// with the routers' memory; and the duplicates on a LAN until an assert settles them.
// The receiver is Linux's own IGMPv3 stack. It needs root, mrouterd and mcast in -bin,
// and the peers of test/peers/install.sh; a router that cannot run, or a measurement
// that fails, shows why in its cell and the rest carries on.
//
//	go run ./test/bench/pim -bin bin [-trials 5] [-sources 3] [-rpf-runs 3]
//	                        [-groups 1000] [-asserts 3] [-routers mrouterd,frr,pimd]
//	                        [-measure joins,sources,groups,rpf,asserts]
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mrouterd/mrouterd/test/bench/internal/benchlab"
	"github.com/mrouterd/mrouterd/test/lab"
	"github.com/mrouterd/mrouterd/test/mcast"
)

// The measurements -measure chooses from.
const (
	measureJoins   = "joins"   // join to first packet on the chain
	measureSources = "sources" // source starts through the register tunnel on the chain
	measureGroups  = "groups"  // many groups at once on the chain, and memory
	measureRPF     = "rpf"     // link failures on the diamond
	measureAsserts = "asserts" // source starts onto the assert LAN
)

var allMeasurements = []string{measureJoins, measureSources, measureGroups, measureRPF, measureAsserts}

// options are the flags that choose and size the measurements.
type options struct {
	trials, sources, rpfRuns, groups, asserts int
	measure                                   map[string]bool
}

func main() {
	var o options
	flag.IntVar(&o.trials, "trials", 5, "joins per router and mode, each on a fresh group")
	flag.IntVar(&o.sources, "sources", 3, "source starts on the chain per router, each to a fresh group")
	flag.IntVar(&o.rpfRuns, "rpf-runs", 3, "link failures on the diamond per router and mode")
	flag.IntVar(&o.groups, "groups", 1000, "groups the receiver joins at once across the chain, per mode")
	flag.IntVar(&o.asserts, "asserts", 3, "source starts onto the assert LAN per router, each to a fresh group")
	measure := flag.String("measure", strings.Join(allMeasurements, ","), "measurements to make")
	routers := flag.String("routers", "mrouterd,frr,pimd", "routers to compare, in order")
	binDir := flag.String("bin", "bin", "directory holding mrouterd and mcast (make build)")
	chainPath := flag.String("chain", "test/topologies/pim-chain.clab.yml", "chain topology file")
	diamondPath := flag.String("diamond", "test/topologies/pim-diamond.clab.yml", "diamond topology file")
	assertPath := flag.String("assert", "test/topologies/pim-assert.clab.yml", "assert topology file")
	flag.Parse()
	o.measure = map[string]bool{}
	for _, name := range strings.Split(*measure, ",") {
		if name = strings.TrimSpace(name); !slices.Contains(allMeasurements, name) {
			fmt.Fprintf(os.Stderr, "pim: -measure: unknown measurement %q (want some of %s)\n", name, strings.Join(allMeasurements, ", "))
			os.Exit(2)
		}
		o.measure[name] = true
	}
	go benchlab.TearDownOnSignal()
	if err := run(o, *routers, *binDir, *chainPath, *diamondPath, *assertPath); err != nil {
		fmt.Fprintln(os.Stderr, "pim:", err)
		os.Exit(1)
	}
}

func run(o options, names, binDir, chainPath, diamondPath, assertPath string) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it builds labs of network namespaces and runs multicast routers in them")
	}
	for _, f := range []struct {
		name     string
		value, n int
	}{{"trials", o.trials, 100}, {"sources", o.sources, 100}, {"rpf-runs", o.rpfRuns, 50}, {"groups", o.groups, 65536}, {"asserts", o.asserts, 100}} {
		if f.value < 1 || f.value > f.n {
			return fmt.Errorf("-%s %d: want 1 to %d", f.name, f.value, f.n)
		}
	}
	for _, m := range []mode{ssmMode, chainASM} {
		if _, err := mcast.GroupRange(m.many, o.groups); err != nil {
			return fmt.Errorf("-groups %d: %v", o.groups, err)
		}
	}
	bin, err := filepath.Abs(binDir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(bin, "mcast")); err != nil {
		return fmt.Errorf("no mcast in %s: run make build, or give -bin", bin)
	}
	nets := map[string]*network{}
	for _, n := range []struct {
		name, path, rp string
		used           bool
		modes          []mode
		rpNode, rpDown string
		lan            []lab.Endpoint
	}{
		{name: "chain", path: chainPath, rp: "10.0.2.1", modes: []mode{ssmMode, chainASM}, rpNode: "r2", rpDown: "eth2",
			used: o.measure[measureJoins] || o.measure[measureSources] || o.measure[measureGroups]},
		{name: "diamond", path: diamondPath, rp: "10.0.1.1", modes: []mode{ssmMode, diamondASM}, used: o.measure[measureRPF]},
		{name: "assert", path: assertPath, rp: "10.0.12.2", modes: []mode{assertASM}, rpNode: "ra", rpDown: "eth2",
			lan: []lab.Endpoint{{Node: "ra", Iface: "eth2"}, {Node: "rb", Iface: "eth2"}}, used: o.measure[measureAsserts]},
	} {
		if !n.used {
			continue
		}
		net, err := loadNetwork(n.name, n.path, netip.MustParseAddr(n.rp), n.modes...)
		if err != nil {
			return err
		}
		net.rpNode, net.rpDown, net.lan = n.rpNode, n.rpDown, n.lan
		nets[n.name] = net
	}
	impls := implementations(bin)
	var list []implementation
	for _, name := range strings.Split(names, ",") {
		impl, ok := impls[strings.TrimSpace(name)]
		if !ok {
			return fmt.Errorf("-routers: unknown router %q (want mrouterd, frr, pimd)", name)
		}
		list = append(list, impl)
	}

	printHeader(o, nets)
	var results []*result
	for _, impl := range list {
		benchlab.Logf("measuring %s", impl.name)
		results = append(results, measure(nets, impl, bin, o))
	}
	printResults(results, o)
	return nil
}

// result is what was measured of one implementation.
type result struct {
	impl    implementation
	err     error                           // set when it never got going
	ready   map[string]map[string]readiness // per network and mode
	joins   map[string][]trial              // per mode, on the chain
	sources []sourceRun                     // on the chain
	rpf     map[string][]rpfRun             // per mode, on the diamond
	many    map[string]*many
	memory  memoryFigures
	asserts []sourceRun            // onto the assert LAN
	won     map[string]assertState // by router on the assert LAN
	took    time.Duration
}

// measure runs every scenario chosen against impl: the networks are deployed and
// started together, so that slow starters warm up on all at once, then measured one
// after the other.
func measure(nets map[string]*network, impl implementation, bin string, o options) *result {
	res := &result{impl: impl, ready: map[string]map[string]readiness{}, joins: map[string][]trial{}, many: map[string]*many{}}
	began := time.Now()
	defer func() { res.took = time.Since(began) }()
	if res.err = impl.available(); res.err != nil {
		return res
	}
	deps := map[string]*deployment{}
	errs := map[string]error{}
	var mu sync.Mutex
	all(nets, func(name string, n *network) {
		d, err := deploy(n, impl, bin)
		mu.Lock()
		deps[name], errs[name] = d, err
		mu.Unlock()
	})
	defer all(nets, func(name string, _ *network) { deps[name].undeploy() })
	for _, err := range errs {
		res.err = errors.Join(res.err, err)
	}
	if res.err != nil {
		return res
	}
	all(nets, func(name string, _ *network) { deps[name].probe() })
	for name, d := range deps {
		res.ready[name] = d.ready
	}

	if c := deps["chain"]; c != nil {
		if o.measure[measureJoins] {
			for _, m := range c.net.modes {
				res.joins[m.name] = c.joinTrials(m, o.trials)
			}
		}
		if o.measure[measureSources] {
			res.sources = c.sourceStarts(registerASM, o.sources)
		}
		if o.measure[measureGroups] {
			res.memory.idle = c.memory()
			var joined []*benchlab.Joined
			for _, m := range c.net.modes {
				mg := c.joinMany(m, o.groups)
				res.many[m.name] = mg
				joined = append(joined, mg.joined)
			}
			res.memory.loaded = c.memory()
			for _, j := range joined {
				if j != nil {
					j.Leave()
				}
			}
		}
	}
	if d := deps["diamond"]; d != nil {
		res.rpf = d.rpfChanges(o.rpfRuns)
	}
	if a := deps["assert"]; a != nil {
		res.asserts = a.sourceStarts(assertASM, o.asserts)
		res.won = a.assertStates(assertASM, o.asserts)
	}
	return res
}

// all runs fn for every network at once and returns when all have.
func all(nets map[string]*network, fn func(name string, n *network)) {
	var wg sync.WaitGroup
	for name, n := range nets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(name, n)
		}()
	}
	wg.Wait()
}

func printHeader(o options, nets map[string]*network) {
	var sizes []string
	for _, s := range []struct {
		measurement, text string
	}{
		{measureJoins, fmt.Sprintf("%d joins per mode", o.trials)},
		{measureSources, fmt.Sprintf("%d source starts", o.sources)},
		{measureRPF, fmt.Sprintf("%d link failures per mode", o.rpfRuns)},
		{measureGroups, fmt.Sprintf("%d groups at once", o.groups)},
		{measureAsserts, fmt.Sprintf("%d source starts onto a LAN", o.asserts)},
	} {
		if o.measure[s.measurement] {
			sizes = append(sizes, s.text)
		}
	}
	fmt.Printf("PIM-SM benchmark: %s, per router\n", strings.Join(sizes, ", "))
	benchlab.PrintCommand()
	if n := nets["chain"]; n != nil {
		fmt.Printf("chain:    %s: src -- r1 -- r2 (RP 10.0.2.1, src2) -- r3 -- rcv\n", n.topo.Path)
	}
	if n := nets["diamond"]; n != nil {
		fmt.Printf("diamond:  %s: src -- r1 (RP 10.0.1.1) -- r2 or r3 -- r4 -- rcv\n", n.topo.Path)
	}
	if n := nets["assert"]; n != nil {
		fmt.Printf("assert:   %s: src -- r1 -- ra (RP 10.0.12.2) and rb -- LAN -- rc -- rcv\n", n.topo.Path)
	}
	fmt.Printf("traffic:  %d pps per group, TTL %d; rcv joins with Linux's own IGMPv3 stack\n", ratePPS, sendTTL)
	fmt.Printf("SSM:      src 10.0.1.2 to 232.0.0.0/8, rcv joins (S,G)\n")
	fmt.Printf("ASM:      to %v through the RP, rcv joins (*,G); on the chain from src2 10.0.2.2, on the RP's LAN,\n", asmRange)
	fmt.Printf("          and for the source starts from src 10.0.1.2, behind r1\n\n")
}
