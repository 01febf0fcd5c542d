package fabric

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var (
	local = netip.MustParseAddr("10.0.0.1")
	peer  = netip.MustParseAddr("10.0.0.2")
)

func checkChanges(t *testing.T, k *fakeKernel, want ...string) {
	t.Helper()
	if !reflect.DeepEqual(k.changes, want) {
		t.Errorf("changes:\n got %q\nwant %q", k.changes, want)
	}
	k.changes = nil
}

func TestEnsureCreates(t *testing.T) {
	k := newFakeKernel()
	f := &Fabric{k: k}
	link, err := f.Ensure(Config{}, local, []netip.Addr{peer})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Link{Index: 3, MTU: 8951, Underlay: "eth0"}); link != want {
		t.Errorf("got %+v, want %+v", link, want)
	}
	checkChanges(t, k, "add mrfabric", `alias mrfabric "mrouterd fabric"`, "addr mrfabric 10.0.0.1/32 flags 0x200", "up mrfabric")
	l, _ := k.LinkByName(DefaultName)
	v := l.(*netlink.Vxlan)
	if v.VxlanId != DefaultVNI || v.Port != DefaultPort || !v.SrcAddr.Equal(net.IP(local.AsSlice())) || v.VtepDevIndex != 2 ||
		v.Learning || v.Alias != Alias || v.MTU != 8951 {
		t.Errorf("created %+v", v)
	}
	if got := k.sysctls[rpFilter(DefaultName)]; got != "0" {
		t.Errorf("rp_filter %q, want 0", got)
	}

	// In step: nothing to do.
	if again, err := f.Ensure(Config{}, local, []netip.Addr{peer}); err != nil || again != link {
		t.Errorf("again: %+v, %v", again, err)
	}
	checkChanges(t, k)

	// The MTU is fixed in place.
	if _, err := f.Ensure(Config{MTU: 1400}, local, []netip.Addr{peer}); err != nil {
		t.Fatal(err)
	}
	checkChanges(t, k, "mtu mrfabric 1400")
}

func TestEnsureRecreates(t *testing.T) {
	for name, cfg := range map[string]Config{
		"VNI":      {VNI: 42},
		"port":     {Port: 4800},
		"underlay": {Underlay: "eth1"},
	} {
		k := newFakeKernel()
		k.links = append(k.links, &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 20, Name: "eth1", MTU: 1500, Flags: net.FlagUp}})
		f := &Fabric{k: k}
		if _, err := f.Ensure(Config{}, local, []netip.Addr{peer}); err != nil {
			t.Fatal(err)
		}
		k.changes = nil
		link, err := f.Ensure(cfg, local, []netip.Addr{peer})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if link.Index != 4 {
			t.Errorf("%s: index %d, want a new interface", name, link.Index)
		}
		if k.changes[0] != "del mrfabric" || k.changes[1] != "add mrfabric" || k.changes[2] != `alias mrfabric "mrouterd fabric"` {
			t.Errorf("%s: changes %q", name, k.changes)
		}
	}

	// Learning switched on, and another source address.
	k := newFakeKernel()
	f := &Fabric{k: k}
	if _, err := f.Ensure(Config{}, local, []netip.Addr{peer}); err != nil {
		t.Fatal(err)
	}
	l, _ := k.LinkByName(DefaultName)
	l.(*netlink.Vxlan).Learning = true
	k.changes = nil
	if _, err := f.Ensure(Config{}, local, []netip.Addr{peer}); err != nil {
		t.Fatal(err)
	}
	checkChanges(t, k, "del mrfabric", "add mrfabric", `alias mrfabric "mrouterd fabric"`, "addr mrfabric 10.0.0.1/32 flags 0x200", "up mrfabric")
	k.addrs = append(k.addrs, netlink.Addr{LinkIndex: 2, IPNet: &net.IPNet{IP: net.IPv4(10, 0, 0, 9).To4(), Mask: net.CIDRMask(24, 32)}})
	if _, err := f.Ensure(Config{}, netip.MustParseAddr("10.0.0.9"), []netip.Addr{peer}); err != nil {
		t.Fatal(err)
	}
	checkChanges(t, k, "del mrfabric", "add mrfabric", `alias mrfabric "mrouterd fabric"`, "addr mrfabric 10.0.0.9/32 flags 0x200", "up mrfabric")
}

func TestLeavesForeignInterface(t *testing.T) {
	k := newFakeKernel()
	k.links = append(k.links, &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: 7, Name: DefaultName, Alias: "something else"}})
	f := &Fabric{k: k}
	if _, err := f.Ensure(Config{}, local, []netip.Addr{peer}); err == nil || !strings.Contains(err.Error(), "not the fabric's") {
		t.Errorf("Ensure: error %v", err)
	}
	if err := f.Remove(DefaultName); err == nil {
		t.Error("Remove: no error")
	}
	if err := f.SetFlood([]netip.Addr{peer}); err == nil {
		t.Error("SetFlood: no error")
	}
	checkChanges(t, k)
}

func TestEnsureStrictRPFilter(t *testing.T) {
	k := newFakeKernel()
	k.sysctls[rpFilter("all")] = "1"
	link, err := (&Fabric{k: k}).Ensure(Config{}, local, []netip.Addr{peer})
	if err != nil || !link.StrictRPFilter {
		t.Errorf("got %+v, %v; want StrictRPFilter", link, err)
	}
}

