package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mrouterd/mrouterd/router/api"
	"github.com/mrouterd/mrouterd/test/lab"
)

// The attack tests: a host on a router's link forges the control packets of a
// router or of a querier (testdata/attack.py, with scapy). The routers must refuse
// each one, count it, create no state from it, and go on forwarding an established
// stream without losing a packet.

// The attacker is rcv, on r3's eth2 (the stream's last hop), and for the
// Register-Stops to r1 (the first hop), src, on r1's eth1.
const (
	attackerAddr = "10.0.3.2" // rcv
	attackedAddr = "10.0.3.1" // r3's eth2
	attackGroup  = "239.1.1.9"
)

var attackRouters = []string{"r1", "r2", "r3"}

// attacker is testdata/attack.py serving commands on a node: scapy, slow to load
// in a VM, is loaded once.
type attacker struct {
	node string
	in   io.Writer
	out  *bufio.Scanner
}

// startAttacker starts attack.py on node.
func startAttacker(t *testing.T, l *lab.Lab, node string) *attacker {
	t.Helper()
	script, err := filepath.Abs("testdata/attack.py")
	if err != nil {
		t.Fatal(err)
	}
	cmd := l.Command(node, "/usr/bin/python3", script, "serve")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close(); _ = cmd.Wait() })
	return &attacker{node: node, in: in, out: bufio.NewScanner(out)}
}

// waitReady waits until the attacker has loaded scapy.
func (a *attacker) waitReady(t *testing.T) {
	t.Helper()
	a.answer(t, "serve")
}

// forge has the attacker send what one command of attack.py says, and returns what
// it sent.
func (a *attacker) forge(t *testing.T, args ...string) map[string]int {
	t.Helper()
	if _, err := fmt.Fprintln(a.in, strings.Join(args, " ")); err != nil {
		t.Fatalf("%s: attack.py: %v", a.node, err)
	}
	sent := a.answer(t, strings.Join(args, " "))
	t.Logf("%s forged %s: %v", a.node, args[0], sent)
	return sent
}

func (a *attacker) answer(t *testing.T, what string) map[string]int {
	t.Helper()
	if !a.out.Scan() {
		t.Fatalf("%s: attack.py %s: no answer (%v)", a.node, what, a.out.Err())
	}
	reply := map[string]int{}
	if err := json.Unmarshal(a.out.Bytes(), &reply); err != nil {
		t.Fatalf("%s: attack.py %s: %v in %q", a.node, what, err, a.out.Text())
	}
	return reply
}

// apiGet decodes what node's control API serves at path: what `mroutectl --json`
// prints, without starting a process, which takes long in a VM.
func apiGet(t *testing.T, l *lab.Lab, node, path string, out any) {
	t.Helper()
	body, err := l.APIGet(node, path)
	if err != nil {
		t.Fatalf("%s: %v", node, err)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("%s: GET %s: %v in %q", node, path, err, body)
	}
}

func apiCounters(t *testing.T, l *lab.Lab, node string) map[string]uint64 {
	t.Helper()
	var st api.Status
	apiGet(t, l, node, api.PathStatus, &st)
	return st.Counters
}

// waitCountersRise polls until each named counter of node has risen by at least as
// much as want says from its value in before, and logs how far each did.
func waitCountersRise(t *testing.T, l *lab.Lab, node string, before, want map[string]uint64) {
	t.Helper()
	var now map[string]uint64
	lab.WaitFor(t, 5*time.Second, fmt.Sprintf("%s: counters up by %v", node, want), func() (bool, string) {
		now = apiCounters(t, l, node)
		for name, n := range want {
			if now[name]-before[name] < n {
				return false, fmt.Sprintf("%s up by %d", name, now[name]-before[name])
			}
		}
		return true, ""
	})
	var moved []string
	for name := range want {
		moved = append(moved, fmt.Sprintf("%s +%d", name, now[name]-before[name]))
	}
	slices.Sort(moved)
	t.Logf("%s: %s", node, strings.Join(moved, ", "))
}

