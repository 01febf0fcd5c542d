package router

import (
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv4"

	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/mroute"
)

// igmpConn is how the loop speaks IGMP; igmpIO is the kernel's.
type igmpConn interface {
	join(ifindex int) error
	leave(ifindex int)
	sendQuery(ifindex int, src, dst netip.Addr, q *igmp.Query) error
	Close() error
}

// igmpIO sends IGMP queries and joins the groups routers must hear reports on. Reports
// arrive on the multicast routing socket, which sees every IGMP packet the kernel
// delivers to the router.
type igmpIO struct {
	send   *ipv4.RawConn
	listen *ipv4.PacketConn // the multicast routing socket, for group joins
}

// reportGroups are where hosts send reports: IGMPv3 reports go to 224.0.0.22, and v2
// leaves to 224.0.0.2; without a join the kernel does not deliver them.
var reportGroups = []netip.Addr{igmp.AllV3Routers, igmp.AllRouters}

func openIGMP(mrt *mroute.Socket) (*igmpIO, error) {
	c, err := net.ListenPacket("ip4:2", "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("IGMP send socket: %w", err)
	}
	raw, err := ipv4.NewRawConn(c)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("IGMP send socket: %w", err)
	}
	// This socket only sends: a filter that accepts nothing keeps the kernel from
	// queueing every IGMP packet on it as well.
	dropAll := []bpf.RawInstruction{{Op: 0x06, K: 0}} // BPF_RET|BPF_K 0
	if err := raw.SetBPF(dropAll); err != nil {
		raw.Close()
		return nil, fmt.Errorf("IGMP send socket filter: %w", err)
	}
	if err := raw.SetMulticastLoopback(false); err != nil {
		raw.Close()
		return nil, fmt.Errorf("IGMP send socket: %w", err)
	}
	return &igmpIO{send: raw, listen: ipv4.NewPacketConn(mrt.IPConn())}, nil
}

func (io *igmpIO) Close() error { return io.send.Close() }

// join subscribes the router to the report groups on an interface.
func (io *igmpIO) join(ifindex int) error {
	ifi := &net.Interface{Index: ifindex}
	for _, g := range reportGroups {
		if err := io.listen.JoinGroup(ifi, &net.IPAddr{IP: g.AsSlice()}); err != nil {
			return fmt.Errorf("join %s: %w", g, err)
		}
	}
	return nil
}

// leave undoes join; the interface may already be gone, so errors are not reported.
func (io *igmpIO) leave(ifindex int) {
	ifi := &net.Interface{Index: ifindex}
	for _, g := range reportGroups {
		_ = io.listen.LeaveGroup(ifi, &net.IPAddr{IP: g.AsSlice()})
	}
}

// sendQuery sends a query out of one interface from the given source address, with
// TTL 1, the Internet Control precedence and the Router Alert option (RFC 3376 4).
func (io *igmpIO) sendQuery(ifindex int, src, dst netip.Addr, q *igmp.Query) error {
	payload, err := q.Marshal()
	if err != nil {
		return err
	}
	opts := igmp.RouterAlert()
	h := &ipv4.Header{
		Version:  ipv4.Version,
		Len:      ipv4.HeaderLen + len(opts),
		TOS:      0xc0,
		TotalLen: ipv4.HeaderLen + len(opts) + len(payload),
		TTL:      1,
		Protocol: 2,
		Src:      src.AsSlice(),
		Dst:      dst.AsSlice(),
		Options:  opts,
	}
	return io.send.WriteTo(h, payload, &ipv4.ControlMessage{IfIndex: ifindex})
}
