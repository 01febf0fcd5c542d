package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mrouterd/mrouterd/test/lab"
	"github.com/mrouterd/mrouterd/test/peers"
)

// frrConfig is FRR's frr.conf for a router of the tree tests: PIM with 1 s hellos on
// pimIfs, IGMP on igmpIfs, rp as the RP for 239.0.0.0/8 (FRR routes no ASM group
// without an RP, not even between its own interfaces) and the tree tests' 10 s
// join/prune interval. zebra hands pimd the topology's static routes for RPF.
func frrConfig(rp string, pimIfs, igmpIfs []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ip pim rp %s 239.0.0.0/8\nip pim join-prune-interval 10\n!\n", rp)
	for _, ifname := range pimIfs {
		fmt.Fprintf(&b, "interface %s\n ip pim\n ip pim hello 1\n", ifname)
		if slices.Contains(igmpIfs, ifname) {
			b.WriteString(" ip igmp\n")
		}
		b.WriteString("!\n")
	}
	return b.String()
}

// startFRR starts FRR on node and, when t fails, logs FRR's view of the trees before
// it stops.
func startFRR(t *testing.T, l *lab.Lab, node, cfg string) {
	t.Helper()
	p, err := peers.StartFRR(l, node, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, cmd := range []string{"show ip pim neighbor", "show ip pim rp-info", "show ip pim join", "show ip pim upstream",
				"show ip mroute", "show ip igmp groups"} {
				out, err := peers.FRRVtysh(l, node, cmd)
				if err != nil {
					out += err.Error()
				}
				t.Logf("=== %s: FRR %s\n%s", node, cmd, out)
			}
			t.Logf("=== %s: FRR log\n%s", node, tailLines(p.Log(), 80))
		}
		_ = p.Stop()
	})
}

// waitFRR polls a vtysh command on node until its output holds every one of want.
func waitFRR(t *testing.T, l *lab.Lab, within time.Duration, node, cmd string, want ...string) {
	t.Helper()
	lab.WaitFor(t, within, fmt.Sprintf("%s: FRR %q listing %q", node, cmd, want), func() (bool, string) {
		out, err := peers.FRRVtysh(l, node, cmd)
		if err != nil {
			return false, err.Error()
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				return false, out
			}
		}
		return true, ""
	})
}