// routerState renders what a router holds that a forged packet could change, one
// line per item, without timers and packet counts: PIM neighbours, join state,
// routes, the interfaces' PIM and IGMP roles, IGMP memberships. A first hop's
// register state is only "registering" or not: between two Register-Stops it probes
// the RP (join-pending) on a timer of its own.
func routerState(t *testing.T, l *lab.Lab, node string) []string {
	t.Helper()
	var lines []string
	var ns api.PIMNeighbors
	apiGet(t, l, node, api.PathPIMNeighbors, &ns)
	for _, n := range ns.Neighbors {
		lines = append(lines, fmt.Sprintf("neighbor %s %s priority %d genid %d dr %v", n.Interface, n.Address, n.DRPriority, n.GenerationID, n.DR))
	}
	var js api.PIMJoins
	apiGet(t, l, node, api.PathPIMJoins, &js)
	for _, j := range js.Joins {
		var down, asserts []string
		for _, d := range j.Downstream {
			down = append(down, fmt.Sprintf("%s:%s:rpt=%v", d.Interface, d.State, d.RPT))
		}
		for _, a := range j.Asserts {
			asserts = append(asserts, fmt.Sprintf("%s:%s:we_win=%v", a.Interface, a.Winner, a.WeWin))
		}
		lines = append(lines, fmt.Sprintf("join (%s,%s) upstream %s %s joined %v keepalive %v spt %v registering %v downstream %v local %v asserts %v",
			j.Source, j.Group, j.Upstream, j.UpstreamNeighbor, j.Joined, j.Keepalive, j.SPT, j.Register == "join", down, j.Local, asserts))
	}
	var rs api.Routes
	apiGet(t, l, node, api.PathRoutes, &rs)
	for _, r := range rs.Routes {
		oifs := slices.Clone(r.OIFs)
		slices.Sort(oifs)
		lines = append(lines, fmt.Sprintf("route (%s,%s) %s iif %s oifs %v flags %v", r.Source, r.Group, r.Protocol, r.IIF, oifs, r.Flags))
	}
	var ifs api.Interfaces
	apiGet(t, l, node, api.PathInterfaces, &ifs)
	for _, i := range ifs.Interfaces {
		line := fmt.Sprintf("interface %s vif %d %s %s", i.Name, i.VIF, i.State, i.VIFReason)
		if s := i.PIMState; s != nil {
			line += fmt.Sprintf(" pim dr %s (self %v) priority %d genid %d neighbors %d", s.DR, s.IsDR, s.DRPriority, s.GenerationID, s.Neighbors)
		}
		if s := i.IGMPState; s != nil {
			line += fmt.Sprintf(" igmp v%d querier %v %s interval %gs groups %d", s.Version, s.Querier, s.QuerierAddress, s.QueryIntervalS, s.Groups)
		}
		lines = append(lines, line)
	}
	var gs api.IGMPGroups
	apiGet(t, l, node, api.PathIGMPGroups, &gs)
	for _, g := range gs.Groups {
		lines = append(lines, fmt.Sprintf("member %s %s %s %v v%d from %s", g.Interface, g.Group, g.Mode, g.Sources, g.Version, g.Reporter))
	}
	return lines
}

// stateDiff lists the lines only in before and only in after, at most a few of each.
func stateDiff(before, after []string) string {
	var b strings.Builder
	for _, side := range []struct {
		sign      string
		from, not []string
	}{{"-", before, after}, {"+", after, before}} {
		n := 0
		for _, line := range side.from {
			if slices.Contains(side.not, line) {
				continue
			}
			if n++; n <= 10 {
				fmt.Fprintf(&b, "\n  %s %s", side.sign, line)
			}
		}
		if n > 10 {
			fmt.Fprintf(&b, "\n  %s ... %d lines in all", side.sign, n)
		}
	}
	return b.String()
}

// forwarded is how many packets of the attack's stream r3's kernel forwarded to rcv.
func forwarded(t *testing.T, l *lab.Lab) uint64 {
	t.Helper()
	var m api.MFC
	apiGet(t, l, "r3", api.PathMFC, &m)
	e, ok := findMFC(m.MFC, chainSource, attackGroup)
	if !ok || !slices.Contains(e.OIFs, "eth2") {
		t.Fatalf("r3 no longer forwards (%s,%s) to rcv:%s", chainSource, attackGroup, formatMFC(m.MFC))
	}
	return e.Packets
}

// waitForwarded polls until r3 has forwarded n more packets of the stream than from.
func waitForwarded(t *testing.T, l *lab.Lab, from, n uint64) {
	t.Helper()
	lab.WaitFor(t, 3*time.Second, fmt.Sprintf("r3 forwarding %d more packets of the stream", n), func() (bool, string) {
		now := forwarded(t, l)
		return now >= from+n, fmt.Sprintf("%d so far", now-from)
	})
}

