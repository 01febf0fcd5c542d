// Package peers runs the reference multicast routers on lab nodes: FRR's pimd (with
// the zebra it needs) and troglobit's pimd, so that benchmarks and interop tests can
// put them next to mrouterd or in its place; and Prometheus's promtool, which judges
// what mrouterd serves on /metrics. test/peers/install.sh installs them.
//
// Every instance keeps its configuration, sockets, pid files and logs in a directory
// of its node inside the lab's state directory, so several instances run side by side
// and go away with the lab.
package peers

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mrouterd/mrouterd/test/lab"
)

// Where the peers are installed.
const (
	FRRDir    = "/usr/lib/frr"             // zebra, pimd: Debian package frr
	VtyshPath = "/usr/bin/vtysh"           // FRR's shell
	PimdDir   = "/opt/mrouterd-peers/pimd" // troglobit's pimd, unpacked by install.sh
	PimdPath  = PimdDir + "/usr/sbin/pimd" // its daemon
	// Prometheus's Debian package, unpacked by install.sh for its promtool.
	PrometheusDir = "/opt/mrouterd-peers/prometheus"
	PromtoolPath  = PrometheusDir + "/usr/bin/promtool"
	frrUser       = "frr"                               // FRR daemons drop to this user
	installed     = "run test/peers/install.sh as root" // the fix for a missing peer
)

// Deadlines and poll interval for starting and stopping.
const (
	startTimeout = 15 * time.Second
	stopTimeout  = 5 * time.Second
	pollInterval = 20 * time.Millisecond
)

// CheckFRR reports whether FRR is installed, with the way to install it if not.
func CheckFRR() error {
	for _, path := range []string{filepath.Join(FRRDir, "zebra"), filepath.Join(FRRDir, "pimd"), VtyshPath} {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("FRR is not installed (no %s): %s", path, installed)
		}
	}
	if _, err := user.Lookup(frrUser); err != nil {
		return fmt.Errorf("FRR is not installed (no user %s): %s", frrUser, installed)
	}
	return nil
}

// CheckPimd reports whether troglobit's pimd is unpacked, with the way to do it if not.
func CheckPimd() error {
	if _, err := os.Stat(PimdPath); err != nil {
		return fmt.Errorf("pimd is not installed (no %s): %s", PimdPath, installed)
	}
	return nil
}

// CheckPromtool reports whether promtool is unpacked, with the way to do it if not.
func CheckPromtool() error {
	if _, err := os.Stat(PromtoolPath); err != nil {
		return fmt.Errorf("promtool is not installed (no %s): %s", PromtoolPath, installed)
	}
	return nil
}

