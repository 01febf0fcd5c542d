package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mrouterd/mrouterd/router/api"
	"github.com/mrouterd/mrouterd/test/lab"
	"github.com/mrouterd/mrouterd/test/peers"
)

func igmpGroups(t *testing.T, l *lab.Lab, node string) []api.IGMPGroup {
	var gs api.IGMPGroups
	ctl(t, l, node, &gs, "show", "igmp", "groups")
	return gs.Groups
}

// waitGroup polls until the router holds the group on the interface and returns it.
func waitGroup(t *testing.T, l *lab.Lab, node, ifname, group string, ok func(api.IGMPGroup) bool) api.IGMPGroup {
	t.Helper()
	var found api.IGMPGroup
	lab.WaitFor(t, 5*time.Second, fmt.Sprintf("%s: IGMP group %s on %s", node, group, ifname), func() (bool, string) {
		gs := igmpGroups(t, l, node)
		for _, g := range gs {
			if g.Interface == ifname && g.Group == group && ok(g) {
				found = g
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", gs)
	})
	return found
}

func anyGroup(api.IGMPGroup) bool { return true }

// rxPackets reads an interface's received-packet counter inside a node.
func rxPackets(t *testing.T, l *lab.Lab, node, ifname string) uint64 {
	t.Helper()
	out := mustExec(t, l, node, "cat", "/sys/class/net/"+ifname+"/statistics/rx_packets")
	n, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func sendFrom(source, group string, count int) []string {
	return append(sendArgs(group, count), "-source", source)
}

// TestIGMPMembersGetTheStream: with no config at all, a receiver that joins gets the
// stream and an interface with no member gets nothing; an IGMPv2 host is served too.
func TestIGMPMembersGetTheStream(t *testing.T) {
	l := deploy(t, topology(t, "igmp", nil))

	// The receivers stay members until report stops them, so that the MFC is checked
	// while they are.
	v3 := startReceiver(t, l, "rcv1", recvArgs("239.1.1.1")...)
	g := waitGroup(t, l, "r1", "eth2", "239.1.1.1", anyGroup)
	if g.Version != 3 || g.Mode != "exclude" || g.Reporter != "10.0.2.2" {
		t.Errorf("v3 membership: %+v", g)
	}
	v2 := startReceiver(t, l, "rcv2", recvArgs("239.1.1.2")...)
	g = waitGroup(t, l, "r1", "eth3", "239.1.1.2", anyGroup)
	if g.Version != 2 {
		t.Errorf("membership of a host forced to IGMPv2: %+v", g)
	}

	rxBefore := rxPackets(t, l, "rcv2", "eth1")
	send(t, l, "src", sendArgs("239.1.1.1", 300)...)
	send(t, l, "src", sendArgs("239.1.1.2", 300)...)
	waitMFC(t, l, "r1", "10.0.1.2", "239.1.1.1", "eth2")
	waitMFC(t, l, "r1", "10.0.1.2", "239.1.1.2", "eth3")
	for name, r := range map[string]*receiver{"v3 host": v3, "v2 host": v2} {
		if rep := r.report(t, 0); rep.Unique < 295 || rep.Duplicates != 0 {
			t.Errorf("%s got %d of 300 (%d duplicates)", name, rep.Unique, rep.Duplicates)
		}
	}
	// rcv2 is a member of 239.1.1.2 only: 239.1.1.1's 300 packets must not reach it.
	if got := rxPackets(t, l, "rcv2", "eth1") - rxBefore; got > 300+20 {
		t.Errorf("rcv2 received %d packets for 300 of its own: the other group leaked", got)
	}
	rt, ok := findRoute(routes(t, l, "r1"), "10.0.1.2", "239.1.1.1")
	if !ok || rt.Protocol != "igmp" || rt.Packets < 295 { // as many as the members got
		t.Errorf("route: %+v", rt)
	}
}

// TestIGMPSourceFilters: an INCLUDE join gets only its source and an EXCLUDE join all
// but the blocked one, decided by the router (the MFC), not just by the host.
func TestIGMPSourceFilters(t *testing.T) {
	l := deploy(t, topology(t, "igmp", nil))
	startReceiver(t, l, "rcv1", recvArgs("239.1.1.3", "-source", "10.0.1.2")...)
	// Both on the IGMPv3 host: a v2 host cannot filter sources.
	startReceiver(t, l, "rcv1", recvArgs("239.1.1.4", "-block", "10.0.1.3")...)
	g := waitGroup(t, l, "r1", "eth2", "239.1.1.3", func(g api.IGMPGroup) bool { return len(g.Sources) > 0 })
	if g.Mode != "include" || !slices.Equal(g.Sources, []string{"10.0.1.2"}) {
		t.Errorf("INCLUDE membership: %+v", g)
	}
	g = waitGroup(t, l, "r1", "eth2", "239.1.1.4", anyGroup)
	if g.Mode != "exclude" {
		t.Errorf("EXCLUDE membership: %+v", g)
	}

	for _, s := range []string{"10.0.1.2", "10.0.1.3"} {
		send(t, l, "src", sendFrom(s, "239.1.1.3", 50)...)
		send(t, l, "src", sendFrom(s, "239.1.1.4", 50)...)
	}
	waitMFC(t, l, "r1", "10.0.1.2", "239.1.1.3", "eth2")
	waitMFC(t, l, "r1", "10.0.1.3", "239.1.1.3")
	waitMFC(t, l, "r1", "10.0.1.2", "239.1.1.4", "eth2")
	waitMFC(t, l, "r1", "10.0.1.3", "239.1.1.4")

	// In the SSM range only a source-specific join counts: the v2 host's any-source
	// join gets nothing, the v3 host's (S,G) join gets its source.
	startReceiver(t, l, "rcv2", recvArgs("232.1.1.1")...)
	startReceiver(t, l, "rcv1", recvArgs("232.1.1.1", "-source", "10.0.1.2")...)
	waitGroup(t, l, "r1", "eth3", "232.1.1.1", anyGroup)
	waitGroup(t, l, "r1", "eth2", "232.1.1.1", anyGroup)
	send(t, l, "src", sendArgs("232.1.1.1", 50)...)
	waitMFC(t, l, "r1", "10.0.1.2", "232.1.1.1", "eth2")
	var rps api.RPMappings
	ctl(t, l, "r1", &rps, "show", "pim", "rp")
	if len(rps.RP) != 1 || rps.RP[0].GroupRange != "232.0.0.0/8" || rps.RP[0].Source != "ssm" {
		t.Errorf("show pim rp with the defaults: %+v", rps)
	}
}

// TestIGMPLeaveStopsTraffic: once the last member leaves, the router stops forwarding
// within the last member query time (robustness 2 x 1 s by default), for v3 and v2 hosts.
func TestIGMPLeaveStopsTraffic(t *testing.T) {
	l := deploy(t, topology(t, "igmp", nil))
	for _, c := range []struct{ host, ifname, group string }{
		{"rcv1", "eth2", "239.1.1.5"},
		{"rcv2", "eth3", "239.1.1.6"},
	} {
		// The receiver leaves by exiting once it has 20 packets of the stream.
		r := startReceiver(t, l, c.host, recvArgs(c.group, "-count", "20")...)
		stop := startSender(t, l, "src", "-group", c.group, "-port", "5000", "-ifname", "eth1", "-ttl", "8", "-rate", fmt.Sprint(lab.Rate(200)))
		waitMFC(t, l, "r1", "10.0.1.2", c.group, c.ifname)
		if rep := r.report(t, 5*time.Second); rep.Unique != 20 {
			t.Fatalf("%s: got %d of the stream before leaving, want 20", c.host, rep.Unique)
		}
		left := time.Now()
		waitMFC(t, l, "r1", "10.0.1.2", c.group)
		if took := time.Since(left); took > 2*time.Second+lab.Scaled(time.Second) {
			t.Errorf("%s: forwarding stopped %v after the leave; want within the 2 s last member query time", c.host, took)
		} else {
			t.Logf("%s: forwarding stopped %v after the leave", c.host, took.Round(time.Millisecond))
		}
		// And on the wire: the stream, still sent, no longer reaches the host.
		waitRxQuiet(t, l, 2*time.Second, c.host, "eth1", "after the leave")
		stop()
	}
}

// TestIGMPQuerierElection: two routers on one LAN elect the lower address as querier;
// when it stops, the other takes over within the other-querier-present interval.
func TestIGMPQuerierElection(t *testing.T) {
	fast := `
[igmp]
query-interval = "2s"
query-response-interval = "1s"
`
	l := deploy(t, topology(t, "igmp", map[string]string{"r1": fast, "r2": fast}))
	const otherQuerierPresent = 2*2*time.Second + 500*time.Millisecond // robustness x QI + QRI/2

	state := func(node, ifname string) api.IGMPInterface {
		var ifs api.Interfaces
		ctl(t, l, node, &ifs, "show", "interfaces")
		for _, i := range ifs.Interfaces {
			if i.Name == ifname && i.IGMPState != nil {
				return *i.IGMPState
			}
		}
		return api.IGMPInterface{}
	}
	lab.WaitFor(t, 10*time.Second, "r1 elected querier on the LAN", func() (bool, string) {
		s1, s2 := state("r1", "eth4"), state("r2", "eth1")
		return s1.Querier && !s2.Querier && s2.QuerierAddress == "10.0.4.1", fmt.Sprintf("r1 %+v, r2 %+v", s1, s2)
	})
	if err := l.StopDaemon("r1", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	lab.WaitFor(t, otherQuerierPresent+3*time.Second, "r2 taking over as querier", func() (bool, string) {
		s := state("r2", "eth1")
		return s.Querier && s.QuerierAddress == "10.0.4.2", fmt.Sprintf("%+v", s)
	})
	if took := time.Since(stopped); took > otherQuerierPresent+lab.Scaled(time.Second) {
		t.Errorf("r2 took over after %v; the other querier present interval is %v", took, otherQuerierPresent)
	} else {
		t.Logf("r2 took over %v after r1 stopped", took.Round(time.Millisecond))
	}
}

// TestMalformedIGMPCounted: malformed IGMP from scapy is dropped and counted per
// reason, and the daemon goes on serving joins.
func TestMalformedIGMPCounted(t *testing.T) {
	l := deploy(t, topology(t, "igmp", nil))
	script, err := filepath.Abs("testdata/bad_igmp.py")
	if err != nil {
		t.Fatal(err)
	}
	sent := strings.Fields(mustExec(t, l, "rcv1", "/usr/bin/python3", script, "eth1"))
	lab.WaitFor(t, 5*time.Second, "malformed IGMP counted", func() (bool, string) {
		var st api.Status
		ctl(t, l, "r1", &st, "show", "status")
		missing := []string{}
		for _, reason := range sent {
			if st.Counters["igmp_malformed_"+reason] == 0 {
				missing = append(missing, reason)
			}
		}
		return len(missing) == 0, fmt.Sprintf("not counted: %v; counters %v", missing, st.Counters)
	})

	r := startReceiver(t, l, "rcv1", recvArgs("239.1.1.7", "-count", "100")...)
	waitGroup(t, l, "r1", "eth2", "239.1.1.7", anyGroup)
	send(t, l, "src", sendArgs("239.1.1.7", 100)...)
	if rep := r.report(t, 3*time.Second); rep.Unique < 95 {
		t.Errorf("after malformed input, a join got %d of 100", rep.Unique)
	}

	// /metrics shows each reason, and passes Prometheus's own linter.
	metrics, err := l.APIGet("r1", "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, reason := range sent {
		series := fmt.Sprintf("mrouterd_igmp_malformed_total{reason=%q} ", reason)
		lines := strings.Split(string(metrics), "\n")
		if i := slices.IndexFunc(lines, func(line string) bool { return strings.HasPrefix(line, series) }); i < 0 || lines[i] == series+"0" {
			t.Errorf("/metrics lacks %s above 0", series)
		}
	}
	peers.RequirePromtool(t) // last: without it, the rest has run
	if problems, err := peers.PromtoolCheckMetrics(metrics); err != nil {
		t.Errorf("%v:\n%s", err, problems)
	}
}
