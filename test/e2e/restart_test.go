package e2e

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mrouterd/mrouterd/router/api"
	"github.com/mrouterd/mrouterd/test/lab"
	"github.com/mrouterd/mrouterd/test/mcast"
	"github.com/mrouterd/mrouterd/test/peers"
)

// routeShapes are node's routes as a restart must leave them: keys, interfaces,
// protocol and flags, not counters or timers.
func routeShapes(t *testing.T, l *lab.Lab, node string) []string {
	t.Helper()
	var out []string
	for _, rt := range routes(t, l, node) {
		oifs, flags := slices.Clone(rt.OIFs), slices.Clone(rt.Flags)
		slices.Sort(oifs)
		slices.Sort(flags)
		out = append(out, fmt.Sprintf("(%s,%s) iif %s oifs %v %s %v", rt.Source, rt.Group, rt.IIF, oifs, rt.Protocol, flags))
	}
	slices.Sort(out)
	return out
}

// waitRouteShapes polls until node's routes are want again.
func waitRouteShapes(t *testing.T, l *lab.Lab, within time.Duration, node string, want []string) {
	t.Helper()
	lab.WaitFor(t, within, node+": the routes of before the restart", func() (bool, string) {
		got := routeShapes(t, l, node)
		return slices.Equal(got, want), fmt.Sprintf("have\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	})
}

// countThrough starts a receiver on rcv that counts the established stream while
// event runs, and for a while after, and returns what it counted.
func countThrough(t *testing.T, l *lab.Lab, group string, event func()) mcast.Report {
	t.Helper()
	r := startReceiver(t, l, "rcv", recvArgs(group)...)
	before := sysCounter(t, l, "rcv", "eth1", "rx_packets")
	lab.WaitFor(t, 5*time.Second, "rcv counting the stream", func() (bool, string) {
		n := sysCounter(t, l, "rcv", "eth1", "rx_packets") - before
		return n >= uint64(lab.Rate(1000)), fmt.Sprint(n)
	})
	event()
	// The stream runs on for two seconds after the event, so that an outage
	// the event started shows as lost packets, not as an early end.
	seen := sysCounter(t, l, "rcv", "eth1", "rx_packets")
	lab.WaitFor(t, 90*time.Second, "the stream flowing after "+t.Name(), func() (bool, string) {
		n := sysCounter(t, l, "rcv", "eth1", "rx_packets") - seen
		return n >= uint64(2*lab.Rate(1000)), fmt.Sprint(n)
	})
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	return r.report(t, 10*time.Second)
}

// TestRestartLossless: a stream of 1,000 pps flows src → r1 → r2 (the RP) → r3 →
// rcv. `mroutectl restart` on the RP, then on the last hop, re-executes mrouterd
// in place: the kernel keeps forwarding, the receiver loses nothing and gets
// nothing twice, and each router's routes are the same after as before. The
// same harness then measures what a stop and a start, and a kill -9 and a start,
// of the RP's daemon cost.
func TestRestartLossless(t *testing.T) {
	l := sourceChain(t, nil)
	const group = "239.1.1.1"
	holdMembership(t, l, "rcv", group)
	rpJoined(t, l, group)()
	startSender(t, l, "src", streamArgs(group, 1000)...)
	waitNotRegistering(t, l, 20*time.Second, "r1", chainSource, group)
	waitPIMRoute(t, l, 10*time.Second, "r3", chainSource, group, pimRoute{"eth1", []string{"eth2"}, "SPT"})

	for _, node := range []string{"r2", "r3"} {
		before := routeShapes(t, l, node)
		pid, _ := l.DaemonPID(node)
		var took time.Duration
		rep := countThrough(t, l, group, func() {
			start := time.Now()
			out, err := l.Exec(node, "mroutectl", "restart")
			took = time.Since(start)
			if err != nil {
				t.Fatalf("%s: mroutectl restart: %v\n%s", node, err, out)
			}
			t.Logf("%s: %s", node, strings.TrimSpace(out))
		})
		t.Logf("%s: restart in place took %.0f ms (mroutectl restart, until the new program answered); "+
			"rcv: %d packets, %d lost after the first, %d duplicates, largest gap %.1f ms",
			node, float64(took.Microseconds())/1000, rep.Unique, lostAfterFirst(rep), rep.Duplicates, rep.MaxGapMs)
		if lostAfterFirst(rep) != 0 || rep.Duplicates != 0 {
			t.Errorf("%s: restart in place: %+v; want nothing lost, nothing twice", node, rep.Stats)
			log := l.DaemonLog(node)
			if i := strings.LastIndex(log, "handing the multicast routing table over"); i >= 0 {
				t.Logf("%s: mrouterd's log from the handover:\n%s", node, log[max(0, strings.LastIndex(log[:i], "\n")):])
			}
		}
		if now, ok := l.DaemonPID(node); !ok || now != pid {
			t.Errorf("%s: mrouterd pid %d before the restart, %d (running %t) after; want the same process", node, pid, now, ok)
		}
		waitRouteShapes(t, l, 30*time.Second, node, before)
		var st api.Status
		ctl(t, l, node, &st, "show", "status")
		if st.Counters["mfc_drift"] != 0 {
			t.Errorf("%s: the kernel's MFC drifted from the restarted daemon's routes: %d", node, st.Counters["mfc_drift"])
		}
	}

	// A stop and a start, then a kill and a start, of the RP's daemon: the kernel
	// flushes the table when the socket closes, and the new daemon rebuilds it.
	for _, stop := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGTERM and a start", syscall.SIGTERM}, {"kill -9 and a start", syscall.SIGKILL}} {
		rep := countThrough(t, l, group, func() {
			if err := l.StopDaemon("r2", stop.sig); err != nil {
				t.Fatal(err)
			}
			if err := l.StartDaemon("r2"); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("r2: %s: rcv: %d packets, %d lost after the first (%.1f s of the stream), largest gap %.1f ms, %d duplicates",
			stop.name, rep.Unique, lostAfterFirst(rep), float64(lostAfterFirst(rep))/float64(lab.Rate(1000)), rep.MaxGapMs, rep.Duplicates)
	}
	checkDaemonsUp(t, l, "r1", "r2", "r3")
}

// TestRestartPeers measures, in TestRestartLossless's harness, what the reference
// routers lose when the RP's daemon stops and starts: FRR and pimd on all three
// routers, each with its default join/prune interval (60 s).
func TestRestartPeers(t *testing.T) {
	const group = "239.1.1.1"
	for _, peer := range []struct {
		name    string
		require func(testing.TB)
		start   func(l *lab.Lab, node string) (*peers.Process, error)
	}{
		{"FRR", peers.RequireFRR, func(l *lab.Lab, node string) (*peers.Process, error) {
			ifaces := map[string][]string{"r1": {"eth1", "eth2"}, "r2": {"eth1", "eth2", "eth3"}, "r3": {"eth1", "eth2"}}[node]
			cfg := strings.Replace(frrConfig(chainRP, ifaces, []string{"eth2"}), "ip pim join-prune-interval 10\n", "", 1)
			return peers.StartFRR(l, node, cfg)
		}},
		{"pimd", peers.RequirePimd, func(l *lab.Lab, node string) (*peers.Process, error) {
			cfg := "phyint eth1 enable\nphyint eth2 enable\n"
			if node == "r2" {
				cfg += "phyint eth3 enable\n"
			}
			return peers.StartPimd(l, node, cfg+"rp-address "+chainRP+" 239.0.0.0/8\n")
		}},
	} {
		t.Run(peer.name, func(t *testing.T) {
			peer.require(t)
			l := chain(t, "")
			procs := map[string]*peers.Process{}
			for _, node := range []string{"r1", "r2", "r3"} {
				p, err := peer.start(l, node)
				if err != nil {
					t.Fatal(err)
				}
				procs[node] = p
			}
			t.Cleanup(func() {
				for _, p := range procs {
					_ = p.Stop()
				}
			})
			holdMembership(t, l, "rcv", group)
			startSender(t, l, "src", streamArgs(group, 1000)...)
			before := sysCounter(t, l, "rcv", "eth1", "rx_packets")
			lab.WaitFor(t, 90*time.Second, "the stream reaching rcv through "+peer.name, func() (bool, string) {
				n := sysCounter(t, l, "rcv", "eth1", "rx_packets") - before
				return n >= uint64(5*lab.Rate(1000)), fmt.Sprint(n)
			})
			rep := countThrough(t, l, group, func() {
				if err := procs["r2"].Stop(); err != nil {
					t.Fatal(err)
				}
				p, err := peer.start(l, "r2")
				if err != nil {
					t.Fatal(err)
				}
				procs["r2"] = p
			})
			t.Logf("r2: %s stopped and started: rcv: %d packets, %d lost after the first (%.1f s of the stream), largest gap %.1f ms, %d duplicates",
				peer.name, rep.Unique, lostAfterFirst(rep), float64(lostAfterFirst(rep))/float64(lab.Rate(1000)), rep.MaxGapMs, rep.Duplicates)
		})
	}
}
