package e2e

import (
	"fmt"
	"os"
	"os/exec"
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

// The k8s-fabric lab: three nodes in three subnets behind a router that carries no
// multicast, each running mrouterd with the same file, which lists the peers only.

var fabricNodes = []string{"node1", "node2", "node3"}

func fabricOf(t *testing.T, l *lab.Lab, node string) api.Fabric {
	var f api.Fabric
	ctl(t, l, node, &f, "show", "fabric")
	return f
}

// waitFabric polls until every node has both others as live PIM neighbours on the
// fabric and names rp as the RP.
func waitFabric(t *testing.T, l *lab.Lab, nodes []string, rp string) {
	t.Helper()
	lab.WaitFor(t, 30*time.Second, "the fabric meshed, RP "+rp, func() (bool, string) {
		var got []string
		ok := true
		for _, n := range nodes {
			f := fabricOf(t, l, n)
			live := 0
			for _, p := range f.Peers {
				if p.Neighbor && slices.Contains(nodes, nodeOf(p.Address)) {
					live++
				}
			}
			ok = ok && live == len(nodes)-1 && f.RP == rp
			got = append(got, fmt.Sprintf("%s: %d live, RP %q", n, live, f.RP))
		}
		return ok, strings.Join(got, "; ")
	})
}

func nodeOf(addr string) string {
	return map[string]string{"10.0.1.2": "node1", "10.0.0.2": "node2", "10.0.3.2": "node3"}[addr]
}

// waitFabricJoined polls until a node hears from the fabric that peer joined group.
func waitFabricJoined(t *testing.T, l *lab.Lab, node, peer, group string) {
	t.Helper()
	lab.WaitFor(t, 10*time.Second, fmt.Sprintf("%s: %s joined %s", node, peer, group), func() (bool, string) {
		f := fabricOf(t, l, node)
		for _, p := range f.Peers {
			if p.Address == peer && slices.Contains(p.Groups, group) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", f.Peers)
	})
}

// podRecv is the arguments of a receiver in a pod.
func podRecv(group string, extra ...string) []string {
	return append([]string{"-group", group, "-port", "5000", "-ifname", "eth0"}, extra...)
}

// podSend is the arguments of a 1,000 pps sender (lab.Rate) in a pod or on a node.
func podSend(group string, ttl int, extra ...string) []string {
	return append([]string{"-group", group, "-port", "5000", "-ifname", "eth0", "-ttl", strconv.Itoa(ttl),
		"-rate", fmt.Sprint(lab.Rate(1000))}, extra...)
}

// sysCounter reads an interface statistic inside a node.
func sysCounter(t *testing.T, l *lab.Lab, node, ifname, name string) uint64 {
	t.Helper()
	out := mustExec(t, l, node, "cat", "/sys/class/net/"+ifname+"/statistics/"+name)
	n, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFabric: a pod on node 1 streams to pods on nodes 2 and 3 that joined, each
// getting every packet from its first on, once; a process on node 3 reaches a pod
// on node 2; a group nobody on node 3 joined never crosses its underlay; a sender
// with TTL 1 is named; and the stream goes on when the RP's daemon stops.
func TestFabric(t *testing.T) {
	l := deploy(t, topology(t, "k8s-fabric", sameConfig(t)))
	waitFabric(t, l, fabricNodes, "10.0.0.2") // the lowest address

	// A stream already running; the pods join it.
	startSender(t, l, "pod1", podSend("239.1.1.1", 16, "-duration", lab.Scaled(40*time.Second).String())...)
	r2 := startReceiver(t, l, "pod2a", podRecv("239.1.1.1", "-duration", lab.Scaled(3*time.Second).String())...)
	r3 := startReceiver(t, l, "pod3", podRecv("239.1.1.1", "-duration", lab.Scaled(3*time.Second).String())...)
	for name, r := range map[string]*receiver{"pod2a": r2, "pod3": r3} {
		rep := r.report(t, 10*time.Second)
		t.Logf("%s: %d packets, join to first packet %.0f ms, %d lost after the first, %d duplicates",
			name, rep.Unique, rep.FirstPacketMs, lostAfterFirst(rep), rep.Duplicates)
		if rep.Unique == 0 || lostAfterFirst(rep) > lab.SwitchLoss() || rep.Duplicates != 0 {
			t.Errorf("%s: %+v; want every packet from the first on, once", name, rep.Stats)
		}
	}

	// A process on node 3 itself, as a host-network pod, with a TTL that routes.
	r2b := startReceiver(t, l, "pod2b", podRecv("239.1.1.2", "-count", "200")...)
	waitFabricJoined(t, l, "node3", "10.0.0.2", "239.1.1.2")
	send(t, l, "node3", podSend("239.1.1.2", 16, "-count", "250")...)
	if rep := r2b.report(t, 10*time.Second); rep.Unique < 200 {
		t.Errorf("pod2b from node 3's own process: %+v", rep.Stats)
	}

	// A group only node 2 joined: node 3's underlay carries none of it.
	holdMembershipIn(t, l, "pod2b", "239.1.1.3")
	waitFabricJoined(t, l, "node1", "10.0.0.2", "239.1.1.3")
	rx2, rx3 := sysCounter(t, l, "node2", "eth0", "rx_bytes"), sysCounter(t, l, "node3", "eth0", "rx_bytes")
	send(t, l, "pod1", podSend("239.1.1.3", 16, "-count", "500", "-size", "1000")...)
	d2, d3 := sysCounter(t, l, "node2", "eth0", "rx_bytes")-rx2, sysCounter(t, l, "node3", "eth0", "rx_bytes")-rx3
	t.Logf("selective replication, 500 packets of 1000 bytes to a group only node 2 joined: node 2's underlay %d bytes, node 3's %d", d2, d3)
	if d2 < 400*1000 || d3 > d2/20 {
		t.Errorf("underlay bytes: node 2 %d, node 3 %d; want node 3's a small fraction (selective replication)", d2, d3)
	}
	// The same with every group to every node, for comparison.
	for _, n := range fabricNodes {
		writeFile(t, configPath(t, l, n), fabricConfigText(t)+"replication = \"all\"\n")
		mustExec(t, l, n, "mroutectl", "reload")
	}
	rx2, rx3 = sysCounter(t, l, "node2", "eth0", "rx_bytes"), sysCounter(t, l, "node3", "eth0", "rx_bytes")
	send(t, l, "pod1", podSend("239.1.1.3", 16, "-count", "500", "-size", "1000")...)
	d2, d3 = sysCounter(t, l, "node2", "eth0", "rx_bytes")-rx2, sysCounter(t, l, "node3", "eth0", "rx_bytes")-rx3
	t.Logf("full replication, the same: node 2's underlay %d bytes, node 3's %d", d2, d3)
	if d3 < d2*9/10 {
		t.Errorf("full replication: node 3's underlay %d bytes, node 2's %d; want about the same", d3, d2)
	}
	for _, n := range fabricNodes {
		writeFile(t, configPath(t, l, n), fabricConfigText(t))
		mustExec(t, l, n, "mroutectl", "reload")
	}

	// A process on node 1 with TTL 1, as in most walk-throughs: named, not routed.
	ttl1Started := time.Now()
	stopTTL1 := startSender(t, l, "node1", podSend("239.1.1.4", 1, "-duration", lab.Scaled(30*time.Second).String())...)
	lab.WaitFor(t, 5*time.Second, "node1 names the TTL-1 sender", func() (bool, string) {
		var st api.Status
		ctl(t, l, "node1", &st, "show", "status")
		for _, u := range st.Unroutable {
			if u.Source == "10.0.1.2" && u.Group == "239.1.1.4" && u.TTL == 1 {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", st.Unroutable)
	})
	// An upper bound: the sender's start and each mroutectl call are in it.
	t.Logf("the TTL-1 sender named in show status %.0f ms after the sender started",
		float64(time.Since(ttl1Started).Microseconds())/1000)
	if rt, ok := findRoute(routes(t, l, "node1"), "10.0.1.2", "239.1.1.4"); !ok || !slices.Contains(rt.Flags, "low-ttl") || rt.Warning == "" {
		t.Errorf("show routes: %+v", rt)
	}
	stopTTL1()

	// The RP's daemon stops: node 3 keeps getting the stream from node 1.
	r3 = startReceiver(t, l, "pod3", podRecv("239.1.1.1", "-duration", lab.Scaled(8*time.Second).String())...)
	lab.WaitFor(t, 5*time.Second, "pod3 receiving", func() (bool, string) {
		n := sysCounter(t, l, "pod3", "eth0", "rx_packets")
		return n > 200, fmt.Sprint(n)
	})
	// By now the bridge's snooping trusts the querier (it floods for a query's
	// response time after it first hears one): the pod on node 3's bridge that did
	// not join gets none of the stream.
	rx3b := sysCounter(t, l, "pod3b", "eth0", "rx_packets")
	stopped := time.Now()
	if err := l.StopDaemon("node2", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFabric(t, l, []string{"node1", "node3"}, "10.0.1.2")
	t.Logf("new RP elected %.0f ms after the stop", float64(time.Since(stopped).Microseconds())/1000)
	rep := r3.report(t, 20*time.Second)
	t.Logf("pod3 through the RP's stop: %d packets, %d lost after the first, largest gap %.1f ms, %d duplicates",
		rep.Unique, lostAfterFirst(rep), rep.MaxGapMs, rep.Duplicates)
	if rep.LastPacketMs < float64(lab.Scaled(7*time.Second).Milliseconds()) || rep.Duplicates != 0 {
		t.Errorf("pod3: %+v; the stream did not go on after the RP stopped", rep.Stats)
	}
	if n := sysCounter(t, l, "pod3b", "eth0", "rx_packets") - rx3b; n > 20 {
		t.Errorf("pod3b, on the same bridge as pod3 but no member, received %d packets of the stream", n)
	}
}

// TestFabricInteropFRR: FRR on a fourth node, its own VXLAN configured by hand,
// peers with the nodes over the fabric, and its host gets a pod's SSM stream.
func TestFabricInteropFRR(t *testing.T) {
	peers.RequireFRR(t)
	l := deploy(t, topology(t, "k8s-fabric", nil))
	startFRR(t, l, "frr", "interface mrfabric\n ip pim\n!\ninterface eth1\n ip pim\n ip igmp\n ip igmp version 3\n!\n")
	waitFabric(t, l, fabricNodes, "10.0.0.2")
	waitFRR(t, l, 30*time.Second, "frr", "show ip pim neighbor", "10.0.1.2", "10.0.0.2", "10.0.3.2")
	lab.WaitFor(t, 30*time.Second, "node1 has FRR as a neighbour", func() (bool, string) {
		for _, p := range fabricOf(t, l, "node1").Peers {
			if p.Address == "10.0.4.2" {
				return p.Neighbor, fmt.Sprintf("%+v", p)
			}
		}
		return false, "no such peer"
	})
	r := startReceiver(t, l, "frrhost", "-group", "232.1.1.1", "-source", "10.244.1.10", "-port", "5000",
		"-ifname", "eth0", "-count", "200")
	waitFabricJoined(t, l, "node1", "10.0.4.2", "232.1.1.1")
	send(t, l, "pod1", podSend("232.1.1.1", 16, "-count", "250")...)
	rep := r.report(t, 10*time.Second)
	t.Logf("FRR's host: %d of 250, join to first packet %.0f ms", rep.Unique, rep.FirstPacketMs)
	if rep.Unique < 200 || rep.Duplicates != 0 {
		t.Errorf("FRR's host: %+v", rep.Stats)
	}
}

// fabricConfigText is the nodes' config file of the k8s-fabric lab.
func fabricConfigText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "topologies", "k8s-fabric", "node.toml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sameConfig gives every node its own copy of the one config file, which a test
// may then change.
func sameConfig(t *testing.T) map[string]string {
	out := map[string]string{}
	for _, n := range fabricNodes {
		out[n] = fabricConfigText(t)
	}
	return out
}

// holdMembershipIn keeps a pod a member of group, on a port nothing is sent to.
func holdMembershipIn(t *testing.T, l *lab.Lab, node, group string) {
	t.Helper()
	startReceiver(t, l, node, "-group", group, "-port", "5001", "-ifname", "eth0")
}

// TestNodeWithManyPods: node 2 gets 300 pod interfaces, as a routed-veth CNI makes
// them; 25 pods join and get a pod's stream from node 1, with VIFs only for them,
// and give the VIFs back when they leave.
func TestNodeWithManyPods(t *testing.T) {
	l := deploy(t, topology(t, "k8s-fabric", nil))
	waitFabric(t, l, fabricNodes, "10.0.0.2")
	const pods, active = 300, 25
	node := l.Netns("node2")
	idle := l.Prefix + "-idle"
	var netns []string
	t.Cleanup(func() {
		for _, ns := range append(netns, idle) {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	var links, nodeSide, routes, podSide, idleSide strings.Builder
	sysctls := []string{"-qw"}
	mustRun(t, "ip", "netns", "add", idle)
	for i := range pods {
		name := fmt.Sprintf("kp%d", i)
		if i < active {
			peerNS := fmt.Sprintf("%s-kp%d", l.Prefix, i)
			mustRun(t, "ip", "netns", "add", peerNS)
			netns = append(netns, peerNS)
			addr := fmt.Sprintf("10.244.2.%d", 100+i)
			fmt.Fprintf(&links, "link add %s netns %s type veth peer name eth0 netns %s\n", name, node, peerNS)
			fmt.Fprintf(&routes, "route add %s/32 dev %s\n", addr, name)
			sysctls = append(sysctls, "net.ipv4.conf."+name+".proxy_arp=1")
			fmt.Fprintf(&podSide, "%s %s\n", peerNS, addr)
		} else {
			fmt.Fprintf(&links, "link add %s netns %s type veth peer name %sp netns %s\n", name, node, name, idle)
			fmt.Fprintf(&idleSide, "link set %sp up\n", name) // a running pod's end is up
		}
		fmt.Fprintf(&nodeSide, "link set %s up\n", name)
	}
	ipBatch(t, "", links.String())
	ipBatch(t, idle, idleSide.String())
	ipBatch(t, node, nodeSide.String()+routes.String())
	mustRun(t, append([]string{"ip", "netns", "exec", node, "sysctl"}, sysctls...)...)
	for _, line := range strings.Split(strings.TrimSpace(podSide.String()), "\n") {
		ns, addr, _ := strings.Cut(line, " ")
		ipBatch(t, ns, fmt.Sprintf("link set lo up\nlink set eth0 up\naddr add %s/32 dev eth0\n"+
			"route add 169.254.1.1 dev eth0 scope link\nroute add default via 169.254.1.1 dev eth0\n", addr))
	}
	lab.WaitFor(t, 30*time.Second, "node2 watches every pod interface", func() (bool, string) {
		var st api.Status
		ctl(t, l, "node2", &st, "show", "status")
		return st.Interfaces >= pods, fmt.Sprint(st.Interfaces)
	})
	// One pod joins a running stream: the time to its first packet, with 300
	// interfaces on its node (TestFabric measures it with 2).
	startSender(t, l, "pod1", podSend("239.1.1.6", 16, "-duration", lab.Scaled(20*time.Second).String())...)
	waitRouteAt(t, l, "node1", "10.244.1.10", "239.1.1.6")
	first := startReceiverIn(t, l.Prefix+"-kp0", podRecv("239.1.1.6", "-duration", lab.Scaled(3*time.Second).String())...)
	rep := first.report(t, 10*time.Second)
	t.Logf("a pod on the node with %d interfaces: join to first packet %.0f ms (%d packets)", pods, rep.FirstPacketMs, rep.Unique)
	if rep.Unique == 0 {
		t.Errorf("the pod got nothing of a running stream")
	}
	// The stream's route at node 1 exists before the pods join: what is measured is
	// the pods' side.
	send(t, l, "pod1", podSend("239.1.1.5", 16, "-count", "5")...)

	const count = 300
	var receivers []*receiver
	for i := range active {
		receivers = append(receivers, startReceiverIn(t, fmt.Sprintf("%s-kp%d", l.Prefix, i),
			podRecv("239.1.1.5", "-count", strconv.Itoa(count))...))
	}
	waitFabricJoined(t, l, "node1", "10.0.0.2", "239.1.1.5")
	var st api.Status
	ctl(t, l, "node2", &st, "show", "status")
	rss, cpu := daemonUsage(t, l, "node2")
	t.Logf("node2 with %d pods, %d joined: %d VIFs in use, %d interfaces watched; mrouterd RSS %d KiB, CPU %s since start",
		pods, active, st.VIFs, st.Interfaces, rss, cpu)
	if st.VIFs > 32 || st.Interfaces < pods {
		t.Errorf("status: %d VIFs, %d interfaces watched", st.VIFs, st.Interfaces)
	}
	send(t, l, "pod1", "-group", "239.1.1.5", "-port", "5000", "-ifname", "eth0", "-ttl", "16",
		"-rate", fmt.Sprint(lab.Rate(100)), "-count", strconv.Itoa(count))
	for i, r := range receivers {
		rep := r.report(t, 10*time.Second)
		if rep.Unique < count*99/100 {
			t.Errorf("pod kp%d: %d of %d", i, rep.Unique, count)
		}
	}
	// The pods have left: their interfaces give their VIFs back.
	lab.WaitFor(t, 20*time.Second, "the pods' VIFs returned", func() (bool, string) {
		var ifs api.Interfaces
		ctl(t, l, "node2", &ifs, "show", "interfaces")
		var held []string
		for _, i := range ifs.Interfaces {
			if strings.HasPrefix(i.Name, "kp") && i.VIF >= 0 {
				held = append(held, i.Name)
			}
		}
		return len(held) == 0, strings.Join(held, " ")
	})
}

// daemonUsage is a node's mrouterd resident set and CPU time so far.
func daemonUsage(t *testing.T, l *lab.Lab, node string) (rssKiB uint64, cpu time.Duration) {
	t.Helper()
	pid, ok := l.DaemonPID(node)
	if !ok {
		t.Fatalf("%s: mrouterd is not running", node)
	}
	rssKiB, _, err := daemonMemory(pid)
	if err != nil {
		t.Fatal(err)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command name, which is in parentheses: utime and stime
	// are the 12th and 13th of them, in clock ticks of 1/100 s.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(fields) > 12 {
		u, _ := strconv.ParseUint(fields[11], 10, 64)
		s, _ := strconv.ParseUint(fields[12], 10, 64)
		cpu = time.Duration(u+s) * 10 * time.Millisecond
	}
	return rssKiB, cpu
}

// waitRouteAt polls until a node has a route for (S,G).
func waitRouteAt(t *testing.T, l *lab.Lab, node, source, group string) {
	t.Helper()
	lab.WaitFor(t, 10*time.Second, fmt.Sprintf("%s: a route for (%s,%s)", node, source, group), func() (bool, string) {
		_, ok := findRoute(routes(t, l, node), source, group)
		return ok, ""
	})
}

func mustRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// ipBatch runs ip commands, one per line, in a namespace ("" for this one).
func ipBatch(t *testing.T, netns, commands string) {
	t.Helper()
	args := []string{"-batch", "-"}
	if netns != "" {
		args = append([]string{"-n", netns}, args...)
	}
	cmd := exec.Command("ip", args...)
	cmd.Stdin = strings.NewReader(commands)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// startReceiverIn is startReceiver in a namespace of the test's own.
func startReceiverIn(t *testing.T, netns string, args ...string) *receiver {
	t.Helper()
	return runReceiver(t, netns, func(ready string) *exec.Cmd {
		return exec.Command("ip", append([]string{"netns", "exec", netns, filepath.Join(binDir, "mcast"), "recv", "-ready", ready}, args...)...)
	})
}
