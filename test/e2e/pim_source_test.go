package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mrouterd/mrouterd/router/api"
	"github.com/mrouterd/mrouterd/test/lab"
	"github.com/mrouterd/mrouterd/test/mcast"
)

// The PIM-SM source tests: a source's first packets reach the RP in Registers, the
// RP and the last-hop router switch to the source's tree, the first-hop router stops
// registering when told, two routers forwarding onto one LAN settle it with an
// assert, and an RP refuses registers from where it was told not to take them.
// Streams run at 1000 packets per second over veth pairs with checksum offload on.

// The addresses of the pim-assert topology (test/topologies/pim-assert.clab.yml).
const (
	assertRP     = "10.0.12.2" // ra's eth1
	assertSource = "10.0.1.2"  // src, behind r1
)

// sourceConfig is treeConfig with more [pim] keys, e.g. `spt-switchover = "never"`.
// They go before the RP's table, which would claim them otherwise.
func sourceConfig(rp string, pimKeys ...string) string {
	keys := ""
	for _, k := range pimKeys {
		keys += k + "\n"
	}
	return strings.Replace(treeConfig(rp), "[pim]\n", "[pim]\n"+keys, 1)
}

// waitCounterAtLeast polls until node's counter reaches min and returns its value.
func waitCounterAtLeast(t *testing.T, l *lab.Lab, within time.Duration, node, name string, min uint64) uint64 {
	t.Helper()
	var n uint64
	lab.WaitFor(t, within, fmt.Sprintf("%s: counter %s >= %d", node, name, min), func() (bool, string) {
		n = counter(t, l, node, name)
		return n >= min, fmt.Sprintf("%s = %d", name, n)
	})
	return n
}

// sgRoute returns node's route for (source, group), if it has one.
func sgRoute(t *testing.T, l *lab.Lab, node, source, group string) (api.Route, bool) {
	return findRoute(routes(t, l, node), source, group)
}

// vifStats returns what node's mrouterd says of one of its interfaces: its VIF's
// packet counters among them.
func vifStats(t *testing.T, l *lab.Lab, node, ifname string) api.Interface {
	t.Helper()
	var ifs api.Interfaces
	ctl(t, l, node, &ifs, "show", "interfaces")
	for _, i := range ifs.Interfaces {
		if i.Name == ifname {
			return i
		}
	}
	t.Fatalf("%s: mrouterd knows no interface %s", node, ifname)
	return api.Interface{}
}

// sourceChain deploys the pim-chain with mrouterd on r1, r2 and r3, each with its
// config from configs or else treeConfig(chainRP), and waits for their neighbours.
func sourceChain(t *testing.T, configs map[string]string) *lab.Lab {
	t.Helper()
	all := map[string]string{}
	for _, node := range []string{"r1", "r2", "r3"} {
		all[node] = treeConfig(chainRP)
		if c, ok := configs[node]; ok {
			all[node] = c
		}
	}
	l := deploy(t, topology(t, "pim-chain", all))
	dumpOnFailure(t, l)
	waitNeighbors(t, l, 10*time.Second, "r3", "10.0.23.2")
	waitNeighbors(t, l, 10*time.Second, "r2", "10.0.12.1", "10.0.23.3")
	waitNeighbors(t, l, 10*time.Second, "r1", "10.0.12.2")
	return l
}

// joinThenBurst starts a receiver of count packets of group on rcv, waits with
// joined until its join reached the RP, then sends count packets from src at 1000
// pps. It returns what the receiver got and how many UDP datagrams rcv's kernel
// dropped meanwhile for a bad checksum.
func joinThenBurst(t *testing.T, l *lab.Lab, group string, count int, joined func()) (rep mcast.Report, csumErrors uint64) {
	t.Helper()
	before := udpCounter(t, l, "rcv", "InCsumErrors")
	holdMembership(t, l, "rcv", group)
	r := startReceiver(t, l, "rcv", recvArgs(group, "-count", fmt.Sprint(count))...)
	joined()
	send(t, l, "src", burstArgs(group, 1000, count)...)
	rep = r.report(t, 3*time.Second)
	return rep, udpCounter(t, l, "rcv", "InCsumErrors") - before
}

