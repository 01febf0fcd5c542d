package fabric

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/test/netnstest"
)

// node is one end of the test: a namespace with an underlay interface.
type node struct {
	name string
	ns   netns.NsHandle
	h    *netlink.Handle
	addr netip.Addr
}

func (n node) run(t *testing.T, fn func(f *Fabric) error) {
	t.Helper()
	if err := netnstest.InNetns(n.ns, func() error { return fn(New()) }); err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
}

func (n node) sysctl(t *testing.T, path, value string) {
	t.Helper()
	if err := netnstest.InNetns(n.ns, func() error { return system{}.SetSysctl(path, value) }); err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
}

// fdb lists the fabric's FDB entries as "MAC dst ADDR".
func (n node) fdb(t *testing.T) []string {
	t.Helper()
	link, err := n.h.LinkByName(DefaultName)
	if err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
	neighs, err := n.h.NeighList(link.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		t.Fatalf("%s: FDB: %v", n.name, err)
	}
	var out []string
	for _, e := range fdbEntries(neighs) {
		out = append(out, fmt.Sprintf("%v dst %v", e.mac, e.remote))
	}
	slices.Sort(out)
	return out
}

func TestFabricBetweenNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	suffix := fmt.Sprintf("%08x", rand.Uint32())
	a, b := node{name: "mrfab-a-" + suffix, addr: netip.MustParseAddr("192.0.2.1")},
		node{name: "mrfab-b-" + suffix, addr: netip.MustParseAddr("192.0.2.2")}
	a.ns, a.h = netnstest.New(t, a.name)
	b.ns, b.h = netnstest.New(t, b.name)

	// The underlay: a veth pair whose ends are born in their namespaces.
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ua", Namespace: netlink.NsFd(a.ns)},
		PeerName: "ub", PeerNamespace: netlink.NsFd(b.ns)}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("veth: %v", err)
	}
	underlay := map[string]int{}
	for _, n := range []struct {
		node
		dev string
	}{{a, "ua"}, {b, "ub"}} {
		link, err := n.h.LinkByName(n.dev)
		if err == nil {
			err = n.h.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: n.addr.AsSlice(), Mask: net.CIDRMask(24, 32)}})
		}
		if err == nil {
			err = n.h.LinkSetUp(link)
		}
		if err != nil {
			t.Fatalf("%s: %v", n.dev, err)
		}
		underlay[n.name] = link.Attrs().Index
		// Strict here would hide whether the fabric's own rp_filter is right.
		n.sysctl(t, rpFilter("all"), "0")
	}

	// Ensure reports a strict all.rp_filter.
	a.sysctl(t, rpFilter("all"), "1")
	a.run(t, func(f *Fabric) error {
		link, err := f.Ensure(Config{}, a.addr, []netip.Addr{b.addr})
		if err == nil && !link.StrictRPFilter {
			err = errors.New("all.rp_filter 1 not reported")
		}
		return err
	})
	a.sysctl(t, rpFilter("all"), "0")

	for _, pair := range [][2]node{{a, b}, {b, a}} {
		n, other := pair[0], pair[1]
		var got Link
		n.run(t, func(f *Fabric) error {
			var err error
			if got, err = f.Ensure(Config{}, n.addr, []netip.Addr{other.addr}); err != nil {
				return err
			}
			return f.SetFlood([]netip.Addr{other.addr})
		})
		if got.MTU != 1450 || got.Underlay != map[node]string{a: "ua", b: "ub"}[n] || got.StrictRPFilter {
			t.Errorf("%s: Ensure gave %+v", n.name, got)
		}
		checkLink(t, n, underlay[n.name], got.Index)
		if fdb, want := n.fdb(t), []string{"00:00:00:00:00:00 dst " + other.addr.String()}; !slices.Equal(fdb, want) {
			t.Errorf("%s: FDB %q, want %q", n.name, fdb, want)
		}
	}

	// Another's interface of the fabric's name, and another's FDB entry, are left
	// alone. The other interface is a VXLAN too: the kernel is sure to have those.
	other := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "mrforeign"}, VxlanId: 99, Port: 4800}
	if err := a.h.LinkAdd(other); err != nil {
		t.Fatal(err)
	}
	a.run(t, func(f *Fabric) error {
		if _, err := f.Ensure(Config{Name: "mrforeign"}, a.addr, []netip.Addr{b.addr}); err == nil {
			return errors.New("Ensure took another's interface")
		}
		if err := f.Remove("mrforeign"); err == nil {
			return errors.New("Remove deleted another's interface")
		}
		return nil
	})
	if _, err := a.h.LinkByName("mrforeign"); err != nil {
		t.Errorf("mrforeign: %v", err)
	}
	fabricA, err := a.h.LinkByName(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	foreign := fdbNeigh(fabricA.Attrs().Index, entry("02:00:00:00:00:01", "192.0.2.7"))
	if err := a.h.NeighSet(foreign); err != nil {
		t.Fatal(err)
	}

	group := netip.MustParseAddr("239.1.2.3")
	rx := listen(t, b, group)
	tx := sender(t, a)
	dst := &net.UDPAddr{IP: group.AsSlice(), Port: rx.port}

	// Flooded to B.
	expectArrival(t, tx, dst, rx.conn, "flood")

	// The group's own entry: to B.
	a.run(t, func(f *Fabric) error {
		return f.SetGroups(map[netip.Addr][]netip.Addr{group: {b.addr}})
	})
	want := []string{"00:00:00:00:00:00 dst 192.0.2.2", "01:00:5e:01:02:03 dst 192.0.2.2", "02:00:00:00:00:01 dst 192.0.2.7"}
	if fdb := a.fdb(t); !slices.Equal(fdb, want) {
		t.Errorf("FDB %q, want %q", fdb, want)
	}
	expectArrival(t, tx, dst, rx.conn, "group")

	// The group's entry names another peer: B gets nothing, flood or not.
	a.run(t, func(f *Fabric) error {
		return f.SetGroups(map[netip.Addr][]netip.Addr{group: addrs("192.0.2.99")})
	})
	expectNothing(t, tx, dst, rx.conn, "elsewhere")

	// No peer wants the group: its entry goes, and it is flooded again.
	a.run(t, func(f *Fabric) error {
		return f.SetGroups(map[netip.Addr][]netip.Addr{group: nil})
	})
	want = []string{"00:00:00:00:00:00 dst 192.0.2.2", "02:00:00:00:00:01 dst 192.0.2.7"}
	if fdb := a.fdb(t); !slices.Equal(fdb, want) {
		t.Errorf("FDB %q, want %q", fdb, want)
	}
	expectArrival(t, tx, dst, rx.conn, "flood again")

	a.run(t, func(f *Fabric) error { return f.Remove("") })
	if _, err := a.h.LinkByName(DefaultName); !errors.As(err, &netlink.LinkNotFoundError{}) {
		t.Errorf("after Remove: %v", err)
	}
}

