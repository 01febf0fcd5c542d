package router

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mrouterd/mrouterd/mroute"
)

// TestRestartInPlace hands a router's table to a second router, as a restart in
// place does across exec: the kernel's VIFs and entries stay as they were, the
// adopted entries are held while the new router knows no member yet, its source
// is replayed into a route, and once the hold is over what nobody wants goes.
func TestRestartInPlace(t *testing.T) {
	old := newLab(t, withRP)
	runLinks(old)
	old.r.version = "1.0"
	old.r.checkRestart = func(context.Context) (string, error) { return "1.1", nil }
	done, cancel := old.startRun()
	defer cancel()
	old.tap.packets <- tapped{data: reportPacket(t, "10.0.2.5", exclude(grp1)), ifindex: 12}
	old.tap.packets <- tapped{data: dataPacket(hostSrc, grp1, 64), ifindex: 11}
	var srcVIF int
	old.eventually("the source's interface has a VIF", func() bool {
		srcVIF = old.r.ifaces["eth1"].vif
		return srcVIF >= 0
	})
	old.mrt.messages <- mroute.Message{Upcall: &mroute.Upcall{Type: mroute.NoCache, VIF: uint16(srcVIF), Source: hostSrc, Group: grp1}}
	key := sgKey{Source: hostSrc, Group: grp1}
	old.eventually("the route is installed", func() bool {
		_, oifs, ok := old.mrt.entry(old.r, key)
		return ok && slices.Contains(oifs, "eth2")
	})
	before := map[uint16]mroute.VIF{}
	old.mrt.mu.Lock()
	for k, v := range old.mrt.vifs {
		before[k] = v
	}
	entry := old.mrt.mfc[key]
	old.mrt.mu.Unlock()

	got, err := old.r.Restart(context.Background())
	if err != nil || got.From != "1.0" || got.To != "1.1" {
		t.Fatalf("Restart = %+v, %v", got, err)
	}
	if err := <-done; !errors.Is(err, ErrRestart) {
		t.Fatalf("Run after Restart = %v, want ErrRestart", err)
	}
	h := old.r.Handoff()
	if h == nil || h.MRT != 100 || len(h.VIFs) != len(before) {
		t.Fatalf("handoff = %+v, want the socket and %d VIFs", h, len(before))
	}
	if len(old.mrt.mfc) != 1 || len(old.mrt.vifs) != len(before) {
		t.Fatalf("handing over changed the table: %v %v", old.mrt.mfc, old.mrt.vifs)
	}

	// The environment carries the handoff to the next program.
	t.Setenv(handoffEnv, strings.TrimPrefix(h.Env(), handoffEnv+"="))
	inherited, err := Inherit()
	if err != nil || inherited.MRT != h.MRT || len(inherited.VIFs) != len(h.VIFs) {
		t.Fatalf("Inherit = %+v, %v", inherited, err)
	}

	next := newLab(t, withRP)
	next.mrt = old.mrt.adopt()
	next.r.mrt = next.mrt
	runLinks(next)
	next.r.adopting = inherited
	done, cancel = next.startRun()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	next.mrt.mu.Lock()
	if !equalVIFs(next.mrt.vifs, before) || !slices.Equal(next.mrt.mfc[key].OIFs, entry.OIFs) || next.mrt.mfc[key].IIF != entry.IIF {
		t.Errorf("after adoption: VIFs %v entry %+v; want %v %+v", next.mrt.vifs, next.mrt.mfc[key], before, entry)
	}
	next.mrt.mu.Unlock()
	var routed, held bool
	next.call(func() {
		_, routed = next.r.rib.Route(key)
		_, held = next.r.held[key]
	})
	if !routed || !held {
		t.Errorf("adopted source: route %t, held %t; want both", routed, held)
	}

	// The hold ends: nobody joined on eth2 since, so it stops forwarding there,
	// and its VIF, held for the restart only, goes.
	next.call(func() { next.r.holdUntil = next.r.now() })
	next.eventually("the unwanted branch goes", func() bool {
		_, oifs, _ := next.mrt.entry(next.r, key)
		return !slices.Contains(oifs, "eth2")
	})
	next.tap.packets <- tapped{data: reportPacket(t, "10.0.2.5", exclude(grp1)), ifindex: 12}
	next.eventually("a member brings it back", func() bool {
		_, oifs, _ := next.mrt.entry(next.r, key)
		return slices.Contains(oifs, "eth2")
	})
}

