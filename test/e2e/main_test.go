// Package e2e holds the lab tests: real daemons in network namespaces, real packets
// through the kernel, checked with the traffic tool and mroutectl's JSON.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mrouterd/mrouterd/router/api"
	"github.com/mrouterd/mrouterd/test/lab"
	"github.com/mrouterd/mrouterd/test/mcast"
)

// binDir holds mrouterd, mroutectl, lab and mcast: $MROUTERD_BIN (make test sets it) or
// a fresh build.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	binDir = os.Getenv("MROUTERD_BIN")
	if binDir == "" && os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "mrouterd-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		build := exec.Command("go", "build", "-o", dir+"/", "../../cmd/...", "../cmd/...")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
			return 1
		}
		binDir = dir
	}
	return m.Run()
}

// topology loads a file from test/topologies and points each named router's config
// bind at a file holding the given TOML.
func topology(t *testing.T, name string, configs map[string]string) *lab.Topology {
	t.Helper()
	lab.RequireRoot(t)
	topo, err := lab.Load(filepath.Join("..", "topologies", name+".clab.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for node, text := range configs {
		n := topo.Nodes[node]
		if n == nil {
			t.Fatalf("topology %s has no node %s", name, node)
		}
		path := filepath.Join(t.TempDir(), node+".toml")
		writeFile(t, path, text)
		n.Binds = []lab.Bind{{Host: path, Container: "/etc/mrouterd/mrouterd.toml"}}
	}
	return topo
}

func deploy(t *testing.T, topo *lab.Topology) *lab.Lab {
	t.Helper()
	return lab.DeployTopology(t, topo, lab.Options{BinDir: binDir, DaemonArgs: []string{"--log-level", "debug"}})
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// configPath is where a node's config bind points.
func configPath(t *testing.T, l *lab.Lab, node string) string {
	t.Helper()
	for _, b := range l.Topo.Nodes[node].Binds {
		if b.Container == "/etc/mrouterd/mrouterd.toml" {
			return b.Host
		}
	}
	t.Fatalf("node %s has no config bind", node)
	return ""
}

// receiver is a running `mcast recv`.
type receiver struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

// startReceiver joins and returns once the receiver's socket is joined.
func startReceiver(t *testing.T, l *lab.Lab, node string, args ...string) *receiver {
	t.Helper()
	return runReceiver(t, node, func(ready string) *exec.Cmd {
		return l.Command(node, append([]string{"mcast", "recv", "-ready", ready}, args...)...)
	})
}

// runReceiver starts the receiver command makes, which creates ready once joined.
func runReceiver(t *testing.T, node string, command func(ready string) *exec.Cmd) *receiver {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	r := &receiver{cmd: command(ready)}
	r.cmd.Stdout = &r.out
	r.cmd.Stderr = os.Stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.cmd.Process.Kill(); _ = r.cmd.Wait() })
	lab.WaitFor(t, 5*time.Second, node+" receiver joined", func() (bool, string) {
		_, err := os.Stat(ready)
		return err == nil, fmt.Sprint(err)
	})
	return r
}

// holdMembership keeps node a member of group (with a source filter such as -source S
// for SSM) until the test ends, on a port that
// nothing is sent to, so that checks made after a counting receiver has left still
// see the tree that served it.
func holdMembership(t *testing.T, l *lab.Lab, node, group string, filter ...string) {
	t.Helper()
	startReceiver(t, l, node, append([]string{"-group", group, "-port", "5001", "-ifname", "eth1"}, filter...)...)
}

// report waits up to grace (Scaled) for the receiver to finish on its own (-count, -duration),
// then stops it, and returns what it counted.
func (r *receiver) report(t *testing.T, grace time.Duration) mcast.Report {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(lab.Scaled(grace)):
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err = <-done:
		case <-time.After(lab.Scaled(10 * time.Second)):
			t.Fatal("receiver did not stop")
		}
	}
	if err != nil {
		t.Fatalf("receiver: %v", err)
	}
	rep, err := mcast.ParseReport(r.out.Bytes())
	if err != nil {
		t.Fatalf("receiver report %q: %v", r.out.String(), err)
	}
	return rep
}

// send runs `mcast send` to completion.
func send(t *testing.T, l *lab.Lab, node string, args ...string) {
	t.Helper()
	if out, err := l.Exec(node, append([]string{"mcast", "send"}, args...)...); err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
}

// startSender runs `mcast send` in the background; the returned stop ends it.
func startSender(t *testing.T, l *lab.Lab, node string, args ...string) (stop func()) {
	t.Helper()
	cmd := l.Command(node, append([]string{"mcast", "send"}, args...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	t.Cleanup(stop)
	return stop
}

// ctl runs mroutectl on a node and decodes its --json output.
func ctl(t *testing.T, l *lab.Lab, node string, out any, args ...string) {
	t.Helper()
	text, err := l.Exec(node, append([]string{"mroutectl", "--json"}, args...)...)
	if err != nil {
		t.Fatalf("mroutectl %s: %v", strings.Join(args, " "), err)
	}
	if err := json.Unmarshal([]byte(text), out); err != nil {
		t.Fatalf("mroutectl %s: %v in %q", strings.Join(args, " "), err, text)
	}
}

func routes(t *testing.T, l *lab.Lab, node string) []api.Route {
	var rs api.Routes
	ctl(t, l, node, &rs, "show", "routes")
	return rs.Routes
}

func mfc(t *testing.T, l *lab.Lab, node string) []api.MFCEntry {
	var m api.MFC
	ctl(t, l, node, &m, "show", "mfc")
	return m.MFC
}

func findRoute(rs []api.Route, source, group string) (api.Route, bool) {
	for _, r := range rs {
		if r.Source == source && r.Group == group {
			return r, true
		}
	}
	return api.Route{}, false
}

func findMFC(es []api.MFCEntry, source, group string) (api.MFCEntry, bool) {
	for _, e := range es {
		if e.Source == source && e.Group == group {
			return e, true
		}
	}
	return api.MFCEntry{}, false
}

// waitRoute polls until the (S,G) is installed in the kernel with the given oifs.
func waitMFC(t *testing.T, l *lab.Lab, node, source, group string, oifs ...string) {
	t.Helper()
	lab.WaitFor(t, 5*time.Second, fmt.Sprintf("%s: MFC (%s,%s) -> %v", node, source, group, oifs), func() (bool, string) {
		e, ok := findMFC(mfc(t, l, node), source, group)
		return ok && strings.Join(e.OIFs, ",") == strings.Join(oifs, ","), fmt.Sprintf("%+v", e)
	})
}
