package lab

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Deploy loads the topology at topoPath and deploys it with DeployTopology.
func Deploy(t testing.TB, topoPath string, opts Options) *Lab {
	t.Helper()
	RequireRoot(t)
	topo, err := Load(topoPath)
	if err != nil {
		t.Fatal(err)
	}
	return DeployTopology(t, topo, opts)
}

// DeployTopology brings topo up for t, typically a loaded file that the test adjusted,
// and tears it down when t ends. When t has failed by then, it first logs what helps to
// see why: each daemon's log tail, and each router's multicast routes and links.
func DeployTopology(t testing.TB, topo *Topology, opts Options) *Lab {
	t.Helper()
	RequireRoot(t)
	if opts.Log == nil {
		opts.Log = testLogWriter{t}
	}
	l, err := Up(topo, opts)
	if err != nil {
		t.Fatalf("lab up %s: %v", topo.Name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			l.logDiagnostics(t)
		}
		if err := l.Down(); err != nil {
			t.Errorf("lab down %s: %v", l.Prefix, err)
		}
	})
	return l
}

// logDiagnostics logs, best effort, the state of every node that runs mrouterd.
func (l *Lab) logDiagnostics(t testing.TB) {
	for _, name := range l.Topo.NodeOrder {
		if !l.Topo.Nodes[name].Daemon() {
			continue
		}
		t.Logf("=== %s: mrouterd log (last 40 lines of %s)\n%s", name, l.DaemonLogPath(name), tail(l.DaemonLog(name), 40))
		for _, args := range [][]string{{"ip", "mroute", "show"}, {"ip", "-d", "link"}} {
			out, err := l.Exec(name, args...)
			if err != nil {
				out = err.Error()
			}
			t.Logf("=== %s: %s\n%s", name, strings.Join(args, " "), out)
		}
	}
}

// testLogWriter turns the lab's progress lines into test log lines.
type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TimeScale is how many times slower than a host the lab runs: MROUTERD_LAB_TIME_SCALE
// when set, 10 in a VM whose CPU is emulated (vmtest sets VMTEST_ACCEL=tcg there), and
// 1 elsewhere.
func TimeScale() float64 {
	if v, err := strconv.ParseFloat(os.Getenv(TimeScaleEnv), 64); err == nil && v >= 1 {
		return v
	}
	if os.Getenv("VMTEST_ACCEL") == "tcg" {
		return 10
	}
	return 1
}

// TimeScaleEnv names the variable that overrides TimeScale.
const TimeScaleEnv = "MROUTERD_LAB_TIME_SCALE"

// Scaled stretches a deadline by TimeScale. A deadline only bounds a wait that polls,
// so a longer one costs nothing where things are fast.
func Scaled(d time.Duration) time.Duration { return time.Duration(float64(d) * TimeScale()) }

// Rate slows a packet rate by TimeScale, so that a stream's packets come as far apart
// in the machine's work as on a host: at 1,000 pps, a control plane that is ten times
// slower would lose ten times the packets while it sets a route up.
func Rate(pps int) int { return max(1, int(float64(pps)/TimeScale())) }

// SwitchLoss is how many packets a stream may lose while the routers move it from the
// register tunnel or the shared tree to the source's tree: none on a host. Where the
// machine is slower (TimeScale > 1), the kernel forwards packets for the whole time
// the routers take to swap their entries, and some fall between them: under TCG, up
// to 270 ms of a stream has been seen to, with the host's other core busy.
func SwitchLoss() uint64 {
	if TimeScale() > 1 {
		return uint64(Rate(1000)) / 2
	}
	return 0
}

// WaitFor polls cond every 50ms until it holds, failing t after timeout (Scaled) with
// what and the detail cond returned last.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	timeout = Scaled(timeout)
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, detail)
		}
		time.Sleep(pollInterval)
	}
}