// TestRestartRefused leaves the router serving when the program on disk, or the
// config, would not run.
func TestRestartRefused(t *testing.T) {
	l := newLab(t, withRP)
	runLinks(l)
	done, cancel := l.startRun()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	if _, err := l.r.Restart(context.Background()); err == nil || !strings.Contains(err.Error(), "cannot restart in place") {
		t.Errorf("Restart without a check = %v", err)
	}
	l.r.checkRestart = func(context.Context) (string, error) { return "", errors.New("exec format error") }
	if _, err := l.r.Restart(context.Background()); err == nil || !strings.Contains(err.Error(), "restart refused, still serving: exec format error") {
		t.Errorf("Restart with a broken program = %v", err)
	}
	if n := l.counter("restarts_refused"); n != 1 {
		t.Errorf("restarts_refused = %d, want 1", n)
	}
	if l.r.Handoff() != nil {
		t.Error("a refused restart handed over")
	}
}

// call runs fn on the loop.
func (l *lab) call(fn func()) {
	l.t.Helper()
	if err := l.r.call(context.Background(), fn); err != nil {
		l.t.Fatal(err)
	}
}

func equalVIFs(a, b map[uint16]mroute.VIF) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestRestartAtTheRP: an RP adopts an entry that takes a source from its tree. The
// rebuilt state alone would take the source from registers, which no longer come;
// the adopted entry keeps the source's interface, the route learns it is on the
// source's tree, and once the hold is over the kernel's entry is as before.
func TestRestartAtTheRP(t *testing.T) {
	l, eth2, eth3 := atRP(t, withRP)
	key := sgKey{Source: hostSrc, Group: grp1}
	entry := mroute.MFC{Source: hostSrc, Group: grp1, IIF: uint16(eth3.vif), OIFs: []uint16{uint16(eth2.vif)}}
	if err := l.mrt.AddMFC(entry); err != nil {
		t.Fatal(err)
	}
	l.r.adopting = &Handoff{From: "1.0"}
	l.r.held = map[sgKey]mroute.KernelEntry{}
	l.r.holdAdopted()
	l.r.reconcile("start")
	l.mfc(key, "eth3", "eth2")

	l.report(eth2, "10.0.2.5", exclude(grp1))
	l.mfc(key, "eth3", "eth2")
	l.clock.advance(l.r.restartHold())
	l.r.advanceProtocols(l.r.now())
	l.settle()
	l.mfc(key, "eth3", "eth2")
	if rt, ok := l.r.rib.Route(key); !ok || rt.IIF != "eth3" || !rt.Learned {
		t.Fatalf("route %+v: want the source's tree, from eth3, learned", rt)
	}
	if l.r.held != nil {
		t.Error("still holding after the hold")
	}
}

// TestWaitingSourceRouted: the kernel asks once about a source nobody wants, then
// holds its packets unresolved. When its group gets state before that ends, as
// when a router restarts while its neighbours keep sending, the source is routed at
// once; after it, the kernel asks again itself.
func TestWaitingSourceRouted(t *testing.T) {
	l, _, eth2, eth3 := threeLinks(t, withRP)
	key := sgKey{Source: farSrc, Group: grp1}
	late := sgKey{Source: farSrc, Group: netip.MustParseAddr("239.1.1.2")}
	l.upcall(mroute.NoCache, eth3, farSrc, grp1, nil)
	l.upcall(mroute.NoCache, eth3, farSrc, late.Group, nil)
	if _, ok := l.r.rib.Route(key); ok || l.r.counters["upcall_unrouted"] != 2 {
		t.Fatalf("a source nobody wants was routed: %v", l.r.counters)
	}
	l.report(eth2, "10.0.2.5", exclude(grp1))
	if _, ok := l.r.rib.Route(key); !ok || l.r.counters["waiting_sources_routed"] != 1 {
		t.Fatalf("the waiting source was not routed when its group got a member: %v", l.r.counters)
	}
	l.clock.advance(unresolvedHold)
	l.report(eth2, "10.0.2.5", exclude(late.Group))
	if _, ok := l.r.rib.Route(late); ok || len(l.r.waiting) != 0 {
		t.Fatalf("a source the kernel asks about again itself was routed: %v", l.r.counters)
	}
}
