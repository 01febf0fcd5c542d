package router

import (
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv4"

	"github.com/mrouterd/mrouterd/igmp"
)

// igmpConn is how the loop speaks IGMP; igmpIO is the kernel's. Reports arrive
// through the packet tap.
type igmpConn interface {
	sendQuery(ifindex int, src, dst netip.Addr, q *igmp.Query) error
	Close() error
}

// igmpIO sends IGMP queries.
type igmpIO struct {
	send *ipv4.RawConn
}

func openIGMP() (*igmpIO, error) {
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
	return &igmpIO{send: raw}, nil
}

func (io *igmpIO) Close() error { return io.send.Close() }

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