// PromtoolCheckMetrics runs `promtool check metrics` on a Prometheus exposition and
// returns the problems it finds, with an error when it found any or could not run.
func PromtoolCheckMetrics(exposition []byte) (string, error) {
	cmd := exec.Command(PromtoolPath, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err == nil && len(bytes.TrimSpace(out)) > 0 {
		err = errors.New("promtool check metrics found problems")
	}
	return string(out), err
}

// Process is a peer router running on a lab node: one or more daemons.
type Process struct {
	Node    string
	Dir     string // the instance's directory: configuration, sockets, pid files, logs
	daemons []*daemon
}

type daemon struct {
	name   string
	cmd    *exec.Cmd
	log    string        // file the daemon's output goes to
	exited chan struct{} // closed once the daemon has been reaped
}

func (d *daemon) running() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// PIDs returns the process ID of each daemon by name ("zebra", "pimd").
func (p *Process) PIDs() map[string]int {
	pids := map[string]int{}
	for _, d := range p.daemons {
		pids[d.name] = d.cmd.Process.Pid
	}
	return pids
}

// Running reports whether every daemon is still running.
func (p *Process) Running() bool {
	for _, d := range p.daemons {
		if !d.running() {
			return false
		}
	}
	return true
}

// Log returns the output of every daemon, for diagnostics.
func (p *Process) Log() string {
	var b strings.Builder
	for _, d := range p.daemons {
		data, _ := os.ReadFile(d.log)
		fmt.Fprintf(&b, "=== %s on %s (%s)\n%s", d.name, p.Node, d.log, data)
	}
	return b.String()
}

// Stop ends the daemons, last started first: SIGTERM, then SIGKILL if one lingers.
// Calling it again does nothing.
func (p *Process) Stop() error {
	var errs []error
	for i := len(p.daemons) - 1; i >= 0; i-- {
		if err := p.daemons[i].stop(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *daemon) stop() error {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if !d.running() {
			return nil
		}
		_ = d.cmd.Process.Signal(sig) // it may have exited meanwhile
		select {
		case <-d.exited:
			return nil
		case <-time.After(stopTimeout):
		}
	}
	return fmt.Errorf("%s (pid %d) still running after SIGKILL", d.name, d.cmd.Process.Pid)
}

// start runs args in node's namespace with its output in dir/name.log. The daemon must
// stay in the foreground: its PID is then the command's, as ip netns exec, unshare and
// sh's exec all keep it.
func (p *Process) start(l *lab.Lab, name string, args ...string) error {
	logPath := filepath.Join(p.Dir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := l.Command(p.Node, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own session: a terminal's ^C reaches the caller, which then stops it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	logFile.Close()
	if err != nil {
		return fmt.Errorf("start %s on %s: %v", name, p.Node, err)
	}
	d := &daemon{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(d.exited)
	}()
	p.daemons = append(p.daemons, d)
	return nil
}

// waitFor polls cond until it holds, failing early if a daemon exits.
func (p *Process) waitFor(what string, cond func() bool) error {
	deadline := time.Now().Add(startTimeout)
	for !cond() {
		for _, d := range p.daemons {
			if !d.running() {
				return fmt.Errorf("%s on %s exited while waiting for %s; its log:\n%s", d.name, p.Node, what, tailFile(d.log, 20))
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s on %s: no %s within %v; log:\n%s", p.daemons[len(p.daemons)-1].name, p.Node, what, startTimeout, p.Log())
		}
		time.Sleep(pollInterval)
	}
	return nil
}

// instanceDir creates the directory of kind's instance on node, empty.
func instanceDir(l *lab.Lab, node, kind string) (string, error) {
	if _, ok := l.Topo.Nodes[node]; !ok {
		return "", fmt.Errorf("lab %s has no node %q", l.Prefix, node)
	}
	dir := filepath.Join(l.StateDir, node, kind)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// frrDir is where node's FRR keeps its files; vtysh finds the daemons' sockets there.
func frrDir(l *lab.Lab, node string) string { return filepath.Join(l.StateDir, node, "frr") }

// StartFRR starts FRR's zebra and pimd on node, both reading cfg (an frr.conf: each
// daemon applies the lines it knows and logs the others), and returns once vtysh
// reaches both. The daemons run as user frr with no TCP vty, their sockets and pid
// files in the instance's directory, and /var/tmp (where FRR keeps crash logs) bound
// to a folder of that directory in a mount namespace of their own.
func StartFRR(l *lab.Lab, node, cfg string) (*Process, error) {
	if err := CheckFRR(); err != nil {
		return nil, err
	}
	dir, err := instanceDir(l, node, "frr")
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "frr.conf")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	if err := chownToFRR(dir); err != nil {
		return nil, err
	}
	p := &Process{Node: node, Dir: dir}
	zserv := filepath.Join(dir, "zserv.api")
	for _, name := range []string{"zebra", "pimd"} {
		err := p.start(l, name, "unshare", "--mount", "--propagation", "private",
			"sh", "-c", `mount --bind "$1" /var/tmp && shift && exec "$@"`, "sh", tmp,
			filepath.Join(FRRDir, name), "-f", conf, "-i", filepath.Join(dir, name+".pid"),
			"-z", zserv, "--vty_socket", dir, "-P", "0", "--log", "stdout")
		if err == nil && name == "zebra" {
			// pimd reads its configuration at once; with zebra up it learns the
			// interfaces sooner.
			err = p.waitFor("zebra socket", func() bool { return exists(zserv) })
		}
		if err != nil {
			return nil, errors.Join(err, p.Stop())
		}
	}
	err = p.waitFor("vty sockets", func() bool {
		if !exists(filepath.Join(dir, "zebra.vty")) || !exists(filepath.Join(dir, "pimd.vty")) {
			return false
		}
		_, err := FRRVtysh(l, node, "show ip pim interface")
		return err == nil
	})
	if err != nil {
		return nil, errors.Join(err, p.Stop())
	}
	return p, nil
}

// chownToFRR hands dir and what it holds to the user FRR's daemons drop to.
func chownToFRR(dir string) error {
	u, err := user.Lookup(frrUser)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

// FRRVtysh runs vtysh commands against node's FRR, each as one -c, and returns what
// they print. vtysh runs in the node's namespace, where commands such as ping belong.
func FRRVtysh(l *lab.Lab, node string, cmds ...string) (string, error) {
	args := []string{VtyshPath, "--vty_socket", frrDir(l, node)}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	cmd := l.Command(node, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("vtysh on %s %q: %v: %s", node, cmds, err, strings.TrimSpace(stderr.String()+string(out)))
	}
	return string(out), nil
}

// pimdDir is where node's pimd keeps its files: it is the daemon's /run.
func pimdDir(l *lab.Lab, node string) string { return filepath.Join(l.StateDir, node, "pimd") }

// StartPimd starts troglobit's pimd on node with cfg as its pimd.conf and returns once
// it has written its pid file, which it does after setting up its interfaces. Without
// -N pimd runs on every multicast interface: cfg chooses with "phyint IF enable" or
// "disable" lines. pimd always writes /var/run/pimd.pid and /var/run/pimd/, so it runs
// in a mount namespace of its own where the instance's directory is /run.
func StartPimd(l *lab.Lab, node, cfg string) (*Process, error) {
	if err := CheckPimd(); err != nil {
		return nil, err
	}
	dir, err := instanceDir(l, node, "pimd")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "pimd.conf"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	p := &Process{Node: node, Dir: dir}
	err = p.start(l, "pimd", "unshare", "--mount", "--propagation", "private",
		"sh", "-c", `mount --bind "$1" /run && exec "$2" -f -c /run/pimd.conf`, "sh", dir, PimdPath)
	if err == nil {
		err = p.waitFor("pid file", func() bool { return exists(filepath.Join(dir, "pimd.pid")) })
	}
	if err != nil {
		return nil, errors.Join(err, p.Stop())
	}
	return p, nil
}

// dumpEnd ends a complete state dump of pimd 2.3.
const dumpEnd = "Number of Cache MIRRORs:"

// PimdDumpInterval is the least time between two dumps of one pimd. pimd 2.3 ages its
// timers only when select() returns without a signal; a signal restarts the wait with
// a fresh timeout (up to its 5 s tick), so dumps asked for more often than that stall
// every timer: queries, group expiry, the RP set.
const PimdDumpInterval = 6 * time.Second

// lastDump holds when each pimd (by its directory) was last asked for a dump.
var lastDump sync.Map

// PimdDump asks node's pimd for its state (virtual interfaces, SSM memberships,
// multicast routing table), as pimd -r does, and returns the dump: pimd 2.3 has no
// other interface. It waits first as long as PimdDumpInterval requires.
func PimdDump(l *lab.Lab, node string) (string, error) {
	dir := pimdDir(l, node)
	data, err := os.ReadFile(filepath.Join(dir, "pimd.pid"))
	if err != nil {
		return "", fmt.Errorf("pimd on %s: %v", node, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return "", fmt.Errorf("pimd on %s: pid file: %v", node, err)
	}
	dump := filepath.Join(dir, "pimd", "pimd.dump")
	if err := os.Remove(dump); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if last, ok := lastDump.Load(dir); ok {
		time.Sleep(time.Until(last.(time.Time).Add(PimdDumpInterval)))
	}
	lastDump.Store(dir, time.Now())
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		return "", fmt.Errorf("pimd on %s (pid %d): %v", node, pid, err)
	}
	deadline := time.Now().Add(startTimeout)
	for {
		// The file appears when pimd opens it and is complete once its last section is.
		data, err := os.ReadFile(dump)
		if err == nil {
			if i := strings.LastIndex(string(data), dumpEnd); i >= 0 && strings.HasSuffix(strings.TrimRight(string(data[i:]), "\n"), "-") {
				return string(data), nil
			}
		}
		if time.Now().After(deadline) {
			return string(data), fmt.Errorf("pimd on %s wrote no complete dump within %v", node, startTimeout)
		}
		time.Sleep(pollInterval)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
