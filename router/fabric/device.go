package fabric

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Defaults of Config. The VNI and port keep clear of the overlays a cluster may
// already run: flannel (VNI 1, port 8472), Calico (VNI 4096, port 4789) and
// Cilium (port 8472).
const (
	DefaultName = "mrfabric"
	DefaultVNI  = 7700
	DefaultPort = 4799
)

// Alias is the interface alias that marks the fabric interface as mrouterd's:
// an interface without it is never changed or deleted.
const Alias = "mrouterd fabric"

// overhead is what VXLAN adds to a frame on an IPv4 underlay: IPv4, UDP and
// VXLAN headers and the inner Ethernet header.
const overhead = 20 + 8 + 8 + 14

// minMTU is the least MTU IPv4 works over.
const minMTU = 68

// Config is the fabric interface's configuration; zero fields take the defaults.
type Config struct {
	Name     string
	VNI      int
	Port     int    // UDP port of the VXLAN packets
	MTU      int    // 0: the underlay's MTU less VXLAN's overhead
	Underlay string // the interface the VXLAN packets use; "": the one the route to the first peer uses
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.VNI == 0 {
		c.VNI = DefaultVNI
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	return c
}

func (c Config) validate() error {
	switch {
	case len(c.Name) >= unix.IFNAMSIZ || c.Name == "." || c.Name == ".." || strings.ContainsAny(c.Name, "/: \t\n"):
		return fmt.Errorf("fabric: %q is not an interface name", c.Name)
	case c.VNI < 1 || c.VNI >= 1<<24:
		return fmt.Errorf("fabric: VNI %d is outside 1-%d", c.VNI, 1<<24-1)
	case c.Port < 1 || c.Port > 65535:
		return fmt.Errorf("fabric: port %d is outside 1-65535", c.Port)
	case c.MTU != 0 && (c.MTU < minMTU || c.MTU > 65535):
		return fmt.Errorf("fabric: MTU %d is outside %d-65535", c.MTU, minMTU)
	}
	return nil
}

// fabricMTU is the configured MTU, or else the underlay's less the overhead.
func fabricMTU(configured, underlay int) (int, error) {
	if configured != 0 {
		return configured, nil
	}
	if underlay-overhead < minMTU {
		return 0, fmt.Errorf("fabric: underlay MTU %d leaves less than %d after VXLAN's %d bytes", underlay, minMTU, overhead)
	}
	return underlay - overhead, nil
}

// kernel is the part of netlink and sysctl the fabric uses; a fake stands in
// for it in tests.
type kernel interface {
	LinkByName(name string) (netlink.Link, error)
	LinkByIndex(index int) (netlink.Link, error)
	LinkAdd(link netlink.Link) error
	LinkDel(link netlink.Link) error
	LinkSetMTU(link netlink.Link, mtu int) error
	LinkSetUp(link netlink.Link) error
	LinkSetAlias(link netlink.Link, alias string) error
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
	AddrAdd(link netlink.Link, addr *netlink.Addr) error
	RouteGet(dst net.IP) ([]netlink.Route, error)
	NeighList(linkIndex, family int) ([]netlink.Neigh, error)
	NeighAppend(neigh *netlink.Neigh) error
	NeighDel(neigh *netlink.Neigh) error
	// Sysctl and SetSysctl read and write /proc/sys/<path>.
	Sysctl(path string) (string, error)
	SetSysctl(path, value string) error
}

// system is the kernel of the calling thread's network namespace.
type system struct{ *netlink.Handle }

func (system) Sysctl(path string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + path)
	return strings.TrimSpace(string(b)), err
}

func (system) SetSysctl(path, value string) error {
	return os.WriteFile("/proc/sys/"+path, []byte(value), 0)
}

// Fabric manages the fabric interface of the network namespace it is used in.
// It keeps no state of the kernel's: every call reads what it changes. A Fabric
// is used from one goroutine.
type Fabric struct {
	k    kernel
	name string // of the interface, from the last Ensure
}

// New returns a Fabric for the calling thread's network namespace.
func New() *Fabric { return &Fabric{k: system{&netlink.Handle{}}, name: DefaultName} }

