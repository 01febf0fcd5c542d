package router

import (
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// allPIMRouters is where hellos and join/prunes go (RFC 7761 4.9).
var allPIMRouters = netip.AddrFrom4([4]byte{224, 0, 0, 13})

// pimConn is how the loop speaks PIM; pimIO is the kernel's.
type pimConn interface {
	send(ifindex int, src netip.Addr, msg []byte) error
	sendTo(src, dst netip.Addr, msg []byte) error
	read(buf []byte) (pimPacket, error)
	Close() error
}

// pimIO is the raw PIM socket. It sends every PIM message, and receives the
// unicast ones (Register, Register-Stop); those to ALL-PIM-ROUTERS arrive through
// the packet tap, which needs no group join per interface.
type pimIO struct {
	conn *ipv4.PacketConn
}

func openPIM() (*pimIO, error) {
	c, err := net.ListenPacket("ip4:103", "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("PIM socket: %w", err)
	}
	pc := ipv4.NewPacketConn(c)
	setup := []error{
		setReceiveBuffer(c.(*net.IPConn), pimReceiveBuffer),
		pc.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst|ipv4.FlagTTL, true),
		pc.SetMulticastTTL(1),
		pc.SetMulticastLoopback(false),
		pc.SetTOS(0xc0), // Internet Control precedence, like every routing protocol
		multicastAllOff(c.(*net.IPConn)),
	}
	for _, err := range setup {
		if err != nil {
			pc.Close()
			return nil, fmt.Errorf("PIM socket: %w", err)
		}
	}
	return &pimIO{conn: pc}, nil
}

// pimReceiveBuffer holds a burst of a few thousand Join/Prunes, as a router with many
// downstream neighbours gets when they all start at once.
const pimReceiveBuffer = 4 << 20

// setReceiveBuffer sets SO_RCVBUFFORCE, past net.core.rmem_max, as CAP_NET_ADMIN
// allows; without it, SO_RCVBUF up to that limit.
func setReceiveBuffer(c *net.IPConn, size int) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	err = raw.Control(func(fd uintptr) {
		opErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
		if opErr != nil {
			opErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
	})
	if err != nil {
		return err
	}
	return opErr
}

// multicastAllOff stops the socket receiving multicast to groups it did not join
// itself (IP_MULTICAST_ALL): another program's join of ALL-PIM-ROUTERS would
// otherwise deliver each hello twice, here and through the tap.
func multicastAllOff(c *net.IPConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	err = raw.Control(func(fd uintptr) {
		opErr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
	})
	if err != nil {
		return err
	}
	return opErr
}

func (p *pimIO) Close() error { return p.conn.Close() }

// send writes one PIM message to ALL-PIM-ROUTERS out of an interface.
func (p *pimIO) send(ifindex int, src netip.Addr, msg []byte) error {
	cm := &ipv4.ControlMessage{IfIndex: ifindex, Src: src.AsSlice()}
	_, err := p.conn.WriteTo(msg, cm, &net.IPAddr{IP: allPIMRouters.AsSlice()})
	return err
}

// sendTo unicasts one PIM message (a Register, a Register-Stop), routed as any
// unicast packet is, from src, or from the address the kernel picks when src is
// invalid.
func (p *pimIO) sendTo(src, dst netip.Addr, msg []byte) error {
	var cm *ipv4.ControlMessage
	if src.IsValid() {
		cm = &ipv4.ControlMessage{Src: src.AsSlice()}
	}
	_, err := p.conn.WriteTo(msg, cm, &net.IPAddr{IP: dst.AsSlice()})
	return err
}

// pimPacket is a received PIM message (IP header removed) with where it came from,
// where it went and its IP TTL.
type pimPacket struct {
	data    []byte
	src     netip.Addr
	dst     netip.Addr
	ttl     int
	ifindex int
}

// read returns the next PIM message.
func (p *pimIO) read(buf []byte) (pimPacket, error) {
	n, cm, from, err := p.conn.ReadFrom(buf)
	if err != nil {
		return pimPacket{}, err
	}
	pkt := pimPacket{data: append([]byte(nil), buf[:n]...)}
	if ip, ok := from.(*net.IPAddr); ok {
		pkt.src, _ = netip.AddrFromSlice(ip.IP.To4())
	}
	if cm != nil {
		pkt.ifindex, pkt.ttl = cm.IfIndex, cm.TTL
		pkt.dst, _ = netip.AddrFromSlice(cm.Dst.To4())
	}
	return pkt, nil
}
