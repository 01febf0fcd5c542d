package fabric

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// mac is an Ethernet address, comparable so it can key maps.
type mac [6]byte

func (m mac) String() string { return net.HardwareAddr(m[:]).String() }

// floodMAC is the all-zeros entry, which VXLAN uses for any destination MAC
// without an entry of its own: that is how the fabric floods.
var floodMAC mac

// groupMAC is the MAC an IPv4 group is sent to: 01:00:5e and the group's low 23
// bits.
func groupMAC(g netip.Addr) mac {
	b := g.As4()
	return mac{0x01, 0x00, 0x5e, b[1] & 0x7f, b[2], b[3]}
}

func isFlood(m mac) bool { return m == floodMAC }

// isGroupMAC says whether m is some IPv4 group's MAC.
func isGroupMAC(m mac) bool { return m[0] == 0x01 && m[1] == 0x00 && m[2] == 0x5e && m[3]&0x80 == 0 }

// sharedWithLinkLocal says whether m is also the MAC of a group in 224.0.0.0/24,
// where PIM hellos and IGMP go: an entry for it would keep them from the peers
// left out of the entry, so such groups stay flooded.
func sharedWithLinkLocal(m mac) bool { return isGroupMAC(m) && m[3] == 0 && m[4] == 0 }

// fdbEntry is one remote of one MAC on the fabric interface.
type fdbEntry struct {
	mac    mac
	remote netip.Addr
}

func compareEntries(a, b fdbEntry) int {
	if c := slices.Compare(a.mac[:], b.mac[:]); c != 0 {
		return c
	}
	return a.remote.Compare(b.remote)
}

// diffFDB returns what turns have into want among the entries whose MAC ours
// accepts; entries of other MACs are never deleted.
func diffFDB(want, have []fdbEntry, ours func(mac) bool) (add, del []fdbEntry) {
	wanted := make(map[fdbEntry]bool, len(want))
	for _, e := range want {
		wanted[e] = true
	}
	present := make(map[fdbEntry]bool, len(have))
	for _, e := range have {
		if ours(e.mac) {
			present[e] = true
		}
	}
	for e := range wanted {
		if !present[e] {
			add = append(add, e)
		}
	}
	for e := range present {
		if !wanted[e] {
			del = append(del, e)
		}
	}
	slices.SortFunc(add, compareEntries)
	slices.SortFunc(del, compareEntries)
	return add, del
}

// floodEntries is the all-zeros entry with one remote per peer.
func floodEntries(peers []netip.Addr) ([]fdbEntry, error) {
	out := make([]fdbEntry, 0, len(peers))
	for _, p := range peers {
		if !usable(p) {
			return nil, fmt.Errorf("fabric flood: peer %v is not an IPv4 unicast address", p)
		}
		out = append(out, fdbEntry{floodMAC, p})
	}
	return out, nil
}

// groupEntries gives each group's MAC the union of the peers of every group that
// maps to it. A group without peers wants no entry.
func groupEntries(want map[netip.Addr][]netip.Addr) ([]fdbEntry, error) {
	var out []fdbEntry
	for g, peers := range want {
		if !g.Is4() || !g.IsMulticast() {
			return nil, fmt.Errorf("fabric groups: %v is not an IPv4 group", g)
		}
		m := groupMAC(g)
		if sharedWithLinkLocal(m) {
			continue
		}
		for _, p := range peers {
			if !usable(p) {
				return nil, fmt.Errorf("fabric groups: %v: peer %v is not an IPv4 unicast address", g, p)
			}
			out = append(out, fdbEntry{m, p})
		}
	}
	slices.SortFunc(out, compareEntries)
	return slices.Compact(out), nil
}

// SetFlood makes peers the remotes of the all-zeros entry: the peers that get
// every frame without an entry of its own, PIM hellos among them.
func (f *Fabric) SetFlood(peers []netip.Addr) error {
	want, err := floodEntries(peers)
	if err != nil {
		return err
	}
	return f.reconcileFDB(want, isFlood)
}

// SetGroups narrows groups to the peers that want them: want maps a group to
// its peers. The entry of a group's MAC gets the peers of every group sharing
// it; a MAC no group wants loses its entry and is flooded again. Groups whose
// MAC is also that of a link-local group stay flooded.
func (f *Fabric) SetGroups(want map[netip.Addr][]netip.Addr) error {
	entries, err := groupEntries(want)
	if err != nil {
		return err
	}
	return f.reconcileFDB(entries, isGroupMAC)
}

// reconcileFDB brings the fabric's entries of the MACs ours accepts to want.
// It adds before it deletes, so that a MAC whose remotes change keeps an entry
// throughout instead of falling back to flood for a moment.
func (f *Fabric) reconcileFDB(want []fdbEntry, ours func(mac) bool) error {
	link, err := f.ours(f.name)
	if err != nil {
		return err
	}
	if link == nil {
		return fmt.Errorf("fabric %s: no such interface", f.name)
	}
	index := link.Attrs().Index
	neighs, err := f.k.NeighList(index, unix.AF_BRIDGE)
	if err != nil {
		return fmt.Errorf("fabric %s: list FDB: %w", f.name, err)
	}
	add, del := diffFDB(want, fdbEntries(neighs), ours)
	var errs []error
	for _, e := range add {
		if err := f.k.NeighAppend(fdbNeigh(index, e)); err != nil {
			errs = append(errs, fmt.Errorf("fabric %s: add FDB %v dst %v: %w", f.name, e.mac, e.remote, err))
		}
	}
	for _, e := range del {
		if err := f.k.NeighDel(fdbNeigh(index, e)); err != nil {
			errs = append(errs, fmt.Errorf("fabric %s: delete FDB %v dst %v: %w", f.name, e.mac, e.remote, err))
		}
	}
	return errors.Join(errs...)
}

// fdbEntries keeps the entries that have a MAC and an IPv4 remote.
func fdbEntries(neighs []netlink.Neigh) []fdbEntry {
	var out []fdbEntry
	for _, n := range neighs {
		remote, ok := netip.AddrFromSlice(n.IP)
		if !ok || len(n.HardwareAddr) != len(mac{}) {
			continue
		}
		if remote = remote.Unmap(); remote.Is4() {
			out = append(out, fdbEntry{mac(n.HardwareAddr), remote})
		}
	}
	return out
}

// fdbNeigh is the static entry for e, as `bridge fdb append ... self permanent`
// makes it.
func fdbNeigh(index int, e fdbEntry) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    index,
		Family:       unix.AF_BRIDGE,
		State:        netlink.NUD_PERMANENT | netlink.NUD_NOARP,
		Flags:        netlink.NTF_SELF,
		HardwareAddr: net.HardwareAddr(e.mac[:]),
		IP:           e.remote.AsSlice(),
	}
}
