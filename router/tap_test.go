package router

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/mrouterd/mrouterd/pim"
)

func TestClassifyTapped(t *testing.T) {
	node := netip.MustParseAddr("10.0.0.10")
	report := reportPacket(t, "10.0.2.5", exclude(grp1))
	hello, err := (&pim.Hello{}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	helloPkt := dataPacket(node, allPIMRouters, 1)[:20]
	helloPkt[9] = 103
	helloPkt = append(helloPkt, hello...)
	binary.BigEndian.PutUint16(helloPkt[2:4], uint16(len(helloPkt)))
	fragment := dataPacket(node, grp1, 16)
	fragment[6] = 0x20 // more fragments
	tests := []struct {
		name string
		p    tapped
		want tapKind
	}{
		{"an IGMP report", tapped{data: report}, tapIGMP},
		{"our own report going out", tapped{data: report, outgoing: true}, tapIgnored},
		{"a PIM hello", tapped{data: helloPkt}, tapPIM},
		{"data", tapped{data: dataPacket(node, grp1, 16)}, tapData},
		{"data sent from here", tapped{data: dataPacket(node, grp1, 1), outgoing: true}, tapData},
		{"a data fragment", tapped{data: fragment}, tapData},
		{"link-local data (mDNS)", tapped{data: dataPacket(node, netip.MustParseAddr("224.0.0.251"), 255)}, tapIgnored},
		{"unicast", tapped{data: dataPacket(node, netip.MustParseAddr("10.0.0.1"), 64)}, tapIgnored},
		{"short", tapped{data: report[:19]}, tapIgnored},
		{"IPv6", tapped{data: append([]byte{0x60}, report[1:]...)}, tapIgnored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := classifyTapped(tt.p); got != tt.want {
				t.Fatalf("kind %d, want %d", got, tt.want)
			}
		})
	}
	_, s := classifyTapped(tapped{data: dataPacket(node, grp1, 1), ifindex: 7, outgoing: true})
	if s != (sighting{ifindex: 7, source: node, group: grp1, ttl: 1, outgoing: true}) {
		t.Fatalf("sighting %+v", s)
	}
	p, ok := pimFromTap(tapped{data: helloPkt, ifindex: 3})
	if !ok || p.src != node || p.dst != allPIMRouters || p.ttl != 1 || p.ifindex != 3 || len(p.data) != len(hello) {
		t.Fatalf("PIM packet %+v", p)
	}
	if _, ok := pimFromTap(tapped{data: helloPkt[:len(helloPkt)-1]}); ok {
		t.Fatal("a cut-short PIM packet passed")
	}
}

func TestSightingThrottle(t *testing.T) {
	th := newSightingThrottle(time.Second)
	at := time.Unix(0, 0)
	a := sighting{ifindex: 1, group: grp1}
	b := sighting{ifindex: 2, group: grp1}
	got := []bool{th.allow(a, at), th.allow(a, at.Add(500*time.Millisecond)), th.allow(b, at), th.allow(a, at.Add(time.Second))}
	if got[0] != true || got[1] != false || got[2] != true || got[3] != true {
		t.Fatalf("%v", got)
	}
	for i := range maxThrottled + 10 {
		th.allow(sighting{ifindex: i + 10}, at)
	}
	if len(th.last) > maxThrottled {
		t.Fatalf("%d remembered", len(th.last))
	}
}

// TestTapFilter checks the filter assembles for every list the router can give
// it, and that a list beyond a classic BPF jump is refused, not mis-assembled.
func TestTapFilter(t *testing.T) {
	for _, n := range []int{0, 1, 32, maxTapExclusions} {
		ex := make([]int, n)
		for i := range ex {
			ex[i] = 100 + i
		}
		prog, err := tapFilter(ex)
		if err != nil {
			t.Fatalf("%d exclusions: %v", n, err)
		}
		if len(prog) != 21+n {
			t.Fatalf("%d exclusions: %d instructions", n, len(prog))
		}
	}
	if _, err := tapFilter(make([]int, 300)); err == nil {
		t.Fatal("300 exclusions assembled")
	}
	var a filterAsm
	a.jump(0, 0, "nowhere", "")
	if _, err := a.assemble(); err == nil {
		t.Fatal("a jump to a missing label assembled")
	}
}
