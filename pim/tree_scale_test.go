package pim

import (
	"net/netip"
	"runtime"
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
		f.tree.ReceiveJoinPrune(f.now, "eth2", m)
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
