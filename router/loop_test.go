package router

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mrouterd/mrouterd/conf"
	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/router/api"
	"github.com/mrouterd/mrouterd/router/netwatch"
)

// runLoop runs the router's loop until the test ends.
func (l *lab) runLoop() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.r.loop(ctx) }()
	l.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			l.t.Error(err)
		}
	})
}

// startRun runs the router as the daemon does, until it returns; ready is closed
// once it serves.
func (l *lab) startRun() (done <-chan error, cancel func()) {
	ctx, stop := context.WithCancel(context.Background())
	ready := make(chan struct{})
	out := make(chan error, 1)
	go func() { out <- l.r.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-out:
		l.t.Fatalf("Run: %v", err)
	}
	return out, stop
}

// runLinks gives a lab that runs as the daemon does a source LAN (eth1), a
// receiver LAN (eth2) and the register device.
func runLinks(l *lab) {
	l.r.clock = time.Now
	l.r.socket = l.t.TempDir() + "/mrouterd.sock"
	l.net.links = []netwatch.Link{
		{Name: "eth1", Index: 11, Flags: net.FlagUp | net.FlagRunning | net.FlagMulticast},
		{Name: "eth2", Index: 12, Flags: net.FlagUp | net.FlagRunning | net.FlagMulticast},
		{Name: "pimreg", Index: 99, Flags: net.FlagUp | net.FlagRunning},
	}
	l.net.addrs[11] = []netip.Prefix{netip.MustParsePrefix("10.0.1.1/24")}
	l.net.addrs[12] = []netip.Prefix{netip.MustParsePrefix("10.0.2.1/24")}
	l.mrt.regIndex = 99
}

// counter reads a counter from the loop.
func (l *lab) counter(name string) uint64 {
	var n uint64
	if err := l.r.call(context.Background(), func() { n = l.r.counters[name] }); err != nil {
		l.t.Fatal(err)
	}
	return n
}

