package pim

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func FuzzDecode(f *testing.F) {
	for _, m := range roundTripMessages {
		f.Add(mustMarshal(f, m))
	}
	for _, g := range goldenMessages {
		f.Add(fromHex(f, g.wire))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Random bytes almost never carry a right checksum, so each input is
		// also tried repaired, to reach the parsing behind the check.
		inputs := [][]byte{b}
		if len(b) >= headerLen {
			inputs = append(inputs, withChecksum(b))
		}
		for _, in := range inputs {
			msg, err := Decode(in)
			if err != nil {
				if _, ok := err.(*DecodeError); !ok || msg != nil {
					t.Fatalf("Decode(% x) = %v, %v", in, msg, err)
				}
				continue
			}
			m, ok := msg.(marshaler)
			if !ok {
				t.Fatalf("Decode returned a %T", msg)
			}
			out, err := m.Marshal()
			if err != nil {
				t.Fatalf("Marshal of decoded %+v: %v", msg, err)
			}
			again, err := Decode(out)
			if err != nil {
				t.Fatalf("Decode(Marshal(%+v)) = % x: %v", msg, out, err)
			}
			if !reflect.DeepEqual(again, msg) {
				t.Fatalf("re-decoded %+v, want %+v", again, msg)
			}
		}
	})
}

// FuzzTreeJoinPrune feeds whatever decodes as a Join/Prune to a Tree, as the
// upstream router it names and as a peer on the LAN, then runs its timers: no
// input may crash it or leave state it cannot account for.
func FuzzTreeJoinPrune(f *testing.F) {
	seeds := []*JoinPrune{
		joinMsg(selfDown, 210, jpGroup(asmGroup, []JPSource{wc(rpAddr)}, []JPSource{rpt(srcAddr)})),
		joinMsg(selfDown, 0xffff, jpGroup(ssmGroup, []JPSource{sg(srcAddr)}, nil)),
		joinMsg(upNbr, 1, jpGroup(asmGroup, nil, []JPSource{wc(rpAddr), sg(srcAddr)})),
	}
	for _, m := range seeds {
		f.Add(mustMarshal(f, m), true)
	}
	f.Fuzz(func(t *testing.T, b []byte, ours bool) {
		if len(b) < headerLen {
			return
		}
		msg, err := Decode(withChecksum(b))
		jp, ok := msg.(*JoinPrune)
		if err != nil || !ok {
			return
		}
		fx := newTreeFixture(t)
		fx.tree.SetLink("eth2", Link{Self: selfDown, Override: 3 * time.Second})
		if ours {
			jp.UpstreamNeighbor = selfDown
		}
		fx.tree.SetLocal(fx.now, Key{Group: asmGroup}, "eth1", true)
		fx.tree.ReceiveJoinPrune(fx.now, "eth2", downNbr, jp)
		fx.tree.ReceiveJoinPrune(fx.now, "eth1", downNbr, jp)
		for range 3 {
			fx.advance(70 * time.Second)
		}
		fx.advance(time.Duration(jp.Holdtime) * time.Second)
		for _, e := range fx.tree.Entries(netip.Addr{}) {
			if !e.Key.Group.IsMulticast() || (e.Key.Source.IsValid() && e.Key.Source.IsMulticast()) {
				t.Fatalf("state for %v", e.Key)
			}
		}
		// Every holdtime but "forever" has run out by now.
		if jp.Holdtime != HoldtimeForever && fx.tree.Len() > 1 {
			t.Fatalf("%d entries left after every holdtime: %+v", fx.tree.Len(), fx.tree.Entries(netip.Addr{}))
		}
	})
}
