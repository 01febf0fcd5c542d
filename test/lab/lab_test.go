package lab

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/router/api"
)

// fakeDaemonFailEnv makes the fake daemon fail at startup.
const fakeDaemonFailEnv = "LAB_TEST_FAKE_MROUTERD_FAIL"

// TestMain doubles as a stand-in mrouterd when run under that name, so the daemon
// handling is tested without the real daemon.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "mrouterd" {
		os.Exit(fakeDaemon(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeDaemon takes mrouterd's -c and -s, serves GET /v1/status on the socket, logs
// SIGHUP and exits on SIGTERM.
func fakeDaemon(args []string) int {
	fs := flag.NewFlagSet("mrouterd", flag.ContinueOnError)
	config := fs.String("c", "", "config")
	socket := fs.String("s", "", "socket")
	logLevel := fs.String("log-level", "info", "log level")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if os.Getenv(fakeDaemonFailEnv) != "" {
		fmt.Println("fake mrouterd: failing as asked")
		return 1
	}
	fmt.Printf("fake mrouterd: config %s, log level %s\n", *config, *logLevel)
	ln, err := net.Listen("unix", *socket)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathStatus, func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"version": "fake"})
	})
	go func() { _ = http.Serve(ln, mux) }()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM)
	for sig := range sigs {
		if sig == syscall.SIGTERM {
			fmt.Println("fake mrouterd: stopping")
			return 0
		}
		fmt.Println("fake mrouterd: reload")
	}
	return 0
}

// fakeBinDir returns a directory whose mrouterd is this test binary.
func fakeBinDir(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(dir, "mrouterd")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// requireGone fails t if anything of the lab with prefix is left on the host.
func requireGone(t *testing.T, prefix string) {
	t.Helper()
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			t.Errorf("netns %s left behind", e.Name())
		}
	}
	if _, err := os.Lstat(filepath.Join(RegistryDir, prefix)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("registry entry for %s left behind (%v)", prefix, err)
	}
}

// upForTest brings content up and makes sure, whatever happens, nothing is left.
func upForTest(t *testing.T, content string, opts Options) *Lab {
	t.Helper()
	RequireRoot(t)
	topo, err := Load(writeTopology(t, content))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Up(topo, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Error(err)
		}
		requireGone(t, l.Prefix)
	})
	return l
}

const twoHosts = `
name: pair
topology:
  kinds:
    linux:
      image: alpine:3
  nodes:
    h1:
      kind: linux
      exec:
        - ip addr add 10.9.0.1/24 dev eth1
    h2:
      kind: linux
      env: {GREETING: hello}
      exec:
        - ip addr add 10.9.0.2/24 dev eth1
  links:
    - endpoints: ["h1:eth1", "h2:eth1"]
`