// underAttack runs attack against the established stream: a fresh receiver on rcv
// counts the stream from before the attack until a second of it after, and each
// router's state must be as it was before. attack returns once the routers have
// handled the forged packets (their counters say so).
func underAttack(t *testing.T, l *lab.Lab, attack func()) {
	t.Helper()
	before := map[string][]string{}
	for _, node := range attackRouters {
		before[node] = routerState(t, l, node)
	}
	rcvbufErrors := udpCounter(t, l, "rcv", "RcvbufErrors")
	r := startReceiver(t, l, "rcv", recvArgs(attackGroup)...)
	waitForwarded(t, l, forwarded(t, l), uint64(lab.Rate(1000)/10))

	attack()
	handled := time.Now()
	waitForwarded(t, l, forwarded(t, l), uint64(lab.Rate(1000)))

	for _, node := range attackRouters {
		if diff := stateDiff(before[node], routerState(t, l, node)); diff != "" {
			t.Errorf("%s: state changed under attack:%s", node, diff)
		}
	}
	rep := r.report(t, 0)
	lost := lostAfterFirst(rep)
	last := rep.Joined.Add(time.Duration(rep.LastPacketMs * float64(time.Millisecond)))
	t.Logf("stream through the attack: %d packets (seq %d to %d), %d lost, %d duplicates, largest gap %.1f ms, last %v after the attack was handled; %d datagrams dropped by rcv's socket buffers",
		rep.Unique, rep.FirstSeq, rep.LastSeq, lost, rep.Duplicates, rep.MaxGapMs, last.Sub(handled).Round(time.Millisecond),
		udpCounter(t, l, "rcv", "RcvbufErrors")-rcvbufErrors)
	if rep.Unique == 0 || lost != 0 || rep.Duplicates != 0 || !last.After(handled) {
		t.Errorf("stream through the attack: %+v; want every packet once, from before the attack until after it", rep.Stats)
	}
}