// rpJoined waits until the RP (r2) forwards group toward r3.
func rpJoined(t *testing.T, l *lab.Lab, group string) func() {
	return func() {
		t.Helper()
		waitPIMRoute(t, l, 2*time.Second, "r2", "*", group, pimRoute{"", []string{"eth2"}, "WC"})
	}
}

// waitNotRegistering polls until node holds (source, group) from eth1, its source's
// LAN, with the register VIF among the outgoing interfaces neither in its route nor
// in the kernel.
func waitNotRegistering(t *testing.T, l *lab.Lab, within time.Duration, node, source, group string) {
	t.Helper()
	lab.WaitFor(t, within, fmt.Sprintf("%s: (%s,%s) no longer registering", node, source, group), func() (bool, string) {
		rs, es := routes(t, l, node), mfc(t, l, node)
		rt, ok := findRoute(rs, source, group)
		e, inKernel := findMFC(es, source, group)
		return ok && inKernel && rt.IIF == "eth1" && e.IIF == "eth1" && !slices.Contains(rt.OIFs, "pimreg") && !slices.Contains(e.OIFs, "pimreg"),
			"routes:" + formatRoutes(rs) + "\nkernel MFC:" + formatMFC(es)
	})
}

// udpCounter reads one of node's kernel UDP counters (/proc/net/snmp), e.g.
// InCsumErrors: the datagrams dropped for a bad checksum.
func udpCounter(t *testing.T, l *lab.Lab, node, name string) uint64 {
	t.Helper()
	return udpStat(t, l, node, "InCsumErrors")
}

// udpStat reads one of the Udp counters of node's /proc/net/snmp.
func udpStat(t *testing.T, l *lab.Lab, node, name string) uint64 {
	t.Helper()
	var names []string
	for _, line := range strings.Split(mustExec(t, l, node, "cat", "/proc/net/snmp"), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		if i := slices.Index(names, name); i > 0 && i < len(fields) {
			n, err := strconv.ParseUint(fields[i], 10, 64)
			if err != nil {
				t.Fatalf("%s: /proc/net/snmp: %v", node, err)
			}
			return n
		}
	}
	t.Fatalf("%s: no Udp %s in /proc/net/snmp", node, name)
	return 0
}

// lostAfterFirst counts the sequence numbers missing between the lowest and the
// highest a receiver got: the gaps of a stream it joined while it ran. (A packet
// overtaken by the first to arrive is not missing.)
func lostAfterFirst(rep mcast.Report) uint64 {
	if rep.Unique == 0 {
		return 0
	}
	return rep.LastSeq - rep.LowestSeq + 1 - rep.Unique
}

// checkWholeBurst fails t unless a receiver that joined before the burst got each of
// its count packets exactly once: seq 0 to count-1, none missing (but lab.SwitchLoss),
// no duplicate (the first two may swap places while the RP resolves the route).
func checkWholeBurst(t *testing.T, rep mcast.Report, count uint64) {
	t.Helper()
	t.Logf("rcv: %d of %d, first arrival seq %d, %d lost, %d duplicates, %d reordered, largest gap %.1f ms",
		rep.Unique, count, rep.FirstSeq, rep.Lost, rep.Duplicates, rep.Reordered, rep.MaxGapMs)
	if rep.Unique+lab.SwitchLoss() < count || rep.Lost > lab.SwitchLoss() || rep.Duplicates != 0 {
		t.Errorf("rcv: %+v; want all %d packets from seq 0, none lost, no duplicates", rep.Stats, count)
	}
}

// checkDaemonsUp fails t for each node whose mrouterd is no longer running.
func checkDaemonsUp(t *testing.T, l *lab.Lab, nodes ...string) {
	t.Helper()
	for _, n := range nodes {
		if _, ok := l.DaemonPID(n); !ok {
			t.Errorf("mrouterd on %s is no longer running", n)
		}
	}
}