// TestReloadsRaceNothing reloads good and bad configs from several goroutines while
// upcalls arrive: every reload is counted once, on the loop (go test -race).
func TestReloadsRaceNothing(t *testing.T) {
	l := newLab(t, twoRoutes)
	l.r.clock = time.Now // the loop's timers are real
	l.link("eth1", 11, "10.0.1.1/24")
	l.link("eth2", 12, "10.0.2.1/24")
	var n atomic.Int64
	l.r.load = func() (*conf.Config, error) {
		switch n.Add(1) % 4 {
		case 0:
			return nil, errors.New("test.toml:1: bad")
		case 1:
			c, err := conf.Parse("test.toml", []byte(templateTo("eth3")))
			if err == nil {
				c.Router.Table = 7 // cannot change while running
			}
			return c, err
		case 2:
			return conf.Parse("test.toml", []byte(templateTo("eth3")))
		}
		return conf.Parse("test.toml", []byte(twoRoutes))
	}
	l.runLoop()

	const reloaders, each = 4, 25
	var wg sync.WaitGroup
	ctx := context.Background()
	for range reloaders {
		wg.Go(func() {
			for range each {
				_, _ = l.r.Reload(ctx)
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			s := netip.AddrFrom4([4]byte{10, 0, 1, byte(10 + i%100)})
			l.r.in.upcalls <- mroute.Upcall{Type: mroute.NoCache, VIF: 0, Source: s, Group: grp2}
		}
	})
	wg.Wait()
	if got := l.counter("reloads") + l.counter("reload_failed"); got != reloaders*each {
		t.Fatalf("%d reloads counted, want %d", got, reloaders*each)
	}
	if err := l.r.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestReloadWithoutFile(t *testing.T) {
	l := newLab(t, "")
	if _, err := l.r.Reload(context.Background()); err == nil {
		t.Fatal("reload on embedded defaults")
	}
}

// TestLoopSendsJoinsAndRunsTimers has the loop batch Join/Prunes, install what an
// IGMP report asks for, and run the protocol timers.
func TestLoopSendsJoinsAndRunsTimers(t *testing.T) {
	l, _, eth2, _ := threeLinks(t, withRP)
	l.r.clock = time.Now
	l.runLoop()
	l.r.in.igmpPackets <- igmpPacket{data: reportPacket(t, "10.0.2.5", include(ssmGroup, farSrc)), ifindex: eth2.index}
	var joins []string
	l.eventually("a join sent and the route installed", func() bool {
		joins = append(joins, joinsOf(l)...)
		_, _, ok := l.mrt.entry(l.r, sgKey{Source: farSrc, Group: ssmGroup})
		return len(joins) > 0 && ok
	})
}

// eventually waits for cond, which runs on the loop, to hold.
func (l *lab) eventually(what string, cond func() bool) {
	l.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		var ok bool
		if err := l.r.call(context.Background(), func() { ok = cond() }); err != nil {
			l.t.Fatal(err)
		}
		if ok {
			return
		}
		select {
		case <-timeout:
			l.t.Fatalf("never: %s", what)
		case <-time.After(time.Millisecond):
		}
	}
}

func TestControlAPI(t *testing.T) {
	l, eth1, eth2, _ := threeLinks(t, withRP+staticSG)
	l.withRegisterVIF()
	l.report(eth2, "10.0.2.5", exclude(grp1))
	l.upcall(mroute.NoCache, eth1, hostSrc2, grp1, nil)
	l.r.reconcile("start")
	l.runLoop()
	h := l.r.handler()
	get := func(method, path string, v any) int {
		t.Helper()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
		if v != nil {
			if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
				t.Fatalf("%s: %v: %s", path, err, w.Body)
			}
		}
		return w.Code
	}
	var routes api.Routes
	get("GET", api.PathRoutes, &routes)
	protocols := map[string]string{}
	for _, r := range routes.Routes {
		protocols[r.Source+" "+r.Group] = r.Protocol
	}
	want := map[string]string{"10.0.1.2 239.1.1.1": "static", "10.0.1.3 239.1.1.1": "pim", "* 239.1.1.1": "pim"}
	for k, v := range want {
		if protocols[k] != v {
			t.Errorf("route %s: protocol %q, want %q (all: %v)", k, protocols[k], v, protocols)
		}
	}
	var (
		mfc    api.MFC
		ifs    api.Interfaces
		groups api.IGMPGroups
		st     api.Status
		nbrs   api.PIMNeighbors
		rps    api.RPMappings
		joins  api.PIMJoins
	)
	views := []struct {
		path string
		v    any
		ok   func() bool
	}{
		{api.PathMFC, &mfc, func() bool { return len(mfc.MFC) == 2 }},
		{api.PathInterfaces, &ifs, func() bool {
			return len(ifs.Interfaces) == 4 && ifs.Interfaces[0].State == "active" && ifs.Interfaces[0].PIMState != nil
		}},
		{api.PathIGMPGroups, &groups, func() bool { return len(groups.Groups) == 1 && groups.Groups[0].Mode == "exclude" }},
		{api.PathStatus, &st, func() bool { return st.Routes == 2 && st.Counters["igmp_received"] == 1 }},
		{api.PathPIMNeighbors, &nbrs, func() bool { return len(nbrs.Neighbors) == 0 }},
		{api.PathPIMRP, &rps, func() bool { return len(rps.RP) == 2 }},
		{api.PathPIMJoins, &joins, func() bool { return len(joins.Joins) > 0 }},
	}
	for _, view := range views {
		if get("GET", view.path, view.v); !view.ok() {
			t.Errorf("%s: %+v", view.path, view.v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", api.PathMetrics, nil))
	if !strings.Contains(w.Body.String(), "mrouterd_routes 2") {
		t.Errorf("metrics:\n%s", w.Body)
	}
	if code := get("POST", api.PathReload, nil); code != http.StatusBadRequest {
		t.Errorf("reload on embedded defaults: %d", code)
	}
	if code := get("GET", "/v1/nothing", nil); code != http.StatusNotFound || l.counter("control_bad_requests") != 1 {
		t.Errorf("unknown path: %d", code)
	}
}

// TestRun starts the daemon's router on fakes, feeds it through its sockets and
// netlink, and stops it: everything it installed goes.
func TestRun(t *testing.T) {
	l := newLab(t, withRP)
	runLinks(l)
	done, cancel := l.startRun()
	if !l.mrt.pim {
		t.Error("PIM mode off")
	}
	// A member joins on eth2, and a source sends on eth1: the tap hears both, and
	// each interface gets a VIF.
	l.tap.packets <- tapped{data: reportPacket(t, "10.0.2.5", exclude(grp1)), ifindex: 12}
	l.tap.packets <- tapped{data: dataPacket(hostSrc, grp1, 64), ifindex: 11}
	var vif int
	l.eventually("the source's interface has a VIF", func() bool {
		vif = l.r.ifaces["eth1"].vif
		return vif >= 0
	})
	l.mrt.messages <- mroute.Message{Upcall: &mroute.Upcall{Type: mroute.NoCache, VIF: uint16(vif), Source: hostSrc, Group: grp1}}
	l.eventually("the route is installed", func() bool {
		_, oifs, ok := l.mrt.entry(l.r, sgKey{Source: hostSrc, Group: grp1})
		return ok && slices.Contains(oifs, "eth2")
	})
	// eth2 loses its carrier: its VIF goes, and the entry stops forwarding there.
	l.net.events <- &netwatch.LinkUpdate{Link: netwatch.Link{Name: "eth2", Index: 12, Flags: net.FlagUp | net.FlagMulticast}}
	l.eventually("eth2 is inactive", func() bool { return !l.r.ifaces["eth2"].hasVIF() })
	l.net.events <- &netwatch.AddrUpdate{Index: 11, Prefix: netip.MustParsePrefix("10.0.1.9/24")}
	l.net.events <- netwatch.Resync{}
	l.eventually("resynced", func() bool { return l.r.counters["netlink_resyncs"] == 1 })
	l.net.events <- &netwatch.LinkUpdate{Link: netwatch.Link{Name: "eth1", Index: 11}, Gone: true}
	l.eventually("eth1 is gone", func() bool { return l.r.ifaces["eth1"] == nil })

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(l.mrt.mfc) != 0 || len(l.mrt.vifs) != 0 {
		t.Errorf("left behind: %v %v", l.mrt.mfc, l.mrt.vifs)
	}
}