// TestAttackForgedControl: with a stream established from src to rcv along the
// source's tree (r1, r2 the RP, r3), forged PIM and IGMP from a host on the link
// are refused one by one and counted, no neighbour, join, route, membership or
// querier changes, and the stream loses nothing:
//   - Hellos (holdtime forever, the highest DR priority) from off the subnet,
//     unicast to the router, or with TTL 64;
//   - 8,000 (S,G) joins, holdtime 0xffff, from a host that sent no Hello;
//   - an Assert for the stream with the best metric, from a non-neighbour, on the
//     stream's outgoing interface;
//   - Register-Stops to the first hop from an address that is not the RP's, and
//     from 0.0.0.0;
//   - IGMPv3 queries from 1.0.0.1 (lower than the querier, off the subnet) with
//     QRV 7 and QQIC 0xff.
func TestAttackForgedControl(t *testing.T) {
	l := sourceChain(t, nil)
	rcv, src := startAttacker(t, l, "rcv"), startAttacker(t, l, "src")
	holdMembership(t, l, "rcv", attackGroup)
	startSender(t, l, "src", streamArgs(attackGroup, 1000)...)
	for _, node := range []string{"r3", "r2", "r1"} {
		waitPIMRoute(t, l, 5*time.Second, node, chainSource, attackGroup, pimRoute{"eth1", []string{"eth2"}, "SPT"})
	}
	waitNotRegistering(t, l, 5*time.Second, "r1", chainSource, attackGroup)
	// The lower address of each link between routers becomes its querier once the
	// other hears its second startup query (a quarter of the 125 s query interval).
	lab.WaitFor(t, 40*time.Second, "one IGMP querier on each link between routers", func() (bool, string) {
		for _, node := range []string{"r2", "r3"} {
			var ifs api.Interfaces
			apiGet(t, l, node, api.PathInterfaces, &ifs)
			for _, i := range ifs.Interfaces {
				if i.Name == "eth1" && (i.IGMPState == nil || i.IGMPState.Querier) {
					return false, fmt.Sprintf("%s's eth1: %+v", node, i.IGMPState)
				}
			}
		}
		return true, ""
	})
	rcv.waitReady(t)
	src.waitReady(t)
	whole := startReceiver(t, l, "rcv", recvArgs(attackGroup)...)
	started := time.Now()

	t.Run("Hellos", func(t *testing.T) {
		underAttack(t, l, func() {
			before := apiCounters(t, l, "r3")
			sent := rcv.forge(t, "hellos", "eth1", attackerAddr, attackedAddr, "10.99.0.1")
			want := map[string]uint64{}
			for reason, n := range sent {
				want["pim_refused_"+reason] = uint64(n)
			}
			waitCountersRise(t, l, "r3", before, want)
		})
		if got := pimNeighbors(t, l, "r3"); !slices.Equal(got, []string{"10.0.23.2"}) {
			t.Errorf("r3's PIM neighbours after forged Hellos: %v; want only r2", got)
		}
	})

	t.Run("JoinFlood", func(t *testing.T) {
		underAttack(t, l, func() {
			before := apiCounters(t, l, "r3")
			sent := rcv.forge(t, "joins", "eth1", attackerAddr, attackedAddr, "8000")
			waitCountersRise(t, l, "r3", before, map[string]uint64{"pim_refused_not_neighbor": uint64(sent["packets"])})
			if n := apiCounters(t, l, "r3")["pim_joinprunes_received"] - before["pim_joinprunes_received"]; n != 0 {
				t.Errorf("r3 took %d Join/Prunes from a host that is no neighbour", n)
			}
		})
	})

	t.Run("Assert", func(t *testing.T) {
		underAttack(t, l, func() {
			before := apiCounters(t, l, "r3")
			sent := rcv.forge(t, "assert", "eth1", attackerAddr, chainSource, attackGroup, "3")
			waitCountersRise(t, l, "r3", before, map[string]uint64{"pim_refused_not_neighbor": uint64(sent["asserts"])})
			if n := apiCounters(t, l, "r3")["asserts_received"] - before["asserts_received"]; n != 0 {
				t.Errorf("r3 took %d Asserts from a host that is no neighbour", n)
			}
		})
		waitMFCPath(t, l, time.Second, "r3", chainSource, attackGroup, "eth1", "eth2")
	})

	t.Run("RegisterStop", func(t *testing.T) {
		underAttack(t, l, func() {
			r1, r2 := apiCounters(t, l, "r1"), apiCounters(t, l, "r2")
			// From src's own address to the address r1 registers from: the
			// kernel delivers it, the daemon must refuse it. (The lab's routers
			// forward no unicast, so it comes from r1's link.)
			src.forge(t, "register-stop", chainSource, "10.0.12.1", chainSource, attackGroup)
			// From 0.0.0.0: the kernel drops a unicast packet from it (a
			// martian) before any socket; one that got through would be
			// refused the same way.
			src.forge(t, "register-stop", "0.0.0.0", "10.0.1.1", chainSource, attackGroup)
			waitCountersRise(t, l, "r1", r1, map[string]uint64{"pim_refused_not_rp": 1})
			// r1 probes the RP now and then and is told to stop again: every
			// Register-Stop it takes must be one r2 sent.
			lab.WaitFor(t, 2*time.Second, "r1 took only the Register-Stops r2 sent", func() (bool, string) {
				took := apiCounters(t, l, "r1")["register_stops_received"] - r1["register_stops_received"]
				sent := apiCounters(t, l, "r2")["register_stops_sent"] - r2["register_stops_sent"]
				return took == sent, fmt.Sprintf("r1 took %d, r2 sent %d", took, sent)
			})
		})
		waitNotRegistering(t, l, time.Second, "r1", chainSource, attackGroup)
	})

	t.Run("IGMPQuery", func(t *testing.T) {
		underAttack(t, l, func() {
			before := apiCounters(t, l, "r3")
			sent := rcv.forge(t, "query", "eth1", "1.0.0.1", "3")
			waitCountersRise(t, l, "r3", before, map[string]uint64{"igmp_refused_off-subnet": uint64(sent["queries"])})
		})
		s := vifStats(t, l, "r3", "eth2").IGMPState
		if s == nil || !s.Querier || s.QuerierAddress != attackedAddr || s.OtherQuerierExpires != 0 {
			t.Fatalf("r3's IGMP state on eth2 after the forged queries: %+v; want r3 (%s) the querier", s, attackedAddr)
		}
		// Group membership interval: robustness (2) x query interval + 10 s.
		gmi := int64(2*s.QueryIntervalS) + 10
		for _, g := range igmpGroups(t, l, "r3") {
			if g.ExpiresS > gmi {
				t.Errorf("r3's membership %s on %s expires in %d s; want at most the %d s of its own timers", g.Group, g.Interface, g.ExpiresS, gmi)
			}
		}
	})

	rep := whole.report(t, 0)
	lost := lostAfterFirst(rep)
	t.Logf("the stream across all attacks (%v): %d packets (seq %d to %d), %d lost, %d duplicates, largest gap %.1f ms",
		time.Since(started).Round(100*time.Millisecond), rep.Unique, rep.FirstSeq, rep.LastSeq, lost, rep.Duplicates, rep.MaxGapMs)
	if rep.Unique == 0 || lost != 0 || rep.Duplicates != 0 {
		t.Errorf("the stream across all attacks: %+v; want every packet once", rep.Stats)
	}
	checkDaemonsUp(t, l, attackRouters...)
}