// TestPIMSourceRegisterToSPT: a receiver joins first; a source behind r1 then sends
// 2000 packets at 1000 pps. r1 registers the first ones to the RP (r2), r2 joins
// toward the source, switches to it once native packets arrive and tells r1 to stop;
// r3 switches to the source's tree too. The receiver gets every packet from the
// first, exactly once, across both switches. Packet 0 can only have come through the
// register tunnel (r2 learns of the source from its first Register), with veth's
// unfinished UDP checksum completed: the receiving socket counted it.
func TestPIMSourceRegisterToSPT(t *testing.T) {
	l := sourceChain(t, nil)
	const group, count = "239.1.1.1", 2000
	rep, csumErrors := joinThenBurst(t, l, group, count, rpJoined(t, l, group))
	checkWholeBurst(t, rep, count)
	if csumErrors != 0 {
		t.Errorf("rcv's kernel dropped %d UDP datagrams for a bad checksum: registered packets with veth's partial checksum", csumErrors)
	}

	// r1 registered, was told to stop, and now forwards natively only.
	sent := counter(t, l, "r1", "registers_sent")
	stops := counter(t, l, "r1", "register_stops_received")
	t.Logf("r1: %d registers sent, %d register-stops received", sent, stops)
	if sent == 0 || stops == 0 {
		t.Errorf("r1: registers_sent %d, register_stops_received %d; want both > 0", sent, stops)
	}
	waitPIMRoute(t, l, 2*time.Second, "r1", chainSource, group, pimRoute{"eth1", []string{"eth2"}, "SPT"})
	waitMFCPath(t, l, 2*time.Second, "r1", chainSource, group, "eth1", "eth2")
	if in := vifStats(t, l, "r2", "pimreg").PacketsIn; in == 0 {
		t.Errorf("r2's register VIF counted no packets in: nothing came through the register tunnel")
	}

	// r2 moved the source's traffic to its own tree and said so to r1.
	if n := counter(t, l, "r2", "spt_switches"); n == 0 {
		t.Errorf("r2: spt_switches = 0")
	}
	if n := counter(t, l, "r2", "register_stops_sent"); n == 0 {
		t.Errorf("r2: register_stops_sent = 0")
	}
	waitPIMRoute(t, l, 2*time.Second, "r2", chainSource, group, pimRoute{"eth1", []string{"eth2"}, "SPT"})
	// r3 switched too (its source's tree runs through r2 as well).
	waitPIMRoute(t, l, 2*time.Second, "r3", chainSource, group, pimRoute{"eth1", []string{"eth2"}, "SPT"})
}

// TestPIMSourceFirst: the source streams before anyone listens. r1 registers; r2, as
// RP with no receivers, says stop (no_receivers) and r1 stops. Then the receiver
// joins: r2 joins toward the source it heard of, and the stream flows to the
// receiver from its first packet on without a gap or a duplicate.
func TestPIMSourceFirst(t *testing.T) {
	l := sourceChain(t, nil)
	const group, count = "239.1.1.1", 3000

	startSender(t, l, "src", streamArgs(group, 1000)...)
	waitCounterAtLeast(t, l, 3*time.Second, "r2", "register_stop_no_receivers", 1)
	waitCounterAtLeast(t, l, 2*time.Second, "r1", "register_stops_received", 1)
	// r1 stops registering: its route leaves the register VIF, and nothing more
	// comes out of the tunnel at r2.
	waitNotRegistering(t, l, 2*time.Second, "r1", chainSource, group)
	waitRxQuiet(t, l, 2*time.Second, "r2", "pimreg", "r1 stopped registering")
	t.Logf("r1 sent %d registers before the stop", counter(t, l, "r1", "registers_sent"))
	if on, detail := forwardsTo(t, l, "r2", group, "eth2"); on {
		t.Errorf("r2 forwards toward r3 before anyone joined: %s", detail)
	}

	holdMembership(t, l, "rcv", group)
	r := startReceiver(t, l, "rcv", recvArgs(group, "-count", fmt.Sprint(count))...)
	rep := r.report(t, 6*time.Second)
	lost := lostAfterFirst(rep)
	t.Logf("rcv: first packet %.1f ms after the join; then %d packets (seq %d to %d), %d lost, %d duplicates, largest gap %.1f ms",
		rep.FirstPacketMs, rep.Unique, rep.FirstSeq, rep.LastSeq, lost, rep.Duplicates, rep.MaxGapMs)
	if rep.Unique != count || lost > lab.SwitchLoss() || rep.Duplicates != 0 {
		t.Errorf("rcv: %+v; want %d packets, none missing after the first, no duplicates", rep.Stats, count)
	}
	if rep.FirstPacketMs > 2000 {
		t.Errorf("first packet %.0f ms after the join; want the joins to go upstream at once (< 2 s)", rep.FirstPacketMs)
	}
	if maxGap := lab.Scaled(100 * time.Millisecond); rep.MaxGapMs > float64(maxGap.Milliseconds()) {
		t.Errorf("the stream stalled for %.0f ms once flowing; want < %v at %d pps", rep.MaxGapMs, maxGap, lab.Rate(1000))
	}
	waitPIMRoute(t, l, 2*time.Second, "r2", chainSource, group, pimRoute{"eth1", []string{"eth2"}, "SPT"})
	waitMFCPath(t, l, 2*time.Second, "r1", chainSource, group, "eth1", "eth2")
}

