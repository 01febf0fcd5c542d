package pim

import (
	"container/heap"
	"time"
)

// This file is the Tree's timers: one heap of deadlines, and what happens when
// each runs out.

// Advance fires every timer due at now.
func (t *Tree) Advance(now time.Time) []Action {
	t.begin()
	for t.timers.Len() > 0 && !t.timers[0].at.After(now) {
		d := heap.Pop(&t.timers).(deadline)
		if d.upstream != nil {
			if u := t.upstreams[*d.upstream]; u != nil && u.queued.Equal(d.at) {
				u.queued = time.Time{}
				t.periodic(now, *d.upstream, u)
			}
			continue
		}
		if e := t.entries[d.key]; e != nil && e.queued.Equal(d.at) {
			e.queued = time.Time{}
			t.expire(now, e)
		}
	}
	return t.finish()
}

// periodic sends the batch of joins due to a neighbour, or retires the pacing
// when no entry joins through it any more.
func (t *Tree) periodic(now time.Time, k upstreamKey, u *upstream) {
	if now.Before(u.next) {
		t.scheduleUpstream(k, u)
		return
	}
	to := RPF{k.iface, k.neighbor}
	any := false
	for _, e := range t.entries {
		if !e.joined || e.upstream != to {
			continue
		}
		any = true
		if e.suppressed.After(now) {
			continue
		}
		t.queue(to, e.key, true)
	}
	if !any {
		delete(t.upstreams, k)
		return
	}
	u.next = now.Add(t.cfg.JoinPruneInterval)
	t.scheduleUpstream(k, u)
}

// expire fires an entry's due timers: downstream expiry and prune-pending, and
// the override join.
func (t *Tree) expire(now time.Time, e *entry) {
	e.joins.deleteFunc(func(name string, d *downstream) bool {
		switch {
		case d.state == PrunePending && !d.prunePending.After(now):
			t.changed[e.key] = true
			// A prune echo tells the LAN the prune took effect, so a router whose
			// override was lost joins again (RFC 7761 4.5.2).
			if l, ok := t.links[name]; ok && l.Override > 0 {
				t.queue(RPF{Interface: name, Neighbor: l.Self}, e.key, false)
			}
			t.forgetJoin(d)
			return true
		case !d.expiry.IsZero() && !d.expiry.After(now):
			t.changed[e.key] = true
			t.forgetJoin(d)
			return true
		}
		return false
	})
	e.rptPrunes.deleteFunc(func(_ string, d *downstream) bool {
		switch {
		case !d.expiry.IsZero() && !d.expiry.After(now):
			t.changed[e.key] = true
			return true
		case d.state == PrunePending && !d.prunePending.After(now):
			d.state, d.prunePending = Pruned, time.Time{}
			t.changed[e.key] = true
		}
		return false
	})
	if !e.override.IsZero() && !e.override.After(now) {
		e.override = time.Time{}
		if e.joined {
			t.queue(e.upstream, e.key, true)
		}
	}
	if !e.regStop.IsZero() && !e.regStop.After(now) {
		t.registerStopTimerExpired(now, e)
	}
	t.assertTimersExpired(now, e)
	t.update(now, e)
}

// next is the entry's earliest running timer.
func (e *entry) next() (time.Time, bool) {
	var at time.Time
	consider := func(x time.Time) {
		if !x.IsZero() && (at.IsZero() || x.Before(at)) {
			at = x
		}
	}
	for _, it := range e.joins {
		consider(it.val.expiry)
		consider(it.val.prunePending)
	}
	for _, it := range e.rptPrunes {
		consider(it.val.expiry)
		consider(it.val.prunePending)
	}
	consider(e.override)
	consider(e.regStop)
	for _, it := range e.asserts {
		consider(it.val.timer)
	}
	return at, !at.IsZero()
}

// schedule makes sure the heap holds the entry's earliest deadline. Later ones
// already queued are left and skipped as stale when they surface.
func (t *Tree) schedule(e *entry) {
	at, ok := e.next()
	if !ok || (!e.queued.IsZero() && !at.Before(e.queued)) {
		return
	}
	e.queued = at
	heap.Push(&t.timers, deadline{at: at, key: e.key})
}

func (t *Tree) scheduleUpstream(k upstreamKey, u *upstream) {
	if !u.queued.IsZero() && !u.next.Before(u.queued) {
		return
	}
	u.queued = u.next
	heap.Push(&t.timers, deadline{at: u.next, upstream: &k})
}

// NextDeadline is when Advance must next be called.
func (t *Tree) NextDeadline() (time.Time, bool) {
	if t.timers.Len() == 0 {
		return time.Time{}, false
	}
	return t.timers[0].at, true
}

// deadline is an entry in the timer heap: an entry's earliest timer, or a
// neighbour's periodic batch. Entries are not removed when re-armed; the owner's
// queued field says which one is live.
type deadline struct {
	at       time.Time
	key      Key
	upstream *upstreamKey
}

type deadlineHeap []deadline

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)        { *h = append(*h, x.(deadline)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	*h = old[:len(old)-1]
	return d
}
