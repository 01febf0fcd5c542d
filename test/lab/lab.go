package lab

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/mrouterd/mrouterd/test/netnstest"

	"github.com/mrouterd/mrouterd/router/api"
)

// RegistryDir holds one entry per running lab, named by its prefix: the state directory
// itself, or a symlink to it when Options.StateDir put it elsewhere.
const RegistryDir = "/run/mrouterd-lab"

// netnsDir is where iproute2 keeps named network namespaces.
const netnsDir = "/run/netns"

// stateFile is the name of the state file inside a lab's state directory.
const stateFile = "lab.json"

// Options tune Up. The zero value is ready to use.
type Options struct {
	Prefix     string    // namespace and state prefix; default "ml" + 4 random hex digits
	BinDir     string    // where mrouterd, mroutectl and mcast are; default: the running executable's directory, then $PATH
	StateDir   string    // default RegistryDir/<prefix>
	DaemonArgs []string  // extra arguments for every mrouterd, e.g. --log-level debug
	Log        io.Writer // progress lines; nil discards them
}

// Lab is a running (or partly built) topology. Its methods are safe for concurrent use.
type Lab struct {
	Topo       *Topology
	Prefix     string
	StateDir   string
	BinDir     string
	DaemonArgs []string
	// pathFallback lets programs missing from a defaulted BinDir come from $PATH; a
	// BinDir given explicitly must hold them.
	pathFallback bool

	log io.Writer

	mu      sync.Mutex
	netns   []string           // nodes whose namespace this lab created
	daemons map[string]*daemon // running daemons by node
	down    bool               // Down has finished
}

// labState is what the state file holds, enough for Attach to take over a lab that
// another process brought up.
type labState struct {
	Prefix       string             `json:"prefix"`
	StateDir     string             `json:"state_dir"`
	BinDir       string             `json:"bin_dir"`
	PathFallback bool               `json:"path_fallback"`
	DaemonArgs   []string           `json:"daemon_args"`
	Topology     *Topology          `json:"topology"`
	Netns        []string           `json:"netns"`
	Daemons      map[string]*daemon `json:"daemons"`
}

var prefixPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Up builds topo: a namespace per node, a veth pair per link, the nodes' exec commands,
// then mrouterd on the nodes that run it. On any error it tears down what it made.
func Up(topo *Topology, opts Options) (*Lab, error) {
	l, err := newLab(topo, opts)
	if err != nil {
		return nil, err
	}
	if err := l.build(); err != nil {
		if derr := l.Down(); derr != nil {
			err = fmt.Errorf("%w (and tearing down: %v)", err, derr)
		}
		return nil, err
	}
	l.logf("lab %s is up", l.Prefix)
	return l, nil
}

// newLab claims a prefix in the registry and writes the first state file.
func newLab(topo *Topology, opts Options) (*Lab, error) {
	l := &Lab{
		Topo:       topo,
		Prefix:     opts.Prefix,
		BinDir:     opts.BinDir,
		DaemonArgs: opts.DaemonArgs,
		log:        opts.Log,
		daemons:    map[string]*daemon{},
	}
	if l.log == nil {
		l.log = io.Discard
	}
	if l.BinDir == "" {
		l.BinDir, l.pathFallback = executableDir(), true
	}
	if err := os.MkdirAll(RegistryDir, 0o755); err != nil {
		return nil, err
	}
	if l.Prefix != "" {
		if !prefixPattern.MatchString(l.Prefix) {
			return nil, fmt.Errorf("lab prefix %q: use letters, digits, '_', '.', '-'", l.Prefix)
		}
		if err := l.claim(opts.StateDir); err != nil {
			if errors.Is(err, os.ErrExist) {
				return nil, fmt.Errorf("lab prefix %q is already in use (see lab list)", l.Prefix)
			}
			return nil, err
		}
	} else {
		// Random prefixes let parallel labs coexist; retry the rare collision.
		var err error
		for range 10 {
			l.Prefix = randomPrefix()
			if err = l.claim(opts.StateDir); !errors.Is(err, os.ErrExist) {
				break
			}
		}
		if err != nil {
			return nil, err
		}
	}
	for _, name := range topo.NodeOrder {
		if sock := l.Socket(name); len(sock) >= len(syscall.RawSockaddrUnix{}.Path) {
			l.removeState()
			return nil, fmt.Errorf("control socket path %s is too long for a unix socket", sock)
		}
	}
	if err := l.save(); err != nil {
		l.removeState()
		return nil, err
	}
	return l, nil
}