// TestPIMSourceSPTNever: with spt-switchover = "never" the last-hop router (r3) stays
// on the shared tree: it accepts the source's packets along it, never joins toward
// the source, and the receiver still gets every packet.
func TestPIMSourceSPTNever(t *testing.T) {
	l := sourceChain(t, map[string]string{"r3": sourceConfig(chainRP, `spt-switchover = "never"`)})
	const group, count = "239.1.1.1", 2000
	rep, _ := joinThenBurst(t, l, group, count, rpJoined(t, l, group))
	checkWholeBurst(t, rep, count)
	sg := waitPIMRoute(t, l, 2*time.Second, "r3", chainSource, group, pimRoute{"eth1", []string{"eth2"}, "RPT"})
	if slices.Contains(sg.Flags, "SPT") || slices.Contains(sg.Flags, "joined") {
		t.Errorf("r3 with spt-switchover = never: (%s,%s) flags %v; want the shared tree only, no (S,G) join", chainSource, group, sg.Flags)
	}
	if n := counter(t, l, "r3", "spt_switches"); n != 0 {
		t.Errorf("r3 with spt-switchover = never counted %d SPT switches", n)
	}
	// The RP itself still switches to the source's tree.
	waitPIMRoute(t, l, 2*time.Second, "r2", chainSource, group, pimRoute{"eth1", []string{"eth2"}, "SPT"})
}

