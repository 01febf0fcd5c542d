package benchlab

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/mrouterd/mrouterd/test/lab"
)

// GroupsPerSocket is how many groups JoinMany joins on one socket. Each membership is
// charged to its socket's option memory, about 112 bytes with a source filter, and
// net.core.optmem_max is only 20 KiB on older kernels (128 KiB from 6.9 on). The
// host must also allow this many memberships per socket
// (net.ipv4.igmp_max_memberships, 20 by default).
const GroupsPerSocket = 128

// Joined holds the sockets of a host's joins; closing them leaves the groups.
type Joined struct {
	conns []net.PacketConn
	// Start is when the first join was made.
	Start time.Time
}

// Leave closes the sockets, which leaves their groups.
func (j *Joined) Leave() {
	for _, c := range j.conns {
		c.Close()
	}
	j.conns = nil
}

// JoinMany makes node's own IGMP stack join groups on ifname, GroupsPerSocket on each
// socket, from source alone when source is valid (SSM), else from any source. The
// groups stay joined until Leave, which the caller owes even on an error.
func JoinMany(l *lab.Lab, node, ifname string, groups []netip.Addr, source netip.Addr) (*Joined, error) {
	j := &Joined{}
	err := l.InNetns(node, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		j.Start = time.Now()
		var p *ipv4.PacketConn
		for i, g := range groups {
			if i%GroupsPerSocket == 0 {
				c, err := net.ListenPacket("udp4", "0.0.0.0:0")
				if err != nil {
					return err
				}
				j.conns = append(j.conns, c)
				p = ipv4.NewPacketConn(c)
			}
			group := &net.UDPAddr{IP: g.AsSlice()}
			if source.IsValid() {
				err = p.JoinSourceSpecificGroup(ifi, group, &net.UDPAddr{IP: source.AsSlice()})
			} else {
				err = p.JoinGroup(ifi, group)
			}
			if err != nil {
				return fmt.Errorf("join group %d of %d (%v): %v", i+1, len(groups), g, err)
			}
		}
		return nil
	})
	if err != nil {
		return j, fmt.Errorf("%s: %w", node, err)
	}
	return j, nil
}

// AddrAdd returns the IPv4 address n after a.
func AddrAdd(a netip.Addr, n int) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