// claim creates the registry entry for l.Prefix, failing with os.ErrExist if taken,
// and sets l.StateDir: stateDir, or the entry itself when stateDir is empty.
func (l *Lab) claim(stateDir string) error {
	entry := filepath.Join(RegistryDir, l.Prefix)
	if stateDir == "" || filepath.Clean(stateDir) == entry {
		l.StateDir = entry
		return os.Mkdir(entry, 0o755)
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return err
	}
	if err := os.Symlink(abs, entry); err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		os.Remove(entry)
		return err
	}
	l.StateDir = abs
	return nil
}

func randomPrefix() string {
	b := make([]byte, 2)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return "ml" + hex.EncodeToString(b)
}

// executableDir is the running executable's directory, where a lab CLI built together
// with mrouterd finds it; "" if unknown.
func executableDir() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Dir(exe)
}

func (l *Lab) logf(format string, args ...any) {
	fmt.Fprintf(l.log, format+"\n", args...)
}

func (l *Lab) build() error {
	for _, name := range l.Topo.NodeOrder {
		if err := l.addNetns(name); err != nil {
			return err
		}
	}
	for _, link := range l.Topo.Links {
		if err := l.addLink(link); err != nil {
			return err
		}
	}
	for _, name := range l.Topo.NodeOrder {
		for _, command := range l.Topo.Nodes[name].Exec {
			l.logf("%s: %s", name, command)
			if _, err := l.Exec(name, "sh", "-c", command); err != nil {
				return fmt.Errorf("exec on %w", err)
			}
		}
	}
	for _, name := range l.Topo.NodeOrder {
		if l.Topo.Nodes[name].Daemon() {
			if err := l.StartDaemon(name); err != nil {
				return err
			}
		}
	}
	return nil
}

// Netns returns the name of node's network namespace.
func (l *Lab) Netns(node string) string { return l.Prefix + "-" + node }

// Socket returns the path of node's control socket.
func (l *Lab) Socket(node string) string {
	return filepath.Join(l.StateDir, node, "mrouterd.sock")
}

func (l *Lab) addNetns(node string) error {
	name := l.Netns(node)
	l.logf("netns %s", name)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	l.mu.Lock()
	l.netns = append(l.netns, node)
	err := l.saveLocked()
	l.mu.Unlock()
	if err != nil {
		return err
	}
	return l.withHandle(node, func(h *netlink.Handle) error {
		lo, err := h.LinkByName("lo")
		if err != nil {
			return err
		}
		return h.LinkSetUp(lo)
	})
}

// addLink creates the veth pair with each end already in its node's namespace under its
// final name, so no temporary interface ever appears in the host namespace.
func (l *Lab) addLink(link Link) error {
	l.logf("link %s -- %s", link.A, link.B)
	nsA, err := netns.GetFromName(l.Netns(link.A.Node))
	if err != nil {
		return err
	}
	defer nsA.Close()
	nsB, err := netns.GetFromName(l.Netns(link.B.Node))
	if err != nil {
		return err
	}
	defer nsB.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = link.A.Iface
	attrs.Namespace = netlink.NsFd(nsA)
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: link.B.Iface, PeerNamespace: netlink.NsFd(nsB)}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("link %s -- %s: %v", link.A, link.B, err)
	}
	for _, ep := range []Endpoint{link.A, link.B} {
		err := l.withHandle(ep.Node, func(h *netlink.Handle) error {
			dev, err := h.LinkByName(ep.Iface)
			if err != nil {
				return err
			}
			return h.LinkSetUp(dev)
		})
		if err != nil {
			return fmt.Errorf("link %s: set up: %v", ep, err)
		}
	}
	return nil
}

// withHandle runs fn with a netlink handle bound to node's namespace.
func (l *Lab) withHandle(node string, fn func(*netlink.Handle) error) error {
	ns, err := netns.GetFromName(l.Netns(node))
	if err != nil {
		return fmt.Errorf("netns %s: %v", l.Netns(node), err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netns %s: %v", l.Netns(node), err)
	}
	defer h.Close()
	return fn(h)
}

// Command returns a command that runs inside node's namespace, with MROUTERD_SOCKET
// naming the node's control socket, the node's env, and BinDir first in PATH.
func (l *Lab) Command(node string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.Netns(node)}, args...)...)
	n, ok := l.Topo.Nodes[node]
	if !ok {
		cmd.Err = fmt.Errorf("lab %s has no node %q", l.Prefix, node)
		return cmd
	}
	set := map[string]string{api.SocketEnv: l.Socket(node)}
	for k, v := range n.Env {
		set[k] = v
	}
	if l.BinDir != "" {
		set["PATH"] = l.BinDir + string(os.PathListSeparator) + os.Getenv("PATH")
	}
	// Replace rather than append: C programs such as ip read the first of repeated keys.
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, replaced := set[k]; !replaced {
			env = append(env, kv)
		}
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	cmd.Dir = l.Topo.Dir
	return cmd
}