func TestEnsureUnderlay(t *testing.T) {
	k := newFakeKernel()
	k.links = append(k.links, &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 9, Name: "eth1", MTU: 1500, Flags: net.FlagUp}})
	k.next = 10
	f := &Fabric{k: k}
	link, err := f.Ensure(Config{Underlay: "eth1"}, local, []netip.Addr{peer})
	if err != nil || link.Underlay != "eth1" || link.MTU != 1450 {
		t.Errorf("configured: %+v, %v", link, err)
	}
	if err := f.Remove(""); err != nil {
		t.Fatal(err)
	}

	// No peer: the interface that holds the local address, the fabric aside.
	for range 2 {
		k.changes = nil
		link, err = f.Ensure(Config{}, local, nil)
		if err != nil || link.Underlay != "eth0" {
			t.Errorf("no peer: %+v, %v", link, err)
		}
	}
	checkChanges(t, k) // the second time round

	// A peer routed elsewhere.
	k.routes[netip.MustParseAddr("192.168.5.5")] = 9
	if link, err = f.Ensure(Config{}, local, addrs("192.168.5.5", "10.0.0.2")); err != nil || link.Underlay != "eth1" {
		t.Errorf("routed through eth1: %+v, %v", link, err)
	}

	for name, tt := range map[string]struct {
		local string
		peers []netip.Addr
	}{
		"no route":        {"10.0.0.1", addrs("172.16.0.1")},
		"on the loopback": {"127.0.0.1", nil},
		"held by none":    {"10.9.9.9", nil},
	} {
		if _, err := f.Ensure(Config{}, netip.MustParseAddr(tt.local), tt.peers); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []Config{
		{Name: "a-name-too-long-for-linux"}, {Name: "a/b"}, {VNI: -1}, {VNI: 1 << 24}, {Port: 70000}, {MTU: 60},
	} {
		if _, err := (&Fabric{k: newFakeKernel()}).Ensure(cfg, local, []netip.Addr{peer}); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

func TestRemove(t *testing.T) {
	k := newFakeKernel()
	f := &Fabric{k: k}
	if err := f.Remove(""); err != nil {
		t.Errorf("nothing to remove: %v", err)
	}
	if _, err := f.Ensure(Config{Name: "fab0"}, local, []netip.Addr{peer}); err != nil {
		t.Fatal(err)
	}
	k.changes = nil
	if err := f.Remove("fab0"); err != nil {
		t.Fatal(err)
	}
	checkChanges(t, k, "del fab0")
}

func TestUnmarkedInterfaceDeleted(t *testing.T) {
	k := newFakeKernel()
	k.aliasErr = unix.EPERM
	if _, err := (&Fabric{k: k}).Ensure(Config{}, local, []netip.Addr{peer}); err == nil {
		t.Error("no error")
	}
	checkChanges(t, k, "add mrfabric", "del mrfabric")
}

func TestFDBReconcile(t *testing.T) {
	k := newFakeKernel()
	f := &Fabric{k: k}
	if err := f.SetFlood([]netip.Addr{peer}); err == nil {
		t.Error("SetFlood before Ensure: no error")
	}
	link, err := f.Ensure(Config{}, local, []netip.Addr{peer})
	if err != nil {
		t.Fatal(err)
	}
	foreign := fdbNeigh(link.Index, entry("02:00:00:00:00:01", "10.0.0.7"))
	k.neighs = append(k.neighs,
		*fdbNeigh(link.Index, entry("00:00:00:00:00:00", "10.0.0.5")),
		*foreign,
		*fdbNeigh(link.Index, entry("01:00:5e:05:05:05", "10.0.0.5")),
		// Not an FDB entry of a remote at all.
		netlink.Neigh{LinkIndex: link.Index, Family: unix.AF_BRIDGE, HardwareAddr: net.HardwareAddr(make([]byte, 6))},
	)
	k.changes = nil

	if err := f.SetFlood(addrs("10.0.0.3", "10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	// Additions come first, so that no MAC goes without an entry in between.
	checkChanges(t, k,
		"append 00:00:00:00:00:00 dst 10.0.0.2",
		"append 00:00:00:00:00:00 dst 10.0.0.3",
		"delete 00:00:00:00:00:00 dst 10.0.0.5")

	if err := f.SetGroups(map[netip.Addr][]netip.Addr{netip.MustParseAddr("239.1.2.3"): addrs("10.0.0.2")}); err != nil {
		t.Fatal(err)
	}
	checkChanges(t, k,
		"append 01:00:5e:01:02:03 dst 10.0.0.2",
		"delete 01:00:5e:05:05:05 dst 10.0.0.5")

	if err := f.SetGroups(nil); err != nil {
		t.Fatal(err)
	}
	checkChanges(t, k, "delete 01:00:5e:01:02:03 dst 10.0.0.2")
	if err := f.SetFlood(nil); err != nil {
		t.Fatal(err)
	}
	checkChanges(t, k, "delete 00:00:00:00:00:00 dst 10.0.0.2", "delete 00:00:00:00:00:00 dst 10.0.0.3")
	if len(k.neighs) != 2 || !sameNeigh(&k.neighs[0], foreign) {
		t.Errorf("left %v, want the foreign entries", k.neighs)
	}
}
