// Command igmp compares how fast IGMP membership turns into forwarding on one router
// running mrouterd, FRR's pimd or troglobit's pimd, one after the other, each on a
// fresh lab of test/topologies/bench-igmp.clab.yml: join to first packet, leave to
// last packet, and many groups joined at once. The receiver is Linux's own IGMPv3
// stack. It needs root, mrouterd and mcast in -bin, and the peers of
// test/peers/install.sh; a router that cannot run shows why in its column.
//
//	go run ./test/bench/igmp [-trials 10] [-groups 10000] [-routers mrouterd,frr,pimd]
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mrouterd/mrouterd/test/bench/internal/benchlab"
	"github.com/mrouterd/mrouterd/test/lab"
	"github.com/mrouterd/mrouterd/test/peers"
)

func main() {
	trials := flag.Int("trials", 10, "joins and leaves per router, each on a group of its own")
	groups := flag.Int("groups", 10000, "groups the receiver joins at once")
	routers := flag.String("routers", "mrouterd,frr,pimd", "routers to compare, in order")
	binDir := flag.String("bin", "bin", "directory holding mrouterd and mcast (make build)")
	topoPath := flag.String("topology", "test/topologies/bench-igmp.clab.yml", "topology file")
	flag.Parse()
	go benchlab.TearDownOnSignal()
	if err := run(*trials, *groups, *routers, *binDir, *topoPath); err != nil {
		fmt.Fprintln(os.Stderr, "igmp:", err)
		os.Exit(1)
	}
}

func run(trials, groups int, names, binDir, topoPath string) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it builds a lab of network namespaces and runs multicast routers in it")
	}
	if trials < 1 || trials > 200 {
		return fmt.Errorf("-trials %d: want 1 to 200", trials)
	}
	if groups < 1 || groups > maxManySize {
		return fmt.Errorf("-groups %d: want 1 to %d", groups, maxManySize)
	}
	bin, err := filepath.Abs(binDir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(bin, "mcast")); err != nil {
		return fmt.Errorf("no mcast in %s: run make build, or give -bin", bin)
	}
	topo, err := lab.Load(topoPath)
	if err != nil {
		return err
	}
	var list []router
	for _, name := range strings.Split(names, ",") {
		switch strings.TrimSpace(name) {
		case "mrouterd":
			list = append(list, &mrouterd{binDir: bin})
		case "frr":
			list = append(list, &frr{})
		case "pimd":
			list = append(list, &pimd{})
		default:
			return fmt.Errorf("-routers: unknown router %q (want mrouterd, frr, pimd)", name)
		}
	}

	printHeader(topoPath, trials, groups)
	var results []*result
	for _, r := range list {
		benchlab.Logf("measuring %s", r.name())
		results = append(results, measure(topo, bin, r, trials, groups))
	}
	printResults(results, trials, groups)
	return nil
}

// result is what was measured of one router; err set means it never got going.
type result struct {
	name, timers  string
	err           error
	startup       time.Duration
	trials        []trial
	many          many
	stateInterval time.Duration // how often the router's state was read
	took          time.Duration
}

// measure runs every scenario against r on a lab of its own.
func measure(topo *lab.Topology, bin string, r router, trials, groups int) *result {
	res := &result{name: r.name(), timers: r.timers(), stateInterval: r.stateInterval()}
	began := time.Now()
	defer func() { res.took = time.Since(began) }()
	if err := available(r, bin); err != nil {
		res.err = err
		return res
	}
	l, err := benchlab.Up(topo, bin)
	if err != nil {
		res.err = err
		return res
	}
	defer benchlab.Down(l)
	c, err := benchlab.StartCapture(l, receiverNode, hostIfname)
	if err != nil {
		res.err = err
		return res
	}
	defer c.Close()

	started := time.Now()
	if err := r.start(l); err != nil {
		res.err = err
		return res
	}
	defer func() {
		if err := r.stop(l); err != nil {
			benchlab.Logf("stop %s: %v", res.name, err)
		}
	}()
	if res.startup, res.err = firstForward(l, c, started); res.err != nil {
		return res
	}
	res.trials = runTrials(l, c, trials)
	res.many = joinMany(l, c, r, groups)
	return res
}

// available says why r cannot run here, if it cannot.
func available(r router, bin string) error {
	switch r.(type) {
	case *mrouterd:
		return benchlab.CheckMrouterd(bin)
	case *frr:
		return peers.CheckFRR()
	case *pimd:
		return peers.CheckPimd()
	}
	return nil
}

func printHeader(topoPath string, trials, groups int) {
	fmt.Printf("IGMP benchmark: %d joins and leaves, %d groups at once, per router\n", trials, groups)
	benchlab.PrintCommand()
	fmt.Printf("topology: %s: src 10.0.1.2 -- eth1 r1 eth2 -- rcv 10.0.2.2, a fresh lab per router\n", topoPath)
	fmt.Printf("traffic:  %d pps, TTL %d, from src; rcv joins with Linux's own IGMPv3 stack\n\n", ratePPS, sendTTL)
}
