package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/router/api"
	"github.com/mrouterd/mrouterd/test/lab"
	"github.com/mrouterd/mrouterd/test/mcast"
	"github.com/mrouterd/mrouterd/test/peers"
)

// routeShapes are node's routes as a restart must leave them: keys, interfaces,
// protocol and flags, not counters or timers.
func routeShapes(t *testing.T, l *lab.Lab, node string) []string {
	t.Helper()
	var out []string
	for _, rt := range routes(t, l, node) {
		oifs, flags := slices.Clone(rt.OIFs), slices.Clone(rt.Flags)
		slices.Sort(oifs)
		slices.Sort(flags)
		out = append(out, fmt.Sprintf("(%s,%s) iif %s oifs %v %s %v", rt.Source, rt.Group, rt.IIF, oifs, rt.Protocol, flags))
	}
	slices.Sort(out)
	return out
}

// waitRouteShapes polls until node's routes are want again.
func waitRouteShapes(t *testing.T, l *lab.Lab, within time.Duration, node string, want []string) {
	t.Helper()
	lab.WaitFor(t, within, node+": the routes of before the restart", func() (bool, string) {
		got := routeShapes(t, l, node)
		return slices.Equal(got, want), fmt.Sprintf("have\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	})
}

// countThrough starts a receiver on rcv that counts the established stream while
// event runs, and for a while after, and returns what it counted.
func countThrough(t *testing.T, l *lab.Lab, group string, event func()) mcast.Report {
	t.Helper()
	r := startReceiver(t, l, "rcv", recvArgs(group)...)
	before := sysCounter(t, l, "rcv", "eth1", "rx_packets")
	lab.WaitFor(t, 5*time.Second, "rcv counting the stream", func() (bool, string) {
		n := sysCounter(t, l, "rcv", "eth1", "rx_packets") - before
		return n >= uint64(lab.Rate(1000)), fmt.Sprint(n)
	})
	event()
	// The stream runs on for two seconds after the event, so that an outage
	// the event started shows as lost packets, not as an early end.
	seen := sysCounter(t, l, "rcv", "eth1", "rx_packets")
	lab.WaitFor(t, 90*time.Second, "the stream flowing after "+t.Name(), func() (bool, string) {
		n := sysCounter(t, l, "rcv", "eth1", "rx_packets") - seen
		return n >= uint64(2*lab.Rate(1000)), fmt.Sprint(n)
	})
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	return r.report(t, 10*time.Second)
}

// TestRestartLossless: a stream of 1,000 pps flows src → r1 → r2 (the RP) → r3 →
// rcv. `mroutectl restart` on the RP, then on the last hop, re-executes mrouterd
// in place: the kernel keeps forwarding, the receiver loses nothing and gets
// nothing twice, and each router's routes are the same after as before. The
// same harness then measures what a stop and a start, and a kill -9 and a start,
// of the RP's daemon cost.
func TestRestartLossless(t *testing.T) {
	l := sourceChain(t, nil)
	const group = "239.1.1.1"
	holdMembership(t, l, "rcv", group)
	rpJoined(t, l, group)()
	startSender(t, l, "src", streamArgs(group, 1000)...)
	waitNotRegistering(t, l, 20*time.Second, "r1", chainSource, group)
	waitPIMRoute(t, l, 10*time.Second, "r3", chainSource, group, pimRoute{"eth1", []string{"eth2"}, "SPT"})

	for _, node := range []string{"r2", "r3"} {
		before := routeShapes(t, l, node)
		pid, _ := l.DaemonPID(node)
		var took time.Duration
		rep := countThrough(t, l, group, func() {
			start := time.Now()
			out, err := l.Exec(node, "mroutectl", "restart")
			took = time.Since(start)
			if err != nil {
				t.Fatalf("%s: mroutectl restart: %v\n%s", node, err, out)
			}
			t.Logf("%s: %s", node, strings.TrimSpace(out))
		})
		t.Logf("%s: restart in place took %.0f ms (mroutectl restart, until the new program answered); "+
			"rcv: %d packets, %d lost after the first, %d duplicates, largest gap %.1f ms",
			node, float64(took.Microseconds())/1000, rep.Unique, lostAfterFirst(rep), rep.Duplicates, rep.MaxGapMs)
		if lostAfterFirst(rep) != 0 || rep.Duplicates != 0 {
			t.Errorf("%s: restart in place: %+v; want nothing lost, nothing twice", node, rep.Stats)
			log := l.DaemonLog(node)
			if i := strings.LastIndex(log, "handing the multicast routing table over"); i >= 0 {
				t.Logf("%s: mrouterd's log from the handover:\n%s", node, log[max(0, strings.LastIndex(log[:i], "\n")):])
			}
		}
		if now, ok := l.DaemonPID(node); !ok || now != pid {
			t.Errorf("%s: mrouterd pid %d before the restart, %d (running %t) after; want the same process", node, pid, now, ok)
		}
		waitRouteShapes(t, l, 30*time.Second, node, before)
		var st api.Status
		ctl(t, l, node, &st, "show", "status")
		if st.Counters["mfc_drift"] != 0 {
			t.Errorf("%s: the kernel's MFC drifted from the restarted daemon's routes: %d", node, st.Counters["mfc_drift"])
		}
	}

	// A stop and a start, then a kill and a start, of the RP's daemon: the kernel
	// flushes the table when the socket closes, and the new daemon rebuilds it.
	for _, stop := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGTERM and a start", syscall.SIGTERM}, {"kill -9 and a start", syscall.SIGKILL}} {
		rep := countThrough(t, l, group, func() {
			if err := l.StopDaemon("r2", stop.sig); err != nil {
				t.Fatal(err)
			}
			if err := l.StartDaemon("r2"); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("r2: %s: rcv: %d packets, %d lost after the first (%.1f s of the stream), largest gap %.1f ms, %d duplicates",
			stop.name, rep.Unique, lostAfterFirst(rep), float64(lostAfterFirst(rep))/float64(lab.Rate(1000)), rep.MaxGapMs, rep.Duplicates)
	}
	checkDaemonsUp(t, l, "r1", "r2", "r3")
}

// TestRestartPeers measures, in TestRestartLossless's harness, what the reference
// routers lose when the RP's daemon stops and starts: FRR and pimd on all three
// routers, each with its default join/prune interval (60 s).
func TestRestartPeers(t *testing.T) {
	const group = "239.1.1.1"
	for _, peer := range []struct {
		name    string
		require func(testing.TB)
		start   func(l *lab.Lab, node string) (*peers.Process, error)
	}{
		{"FRR", peers.RequireFRR, func(l *lab.Lab, node string) (*peers.Process, error) {
			ifaces := map[string][]string{"r1": {"eth1", "eth2"}, "r2": {"eth1", "eth2", "eth3"}, "r3": {"eth1", "eth2"}}[node]
			cfg := strings.Replace(frrConfig(chainRP, ifaces, []string{"eth2"}), "ip pim join-prune-interval 10\n", "", 1)
			return peers.StartFRR(l, node, cfg)
		}},
		{"pimd", peers.RequirePimd, func(l *lab.Lab, node string) (*peers.Process, error) {
			cfg := "phyint eth1 enable\nphyint eth2 enable\n"
			if node == "r2" {
				cfg += "phyint eth3 enable\n"
			}
			return peers.StartPimd(l, node, cfg+"rp-address "+chainRP+" 239.0.0.0/8\n")
		}},
	} {
		t.Run(peer.name, func(t *testing.T) {
			t.Parallel() // two labs side by side: most of each is waiting for the peer's timers
			peer.require(t)
			l := chain(t, "")
			procs := map[string]*peers.Process{}
			for _, node := range []string{"r1", "r2", "r3"} {
				p, err := peer.start(l, node)
				if err != nil {
					t.Fatal(err)
				}
				procs[node] = p
			}
			t.Cleanup(func() {
				for _, p := range procs {
					_ = p.Stop()
				}
			})
			holdMembership(t, l, "rcv", group)
			startSender(t, l, "src", streamArgs(group, 1000)...)
			before := sysCounter(t, l, "rcv", "eth1", "rx_packets")
			lab.WaitFor(t, 90*time.Second, "the stream reaching rcv through "+peer.name, func() (bool, string) {
				n := sysCounter(t, l, "rcv", "eth1", "rx_packets") - before
				return n >= uint64(5*lab.Rate(1000)), fmt.Sprint(n)
			})
			rep := countThrough(t, l, group, func() {
				if err := procs["r2"].Stop(); err != nil {
					t.Fatal(err)
				}
				p, err := peer.start(l, "r2")
				if err != nil {
					t.Fatal(err)
				}
				procs["r2"] = p
			})
			t.Logf("r2: %s stopped and started: rcv: %d packets, %d lost after the first (%.1f s of the stream), largest gap %.1f ms, %d duplicates",
				peer.name, rep.Unique, lostAfterFirst(rep), float64(lostAfterFirst(rep))/float64(lab.Rate(1000)), rep.MaxGapMs, rep.Duplicates)
		})
	}
}

// serviceManager plays systemd's part for one daemon: its notify socket, with the
// file descriptor store ($FDSTORE), and the starts that hand the store back
// (LISTEN_FDS).
type serviceManager struct {
	t      *testing.T
	l      *lab.Lab
	node   string
	notify *net.UnixConn
	path   string
	mu     sync.Mutex
	store  map[string]*os.File
	ready  chan struct{}
	cmd    *exec.Cmd
}

func newServiceManager(t *testing.T, l *lab.Lab, node string) *serviceManager {
	t.Helper()
	m := &serviceManager{t: t, l: l, node: node, path: filepath.Join(t.TempDir(), "notify"),
		store: map[string]*os.File{}, ready: make(chan struct{}, 8)}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: m.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	m.notify = c
	go m.serve()
	t.Cleanup(func() {
		c.Close()
		m.drop()
	})
	return m
}

// serve reads notifications: READY=1, FDSTORE=1 with descriptors, FDSTOREREMOVE=1.
func (m *serviceManager) serve() {
	buf, oob := make([]byte, 4096), make([]byte, 4096)
	for {
		n, oobn, _, _, err := m.notify.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		fields := map[string]string{}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			k, v, _ := strings.Cut(line, "=")
			fields[k] = v
		}
		var fds []int
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, msg := range msgs {
				if rights, err := unix.ParseUnixRights(&msg); err == nil {
					fds = append(fds, rights...)
				}
			}
		}
		m.mu.Lock()
		switch {
		case fields["FDSTORE"] == "1" && len(fds) == 1:
			if old := m.store[fields["FDNAME"]]; old != nil {
				old.Close()
			}
			m.store[fields["FDNAME"]] = os.NewFile(uintptr(fds[0]), fields["FDNAME"])
			fds = nil
		case fields["FDSTOREREMOVE"] == "1":
			if old := m.store[fields["FDNAME"]]; old != nil {
				old.Close()
				delete(m.store, fields["FDNAME"])
			}
		}
		m.mu.Unlock()
		for _, fd := range fds {
			unix.Close(fd)
		}
		if fields["READY"] == "1" {
			m.ready <- struct{}{}
		}
	}
}

// stored lists the names in the store.
func (m *serviceManager) stored() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for name := range m.store {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// start starts the daemon with the store handed back, and waits until it is ready.
func (m *serviceManager) start() {
	m.t.Helper()
	bin := filepath.Join(binDir, "mrouterd")
	cmd := m.l.Command(m.node, "sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, bin,
		"-c", configPath(m.t, m.l, m.node), "-s", m.l.Socket(m.node))
	cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+m.path, "FDSTORE=2")
	m.mu.Lock()
	var names []string
	for _, name := range []string{"mrt", "handoff"} {
		if f := m.store[name]; f != nil {
			names = append(names, name)
			cmd.ExtraFiles = append(cmd.ExtraFiles, f)
		}
	}
	m.mu.Unlock()
	if len(names) > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("LISTEN_FDS=%d", len(names)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
	}
	log, err := os.OpenFile(m.l.DaemonLogPath(m.node), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		m.t.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.cmd = cmd
	select {
	case <-m.ready:
	case <-time.After(lab.Scaled(10 * time.Second)):
		m.t.Fatalf("%s: mrouterd not ready; its log ends:\n%s", m.node, tailLines(m.l.DaemonLog(m.node), 20))
	}
}

// stop sends sig to the daemon and waits for it to exit.
func (m *serviceManager) stop(sig syscall.Signal) {
	m.t.Helper()
	_ = m.cmd.Process.Signal(sig)
	_ = m.cmd.Wait()
}

// drop empties the store, as systemd does when the unit stops for good.
func (m *serviceManager) drop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, f := range m.store {
		f.Close()
		delete(m.store, name)
	}
}

// TestRestartFromStore: the RP's daemon runs under a service manager with a file
// descriptor store, as under systemd 254. A kill -9 and a start, and a stop and a
// start, lose nothing: the store keeps the table's socket open, and the next start
// adopts it. When the store is dropped, as when the unit stops for good, the
// kernel removes the table.
func TestRestartFromStore(t *testing.T) {
	l := sourceChain(t, nil)
	const group = "239.1.1.1"
	if err := l.StopDaemon("r2", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	m := newServiceManager(t, l, "r2")
	m.start()
	lab.WaitFor(t, 5*time.Second, "the table in the store", func() (bool, string) {
		got := m.stored()
		return slices.Equal(got, []string{"handoff", "mrt"}), fmt.Sprint(got)
	})
	waitNeighbors(t, l, 10*time.Second, "r3", "10.0.23.2")
	waitNeighbors(t, l, 10*time.Second, "r1", "10.0.12.2")
	holdMembership(t, l, "rcv", group)
	rpJoined(t, l, group)()
	startSender(t, l, "src", streamArgs(group, 1000)...)
	waitNotRegistering(t, l, 20*time.Second, "r1", chainSource, group)
	waitPIMRoute(t, l, 10*time.Second, "r3", chainSource, group, pimRoute{"eth1", []string{"eth2"}, "SPT"})
	before := routeShapes(t, l, "r2")
	for _, stop := range []struct {
		name string
		sig  syscall.Signal
	}{{"kill -9 and a start", syscall.SIGKILL}, {"SIGTERM and a start", syscall.SIGTERM}} {
		rep := countThrough(t, l, group, func() {
			m.stop(stop.sig)
			m.start()
		})
		t.Logf("r2 under a file descriptor store: %s: rcv: %d packets, %d lost after the first, largest gap %.1f ms, %d duplicates",
			stop.name, rep.Unique, lostAfterFirst(rep), rep.MaxGapMs, rep.Duplicates)
		if lostAfterFirst(rep) != 0 || rep.Duplicates != 0 {
			t.Errorf("r2: %s with the table in the store: %+v; want nothing lost, nothing twice", stop.name, rep.Stats)
		}
		waitRouteShapes(t, l, 30*time.Second, "r2", before)
	}

	m.stop(syscall.SIGTERM)
	m.drop()
	lab.WaitFor(t, 5*time.Second, "r2's table removed once the store let go", func() (bool, string) {
		out := mustExec(t, l, "r2", "ip", "mroute", "show")
		return strings.TrimSpace(out) == "", out
	})
}
