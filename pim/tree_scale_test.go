package pim

import (
	"net/netip"
	"runtime"
	"strconv"
	"testing"
)

// TestTreeScale100k holds 100,000 downstream (S,G) joins, the scale DESIGN asks
// state to fit in tens of MiB, and reports what each costs.
func TestTreeScale100k(t *testing.T) {
	const n = 100000
	msgs := make([]*JoinPrune, n)
	for i := range msgs {
		g := netip.AddrFrom4([4]byte{232, byte(i >> 16), byte(i >> 8), byte(i)})
		msgs[i] = joinMsg(selfDown, 210, jpGroup(g, []JPSource{sg(srcAddr)}, nil))
	}
	f := newTreeFixture(t)
	base := heapAlloc()
	for _, m := range msgs {
		f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, m)
	}
	f.tree.Flush()
	perEntry := (float64(heapAlloc()) - float64(base)) / n
	runtime.KeepAlive(msgs)
	t.Logf("%d entries: %.0f bytes each, %.1f MiB in all", f.tree.Len(), perEntry, perEntry*n/(1<<20))
	if f.tree.Len() != n {
		t.Fatalf("%d entries", f.tree.Len())
	}
	if perEntry > 1024 {
		t.Errorf("%.0f bytes per entry", perEntry)
	}
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// sgJoins returns a Join/Prune to us with n (S,G) joins, each in a group of its
// own from offset on.
func sgJoins(n, offset int) *JoinPrune {
	var groups []JPGroup
	for i := offset; i < offset+n; i++ {
		g := netip.AddrFrom4([4]byte{232, byte(i >> 16), byte(i >> 8), byte(i)})
		groups = append(groups, jpGroup(g, []JPSource{sg(srcAddr)}, nil))
	}
	return joinMsg(selfDown, 210, groups...)
}

// BenchmarkJoinPrune refreshes 1,000 of the n (S,G) joins a Tree holds with one
// Join/Prune: the cost per join stays flat as n grows.
func BenchmarkJoinPrune(b *testing.B) {
	const perMessage = 1000
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			f := newTreeFixture(b)
			f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, sgJoins(n, 0))
			refresh := sgJoins(perMessage, n-perMessage)
			b.ResetTimer()
			for range b.N {
				f.tree.ReceiveJoinPrune(f.now, "eth2", downNbr, refresh)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perMessage), "ns/join")
		})
	}
}
