package igmp

import (
	"container/heap"
	"time"
)

// tick is a point in time as nanoseconds since the querier's epoch (the first
// time it was given). Zero means "not running", so a timer set to expire at a
// tick must always be given a positive one; every deadline is now plus a
// positive duration, and now never goes below zero.
type tick int64

// maxTick caps the clock (at about 146 years past the epoch) so that adding
// any duration the querier uses cannot overflow: a deadline is always later
// than now, and no timer can fire over and over within one Advance.
const maxTick tick = 1 << 62

func (t tick) add(d time.Duration) tick { return t + tick(max(d, 1)) }

// timerKind says which field of which entity a heap entry stands for.
type timerKind uint8

const (
	timerGeneralQuery   timerKind = iota // next general query while querier
	timerOtherQuerier                    // other querier present (6.6.2)
	timerOlderV1Querier                  // older version querier present (7.3.1)
	timerOlderV2Querier
	timerGroup       // group timer (EXCLUDE mode)
	timerSource      // source timer
	timerV1Host      // IGMPv1 host present (7.3.2)
	timerV2Host      // IGMPv2 host present
	timerGroupQuery  // next Q(G) retransmission
	timerSourceQuery // next Q(G,A) retransmission
)

// timerEntry is a deadline in the heap. Entries are never removed when a
// timer is re-armed or cancelled: the owning field holds the live deadline,
// and an entry whose tick no longer matches it is stale and skipped.
type timerEntry struct {
	at     tick
	group  addr4 // zero for the querier's own timers
	source addr4 // timerSource only
	kind   timerKind
}

func (a timerEntry) before(b timerEntry) bool {
	switch {
	case a.at != b.at:
		return a.at < b.at
	case a.kind != b.kind:
		return a.kind < b.kind
	case a.group != b.group:
		return a.group < b.group
	default:
		return a.source < b.source
	}
}

// timerHeap is a min-heap of deadlines, ordered by tick and then by kind,
// group and source so that equal deadlines fire in a reproducible order.
type timerHeap struct {
	entries []timerEntry
	stale   int // entries known to be superseded; drives compaction
}

func (h *timerHeap) Len() int           { return len(h.entries) }
func (h *timerHeap) Less(i, j int) bool { return h.entries[i].before(h.entries[j]) }
func (h *timerHeap) Swap(i, j int)      { h.entries[i], h.entries[j] = h.entries[j], h.entries[i] }

func (h *timerHeap) Push(x any) { h.entries = append(h.entries, x.(timerEntry)) }

func (h *timerHeap) Pop() any {
	last := h.entries[len(h.entries)-1]
	h.entries = h.entries[:len(h.entries)-1]
	return last
}

func (h *timerHeap) push(e timerEntry) { heap.Push(h, e) }

func (h *timerHeap) pop() timerEntry { return heap.Pop(h).(timerEntry) }

// peek returns the earliest entry; the heap must not be empty.
func (h *timerHeap) peek() timerEntry { return h.entries[0] }

// superseded records that one entry in the heap no longer matches its field.
func (h *timerHeap) superseded() { h.stale++ }

// droppedStale records that a stale entry left the heap.
func (h *timerHeap) droppedStale() { h.stale = max(h.stale-1, 0) }

// compact drops every entry live does not vouch for once stale entries are
// the majority, so churn on long timers cannot grow the heap without bound.
// Its O(n) cost is paid at most once per n/2 superseded entries.
func (h *timerHeap) compact(live func(timerEntry) bool) {
	const minCompact = 64
	if len(h.entries) < minCompact || h.stale*2 < len(h.entries) {
		return
	}
	kept := h.entries[:0]
	for _, e := range h.entries {
		if live(e) {
			kept = append(kept, e)
		}
	}
	h.entries = kept
	h.stale = 0
	heap.Init(h)
}

func (h *timerHeap) reset() {
	h.entries = nil
	h.stale = 0
}