// TestPIMSourceAssert: in the pim-assert topology rc switches to the source's tree
// through rb while ra, the RP, still forwards the stream down the shared tree onto
// the same LAN: both send it there until an assert leaves rb (equal metrics, higher
// address). From then on the receiver gets each packet once.
func TestPIMSourceAssert(t *testing.T) {
	cfg := treeConfig(assertRP)
	l := deploy(t, topology(t, "pim-assert", map[string]string{"r1": cfg, "ra": cfg, "rb": cfg, "rc": cfg}))
	dumpOnFailure(t, l)
	const group, count = "239.1.1.1", 2000
	waitNeighbors(t, l, 10*time.Second, "rc", "10.0.9.1", "10.0.9.2")
	waitNeighbors(t, l, 10*time.Second, "r1", "10.0.12.2", "10.0.13.3")
	waitNeighbors(t, l, 10*time.Second, "ra", "10.0.12.1", "10.0.9.2", "10.0.9.3")
	waitNeighbors(t, l, 10*time.Second, "rb", "10.0.13.1", "10.0.9.1", "10.0.9.3")

	whole := startReceiver(t, l, "rcv", recvArgs(group)...)
	waitPIMRoute(t, l, 2*time.Second, "ra", "*", group, pimRoute{"", []string{"eth2"}, "WC"})
	started := time.Now()
	startSender(t, l, "src", streamArgs(group, 1000)...)

	// Settled: the winner sent an assert, the loser heard one, and exactly one of
	// them forwards onto the LAN, in its routes and in its kernel.
	var forwarders []string
	lab.WaitFor(t, 5*time.Second, "the assert on the LAN settled: one of ra, rb forwarding onto it", func() (bool, string) {
		forwarders = forwarders[:0]
		var detail []string
		for _, node := range []string{"ra", "rb"} {
			rt, ok := sgRoute(t, l, node, assertSource, group)
			e, inKernel := findMFC(mfc(t, l, node), assertSource, group)
			if !ok || !inKernel {
				return false, node + " has no (S,G) yet"
			}
			if slices.Contains(rt.OIFs, "eth2") || slices.Contains(e.OIFs, "eth2") {
				forwarders = append(forwarders, node)
			}
			detail = append(detail, fmt.Sprintf("%s: route oifs %v, kernel oifs %v", node, rt.OIFs, e.OIFs))
		}
		sent := counter(t, l, "ra", "asserts_sent") + counter(t, l, "rb", "asserts_sent")
		heard := counter(t, l, "ra", "asserts_received") + counter(t, l, "rb", "asserts_received")
		detail = append(detail, fmt.Sprintf("asserts sent %d, received %d", sent, heard))
		return sent > 0 && heard > 0 && len(forwarders) == 1, strings.Join(detail, "; ")
	})
	settled := time.Now()
	if !slices.Equal(forwarders, []string{"rb"}) {
		t.Errorf("%v won the assert; want rb (equal metrics, higher address 10.0.9.2)", forwarders)
	}
	if n := counter(t, l, "rb", "asserts_sent"); n == 0 {
		t.Errorf("rb won the assert without sending one")
	}
	if n := counter(t, l, "ra", "asserts_received"); n == 0 {
		t.Errorf("ra lost the assert without hearing one")
	}

	// A fresh receiver from here on: every packet once.
	r := startReceiver(t, l, "rcv", recvArgs(group, "-count", fmt.Sprint(count))...)
	rep := r.report(t, 5*time.Second)
	lost := lostAfterFirst(rep)
	t.Logf("after the assert: %d packets (seq %d to %d), %d lost, %d duplicates, largest gap %.1f ms", rep.Unique, rep.FirstSeq, rep.LastSeq, lost, rep.Duplicates, rep.MaxGapMs)
	if rep.Unique != count || rep.Duplicates != 0 || lost != 0 {
		t.Errorf("after the assert: %+v; want %d packets, no duplicates, none missing", rep.Stats, count)
	}

	all := whole.report(t, 0)
	t.Logf("assert settled (as polled) %v after the source's first packet; %d duplicates at rcv in all (%d packets)",
		settled.Sub(started).Round(time.Millisecond), all.Duplicates, all.Unique)
	for _, node := range []string{"ra", "rb", "rc"} {
		t.Logf("%s: asserts sent %d, received %d, triggers %d", node,
			counter(t, l, node, "asserts_sent"), counter(t, l, node, "asserts_received"), counter(t, l, node, "assert_triggers"))
	}
}