// checkLink compares the fabric interface with what Ensure should have made.
func checkLink(t *testing.T, n node, underlay, index int) {
	t.Helper()
	link, err := n.h.LinkByName(DefaultName)
	if err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
	v, ok := link.(*netlink.Vxlan)
	switch {
	case !ok:
		t.Fatalf("%s: %s is a %s", n.name, DefaultName, link.Type())
	case v.Index != index, v.VxlanId != DefaultVNI, v.Port != DefaultPort, v.Learning, v.MTU != 1450, v.Alias != Alias,
		!v.SrcAddr.Equal(n.addr.AsSlice()), v.VtepDevIndex != underlay, v.Flags&net.FlagUp == 0:
		t.Errorf("%s: %s is %+v", n.name, DefaultName, v)
	}
	addrs, err := n.h.AddrList(link, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0].IPNet.String() != n.addr.String()+"/32" || addrs[0].Flags&unix.IFA_F_NOPREFIXROUTE == 0 {
		t.Errorf("%s: addresses %v", n.name, addrs)
	}
	var rp string
	if err := netnstest.InNetns(n.ns, func() (err error) { rp, err = system{}.Sysctl(rpFilter(DefaultName)); return err }); err != nil || rp != "0" {
		t.Errorf("%s: rp_filter %q, %v", n.name, rp, err)
	}
}

type receiver struct {
	conn *net.UDPConn
	port int
}

// listen joins group on n's fabric interface.
func listen(t *testing.T, n node, group netip.Addr) receiver {
	t.Helper()
	var r receiver
	err := netnstest.InNetns(n.ns, func() error {
		ifi, err := net.InterfaceByName(DefaultName)
		if err != nil {
			return err
		}
		r.conn, err = net.ListenMulticastUDP("udp4", ifi, &net.UDPAddr{IP: group.AsSlice()})
		if err != nil {
			return err
		}
		r.port = r.conn.LocalAddr().(*net.UDPAddr).Port
		return nil
	})
	if err != nil {
		t.Fatalf("%s: listen: %v", n.name, err)
	}
	t.Cleanup(func() { r.conn.Close() })
	return r
}

// sender is a UDP socket in n that sends multicast out of the fabric.
func sender(t *testing.T, n node) *net.UDPConn {
	t.Helper()
	var conn *net.UDPConn
	err := netnstest.InNetns(n.ns, func() error {
		ifi, err := net.InterfaceByName(DefaultName)
		if err != nil {
			return err
		}
		if conn, err = net.ListenUDP("udp4", nil); err != nil {
			return err
		}
		raw, err := conn.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := raw.Control(func(fd uintptr) {
			serr = unix.SetsockoptIPMreqn(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)})
		}); err != nil {
			return err
		}
		return serr
	})
	if err != nil {
		t.Fatalf("%s: sender: %v", n.name, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// receive sends a datagram tagged tag and returns what arrives within wait,
// skipping datagrams of earlier steps.
func receive(t *testing.T, tx *net.UDPConn, dst *net.UDPAddr, rx *net.UDPConn, tag string, seq int, wait time.Duration) bool {
	t.Helper()
	if _, err := tx.WriteToUDP(fmt.Appendf(nil, "%s %d", tag, seq), dst); err != nil {
		t.Fatalf("send: %v", err)
	}
	buf := make([]byte, 1500)
	deadline := time.Now().Add(wait)
	for {
		if err := rx.SetReadDeadline(deadline); err != nil {
			t.Fatal(err)
		}
		n, _, err := rx.ReadFromUDP(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false
		}
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if bytes.HasPrefix(buf[:n], []byte(tag+" ")) {
			return true
		}
	}
}

func expectArrival(t *testing.T, tx *net.UDPConn, dst *net.UDPAddr, rx *net.UDPConn, tag string) {
	t.Helper()
	for seq, deadline := 0, time.Now().Add(10*time.Second); time.Now().Before(deadline); seq++ {
		if receive(t, tx, dst, rx, tag, seq, 200*time.Millisecond) {
			return
		}
	}
	t.Errorf("%s: nothing arrived", tag)
}

// expectNothing sends a few datagrams; none may arrive.
func expectNothing(t *testing.T, tx *net.UDPConn, dst *net.UDPAddr, rx *net.UDPConn, tag string) {
	t.Helper()
	for seq := range 3 {
		if receive(t, tx, dst, rx, tag, seq, 200*time.Millisecond) {
			t.Errorf("%s: arrived", tag)
			return
		}
	}
}