func TestUpExecDown(t *testing.T) {
	l := upForTest(t, twoHosts, Options{})
	if !prefixPattern.MatchString(l.Prefix) || !strings.HasPrefix(l.Prefix, "ml") {
		t.Errorf("prefix %q", l.Prefix)
	}
	requireUDPPath(t, l, "h1", "h2", "10.9.0.2")
	out, err := l.Exec("h2", "sh", "-c", "echo $GREETING $"+api.SocketEnv)
	if err != nil {
		t.Fatal(err)
	}
	if want := "hello " + l.Socket("h2") + "\n"; out != want {
		t.Errorf("env in node: %q, want %q", out, want)
	}
	if _, err := l.Exec("h1", "false"); err == nil || !strings.Contains(err.Error(), "h1: false") {
		t.Errorf("failing command: error %v, want it to name node and command", err)
	}
	if _, err := l.Exec("nope", "true"); err == nil || !strings.Contains(err.Error(), `no node "nope"`) {
		t.Errorf("unknown node: error %v", err)
	}

	prefixes, err := List()
	if err != nil {
		t.Fatal(err)
	}
	if !contains(prefixes, l.Prefix) {
		t.Errorf("List() = %v, want it to hold %s", prefixes, l.Prefix)
	}

	attached, err := Attach(l.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attached.Exec("h2", "ip", "link", "show", "eth1"); err != nil {
		t.Error(err)
	}
	if err := attached.Down(); err != nil {
		t.Fatal(err)
	}
	requireGone(t, l.Prefix)
	if err := l.Down(); err != nil {
		t.Errorf("second Down: %v", err)
	}
	if _, err := Attach(l.Prefix); err == nil {
		t.Error("Attach to a lab that is down succeeded")
	}
}

func contains[T comparable](list []T, v T) bool {
	for _, item := range list {
		if item == v {
			return true
		}
	}
	return false
}

// requireUDPPath sends a datagram from node from to address to on node to.
func requireUDPPath(t *testing.T, l *Lab, from, to, addr string) {
	t.Helper()
	var conn *net.UDPConn
	err := l.InNetns(to, func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(addr), Port: 9999})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = l.InNetns(from, func() error {
		c, err := net.Dial("udp4", net.JoinHostPort(addr, "9999"))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("over the veth"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "over the veth" {
		t.Fatalf("datagram from %s to %s: %q, %v", from, to, buf[:n], err)
	}
}

func TestUpFailureLeavesNothing(t *testing.T) {
	RequireRoot(t)
	topo, err := Load(writeTopology(t, twoHosts+`
    - endpoints: ["h1:eth2", "h2:eth2"]
`))
	if err != nil {
		t.Fatal(err)
	}
	topo.Nodes["h2"].Exec = append(topo.Nodes["h2"].Exec, "echo broken >&2; exit 3")
	prefix := "mlfail" + randomPrefix()[2:]
	_, err = Up(topo, Options{Prefix: prefix})
	if err == nil {
		t.Fatal("Up succeeded despite a failing exec command")
	}
	for _, want := range []string{"h2", "exit 3", "broken"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	requireGone(t, prefix)
}

func TestPrefixInUse(t *testing.T) {
	l := upForTest(t, twoHosts, Options{})
	topo, err := Load(writeTopology(t, twoHosts))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Up(topo, Options{Prefix: l.Prefix}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second lab with prefix %s: error %v", l.Prefix, err)
	}
	if _, err := l.Exec("h1", "true"); err != nil {
		t.Errorf("first lab damaged by the refused second one: %v", err)
	}
}

const routerAndHost = `
name: daemon
topology:
  nodes:
    r1:
      kind: linux
      image: ghcr.io/example/mrouterd:dev
      binds: ["r1.toml:/etc/mrouterd/mrouterd.toml"]
    h1:
      kind: linux
      image: alpine:3
  links:
    - endpoints: ["r1:eth1", "h1:eth1"]
`

func TestDaemonLifecycle(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "state")
	l := upForTest(t, routerAndHost, Options{
		BinDir:     fakeBinDir(t),
		StateDir:   stateDir,
		DaemonArgs: []string{"--log-level", "debug"},
	})
	if l.StateDir != stateDir {
		t.Errorf("state dir %s, want %s", l.StateDir, stateDir)
	}
	pid, running := l.DaemonPID("r1")
	if !running {
		t.Fatal("mrouterd on r1 is not running after Up")
	}
	if _, running := l.DaemonPID("h1"); running {
		t.Error("mrouterd runs on plain host h1")
	}
	if sid, err := unix.Getsid(pid); err != nil || sid != pid {
		t.Errorf("daemon session %d (%v), want its own session %d", sid, err, pid)
	}
	cfg := filepath.Join(l.Topo.Dir, "r1.toml")
	if log := l.DaemonLog("r1"); !strings.Contains(log, "config "+cfg+", log level debug") {
		t.Errorf("daemon log does not show -c %s and --log-level debug:\n%s", cfg, log)
	}
	if _, err := l.APIGet("r1", api.PathStatus); err != nil {
		t.Error(err)
	}

	if err := l.Signal("r1", syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, 5*time.Second, "the daemon to log the reload", func() (bool, string) {
		log := l.DaemonLog("r1")
		return strings.Contains(log, "reload"), log
	})

	if err := l.StartDaemon("r1"); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second StartDaemon: error %v", err)
	}
	if err := l.StopDaemon("r1", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, running := l.DaemonPID("r1"); running {
		t.Error("daemon still running after StopDaemon")
	}
	if err := l.StartDaemon("r1"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(l.DaemonLog("r1"), "=== lab"); n != 2 {
		t.Errorf("log holds %d starts, want 2 (appended across restarts)", n)
	}

	// A lab attached from the state file stops the daemon it did not start.
	attached, err := Attach(l.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	newPID, _ := l.DaemonPID("r1")
	if got, running := attached.DaemonPID("r1"); !running || got != newPID {
		t.Errorf("attached lab sees pid %d running %v, want %d", got, running, newPID)
	}
	if err := attached.Down(); err != nil {
		t.Fatal(err)
	}
	if _, running := l.DaemonPID("r1"); running {
		t.Error("daemon survived Down of the attached lab")
	}
	if _, err := os.Stat(stateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir left behind: %v", err)
	}
}

func TestDaemonFailsAtStartup(t *testing.T) {
	RequireRoot(t)
	t.Setenv(fakeDaemonFailEnv, "1")
	topo, err := Load(writeTopology(t, routerAndHost))
	if err != nil {
		t.Fatal(err)
	}
	prefix := "mlfail" + randomPrefix()[2:]
	_, err = Up(topo, Options{Prefix: prefix, BinDir: fakeBinDir(t)})
	if err == nil || !strings.Contains(err.Error(), "failing as asked") {
		t.Errorf("Up error %v, want the daemon's log tail", err)
	}
	requireGone(t, prefix)
}

func TestDownEndsStrayProcesses(t *testing.T) {
	l := upForTest(t, twoHosts, Options{})
	cmd := l.Command("h1", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	WaitFor(t, 5*time.Second, "sleep to enter the namespace", func() (bool, string) {
		pids, err := netnsProcesses(filepath.Join(netnsDir, l.Netns("h1")))
		return contains(pids, cmd.Process.Pid), fmt.Sprintf("processes %v, error %v", pids, err)
	})
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("process in the lab's namespace survived Down")
	}
}

func TestInNetns(t *testing.T) {
	l := upForTest(t, twoHosts, Options{})
	var names []string
	err := l.InNetns("h2", func() error {
		ifaces, err := net.Interfaces()
		for _, ifi := range ifaces {
			names = append(names, ifi.Name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "lo,eth1" {
		t.Errorf("interfaces in h2: %v, want lo and eth1", names)
	}
}

func TestCommandEnvironment(t *testing.T) {
	t.Setenv(api.SocketEnv, "/run/elsewhere.sock")
	t.Setenv("GREETING", "outer")
	topo, err := Load(writeTopology(t, twoHosts))
	if err != nil {
		t.Fatal(err)
	}
	l := &Lab{Topo: topo, Prefix: "mltest", StateDir: "/run/mrouterd-lab/mltest", BinDir: "/opt/lab/bin"}
	cmd := l.Command("h2", "mroutectl", "show", "routes")
	if want := []string{"ip", "netns", "exec", "mltest-h2", "mroutectl", "show", "routes"}; strings.Join(cmd.Args, " ") != strings.Join(want, " ") {
		t.Errorf("args %q, want %q", cmd.Args, want)
	}
	// Each key once: C programs like ip take the first of repeated keys.
	seen := map[string]string{}
	for _, kv := range cmd.Env {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := seen[k]; dup {
			t.Errorf("%s set twice", k)
		}
		seen[k] = v
	}
	if got := seen[api.SocketEnv]; got != "/run/mrouterd-lab/mltest/h2/mrouterd.sock" {
		t.Errorf("%s=%s", api.SocketEnv, got)
	}
	if got := seen["GREETING"]; got != "hello" {
		t.Errorf("node env GREETING=%s, want hello", got)
	}
	if got := seen["PATH"]; !strings.HasPrefix(got, "/opt/lab/bin:") {
		t.Errorf("PATH=%s, want the bin directory first", got)
	}
	if cmd := l.Command("nope", "true"); cmd.Err == nil {
		t.Error("command on an unknown node has no error")
	}
}