// Link is the fabric interface as Ensure left it.
type Link struct {
	Index    int
	MTU      int
	Underlay string
	// StrictRPFilter says net.ipv4.conf.all.rp_filter, or the interface's own
	// where it could not be set to 0, is 1. The kernel applies the higher of the
	// two, so it drops what peers send over the fabric, their addresses being
	// routed through the underlay.
	StrictRPFilter bool
}

// Ensure makes the fabric interface as cfg says, with local, the node's underlay
// address, as its VXLAN source and its own address. It creates the interface, or
// replaces it when its VNI, port, source, underlay or learning differ, fixes its
// MTU, address and rp_filter, and sets it up. peers matter only when
// cfg.Underlay is empty: the underlay is then the interface of the route to the
// first of them or, with none, the interface that holds local. Recreating the
// interface empties its FDB: call SetFlood and SetGroups after Ensure.
func (f *Fabric) Ensure(cfg Config, local netip.Addr, peers []netip.Addr) (Link, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return Link{}, err
	}
	if !usable(local) {
		return Link{}, fmt.Errorf("fabric: local address %v is not an IPv4 unicast address", local)
	}
	f.name = cfg.Name
	link, err := f.ours(cfg.Name)
	if err != nil {
		return Link{}, err
	}
	fabricIndex := 0
	if link != nil {
		fabricIndex = link.Attrs().Index
	}
	underlay, err := f.underlay(cfg.Underlay, local, peers, fabricIndex)
	if err != nil {
		return Link{}, err
	}
	mtu, err := fabricMTU(cfg.MTU, underlay.Attrs().MTU)
	if err != nil {
		return Link{}, err
	}

	want := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: cfg.Name, MTU: mtu},
		VxlanId:      cfg.VNI,
		VtepDevIndex: underlay.Attrs().Index,
		SrcAddr:      local.AsSlice(),
		Port:         cfg.Port,
	}
	if link != nil && !sameVxlan(link, want) {
		if err := f.k.LinkDel(link); err != nil {
			return Link{}, fmt.Errorf("fabric %s: delete to recreate: %w", cfg.Name, err)
		}
		link = nil
	}
	if link == nil {
		if link, err = f.create(want); err != nil {
			return Link{}, err
		}
	}
	if link.Attrs().MTU != mtu {
		if err := f.k.LinkSetMTU(link, mtu); err != nil {
			return Link{}, fmt.Errorf("fabric %s: MTU %d: %w", cfg.Name, mtu, err)
		}
	}
	if err := f.ensureAddr(link, local); err != nil {
		return Link{}, err
	}
	// Before the interface is up, so that no early hello is dropped. Where
	// /proc/sys is read-only, as in a container, the node's setting stands, and
	// StrictRPFilter says whether it drops the fabric's packets.
	setErr := f.k.SetSysctl(rpFilter(cfg.Name), "0")
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := f.k.LinkSetUp(link); err != nil {
			return Link{}, fmt.Errorf("fabric %s: set up: %w", cfg.Name, err)
		}
	}
	all, err := f.k.Sysctl(rpFilter("all"))
	if err != nil {
		return Link{}, fmt.Errorf("fabric %s: rp_filter: %w", cfg.Name, err)
	}
	strict := all == "1"
	if setErr != nil {
		dev, _ := f.k.Sysctl(rpFilter(cfg.Name))
		strict = strict || dev == "1"
	}
	return Link{Index: link.Attrs().Index, MTU: mtu, Underlay: underlay.Attrs().Name, StrictRPFilter: strict}, nil
}

// create adds the interface and marks it. The kernel ignores an alias given at
// creation, so the mark comes second; without it the interface is deleted again,
// since a later Ensure would not touch it.
func (f *Fabric) create(want *netlink.Vxlan) (netlink.Link, error) {
	if err := f.k.LinkAdd(want); err != nil {
		return nil, fmt.Errorf("fabric %s: create: %w", want.Name, err)
	}
	link, err := f.k.LinkByName(want.Name)
	if err == nil {
		err = f.k.LinkSetAlias(link, Alias)
	}
	if err != nil {
		if link != nil {
			err = errors.Join(err, f.k.LinkDel(link))
		}
		return nil, fmt.Errorf("fabric %s: mark as the fabric's: %w", want.Name, err)
	}
	link.Attrs().Alias = Alias
	return link, nil
}

