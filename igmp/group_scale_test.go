package igmp

import (
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"time"
)

const scaleGroups = 10000

// scaleGroup returns the i-th of the scale test's groups.
func scaleGroup(i int) netip.Addr { return netip.AddrFrom4([4]byte{239, 10, byte(i >> 8), byte(i)}) }

// joinReports returns one report per group: even groups join two sources,
// odd ones join all sources.
func joinReports() []*Report {
	reports := make([]*Report, scaleGroups)
	for i := range reports {
		if i%2 == 0 {
			reports[i] = v3Report(AllowNewSources, scaleGroup(i), 1, 2)
		} else {
			reports[i] = v3Report(ChangeToExclude, scaleGroup(i))
		}
	}
	return reports
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func TestGroupScale10k(t *testing.T) {
	reports := joinReports()
	base := heapInUse()
	q := started(t, testConfig())
	now := at(time.Second)
	start := time.Now()
	for _, r := range reports {
		q.Receive(now, host, r)
	}
	joined := time.Since(start)
	perGroup := (float64(heapInUse()) - float64(base)) / scaleGroups
	runtime.KeepAlive(reports)
	t.Logf("joined %d groups in %v: %.0f bytes per group, %d heap entries", scaleGroups, joined, perGroup, q.timers.Len())
	if perGroup > 1024 {
		t.Errorf("%.0f bytes per group", perGroup)
	}
	if got := len(q.Groups()); got != scaleGroups {
		t.Fatalf("%d groups", got)
	}
	if next, _ := q.NextDeadline(); !next.Equal(at(31250 * time.Millisecond)) {
		t.Fatalf("next deadline %v", next.Sub(t0))
	}

	refresh := v3Report(ModeIsInclude, scaleGroup(0), 1, 2)
	allocs := testing.AllocsPerRun(100, func() {
		now = now.Add(time.Millisecond)
		q.Receive(now, host, refresh)
	})
	t.Logf("%.1f allocations per refresh of a group's two sources", allocs)

	// Everyone leaves: one Q(G) or Q(G,A) per group, then state goes after LMQT.
	leave := now.Add(10 * time.Second)
	queries := 0
	start = time.Now()
	for i := range scaleGroups {
		var r *Report
		if i%2 == 0 {
			r = v3Report(BlockOldSources, scaleGroup(i), 1, 2)
		} else {
			r = v3Report(ChangeToInclude, scaleGroup(i))
		}
		queries += len(sentQueries(q.Receive(leave, host, r)))
	}
	if queries != scaleGroups {
		t.Fatalf("%d queries for %d leaves", queries, scaleGroups)
	}
	// Drive the timers as the router loop would: every wake-up has work.
	var wakeups, changes int
	last := leave
	for {
		next, ok := q.NextDeadline()
		if !ok || next.After(leave.Add(lmqt)) {
			break
		}
		if next.Before(last) {
			t.Fatalf("deadline %v went backwards from %v", next, last)
		}
		last = next
		actions := q.Advance(next)
		if len(actions) == 0 {
			t.Fatalf("wake-up at %v did nothing", next.Sub(t0))
		}
		changes += len(changedGroups(actions))
		queries += len(sentQueries(actions))
		wakeups++
	}
	t.Logf("left %d groups in %v: %d wake-ups, %d queries", scaleGroups, time.Since(start), wakeups, queries)
	if len(q.Groups()) != 0 || changes != scaleGroups || queries != 2*scaleGroups {
		t.Fatalf("%d groups left, %d changes, %d queries", len(q.Groups()), changes, queries)
	}
	// Only the general query remains, however many stale entries there were.
	if q.timers.Len() > 1 {
		t.Fatalf("%d heap entries after every group left", q.timers.Len())
	}
}

func BenchmarkJoin10k(b *testing.B) {
	reports := joinReports()
	b.ReportAllocs()
	for b.Loop() {
		q := NewQuerier(testConfig(), self)
		q.Start(t0)
		for _, r := range reports {
			q.Receive(t0, host, r)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*scaleGroups), "ns/join")
}

// benchSizes are the state sizes the benchmarks grow through.
var benchSizes = []int{1000, 10000, 100000}

// manySources returns n distinct sources from 10.0.0.0/8.
func manySources(n, offset int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		v := i + offset
		out[i] = netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)})
	}
	return out
}

// BenchmarkReportSources applies a record of n new sources to a group that
// already holds n: the cost per source stays flat as n grows.
func BenchmarkReportSources(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			cfg := testConfig()
			cfg.MaxSources = 2 * n
			held := &Report{Version: 3, Records: []Record{{Type: AllowNewSources, Group: grp, Sources: manySources(n, 0)}}}
			fresh := &Report{Version: 3, Records: []Record{{Type: AllowNewSources, Group: grp, Sources: manySources(n, n)}}}
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				q := NewQuerier(cfg, self)
				q.Start(t0)
				q.Receive(at(time.Second), host, held)
				b.StartTimer()
				q.Receive(at(2*time.Second), host, fresh)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/source")
		})
	}
}