// TestPIMSourceRegisterRefused: an RP that accepts registers only from 10.9.0.0/16
// refuses r1's (10.0.12.1): it counts the refusal and tells r1 to stop, and nothing
// of the source reaches the receiver through the tunnel. Once reloaded to accept
// 10.0.0.0/8 it takes a new source's registers and the stream flows.
func TestPIMSourceRegisterRefused(t *testing.T) {
	l := sourceChain(t, map[string]string{"r2": sourceConfig(chainRP, `register-accept = ["10.9.0.0/16"]`)})
	const group, group2, count = "239.1.1.1", "239.1.1.2", 1000

	r := startReceiver(t, l, "rcv", recvArgs(group)...)
	waitPIMRoute(t, l, 2*time.Second, "r2", "*", group, pimRoute{"", []string{"eth2"}, "WC"})
	rx := rxPackets(t, l, "r2", "pimreg")
	startSender(t, l, "src", streamArgs(group, 1000)...)
	waitCounterAtLeast(t, l, 3*time.Second, "r2", "register_stop_refused", 1)
	waitCounterAtLeast(t, l, 2*time.Second, "r1", "register_stops_received", 1)
	waitRxQuiet(t, l, 2*time.Second, "r2", "pimreg", "r1 stopped registering")
	t.Logf("r1 sent %d registers, r2's kernel decapsulated %d of them before r1 stopped",
		counter(t, l, "r1", "registers_sent"), rxPackets(t, l, "r2", "pimreg")-rx)
	if !strings.Contains(l.DaemonLog("r2"), "register refused") {
		t.Errorf("r2 refused registers without logging it")
	}
	if rep := r.report(t, 0); rep.Received != 0 {
		t.Errorf("rcv got %d packets (seq %d to %d) of a source whose registers the RP refused", rep.Received, rep.FirstSeq, rep.LastSeq)
	}
	// The (*,G) still goes to r3 (rcv asked for the group); the refused source must not.
	if rt, ok := findRoute(routes(t, l, "r2"), chainSource, group); ok && slices.Contains(rt.OIFs, "eth2") {
		t.Errorf("r2 forwards a refused source toward r3: %+v", rt)
	}
	if e, ok := findMFC(mfc(t, l, "r2"), chainSource, group); ok && slices.Contains(e.OIFs, "eth2") {
		t.Errorf("r2's kernel forwards a refused source toward r3: %+v", e)
	}
	checkDaemonsUp(t, l, "r1", "r2", "r3")

	// Accept it; a new (S,G) (the refused one waits out r1's register-stop timer)
	// then registers and flows like any other.
	writeFile(t, configPath(t, l, "r2"), sourceConfig(chainRP, `register-accept = ["10.0.0.0/8"]`))
	if out, err := l.Exec("r2", "mroutectl", "reload"); err != nil {
		t.Fatalf("reload: %v: %s", err, out)
	}
	refused := counter(t, l, "r2", "register_stop_refused")
	rep, _ := joinThenBurst(t, l, group2, count, rpJoined(t, l, group2))
	checkWholeBurst(t, rep, count)
	if now := counter(t, l, "r2", "register_stop_refused"); now != refused {
		t.Errorf("r2 refused %d more registers after the reload to accept 10.0.0.0/8", now-refused)
	}
	checkDaemonsUp(t, l, "r1", "r2", "r3")
}

// TestPIMSourceKeepaliveExpires: once a source goes quiet, its (S,G) state goes on
// every router after the keepalive (router.idle-timeout, 2 s here): r1's register
// state and route, r2's source-tree join, r3's route. The (*,G) stays while the
// receiver is there.
func TestPIMSourceKeepaliveExpires(t *testing.T) {
	cfg := strings.Replace(treeConfig(chainRP), "[pim]\n", "[router]\nidle-timeout = \"2s\"\n[pim]\n", 1)
	l := sourceChain(t, map[string]string{"r1": cfg, "r2": cfg, "r3": cfg})
	const group, count = "239.1.1.3", 500
	rep, _ := joinThenBurst(t, l, group, count, rpJoined(t, l, group))
	checkWholeBurst(t, rep, count)
	stopped := time.Now()
	for _, node := range []string{"r1", "r2", "r3"} {
		lab.WaitFor(t, 5*time.Second, node+": the quiet source's state gone", func() (bool, string) {
			var joins api.PIMJoins
			ctl(t, l, node, &joins, "show", "pim", "joins")
			_, hasRoute := sgRoute(t, l, node, chainSource, group)
			for _, j := range joins.Joins {
				if j.Source == chainSource {
					return false, fmt.Sprintf("join state %+v", j)
				}
			}
			return !hasRoute, fmt.Sprintf("route present: %v", hasRoute)
		})
	}
	t.Logf("the source's state went from all three routers %v after its last packet", time.Since(stopped).Round(100*time.Millisecond))
	waitPIMRoute(t, l, time.Second, "r3", "*", group, pimRoute{"eth1", []string{"eth2"}, "WC"})
}
