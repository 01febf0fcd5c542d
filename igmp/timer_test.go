package igmp

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestTimerHeapOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h timerHeap
	var all []timerEntry
	for range 1000 {
		e := timerEntry{
			at:     tick(rng.IntN(50) + 1),
			kind:   timerKind(rng.IntN(int(timerSourceQuery) + 1)),
			group:  addr4(rng.IntN(4)),
			source: addr4(rng.IntN(4)),
		}
		h.push(e)
		all = append(all, e)
	}
	slices.SortFunc(all, func(a, b timerEntry) int {
		switch {
		case a.before(b):
			return -1
		case b.before(a):
			return 1
		}
		return 0
	})
	for i, want := range all {
		if got := h.pop(); got != want {
			t.Fatalf("pop %d: %+v, want %+v", i, got, want)
		}
	}
	if h.Len() != 0 {
		t.Fatal("entries left")
	}
}

func TestTimerHeapCompaction(t *testing.T) {
	var h timerHeap
	for i := range 1000 {
		h.push(timerEntry{at: tick(i + 1), kind: timerGroup})
	}
	// Every odd entry superseded: not yet half, so nothing happens...
	for range 499 {
		h.superseded()
	}
	h.compact(func(e timerEntry) bool { return e.at%2 == 0 })
	if h.Len() != 1000 {
		t.Fatalf("compacted early: %d", h.Len())
	}
	h.superseded()
	h.compact(func(e timerEntry) bool { return e.at%2 == 0 })
	if h.Len() != 500 || h.stale != 0 {
		t.Fatalf("after compaction %d entries, %d stale", h.Len(), h.stale)
	}
	for prev := tick(0); h.Len() > 0; {
		e := h.pop()
		if e.at%2 != 0 || e.at <= prev {
			t.Fatalf("popped %+v after %d", e, prev)
		}
		prev = e.at
	}
}

// Re-arming timers over and over does not grow the heap without bound.
func TestTimerHeapBoundedUnderChurn(t *testing.T) {
	q := started(t, testConfig())
	groups := 100
	for i := range 10000 {
		now := at(time.Duration(i) * 10 * time.Millisecond)
		g := netip.AddrFrom4([4]byte{239, 1, 0, byte(i % groups)})
		q.Receive(now, host, v3Report(ModeIsExclude, g, i%3))
		q.Advance(now)
	}
	// Live: per group a group timer and at most three source timers; plus
	// the general query.
	if live := 4*groups + 1; q.timers.Len() > 2*live+64 {
		t.Fatalf("heap holds %d entries for at most %d live timers", q.timers.Len(), live)
	}
}

// liveTimers lists every running timer as the entry the heap must hold.
func liveTimers(q *Querier) []timerEntry {
	var live []timerEntry
	add := func(at tick, kind timerKind, group, source addr4) {
		if at != 0 {
			live = append(live, timerEntry{at: at, kind: kind, group: group, source: source})
		}
	}
	add(q.generalQueryAt, timerGeneralQuery, 0, 0)
	add(q.otherQuerierUntil, timerOtherQuerier, 0, 0)
	add(q.olderV1Until, timerOlderV1Querier, 0, 0)
	add(q.olderV2Until, timerOlderV2Querier, 0, 0)
	for i := range q.slots {
		g := &q.slots[i]
		if g.addr == 0 {
			continue
		}
		add(g.expires, timerGroup, g.addr, 0)
		add(g.v1Host, timerV1Host, g.addr, 0)
		add(g.v2Host, timerV2Host, g.addr, 0)
		add(g.groupQueryAt, timerGroupQuery, g.addr, 0)
		add(g.sourceQueryAt, timerSourceQuery, g.addr, 0)
		for _, s := range g.sources {
			add(s.expires, timerSource, g.addr, s.addr)
		}
	}
	return live
}

// Random traffic: after every call each running timer has its heap entry,
// NextDeadline is exactly the earliest running timer, and the interface's
// source count is what the groups hold, within its limit.
func TestTimerInvariantsUnderRandomTraffic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cfg := testConfig()
	cfg.MaxSourcesPerInterface = 8
	q := started(t, cfg)
	now := t0
	groups := []netip.Addr{grp, netip.MustParseAddr("239.2.2.2"), netip.MustParseAddr("239.3.3.3")}
	routers := []netip.Addr{lower, higher}
	for step := range 20000 {
		now = now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
		g := groups[rng.IntN(len(groups))]
		var sources []int
		for range rng.IntN(4) {
			sources = append(sources, rng.IntN(6))
		}
		switch r := rng.IntN(20); {
		case r < 12:
			q.Receive(now, host, v3Report(RecordType(rng.IntN(6)+1), g, sources...))
		case r < 14:
			q.Receive(now, host, &Report{Version: rng.IntN(2) + 1, Group: g})
		case r < 15:
			q.Receive(now, host, &Leave{Group: g})
		case r < 16:
			q.Receive(now, routers[rng.IntN(2)], &Query{Version: rng.IntN(3) + 1, MaxResp: time.Second, Group: g, Sources: srcs(sources...)})
		case r < 17:
			q.Receive(now, routers[rng.IntN(2)], &Query{Version: 3, MaxResp: time.Second})
		default:
			if next, ok := q.NextDeadline(); ok && rng.IntN(2) == 0 {
				now = next
			}
			q.Advance(now)
		}
		held := 0
		for i := range q.slots {
			held += len(q.slots[i].sources)
		}
		if held != q.sources || held > cfg.MaxSourcesPerInterface {
			t.Fatalf("step %d: %d sources held, %d counted, limit %d", step, held, q.sources, cfg.MaxSourcesPerInterface)
		}
		entries := make(map[timerEntry]bool, q.timers.Len())
		for _, e := range q.timers.entries {
			entries[e] = true
		}
		live := liveTimers(q)
		for _, e := range live {
			if !entries[e] {
				t.Fatalf("step %d: running timer %+v has no heap entry", step, e)
			}
		}
		next, ok := q.NextDeadline()
		if len(live) == 0 {
			if ok {
				t.Fatalf("step %d: deadline %v with no timer running", step, next)
			}
			continue
		}
		earliest := slices.MinFunc(live, func(a, b timerEntry) int { return int(a.at - b.at) })
		if !ok || !next.Equal(q.timeOf(earliest.at)) {
			t.Fatalf("step %d: NextDeadline %v, earliest timer %+v", step, next, earliest)
		}
	}
}