// hasLineWith reports whether some line of out has every one of fields among its
// whitespace-separated fields.
func hasLineWith(out string, fields ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		have := strings.Fields(line)
		ok := true
		for _, f := range fields {
			if !slices.Contains(have, f) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestPIMInteropFRRRP: FRR is the RP (r2) between mrouterd routers; mrouterd's (*,G)
// join as last-hop router reaches FRR, which forwards its local source down to it.
func TestPIMInteropFRRRP(t *testing.T) {
	peers.RequireFRR(t)
	l := chain(t, treeConfig(chainRP), "r1", "r3")
	startFRR(t, l, "r2", frrConfig(chainRP, []string{"eth1", "eth2", "eth3"}, nil))
	dumpOnFailure(t, l)
	const group = "239.1.1.1"
	waitNeighbors(t, l, 15*time.Second, "r3", "10.0.23.2")
	waitNeighbors(t, l, 15*time.Second, "r1", "10.0.12.2")
	waitFRR(t, l, 15*time.Second, "r2", "show ip pim neighbor", "10.0.23.3", "10.0.12.1")

	holdMembership(t, l, "rcv", group)
	r := startReceiver(t, l, "rcv", recvArgs(group, "-count", "1000")...)
	waitPIMRoute(t, l, 2*time.Second, "r3", "*", group, pimRoute{"eth1", []string{"eth2"}, "WC"})
	lab.WaitFor(t, 3*time.Second, "FRR on r2 holding r3's (*,G) join on eth2", func() (bool, string) {
		out, err := peers.FRRVtysh(l, "r2", "show ip pim join")
		return err == nil && hasLineWith(out, "eth2", "*", group, "JOIN"), out
	})
	streamToRcv(t, l, r, group)
	waitMFCPath(t, l, 2*time.Second, "r3", chainSource2, group, "eth1", "eth2")
}

// TestPIMInteropFRRLastHop: mrouterd is the RP (r2) and FRR the last-hop router (r3):
// FRR's (*,G) join, and its (S,G) join once it switches to the source tree (which here
// also runs through r2), make mrouterd forward toward it.
func TestPIMInteropFRRLastHop(t *testing.T) {
	peers.RequireFRR(t)
	l := chain(t, treeConfig(chainRP), "r1", "r2")
	startFRR(t, l, "r3", frrConfig(chainRP, []string{"eth1", "eth2"}, []string{"eth2"}))
	dumpOnFailure(t, l)
	const group = "239.1.1.1"
	waitNeighbors(t, l, 15*time.Second, "r2", "10.0.23.3", "10.0.12.1")
	waitFRR(t, l, 15*time.Second, "r3", "show ip pim neighbor", "10.0.23.2")

	holdMembership(t, l, "rcv", group)
	r := startReceiver(t, l, "rcv", recvArgs(group, "-count", "1000")...)
	waitFRR(t, l, 3*time.Second, "r3", "show ip igmp groups", group)
	waitPIMRoute(t, l, 3*time.Second, "r2", "*", group, pimRoute{"", []string{"eth2"}, "WC"})
	streamToRcv(t, l, r, group)
	waitMFCPath(t, l, 2*time.Second, "r2", chainSource2, group, "eth3", "eth2")
}

// TestPIMInteropPimdLastHop: troglobit's pimd is the last-hop router (r3) under
// mrouterd as RP (r2); pimd's (*,G) join makes mrouterd forward toward it.
//
// pimd 2.3 ages its timers in 5 s ticks, so it drops a neighbour whose holdtime is
// shorter (1 s hellos give 3.5 s) at every tick, and a (*,G) made while its upstream
// neighbour is gone never sends a join: mrouterd says hello every 10 s here. pimd also
// takes its static RP into use only some 15 s after start and builds the (*,G) of a
// member at the member's next report, hence its short query interval.
func TestPIMInteropPimdLastHop(t *testing.T) {
	peers.RequirePimd(t)
	cfg := strings.Replace(treeConfig(chainRP), `hello-interval = "1s"`, `hello-interval = "10s"`, 1)
	l := chain(t, cfg, "r1", "r2")
	// pimd 2.3 wants the phyint lines before the other settings.
	p, err := peers.StartPimd(l, "r3", "phyint eth1 enable\nphyint eth2 enable\n"+
		"igmp-query-interval 2\nigmp-querier-timeout 11\n"+
		"rp-address "+chainRP+" 239.0.0.0/8\nspt-threshold infinity\n")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dump, err := peers.PimdDump(l, "r3")
			if err != nil {
				dump += err.Error()
			}
			t.Logf("=== r3: pimd dump\n%s", dump)
			t.Logf("=== r3: pimd log\n%s", tailLines(p.Log(), 80))
		}
		_ = p.Stop()
	})
	dumpOnFailure(t, l)
	started := time.Now()
	const group = "239.1.1.1"
	waitNeighbors(t, l, 15*time.Second, "r2", "10.0.23.3")

	holdMembership(t, l, "rcv", group)
	r := startReceiver(t, l, "rcv", recvArgs(group, "-count", "1000")...)
	waitPIMRoute(t, l, 60*time.Second, "r2", "*", group, pimRoute{"", []string{"eth2"}, "WC"})
	t.Logf("pimd's join reached mrouterd %v after pimd started", time.Since(started).Round(time.Second))
	streamToRcv(t, l, r, group)
	waitMFCPath(t, l, 2*time.Second, "r2", chainSource2, group, "eth3", "eth2")
	// Its virtual interface table names the neighbours on each interface.
	lab.WaitFor(t, 15*time.Second, "pimd listing mrouterd (10.0.23.2) as neighbour on eth1", func() (bool, string) {
		dump, err := peers.PimdDump(l, "r3")
		return err == nil && hasLineWith(dump, "10.0.23.3", "10.0.23.2"), dump
	})
}
