package e2e

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/router/api"
	"github.com/mrouterd/mrouterd/test/lab"
)

// staticConfig is r1's config in the static topology: src on eth1, rcv1 on eth2, rcv2
// on eth3. extra is appended.
func staticConfig(extra string) string {
	return `
[router]
idle-timeout = "2s"
resync-interval = "5s"

[[interface]]
match = "eth*"

[[static]]
source = "10.0.1.2"
group = "239.1.1.1"
iif = "eth1"
oifs = ["eth2", "eth3"]
` + extra
}

const templateRoute = `
[[static]]
group = "239.2.2.2"
iif = "eth1"
oifs = ["eth2"]
`

func sendArgs(group string, count int) []string {
	return []string{"-group", group, "-port", "5000", "-ifname", "eth1", "-ttl", "8", "-rate", fmt.Sprint(lab.Rate(1000)), "-count", fmt.Sprint(count)}
}

func recvArgs(group string, extra ...string) []string {
	return append([]string{"-group", group, "-port", "5000", "-ifname", "eth1"}, extra...)
}

// TestStaticSGToTwoInterfaces: a static (S,G) forwards every packet to both outgoing
// interfaces, and the route's packet counter rises with the traffic.
func TestStaticSGToTwoInterfaces(t *testing.T) {
	l := deploy(t, topology(t, "static", map[string]string{"r1": staticConfig("")}))
	waitMFC(t, l, "r1", "10.0.1.2", "239.1.1.1", "eth2", "eth3")

	r1 := startReceiver(t, l, "rcv1", recvArgs("239.1.1.1", "-count", "300")...)
	r2 := startReceiver(t, l, "rcv2", recvArgs("239.1.1.1", "-count", "300")...)
	send(t, l, "src", sendArgs("239.1.1.1", 300)...)
	for name, r := range map[string]*receiver{"rcv1": r1, "rcv2": r2} {
		rep := r.report(t, 3*time.Second)
		if rep.Unique != 300 || rep.Lost != 0 || rep.Duplicates != 0 {
			t.Errorf("%s: got %d unique, %d lost, %d duplicates; want 300, 0, 0", name, rep.Unique, rep.Lost, rep.Duplicates)
		}
	}

	first, ok := findRoute(routes(t, l, "r1"), "10.0.1.2", "239.1.1.1")
	if !ok || first.Packets < 300 || first.Protocol != "static" || !slices.Equal(first.OIFs, []string{"eth2", "eth3"}) {
		t.Fatalf("route after 300 packets: %+v (found %v)", first, ok)
	}
	metrics := mustExec(t, l, "r1", "mroutectl", "show", "metrics")
	for _, want := range []string{`mrouterd_vif_packets_total{direction="out",interface="eth2"} 3`, "mrouterd_routes 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}

	send(t, l, "src", sendArgs("239.1.1.1", 100)...)
	lab.WaitFor(t, 5*time.Second, "route counter rising by 100", func() (bool, string) {
		now, _ := findRoute(routes(t, l, "r1"), "10.0.1.2", "239.1.1.1")
		return now.Packets >= first.Packets+100, fmt.Sprintf("packets %d -> %d", first.Packets, now.Packets)
	})
}

// TestTemplateLearnsAndExpires: a (*,G) template installs the (S,G) of a new source
// from the kernel's upcall, forwards it only where the template says, and drops the
// entry once the source has been silent for the idle timeout.
func TestTemplateLearnsAndExpires(t *testing.T) {
	l := deploy(t, topology(t, "static", map[string]string{"r1": staticConfig(templateRoute)}))
	waitMFC(t, l, "r1", "10.0.1.2", "239.1.1.1", "eth2", "eth3")
	if _, ok := findMFC(mfc(t, l, "r1"), "10.0.1.2", "239.2.2.2"); ok {
		t.Fatal("template installed an (S,G) before any source sent")
	}

	member := startReceiver(t, l, "rcv1", recvArgs("239.2.2.2")...)
	other := startReceiver(t, l, "rcv2", recvArgs("239.2.2.2")...)
	send(t, l, "src", sendArgs("239.2.2.2", 500)...)

	rt, ok := findRoute(routes(t, l, "r1"), "10.0.1.2", "239.2.2.2")
	if !ok || !slices.Contains(rt.Flags, "learned") || rt.ExpiresS <= 0 {
		t.Fatalf("learned route: %+v (found %v)", rt, ok)
	}
	got := member.report(t, time.Second)
	if got.Unique < 495 {
		t.Errorf("member got %d of 500 packets (lost %d)", got.Unique, got.Lost)
	}
	if rep := other.report(t, 0); rep.Received != 0 {
		t.Errorf("interface outside the template got %d packets", rep.Received)
	}

	lab.WaitFor(t, 10*time.Second, "learned (S,G) expiring", func() (bool, string) {
		_, inRoutes := findRoute(routes(t, l, "r1"), "10.0.1.2", "239.2.2.2")
		_, inMFC := findMFC(mfc(t, l, "r1"), "10.0.1.2", "239.2.2.2")
		return !inRoutes && !inMFC, fmt.Sprintf("in routes %v, in kernel %v", inRoutes, inMFC)
	})
	if _, ok := findMFC(mfc(t, l, "r1"), "10.0.1.2", "239.1.1.1"); !ok {
		t.Error("static (S,G) went away with the learned one")
	}
}

// TestReloadAppliesOnlyTheDifference: routes are added and removed by SIGHUP and by
// `mroutectl reload` while another route forwards a steady stream that loses nothing
// and keeps its counters.
func TestReloadAppliesOnlyTheDifference(t *testing.T) {
	l := deploy(t, topology(t, "static", map[string]string{"r1": staticConfig(templateRoute)}))
	cfg := configPath(t, l, "r1")
	waitMFC(t, l, "r1", "10.0.1.2", "239.1.1.1", "eth2", "eth3")

	steady := startReceiver(t, l, "rcv1", recvArgs("239.1.1.1")...)
	stopSteady := startSender(t, l, "src", "-group", "239.1.1.1", "-port", "5000", "-ifname", "eth1", "-ttl", "8", "-rate", fmt.Sprint(lab.Rate(500)))
	lab.WaitFor(t, 5*time.Second, "steady stream counted", func() (bool, string) {
		rt, _ := findRoute(routes(t, l, "r1"), "10.0.1.2", "239.1.1.1")
		return rt.Packets > 100, fmt.Sprint(rt.Packets)
	})
	before, _ := findRoute(routes(t, l, "r1"), "10.0.1.2", "239.1.1.1")

	added := `
[[static]]
source = "10.0.1.2"
group = "239.3.3.3"
iif = "eth1"
oifs = ["eth3"]
`
	writeFile(t, cfg, staticConfig(added))
	if err := l.Signal("r1", syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMFC(t, l, "r1", "10.0.1.2", "239.3.3.3", "eth3")
	newFlow := startReceiver(t, l, "rcv2", recvArgs("239.3.3.3", "-count", "200")...)
	send(t, l, "src", sendArgs("239.3.3.3", 200)...)
	if rep := newFlow.report(t, 3*time.Second); rep.Unique != 200 {
		t.Errorf("added route delivered %d of 200", rep.Unique)
	}
	if _, ok := findRoute(routes(t, l, "r1"), "*", "239.2.2.2"); ok {
		t.Error("removed template still listed")
	}

	writeFile(t, cfg, staticConfig(""))
	out, err := l.Exec("r1", "mroutectl", "reload")
	if err != nil || !strings.Contains(out, "239.3.3.3") {
		t.Fatalf("mroutectl reload: %v: %s", err, out)
	}
	lab.WaitFor(t, 5*time.Second, "removed route leaving the kernel", func() (bool, string) {
		_, ok := findMFC(mfc(t, l, "r1"), "10.0.1.2", "239.3.3.3")
		return !ok, ""
	})

	writeFile(t, cfg, "[router]\ntabel = 3\n")
	if out, err := l.Exec("r1", "mroutectl", "reload"); err == nil || !strings.Contains(out, "tabel") {
		t.Errorf("bad config accepted by reload: %v: %s", err, out)
	}

	after, _ := findRoute(routes(t, l, "r1"), "10.0.1.2", "239.1.1.1")
	stopSteady()
	rep := steady.report(t, time.Second)
	if rep.Lost != 0 || rep.Duplicates != 0 || rep.Unique < 100 {
		t.Errorf("steady stream across reloads: %d unique, %d lost, %d duplicates", rep.Unique, rep.Lost, rep.Duplicates)
	}
	if after.Packets < before.Packets || after.UptimeS < before.UptimeS {
		t.Errorf("unchanged route was reinstalled: packets %d -> %d, uptime %d -> %d",
			before.Packets, after.Packets, before.UptimeS, after.UptimeS)
	}
}

// TestInterfaceAppearsAfterStart: a route naming an interface that does not exist yet
// forwards as soon as the interface is created, and again after it is re-created with
// a new ifindex.
func TestInterfaceAppearsAfterStart(t *testing.T) {
	late := `
[[static]]
source = "10.0.1.2"
group = "239.4.4.4"
iif = "eth1"
oifs = ["eth4"]
`
	l := deploy(t, topology(t, "static", map[string]string{"r1": staticConfig(late)}))
	waitMFC(t, l, "r1", "10.0.1.2", "239.4.4.4")

	for round := range 2 {
		mustExec(t, l, "r1", "ip", "link", "add", "eth4", "type", "veth", "peer", "name", "eth4", "netns", l.Netns("rcv1"))
		mustExec(t, l, "r1", "ip", "addr", "add", "10.0.4.1/24", "dev", "eth4")
		mustExec(t, l, "r1", "ip", "link", "set", "eth4", "up")
		mustExec(t, l, "rcv1", "ip", "addr", "add", "10.0.4.2/24", "dev", "eth4")
		mustExec(t, l, "rcv1", "ip", "link", "set", "eth4", "up")
		waitMFC(t, l, "r1", "10.0.1.2", "239.4.4.4", "eth4")

		r := startReceiver(t, l, "rcv1", "-group", "239.4.4.4", "-port", "5000", "-ifname", "eth4", "-count", "200")
		send(t, l, "src", sendArgs("239.4.4.4", 200)...)
		if rep := r.report(t, 3*time.Second); rep.Unique != 200 {
			t.Errorf("round %d: new interface got %d of 200", round, rep.Unique)
		}
		mustExec(t, l, "r1", "ip", "link", "del", "eth4")
		waitMFC(t, l, "r1", "10.0.1.2", "239.4.4.4")
	}
}

// TestSecondDaemonRefused: another daemon on the same kernel table is refused with a
// message that says who usually holds it; the first keeps running.
func TestSecondDaemonRefused(t *testing.T) {
	l := deploy(t, topology(t, "static", map[string]string{"r1": staticConfig("")}))
	out, err := l.Exec("r1", "mrouterd", "-c", configPath(t, l, "r1"), "-s", t.TempDir()+"/second.sock")
	if err == nil {
		t.Fatalf("second daemon started: %s", out)
	}
	for _, want := range []string{"table", "pimd", "smcroute"} {
		if !strings.Contains(out, want) {
			t.Errorf("refusal %q does not mention %q", strings.TrimSpace(out), want)
		}
	}
	if strings.Count(strings.TrimSpace(out), "\n") > 0 {
		t.Errorf("refusal is not one line: %q", out)
	}
	waitMFC(t, l, "r1", "10.0.1.2", "239.1.1.1", "eth2", "eth3")
}

// TestStopLeavesNothing: SIGTERM removes every VIF and MFC entry.
func TestStopLeavesNothing(t *testing.T) {
	l := deploy(t, topology(t, "static", map[string]string{"r1": staticConfig("")}))
	waitMFC(t, l, "r1", "10.0.1.2", "239.1.1.1", "eth2", "eth3")
	if n := procLines(t, l, "r1", "/proc/net/ip_mr_vif"); n < 3 {
		t.Fatalf("expected VIFs while running, /proc/net/ip_mr_vif has %d entries", n)
	}
	if err := l.StopDaemon("r1", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if n := procLines(t, l, "r1", "/proc/net/ip_mr_vif"); n != 0 {
		t.Errorf("%d VIFs left after SIGTERM", n)
	}
	if n := procLines(t, l, "r1", "/proc/net/ip_mr_cache"); n != 0 {
		t.Errorf("%d MFC entries left after SIGTERM", n)
	}
}

// procLines counts the entries (lines after the header) of a /proc table in a node.
func procLines(t *testing.T, l *lab.Lab, node, path string) int {
	t.Helper()
	out := mustExec(t, l, node, "cat", path)
	return max(len(strings.Split(strings.TrimSpace(out), "\n"))-1, 0)
}

func mustExec(t *testing.T, l *lab.Lab, node string, args ...string) string {
	t.Helper()
	out, err := l.Exec(node, args...)
	if err != nil {
		t.Fatalf("%s: %s: %v", node, strings.Join(args, " "), err)
	}
	return out
}

// TestDriftHealed: an entry removed from the kernel behind the daemon's back (by
// another privileged socket, as a stray tool would) is put back by the periodic
// reconcile, and the drift is counted.
func TestDriftHealed(t *testing.T) {
	cfg := strings.Replace(staticConfig(""), `resync-interval = "5s"`, `resync-interval = "1s"`, 1)
	l := deploy(t, topology(t, "static", map[string]string{"r1": cfg}))
	waitMFC(t, l, "r1", "10.0.1.2", "239.1.1.1", "eth2", "eth3")

	err := l.InNetns("r1", func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_IGMP)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		// struct mfcctl is 60 bytes; MRT_DEL_MFC (205) reads only source and group.
		var mfcctl [60]byte
		copy(mfcctl[0:4], []byte{10, 0, 1, 2})
		copy(mfcctl[4:8], []byte{239, 1, 1, 1})
		return unix.SetsockoptString(fd, unix.IPPROTO_IP, 205, string(mfcctl[:]))
	})
	if err != nil {
		t.Fatalf("remove the entry behind the daemon: %v", err)
	}
	waitMFC(t, l, "r1", "10.0.1.2", "239.1.1.1", "eth2", "eth3")
	var st api.Status
	ctl(t, l, "r1", &st, "show", "status")
	if st.Counters["mfc_drift"] == 0 {
		t.Errorf("drift not counted: %v", st.Counters)
	}
}