// Exec runs args inside node's namespace and returns the combined output. The error
// carries the command and its output.
func (l *Lab) Exec(node string, args ...string) (string, error) {
	out, err := l.Command(node, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s: %v: %s", node, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// InNetns runs fn on an OS thread inside node's namespace, for Go code that opens its
// sockets there (sockets stay in the namespace they were created in). Goroutines that
// fn starts do not inherit the namespace. The thread is discarded afterwards.
func (l *Lab) InNetns(node string, fn func() error) error {
	if _, ok := l.Topo.Nodes[node]; !ok {
		return fmt.Errorf("lab %s has no node %q", l.Prefix, node)
	}
	ns, err := netns.GetFromName(l.Netns(node))
	if err != nil {
		return err
	}
	defer ns.Close()
	return netnstest.InNetns(ns, fn)
}

// Attach reopens a running lab from its state directory.
func Attach(prefix string) (*Lab, error) {
	if !prefixPattern.MatchString(prefix) {
		return nil, fmt.Errorf("lab prefix %q is not valid", prefix)
	}
	entry := filepath.Join(RegistryDir, prefix)
	data, err := os.ReadFile(filepath.Join(entry, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		if _, lerr := os.Lstat(entry); lerr == nil {
			return nil, fmt.Errorf("lab %s has no state file; remove %s by hand", prefix, entry)
		}
		return nil, fmt.Errorf("no lab %q is running", prefix)
	}
	if err != nil {
		return nil, err
	}
	var st labState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("lab %s: state file: %v", prefix, err)
	}
	if st.Topology == nil || st.Prefix != prefix {
		return nil, fmt.Errorf("lab %s: state file is incomplete", prefix)
	}
	l := &Lab{
		Topo:         st.Topology,
		Prefix:       st.Prefix,
		StateDir:     st.StateDir,
		BinDir:       st.BinDir,
		DaemonArgs:   st.DaemonArgs,
		pathFallback: st.PathFallback,
		log:          io.Discard,
		netns:        st.Netns,
		daemons:      st.Daemons,
	}
	if l.daemons == nil {
		l.daemons = map[string]*daemon{}
	}
	return l, nil
}

// List returns the prefixes of the labs in the registry, sorted.
func List() ([]string, error) {
	entries, err := os.ReadDir(RegistryDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var prefixes []string
	for _, e := range entries {
		if prefixPattern.MatchString(e.Name()) {
			prefixes = append(prefixes, e.Name())
		}
	}
	sort.Strings(prefixes)
	return prefixes, nil
}

// Down stops the daemons (SIGTERM, then SIGKILL after a grace period), ends any other
// process left in the lab's namespaces, deletes the namespaces (and with them the
// veth pairs) and removes the state. Calling it again does nothing.
func (l *Lab) Down() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return nil
	}
	var errs []error
	for node, d := range l.daemons {
		if err := d.stop(syscall.SIGTERM, 5*time.Second); err != nil {
			if err := d.stop(syscall.SIGKILL, 5*time.Second); err != nil {
				errs = append(errs, fmt.Errorf("stop mrouterd on %s: %v", node, err))
				continue
			}
		}
		delete(l.daemons, node)
	}
	var kept []string
	for _, node := range l.netns {
		name := l.Netns(node)
		if err := deleteNetns(name); err != nil {
			errs = append(errs, err)
			kept = append(kept, node)
		}
	}
	l.netns = kept
	if len(errs) > 0 {
		// Keep the state so that another Down can finish the job.
		_ = l.saveLocked()
		return errors.Join(errs...)
	}
	l.removeState()
	l.down = true
	l.logf("lab %s is down", l.Prefix)
	return nil
}

// deleteNetns kills what still runs in the namespace, so that it really goes away with
// its interfaces, then removes its name.
func deleteNetns(name string) error {
	path := filepath.Join(netnsDir, name)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := killNetnsProcesses(path, 5*time.Second); err != nil {
		return fmt.Errorf("netns %s: %v", name, err)
	}
	if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns delete %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// removeState deletes the state directory and its registry entry.
func (l *Lab) removeState() {
	entry := filepath.Join(RegistryDir, l.Prefix)
	_ = os.RemoveAll(l.StateDir)
	_ = os.Remove(entry) // the symlink when StateDir lives elsewhere; gone already otherwise
}

func (l *Lab) save() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.saveLocked()
}

// saveLocked writes the state file atomically (write, then rename).
func (l *Lab) saveLocked() error {
	data, err := json.MarshalIndent(labState{
		Prefix:       l.Prefix,
		StateDir:     l.StateDir,
		BinDir:       l.BinDir,
		PathFallback: l.pathFallback,
		DaemonArgs:   l.DaemonArgs,
		Topology:     l.Topo,
		Netns:        l.netns,
		Daemons:      l.daemons,
	}, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(l.StateDir, stateFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
