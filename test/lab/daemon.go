package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mrouterd/mrouterd/router/api"
)

// Deadlines for daemon start and stop.
const (
	daemonReadyTimeout = 10 * time.Second
	daemonStopTimeout  = 10 * time.Second
	pollInterval       = 50 * time.Millisecond
)

// daemon is a running mrouterd.
type daemon struct {
	PID int `json:"pid"`
	// Start is the process start time in clock ticks since boot; with it a lab that
	// attaches later never signals an unrelated process that reused the PID.
	Start uint64 `json:"start"`
	// exited is closed once this process has reaped the daemon; nil in an attached lab,
	// which is not the daemon's parent and looks at /proc instead.
	exited chan struct{}
}

func (d *daemon) alive() bool {
	if d.exited != nil {
		select {
		case <-d.exited:
			return false
		default:
			return true
		}
	}
	start, zombie, err := procStart(d.PID)
	return err == nil && !zombie && start == d.Start
}

func (d *daemon) signal(sig os.Signal) error {
	if !d.alive() {
		return fmt.Errorf("pid %d has exited", d.PID)
	}
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("unsupported signal %v", sig)
	}
	return syscall.Kill(d.PID, s)
}

// stop sends sig unless the daemon is gone already and waits for it to exit.
func (d *daemon) stop(sig os.Signal, timeout time.Duration) error {
	if !d.alive() {
		return nil
	}
	if err := d.signal(sig); err != nil && d.alive() {
		return err
	}
	deadline := time.Now().Add(timeout)
	for d.alive() {
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d still running %v after %v", d.PID, timeout, sig)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// procStart reads a process's start time and whether it is a zombie from /proc.
func procStart(pid int) (start uint64, zombie bool, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false, err
	}
	// The command name is in parentheses and may hold spaces; fields follow the last ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, false, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	const stateField, startField = 0, 19 // fields 3 and 22 of proc_pid_stat(5)
	if len(fields) <= startField {
		return 0, false, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	start, err = strconv.ParseUint(fields[startField], 10, 64)
	return start, fields[stateField] == "Z", err
}

// killNetnsProcesses SIGKILLs every process whose network namespace is the one bound
// at nsPath and waits until they are gone.
func killNetnsProcesses(nsPath string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids, err := netnsProcesses(nsPath)
		if err != nil || len(pids) == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still running after SIGKILL", pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL) // it may have exited meanwhile
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func netnsProcesses(nsPath string) ([]int, error) {
	var want syscall.Stat_t
	if err := syscall.Stat(nsPath, &want); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		var st syscall.Stat_t
		// Zombies and processes that exit meanwhile fail here; neither holds the namespace.
		if syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) != nil {
			continue
		}
		if st.Dev == want.Dev && st.Ino == want.Ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// binary finds a program in BinDir, or in $PATH when BinDir was not given.
func (l *Lab) binary(name string) (string, error) {
	if l.BinDir != "" {
		path := filepath.Join(l.BinDir, name)
		if _, err := os.Stat(path); err == nil {
			return path, nil
		}
		if !l.pathFallback {
			return "", fmt.Errorf("%s not found in %s", name, l.BinDir)
		}
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is neither next to this program nor in $PATH (build it, or give the lab a bin directory)", name)
	}
	return filepath.Abs(path)
}

// DaemonLogPath returns the file that node's mrouterd writes its output to.
func (l *Lab) DaemonLogPath(node string) string {
	return filepath.Join(l.StateDir, node, "mrouterd.log")
}

// DaemonLog returns everything node's mrouterd has written, across restarts.
func (l *Lab) DaemonLog(node string) string {
	data, _ := os.ReadFile(l.DaemonLogPath(node))
	return string(data)
}

// DaemonPID returns the PID of node's mrouterd and whether it is running.
func (l *Lab) DaemonPID(node string) (int, bool) {
	l.mu.Lock()
	d := l.daemons[node]
	l.mu.Unlock()
	if d == nil || !d.alive() {
		return 0, false
	}
	return d.PID, true
}

// StartDaemon starts mrouterd in node's namespace with the node's bound config, its
// control socket at Socket(node), Options.DaemonArgs and extraArgs, appending its output
// to DaemonLogPath(node). It returns once the control API answers, or with the log's
// tail if the daemon exits or stays silent. The daemon runs in its own session, so it
// outlives the process that started it.
func (l *Lab) StartDaemon(node string, extraArgs ...string) error {
	n, ok := l.Topo.Nodes[node]
	if !ok {
		return fmt.Errorf("lab %s has no node %q", l.Prefix, node)
	}
	if pid, running := l.DaemonPID(node); running {
		return fmt.Errorf("mrouterd on %s is already running (pid %d)", node, pid)
	}
	bin, err := l.binary("mrouterd")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(l.StateDir, node), 0o755); err != nil {
		return err
	}
	sock := l.Socket(node)
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	args := []string{bin}
	if cfg := n.DaemonConfig(); cfg != "" {
		args = append(args, "-c", cfg)
	}
	args = append(args, "-s", sock)
	args = append(args, l.DaemonArgs...)
	args = append(args, extraArgs...)

	logFile, err := os.OpenFile(l.DaemonLogPath(node), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logFile, "=== lab %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := l.Command(node, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	logFile.Close() // the daemon has its own descriptor
	if err != nil {
		return fmt.Errorf("start mrouterd on %s: %v", node, err)
	}
	// ip netns exec execs mrouterd in place, so this PID is the daemon's. It cannot be
	// reaped before Wait, so its start time is still readable.
	start, _, _ := procStart(cmd.Process.Pid)
	d := &daemon{PID: cmd.Process.Pid, Start: start, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(d.exited)
	}()
	l.mu.Lock()
	l.daemons[node] = d
	err = l.saveLocked()
	l.mu.Unlock()
	if err != nil {
		return err
	}
	l.logf("%s: mrouterd pid %d", node, d.PID)

	deadline := time.Now().Add(Scaled(daemonReadyTimeout))
	for {
		if !d.alive() {
			l.forgetDaemon(node, d)
			return fmt.Errorf("mrouterd on %s exited during startup; log %s ends:\n%s",
				node, l.DaemonLogPath(node), tail(l.DaemonLog(node), 20))
		}
		_, err := l.APIGet(node, api.PathStatus)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			_ = d.stop(syscall.SIGKILL, daemonStopTimeout)
			l.forgetDaemon(node, d)
			return fmt.Errorf("mrouterd on %s did not answer %s within %v (%v); log %s ends:\n%s",
				node, api.PathStatus, Scaled(daemonReadyTimeout), err, l.DaemonLogPath(node), tail(l.DaemonLog(node), 20))
		}
		time.Sleep(pollInterval)
	}
}

// forgetDaemon drops d from the running daemons unless another start replaced it.
func (l *Lab) forgetDaemon(node string, d *daemon) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.daemons[node] == d {
		delete(l.daemons, node)
		_ = l.saveLocked()
	}
}

// StopDaemon sends sig to node's mrouterd and waits for it to exit.
func (l *Lab) StopDaemon(node string, sig os.Signal) error {
	l.mu.Lock()
	d := l.daemons[node]
	l.mu.Unlock()
	if d == nil {
		return fmt.Errorf("no mrouterd was started on %s", node)
	}
	if err := d.stop(sig, daemonStopTimeout); err != nil {
		return fmt.Errorf("stop mrouterd on %s: %v", node, err)
	}
	l.forgetDaemon(node, d)
	return nil
}

// Signal sends sig to node's mrouterd, e.g. SIGHUP to reload its config.
func (l *Lab) Signal(node string, sig os.Signal) error {
	l.mu.Lock()
	d := l.daemons[node]
	l.mu.Unlock()
	if d == nil {
		return fmt.Errorf("no mrouterd was started on %s", node)
	}
	if err := d.signal(sig); err != nil {
		return fmt.Errorf("signal mrouterd on %s: %v", node, err)
	}
	return nil
}

// APIGet fetches path from node's control API and returns the body of a 2xx answer.
func (l *Lab) APIGet(node, path string) ([]byte, error) {
	sock := l.Socket(node)
	client := &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		},
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://mrouterd" + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return body, fmt.Errorf("GET %s on %s: %s: %s", path, node, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
