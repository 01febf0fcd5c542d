package fabric

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// fakeKernel keeps links, addresses, routes, FDB entries and sysctls in memory,
// and logs every change it is asked for.
type fakeKernel struct {
	links   []netlink.Link
	addrs   []netlink.Addr
	routes  map[netip.Addr]int // destination → interface index
	neighs  []netlink.Neigh
	sysctls map[string]string
	changes []string
	next    int // the index the next link gets

	aliasErr error // LinkSetAlias fails with it
}

// newFakeKernel has lo (1) and eth0 (2, 10.0.0.1/24, MTU 9001), a route to
// 10.0.0.0/24 through eth0, and all.rp_filter 2.
func newFakeKernel() *fakeKernel {
	k := &fakeKernel{next: 3, routes: make(map[netip.Addr]int), sysctls: map[string]string{rpFilter("all"): "2"}}
	k.links = []netlink.Link{
		&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1, Name: "lo", MTU: 65536, Flags: net.FlagUp | net.FlagLoopback}},
		&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 2, Name: "eth0", MTU: 9001, Flags: net.FlagUp}},
	}
	k.addrs = []netlink.Addr{
		{LinkIndex: 1, IPNet: &net.IPNet{IP: net.IPv4(127, 0, 0, 1).To4(), Mask: net.CIDRMask(8, 32)}},
		{LinkIndex: 2, IPNet: &net.IPNet{IP: net.IPv4(10, 0, 0, 1).To4(), Mask: net.CIDRMask(24, 32)}},
	}
	for i := range 255 {
		k.routes[netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})] = 2
	}
	return k
}

func (k *fakeKernel) log(format string, args ...any) {
	k.changes = append(k.changes, fmt.Sprintf(format, args...))
}

func (k *fakeKernel) find(match func(netlink.Link) bool) (netlink.Link, error) {
	for _, l := range k.links {
		if match(l) {
			return l, nil
		}
	}
	return nil, netlink.LinkNotFoundError{}
}

func (k *fakeKernel) LinkByName(name string) (netlink.Link, error) {
	return k.find(func(l netlink.Link) bool { return l.Attrs().Name == name })
}

func (k *fakeKernel) LinkByIndex(index int) (netlink.Link, error) {
	return k.find(func(l netlink.Link) bool { return l.Attrs().Index == index })
}

func (k *fakeKernel) LinkAdd(link netlink.Link) error {
	v, ok := link.(*netlink.Vxlan)
	if !ok {
		return fmt.Errorf("fake: cannot add a %s", link.Type())
	}
	if _, err := k.LinkByName(v.Name); err == nil {
		return unix.EEXIST
	}
	added := *v
	added.Index, k.next = k.next, k.next+1
	added.Alias = "" // as the kernel does
	k.links = append(k.links, &added)
	k.log("add %s", v.Name)
	return nil
}

func (k *fakeKernel) LinkDel(link netlink.Link) error {
	index := link.Attrs().Index
	k.links = slices.DeleteFunc(k.links, func(l netlink.Link) bool { return l.Attrs().Index == index })
	k.addrs = slices.DeleteFunc(k.addrs, func(a netlink.Addr) bool { return a.LinkIndex == index })
	k.neighs = slices.DeleteFunc(k.neighs, func(n netlink.Neigh) bool { return n.LinkIndex == index })
	k.log("del %s", link.Attrs().Name)
	return nil
}

func (k *fakeKernel) LinkSetMTU(link netlink.Link, mtu int) error {
	link.Attrs().MTU = mtu
	k.log("mtu %s %d", link.Attrs().Name, mtu)
	return nil
}

func (k *fakeKernel) LinkSetUp(link netlink.Link) error {
	link.Attrs().Flags |= net.FlagUp
	k.log("up %s", link.Attrs().Name)
	return nil
}

func (k *fakeKernel) LinkSetAlias(link netlink.Link, alias string) error {
	if k.aliasErr != nil {
		return k.aliasErr
	}
	link.Attrs().Alias = alias
	k.log("alias %s %q", link.Attrs().Name, alias)
	return nil
}

func (k *fakeKernel) AddrList(link netlink.Link, _ int) ([]netlink.Addr, error) {
	var out []netlink.Addr
	for _, a := range k.addrs {
		if link == nil || a.LinkIndex == link.Attrs().Index {
			out = append(out, a)
		}
	}
	return out, nil
}

func (k *fakeKernel) AddrAdd(link netlink.Link, addr *netlink.Addr) error {
	a := *addr
	a.LinkIndex = link.Attrs().Index
	k.addrs = append(k.addrs, a)
	k.log("addr %s %v flags %#x", link.Attrs().Name, a.IPNet, a.Flags)
	return nil
}

func (k *fakeKernel) RouteGet(dst net.IP) ([]netlink.Route, error) {
	a, _ := netip.AddrFromSlice(dst)
	index, ok := k.routes[a.Unmap()]
	if !ok {
		return nil, unix.ENETUNREACH
	}
	return []netlink.Route{{LinkIndex: index}}, nil
}

func (k *fakeKernel) NeighList(linkIndex, _ int) ([]netlink.Neigh, error) {
	var out []netlink.Neigh
	for _, n := range k.neighs {
		if n.LinkIndex == linkIndex {
			out = append(out, n)
		}
	}
	return out, nil
}

func sameNeigh(a, b *netlink.Neigh) bool {
	return a.LinkIndex == b.LinkIndex && a.HardwareAddr.String() == b.HardwareAddr.String() && a.IP.Equal(b.IP)
}

func (k *fakeKernel) NeighAppend(n *netlink.Neigh) error {
	if slices.ContainsFunc(k.neighs, func(m netlink.Neigh) bool { return sameNeigh(&m, n) }) {
		return unix.EEXIST
	}
	k.neighs = append(k.neighs, *n)
	k.log("append %s dst %s", n.HardwareAddr, n.IP)
	return nil
}

func (k *fakeKernel) NeighDel(n *netlink.Neigh) error {
	before := len(k.neighs)
	k.neighs = slices.DeleteFunc(k.neighs, func(m netlink.Neigh) bool { return sameNeigh(&m, n) })
	if len(k.neighs) == before {
		return unix.ENOENT
	}
	k.log("delete %s dst %s", n.HardwareAddr, n.IP)
	return nil
}

func (k *fakeKernel) Sysctl(path string) (string, error) {
	v, ok := k.sysctls[path]
	if !ok {
		return "", os.ErrNotExist
	}
	return v, nil
}

func (k *fakeKernel) SetSysctl(path, value string) error {
	k.sysctls[path] = value
	return nil
}
