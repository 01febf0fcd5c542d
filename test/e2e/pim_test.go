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
	"github.com/mrouterd/mrouterd/test/peers"
)

func pimNeighbors(t *testing.T, l *lab.Lab, node string) []string {
	var ns api.PIMNeighbors
	ctl(t, l, node, &ns, "show", "pim", "neighbors")
	var out []string
	for _, n := range ns.Neighbors {
		out = append(out, n.Address)
	}
	slices.Sort(out)
	return out
}

func pimDR(t *testing.T, l *lab.Lab, node, ifname string) string {
	var ifs api.Interfaces
	ctl(t, l, node, &ifs, "show", "interfaces")
	for _, i := range ifs.Interfaces {
		if i.Name == ifname && i.PIMState != nil {
			return i.PIMState.DR
		}
	}
	return ""
}

// waitDR polls until every router names the same DR.
func waitDR(t *testing.T, l *lab.Lab, routers []string, want string) {
	t.Helper()
	lab.WaitFor(t, 10*time.Second, "DR "+want+" on "+strings.Join(routers, ", "), func() (bool, string) {
		var got []string
		for _, r := range routers {
			got = append(got, pimDR(t, l, r, "eth1"))
		}
		return slices.Equal(got, slices.Repeat([]string{want}, len(routers))), fmt.Sprint(got)
	})
}

// pimConfig makes hellos fast so neighbours form quickly in the lab.
func pimConfig(priority int) string {
	return fmt.Sprintf("[pim]\nhello-interval = \"1s\"\n[[interface]]\nmatch = \"eth*\"\ndr-priority = %d\n", priority)
}

// TestPIMDRElection: three routers on a LAN become neighbours and elect the DR by
// priority, then by address; a router that stops says goodbye and the DR moves at once.
func TestPIMDRElection(t *testing.T) {
	l := deploy(t, topology(t, "pim-lan", map[string]string{"r1": pimConfig(10), "r2": pimConfig(1), "r3": pimConfig(1)}))
	all := []string{"r1", "r2", "r3"}
	lab.WaitFor(t, 10*time.Second, "a full mesh of PIM neighbours", func() (bool, string) {
		got := fmt.Sprint(pimNeighbors(t, l, "r1"), pimNeighbors(t, l, "r2"), pimNeighbors(t, l, "r3"))
		return got == "[10.0.5.2 10.0.5.3] [10.0.5.1 10.0.5.3] [10.0.5.1 10.0.5.2]", got
	})
	waitDR(t, l, all, "10.0.5.1") // highest priority
	if body, err := l.APIGet("r1", "/metrics"); err != nil || !strings.Contains(string(body), "\nmrouterd_pim_neighbors{interface=\"eth1\"} 2\n") {
		t.Errorf("r1's /metrics lacks mrouterd_pim_neighbors{interface=\"eth1\"} 2 (err %v)", err)
	}

	writeFile(t, configPath(t, l, "r1"), pimConfig(1))
	if out, err := l.Exec("r1", "mroutectl", "reload"); err != nil {
		t.Fatalf("reload: %v: %s", err, out)
	}
	waitDR(t, l, all, "10.0.5.3") // equal priorities: highest address

	if err := l.StopDaemon("r3", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitDR(t, l, []string{"r1", "r2"}, "10.0.5.2") // the goodbye hello, not a 3.5 s holdtime
}

// lanWithPeer deploys the PIM LAN, starts a reference router on its peer node and
// waits until mrouterd has it as a neighbour.
func lanWithPeer(t *testing.T, within time.Duration, start func(*lab.Lab) (*peers.Process, error)) *lab.Lab {
	t.Helper()
	l := deploy(t, topology(t, "pim-lan", map[string]string{"r1": pimConfig(1), "r2": pimConfig(1), "r3": pimConfig(1)}))
	p, err := start(l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	lab.WaitFor(t, within, "mrouterd seeing the peer", func() (bool, string) {
		ns := pimNeighbors(t, l, "r1")
		return slices.Contains(ns, "10.0.5.9"), fmt.Sprint(ns)
	})
	return l
}

// TestPIMNeighborFRR: FRR's pimd and mrouterd see each other as PIM neighbours.
func TestPIMNeighborFRR(t *testing.T) {
	peers.RequireFRR(t)
	l := lanWithPeer(t, 15*time.Second, func(l *lab.Lab) (*peers.Process, error) {
		return peers.StartFRR(l, "peer", "interface eth1\n ip pim\n ip pim hello 1\n")
	})
	lab.WaitFor(t, 15*time.Second, "FRR seeing mrouterd", func() (bool, string) {
		out, err := peers.FRRVtysh(l, "peer", "show ip pim neighbor")
		return err == nil && strings.Contains(out, "10.0.5.1") && strings.Contains(out, "10.0.5.3"), out
	})
	waitDR(t, l, []string{"r1", "r2", "r3"}, "10.0.5.9") // FRR has the highest address
}

// TestPIMNeighborPimd: troglobit's pimd and mrouterd see each other as PIM neighbours.
func TestPIMNeighborPimd(t *testing.T) {
	peers.RequirePimd(t)
	l := lanWithPeer(t, 45*time.Second, func(l *lab.Lab) (*peers.Process, error) {
		return peers.StartPimd(l, "peer", "phyint eth1 enable\n")
	})
	lab.WaitFor(t, 30*time.Second, "pimd seeing mrouterd", func() (bool, string) {
		dump, err := peers.PimdDump(l, "peer")
		return err == nil && strings.Contains(dump, "10.0.5.1"), dump
	})
}
