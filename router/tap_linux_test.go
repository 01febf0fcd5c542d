package router

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/ipv4"

	"github.com/mrouterd/mrouterd/test/netnstest"
)

// TestKernelTap runs the tap's filter in the kernel: two namespaces joined by a
// veth pair, packets sent from one, the tap reading in the other.
func TestKernelTap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	suffix := fmt.Sprintf("%06x", rand.Uint32()&0xffffff)
	ns0, h0 := netnstest.New(t, "taptest0-"+suffix)
	ns1, h1 := netnstest.New(t, "taptest1-"+suffix)
	spaces := [2]netns.NsHandle{ns0, ns1}
	inNetns := func(ns netns.NsHandle, fn func()) {
		t.Helper()
		if err := netnstest.InNetns(ns, func() error { fn(); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "tap0", Namespace: netlink.NsFd(spaces[0])},
		PeerName: "tap1", PeerNamespace: netlink.NsFd(spaces[1])}
	if err := h0.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	for i, h := range []*netlink.Handle{h0, h1} {
		l, err := h.LinkByName(fmt.Sprintf("tap%d", i))
		if err != nil {
			t.Fatal(err)
		}
		addr, _ := netlink.ParseAddr(fmt.Sprintf("10.9.0.%d/24", i+1))
		if err := h.AddrAdd(l, addr); err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	tapLink, err := h0.LinkByName("tap0")
	if err != nil {
		t.Fatal(err)
	}

	var tap *kernelTap
	inNetns(spaces[0], func() { tap, err = openTap() })
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	got := make(chan tapped, 64)
	go func() {
		buf := make([]byte, 65536)
		for {
			p, err := tap.Read(buf)
			if err != nil {
				close(got)
				return
			}
			p.data = append([]byte(nil), p.data...)
			got <- p
		}
	}()

	// The sender: a UDP socket for data, a raw IGMP socket for a report.
	var (
		udp  *ipv4.PacketConn
		igmp *ipv4.RawConn
	)
	inNetns(spaces[1], func() {
		c, err := net.ListenPacket("udp4", "10.9.0.2:0")
		if err != nil {
			t.Error(err)
			return
		}
		udp = ipv4.NewPacketConn(c)
		r, err := net.ListenPacket("ip4:2", "10.9.0.2")
		if err != nil {
			t.Error(err)
			return
		}
		igmp, _ = ipv4.NewRawConn(r)
	})
	if udp == nil || igmp == nil {
		t.Fatal("no sender sockets")
	}
	defer udp.Close()
	defer igmp.Close()
	sendUDP := func(dst string, ttl int) {
		t.Helper()
		if err := udp.SetMulticastTTL(ttl); err != nil {
			t.Fatal(err)
		}
		if err := udp.SetTTL(ttl); err != nil {
			t.Fatal(err)
		}
		if _, err := udp.WriteTo([]byte("x"), &ipv4.ControlMessage{IfIndex: 0}, &net.UDPAddr{IP: net.ParseIP(dst), Port: 5000}); err != nil {
			t.Fatal(err)
		}
	}
	inNetns(spaces[1], func() {
		tap1, _ := net.InterfaceByName("tap1")
		if err := udp.SetMulticastInterface(tap1); err != nil {
			t.Error(err)
		}
	})
	report := reportPacket(t, "10.9.0.2", exclude(grp1))[20:]
	sendReport := func() {
		t.Helper()
		h := &ipv4.Header{Version: 4, Len: 20, TTL: 1, Protocol: 2, Dst: net.IPv4(224, 0, 0, 22), TotalLen: 20 + len(report)}
		if err := igmp.WriteTo(h, report, nil); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(what string, want tapKind, ttl uint8) {
		t.Helper()
		timeout := time.After(2 * time.Second)
		for {
			select {
			case p, ok := <-got:
				if !ok {
					t.Fatalf("%s: the tap closed", what)
				}
				kind, s := classifyTapped(p)
				if p.ifindex != tapLink.Attrs().Index || kind != want || (kind == tapData && s.ttl != ttl) {
					continue // the kernel's own traffic (its reports, router solicitations)
				}
				return
			case <-timeout:
				t.Fatalf("%s: not passed", what)
			}
		}
	}
	quiet := func(what string) {
		t.Helper()
		timeout := time.After(300 * time.Millisecond)
		for {
			select {
			case p := <-got:
				if kind, s := classifyTapped(p); kind == tapData && s.group == netip.MustParseAddr("239.1.2.3") && s.ttl > 1 {
					t.Fatalf("%s: passed %+v", what, s)
				}
			case <-timeout:
				return
			}
		}
	}

	sendReport()
	expect("an IGMP report", tapIGMP, 0)
	sendUDP("239.1.2.3", 5)
	expect("data on an interface without a VIF", tapData, 5)
	sendUDP("239.1.2.3", 1)
	expect("data with TTL 1", tapData, 1)

	if err := tap.Exclude([]int{tapLink.Attrs().Index}); err != nil {
		t.Fatal(err)
	}
	sendUDP("239.1.2.3", 5)
	quiet("data on an interface with a VIF")
	sendUDP("239.1.2.3", 1)
	expect("data with TTL 1, VIF or not", tapData, 1)
	sendReport()
	expect("an IGMP report, VIF or not", tapIGMP, 0)
	sendUDP("10.9.0.1", 5)
	sendUDP("224.0.0.251", 255)
	quiet("unicast and link-local data")
}