func rpFilter(scope string) string { return "net/ipv4/conf/" + scope + "/rp_filter" }

// ours looks the interface up: nil if there is none, an error if it is not the
// fabric's.
func (f *Fabric) ours(name string) (netlink.Link, error) {
	link, err := f.k.LinkByName(name)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fabric %s: %w", name, err)
	}
	if link.Attrs().Alias != Alias {
		return nil, fmt.Errorf("fabric: interface %s exists and is not the fabric's (its alias is not %q): left alone; delete it if it is a leftover", name, Alias)
	}
	return link, nil
}

// sameVxlan says whether link is the VXLAN interface want describes, as far as
// only recreating it could change.
func sameVxlan(link netlink.Link, want *netlink.Vxlan) bool {
	v, ok := link.(*netlink.Vxlan)
	return ok && v.VxlanId == want.VxlanId && v.Port == want.Port && v.SrcAddr.Equal(want.SrcAddr) &&
		v.VtepDevIndex == want.VtepDevIndex && !v.Learning
}

// underlay finds the interface the VXLAN packets leave by.
func (f *Fabric) underlay(name string, local netip.Addr, peers []netip.Addr, fabricIndex int) (netlink.Link, error) {
	if name != "" {
		link, err := f.k.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("fabric: underlay %s: %w", name, err)
		}
		return link, nil
	}
	index := 0
	if len(peers) > 0 {
		routes, err := f.k.RouteGet(peers[0].AsSlice())
		if err != nil || len(routes) == 0 {
			return nil, fmt.Errorf("fabric: no route to peer %v to choose the underlay by: %v", peers[0], err)
		}
		index = routes[0].LinkIndex
		if index == fabricIndex {
			return nil, fmt.Errorf("fabric: the route to peer %v goes through the fabric itself; set the underlay", peers[0])
		}
	} else {
		addrs, err := f.k.AddrList(nil, unix.AF_INET)
		if err != nil {
			return nil, fmt.Errorf("fabric: list addresses: %w", err)
		}
		for _, a := range addrs {
			if a.LinkIndex != fabricIndex && a.IP.Equal(local.AsSlice()) {
				index = a.LinkIndex
				break
			}
		}
		if index == 0 {
			return nil, fmt.Errorf("fabric: no peer, and no interface holds %v, to choose the underlay by", local)
		}
	}
	link, err := f.k.LinkByIndex(index)
	if err != nil {
		return nil, fmt.Errorf("fabric: underlay: %w", err)
	}
	if link.Attrs().Flags&net.FlagLoopback != 0 {
		return nil, fmt.Errorf("fabric: the underlay would be the loopback %s; set the underlay", link.Attrs().Name)
	}
	return link, nil
}

// ensureAddr puts local/32 on the fabric. It has no prefix route: the peers
// stay routed through the underlay.
func (f *Fabric) ensureAddr(link netlink.Link, local netip.Addr) error {
	addrs, err := f.k.AddrList(link, unix.AF_INET)
	if err != nil {
		return fmt.Errorf("fabric %s: list addresses: %w", link.Attrs().Name, err)
	}
	for _, a := range addrs {
		if ones, _ := a.Mask.Size(); ones == 32 && a.IP.Equal(local.AsSlice()) {
			return nil
		}
	}
	addr := &netlink.Addr{
		IPNet: &net.IPNet{IP: local.AsSlice(), Mask: net.CIDRMask(32, 32)},
		Flags: unix.IFA_F_NOPREFIXROUTE,
	}
	if err := f.k.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("fabric %s: add %v/32: %w", link.Attrs().Name, local, err)
	}
	return nil
}

// Remove deletes the fabric interface name ("": the default), if there is one
// and it is the fabric's.
func (f *Fabric) Remove(name string) error {
	if name == "" {
		name = DefaultName
	}
	link, err := f.ours(name)
	if err != nil || link == nil {
		return err
	}
	if err := f.k.LinkDel(link); err != nil {
		return fmt.Errorf("fabric %s: delete: %w", name, err)
	}
	return nil
}
