package e2e

import (
	"testing"
	"time"

	"github.com/mrouterd/mrouterd/test/lab"
	"github.com/mrouterd/mrouterd/test/mcast"
	"github.com/mrouterd/mrouterd/test/peers"
)

// The PIM-SM source tests with FRR on the other end of the register tunnel.

// checkMostOfBurst fails t unless a receiver got at least 95% of a burst of count,
// once each: a source's first packets may be lost between two implementations'
// register handling (see the tests).
func checkMostOfBurst(t *testing.T, rep mcast.Report, csumErrors uint64, count uint64) {
	t.Helper()
	t.Logf("rcv: %d of %d, first arrival seq %d, %d lost, %d duplicates; %d dropped by its kernel for a bad UDP checksum",
		rep.Unique, count, rep.FirstSeq, rep.Lost, rep.Duplicates, csumErrors)
	if rep.Unique < count*95/100 || rep.Duplicates != 0 {
		t.Errorf("rcv: %+v; want >= 95%% of %d, no duplicates", rep.Stats, count)
	}
}

// TestPIMSourceInteropFRRFirstHop: FRR's pimd is the first-hop router (r1, the DR of
// the source's LAN) and registers the source to mrouterd as RP (r2); r2 joins toward
// the source through FRR, switches to it and tells FRR to stop, and the stream
// reaches the receiver behind r3. FRR 8.4 encapsulates the packets as the kernel
// hands them up, with veth's unfinished UDP checksum: the receiver's kernel drops
// the registered ones (logged), the native ones arrive.
func TestPIMSourceInteropFRRFirstHop(t *testing.T) {
	peers.RequireFRR(t)
	l := chain(t, treeConfig(chainRP), "r2", "r3")
	// PIM on eth1 too: FRR registers only for a source on one of its PIM interfaces.
	startFRR(t, l, "r1", frrConfig(chainRP, []string{"eth1", "eth2"}, nil))
	dumpOnFailure(t, l)
	const group, count = "239.1.1.1", 2000
	waitNeighbors(t, l, 15*time.Second, "r2", "10.0.12.1", "10.0.23.3")
	waitNeighbors(t, l, 10*time.Second, "r3", "10.0.23.2")
	waitFRR(t, l, 15*time.Second, "r1", "show ip pim neighbor", "10.0.12.2")

	rep, csumErrors := joinThenBurst(t, l, group, count, rpJoined(t, l, group))
	checkMostOfBurst(t, rep, csumErrors, count)

	received := counter(t, l, "r2", "registers_received")
	t.Logf("r2: %d registers received from FRR, %d register-stops sent", received, counter(t, l, "r2", "register_stops_sent"))
	if received == 0 {
		t.Errorf("r2 received no register from FRR")
	}
	waitCounterAtLeast(t, l, 2*time.Second, "r2", "register_stops_sent", 1)
	waitPIMRoute(t, l, 2*time.Second, "r2", chainSource, group, pimRoute{"eth1", []string{"eth2"}, "SPT"})
	// FRR forwards the source natively toward r2, which joined it, and heard the stop:
	// its upstream state is Joined, Register-Prune ("J,RegP").
	lab.WaitFor(t, 3*time.Second, "FRR on r1 forwarding the source natively toward r2", func() (bool, string) {
		out, err := peers.FRRVtysh(l, "r1", "show ip mroute")
		return err == nil && hasLineWith(out, chainSource, group, "eth1", "eth2"), out
	})
	lab.WaitFor(t, 3*time.Second, "FRR on r1 no longer registering (J,RegP)", func() (bool, string) {
		out, err := peers.FRRVtysh(l, "r1", "show ip pim upstream")
		return err == nil && hasLineWith(out, "eth1", chainSource, group, "J,RegP"), out
	})
}

// TestPIMSourceInteropFRRRP: mrouterd is the first-hop router (r1) and registers the
// source to FRR as RP (r2); FRR forwards down the shared tree to r3, joins toward the
// source and, once the stream arrives natively, tells mrouterd to stop registering.
// FRR 8.4 installs the (S,G) from the source's side at the first Register, so the
// registered packets that its kernel decapsulates arrive on the wrong interface and
// are dropped: the receiver misses the first one or two.
func TestPIMSourceInteropFRRRP(t *testing.T) {
	peers.RequireFRR(t)
	l := chain(t, treeConfig(chainRP), "r1", "r3")
	startFRR(t, l, "r2", frrConfig(chainRP, []string{"eth1", "eth2", "eth3"}, nil))
	dumpOnFailure(t, l)
	const group, count = "239.1.1.1", 2000
	waitNeighbors(t, l, 15*time.Second, "r1", "10.0.12.2")
	waitNeighbors(t, l, 15*time.Second, "r3", "10.0.23.2")
	waitFRR(t, l, 15*time.Second, "r2", "show ip pim neighbor", "10.0.12.1", "10.0.23.3")

	frrJoined := func() {
		waitPIMRoute(t, l, 2*time.Second, "r3", "*", group, pimRoute{"eth1", []string{"eth2"}, "WC"})
		lab.WaitFor(t, 3*time.Second, "FRR on r2 holding r3's (*,G) join on eth2", func() (bool, string) {
			out, err := peers.FRRVtysh(l, "r2", "show ip pim join")
			return err == nil && hasLineWith(out, "eth2", "*", group, "JOIN"), out
		})
	}
	rep, csumErrors := joinThenBurst(t, l, group, count, frrJoined)
	checkMostOfBurst(t, rep, csumErrors, count)

	stops := waitCounterAtLeast(t, l, 2*time.Second, "r1", "register_stops_received", 1)
	sent := counter(t, l, "r1", "registers_sent")
	t.Logf("r1: %d registers sent to FRR, %d register-stops received", sent, stops)
	if sent == 0 {
		t.Errorf("r1 sent no register to FRR")
	}
	waitNotRegistering(t, l, 2*time.Second, "r1", chainSource, group)
	waitMFCPath(t, l, 2*time.Second, "r1", chainSource, group, "eth1", "eth2")
}
