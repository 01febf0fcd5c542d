package peers

import (
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/mrouterd/mrouterd/test/lab"
)

// routerAndHosts brings up r1 (no mrouterd) between a source host src and a
// receiver host h1. The RP address of the configurations is r1's address towards src,
// so that a receiver's (*,G) has an incoming interface other than h1's.
//
//	src eth1 ----- eth1 r1 eth2 ----- eth1 h1
//	10.0.1.2  10.0.1.1    10.0.2.1    10.0.2.2
func routerAndHosts(t *testing.T) *lab.Lab {
	t.Helper()
	lab.RequireRoot(t)
	topo := &lab.Topology{
		Name: "peers",
		Nodes: map[string]*lab.Node{
			"src": {Name: "src", Kind: "linux", Image: "alpine:3", Exec: []string{
				"ip addr add 10.0.1.2/24 dev eth1",
				"ip route replace default via 10.0.1.1",
			}},
			"r1": {Name: "r1", Kind: "linux", Image: "peer-router", Exec: []string{
				"ip addr add 10.0.1.1/24 dev eth1",
				"ip addr add 10.0.2.1/24 dev eth2",
			}},
			"h1": {Name: "h1", Kind: "linux", Image: "alpine:3", Exec: []string{
				"ip addr add 10.0.2.2/24 dev eth1",
				"ip route replace default via 10.0.2.1",
			}},
		},
		NodeOrder: []string{"src", "r1", "h1"},
		Links: []lab.Link{
			{A: lab.Endpoint{Node: "src", Iface: "eth1"}, B: lab.Endpoint{Node: "r1", Iface: "eth1"}},
			{A: lab.Endpoint{Node: "r1", Iface: "eth2"}, B: lab.Endpoint{Node: "h1", Iface: "eth1"}},
		},
	}
	return lab.DeployTopology(t, topo, lab.Options{})
}

// joinOnHost makes h1's own IGMP stack join group on eth1 until the test ends: from
// source only when source is not empty (SSM), else from any source.
func joinOnHost(t *testing.T, l *lab.Lab, group, source string) {
	t.Helper()
	var conn net.PacketConn
	err := l.InNetns("h1", func() error {
		ifi, err := net.InterfaceByName("eth1")
		if err != nil {
			return err
		}
		if conn, err = net.ListenPacket("udp4", "0.0.0.0:0"); err != nil {
			return err
		}
		p := ipv4.NewPacketConn(conn)
		g := &net.UDPAddr{IP: net.ParseIP(group)}
		if source != "" {
			return p.JoinSourceSpecificGroup(ifi, g, &net.UDPAddr{IP: net.ParseIP(source)})
		}
		return p.JoinGroup(ifi, g)
	})
	if conn != nil {
		t.Cleanup(func() { conn.Close() })
	}
	if err != nil {
		t.Fatalf("join %s on h1: %v", group, err)
	}
}

func stopAtEnd(t *testing.T, p *Process) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(p.Log())
		}
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
}

func TestFRRServesIGMP(t *testing.T) {
	lab.RequireRoot(t)
	RequireFRR(t)
	l := routerAndHosts(t)
	p, err := StartFRR(l, "r1", "ip pim rp 10.0.1.1 224.0.0.0/4\n"+
		"interface eth1\n ip pim\n"+
		"interface eth2\n ip pim\n ip igmp\n")
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, p)
	if pids := p.PIDs(); pids["zebra"] == 0 || pids["pimd"] == 0 {
		t.Fatalf("PIDs() = %v, want zebra and pimd", pids)
	}
	joinOnHost(t, l, "239.1.2.3", "")
	lab.WaitFor(t, 10*time.Second, "FRR to learn the group", func() (bool, string) {
		out, err := FRRVtysh(l, "r1", "show ip igmp groups json")
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(out, `"239.1.2.3"`), out
	})
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if p.Running() {
		t.Fatal("FRR still running after Stop")
	}
}

func TestPimdServesIGMP(t *testing.T) {
	lab.RequireRoot(t)
	RequirePimd(t)
	l := routerAndHosts(t)
	p, err := StartPimd(l, "r1", "phyint eth1 enable\nphyint eth2 enable\nrp-address 10.0.1.1 224.0.0.0/4\n")
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, p)
	// An SSM join, because pimd takes a static RP into use only about 15 s after
	// start. PimdDump paces itself, to keep pimd's timers running.
	joinOnHost(t, l, "232.1.2.3", "10.0.1.2")
	deadline := time.Now().Add(20 * time.Second)
	for {
		dump, err := PimdDump(l, "r1")
		if err == nil && strings.Contains(dump, "232.1.2.3") && strings.Contains(dump, "10.0.2.1 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pimd has no vif on eth2 or no (10.0.1.2, 232.1.2.3): %v\n%s", err, dump)
		}
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if p.Running() {
		t.Fatal("pimd still running after Stop")
	}
}
