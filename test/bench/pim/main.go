// Command pim compares PIM-SM between routers running mrouterd, FRR's pimd or
// troglobit's pimd, one implementation after the other, each on fresh labs of the
// same two topologies: test/topologies/pim-chain.clab.yml (three routers, the RP in
// the middle) and test/topologies/pim-diamond.clab.yml (two paths between the source's
// and the receiver's router). It measures join to first packet across three routers,
// for SSM and through the RP's shared tree; the gap in a stream when the receiver's
// router loses its link on the preferred path; and a thousand groups joined at once
// across the chain, with the routers' memory. The receiver is Linux's own IGMPv3
// stack. It needs root, mrouterd and mcast in -bin, and the peers of
// test/peers/install.sh; a router that cannot run, or a measurement that fails, shows
// why in its cell and the rest carries on.
//
//	go run ./test/bench/pim -bin bin [-trials 5] [-rpf-runs 3] [-groups 1000]
//	                        [-routers mrouterd,frr,pimd]
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mrouterd/mrouterd/test/bench/internal/benchlab"
	"github.com/mrouterd/mrouterd/test/mcast"
)

// options are the flags that size the measurements.
type options struct {
	trials, rpfRuns, groups int
}

func main() {
	var o options
	flag.IntVar(&o.trials, "trials", 5, "joins per router and mode, each on a fresh group")
	flag.IntVar(&o.rpfRuns, "rpf-runs", 3, "link failures on the diamond per router and mode")
	flag.IntVar(&o.groups, "groups", 1000, "groups the receiver joins at once across the chain, per mode")
	routers := flag.String("routers", "mrouterd,frr,pimd", "routers to compare, in order")
	binDir := flag.String("bin", "bin", "directory holding mrouterd and mcast (make build)")
	chainPath := flag.String("chain", "test/topologies/pim-chain.clab.yml", "chain topology file")
	diamondPath := flag.String("diamond", "test/topologies/pim-diamond.clab.yml", "diamond topology file")
	flag.Parse()
	go benchlab.TearDownOnSignal()
	if err := run(o, *routers, *binDir, *chainPath, *diamondPath); err != nil {
		fmt.Fprintln(os.Stderr, "pim:", err)
		os.Exit(1)
	}
}

func run(o options, names, binDir, chainPath, diamondPath string) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it builds labs of network namespaces and runs multicast routers in them")
	}
	if o.trials < 1 || o.trials > 100 {
		return fmt.Errorf("-trials %d: want 1 to 100", o.trials)
	}
	if o.rpfRuns < 1 || o.rpfRuns > 50 {
		return fmt.Errorf("-rpf-runs %d: want 1 to 50", o.rpfRuns)
	}
	if o.groups < 1 || o.groups > 65536 {
		return fmt.Errorf("-groups %d: want 1 to 65536", o.groups)
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
	chain, err := loadNetwork("chain", chainPath, netip.MustParseAddr("10.0.2.1"), ssmMode, chainASM)
	if err != nil {
		return err
	}
	diamond, err := loadNetwork("diamond", diamondPath, netip.MustParseAddr("10.0.1.1"), ssmMode, diamondASM)
	if err != nil {
		return err
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

	printHeader(o, chainPath, diamondPath)
	var results []*result
	for _, impl := range list {
		benchlab.Logf("measuring %s", impl.name)
		results = append(results, measure(chain, diamond, impl, bin, o))
	}
	printResults(results, o)
	return nil
}

// result is what was measured of one implementation.
type result struct {
	impl           implementation
	err            error // set when it never got going
	chain, diamond map[string]readiness
	joins          map[string][]trial  // per mode, on the chain
	rpf            map[string][]rpfRun // per mode, on the diamond
	many           map[string]*many
	memory         memoryFigures
	took           time.Duration
}

// measure runs every scenario against impl: the chain and the diamond are deployed
// and started together, so that slow starters warm up on both at once, then measured
// one after the other.
func measure(chain, diamond *network, impl implementation, bin string, o options) *result {
	res := &result{impl: impl, joins: map[string][]trial{}, many: map[string]*many{}}
	began := time.Now()
	defer func() { res.took = time.Since(began) }()
	if res.err = impl.available(); res.err != nil {
		return res
	}
	var c, d *deployment
	var cerr, derr error
	both(func() { c, cerr = deploy(chain, impl, bin) }, func() { d, derr = deploy(diamond, impl, bin) })
	defer both(c.undeploy, d.undeploy)
	if res.err = errors.Join(cerr, derr); res.err != nil {
		return res
	}
	both(c.probe, d.probe)
	res.chain, res.diamond = c.ready, d.ready

	for _, m := range chain.modes {
		res.joins[m.name] = c.joinTrials(m, o.trials)
	}
	res.memory.idle = c.memory()
	var joined []*benchlab.Joined
	for _, m := range chain.modes {
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
	res.rpf = d.rpfChanges(o.rpfRuns)
	return res
}

// both runs f and g at once and returns when both have.
func both(f, g func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	g()
	<-done
}

func printHeader(o options, chainPath, diamondPath string) {
	fmt.Printf("PIM-SM benchmark: %d joins per mode, %d link failures per mode, %d groups at once, per router\n",
		o.trials, o.rpfRuns, o.groups)
	benchlab.PrintCommand()
	fmt.Printf("chain:    %s: src -- r1 -- r2 (RP 10.0.2.1, src2) -- r3 -- rcv\n", chainPath)
	fmt.Printf("diamond:  %s: src -- r1 (RP 10.0.1.1) -- r2 or r3 -- r4 -- rcv\n", diamondPath)
	fmt.Printf("traffic:  %d pps per group, TTL %d; rcv joins with Linux's own IGMPv3 stack\n", ratePPS, sendTTL)
	fmt.Printf("SSM:      src 10.0.1.2 to 232.0.0.0/8, rcv joins (S,G)\n")
	fmt.Printf("ASM:      to %v through the RP, rcv joins (*,G); on the chain from src2 10.0.2.2, on the RP's LAN\n\n", asmRange)
}
