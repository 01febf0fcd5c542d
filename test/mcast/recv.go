package mcast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// ReceiveOptions describe what to join and when to stop. Without Duration, Count or
// Idle a receiver runs until its context ends.
type ReceiveOptions struct {
	Group  netip.Addr
	Port   int
	Ifname string // interface to join on; empty lets the kernel choose by route
	// Sources makes source-specific INCLUDE joins, one per source (SSM).
	Sources []netip.Addr
	// Blocks makes an any-source join and then blocks each of these sources.
	Blocks   []netip.Addr
	Duration time.Duration // stop this long after joining
	Count    uint64        // stop after this many of the tool's datagrams
	Idle     time.Duration // stop after this long without datagrams, once one arrived
}

// Receiver is a joined socket. Create it with Listen, in the network namespace to
// receive in, then Run it from anywhere.
type Receiver struct {
	opts   ReceiveOptions
	conn   *net.UDPConn
	joined time.Time
}

// receiveBuffer is the receiving socket's buffer: 4 s of a 1,000 pps stream of
// small datagrams, each taking about a kilobyte of buffer.
const receiveBuffer = 4 << 20

// pollInterval bounds how late a receiver notices that its context ended.
const pollInterval = 100 * time.Millisecond

// Listen opens a socket bound to the group and port, so that other groups on the port
// stay out, and joins as opts say. IP_MULTICAST_ALL is off, so that joins of other
// sockets on the host do not leak in either.
func Listen(opts ReceiveOptions) (*Receiver, error) {
	if !opts.Group.Is4() || !opts.Group.IsMulticast() {
		return nil, fmt.Errorf("group %v is not an IPv4 multicast address", opts.Group)
	}
	if opts.Port < 1 || opts.Port > 65535 {
		return nil, fmt.Errorf("port %d is out of range", opts.Port)
	}
	if len(opts.Sources) > 0 && len(opts.Blocks) > 0 {
		return nil, errors.New("sources (include) and blocks (exclude) do not go together")
	}
	var ifi *net.Interface
	if opts.Ifname != "" {
		var err error
		if ifi, err = net.InterfaceByName(opts.Ifname); err != nil {
			return nil, err
		}
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// Several receivers of one group and port may run side by side.
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0)
			}
			// Seconds of a stream, so that a receiver the machine leaves unscheduled
			// for a while (a slow VM) still counts what the network delivered;
			// past net.core.rmem_max where CAP_NET_ADMIN allows.
			if serr == nil && unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer) != nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, receiveBuffer)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(opts.Group, uint16(opts.Port)).String())
	if err != nil {
		return nil, err
	}
	conn := pc.(*net.UDPConn)
	if err := join(ipv4.NewPacketConn(conn), ifi, opts); err != nil {
		conn.Close()
		return nil, err
	}
	return &Receiver{opts: opts, conn: conn, joined: time.Now()}, nil
}

func join(p *ipv4.PacketConn, ifi *net.Interface, opts ReceiveOptions) error {
	group := &net.UDPAddr{IP: opts.Group.AsSlice()}
	if len(opts.Sources) > 0 {
		for _, src := range opts.Sources {
			if err := p.JoinSourceSpecificGroup(ifi, group, &net.UDPAddr{IP: src.AsSlice()}); err != nil {
				return fmt.Errorf("join (%v, %v): %w", src, opts.Group, err)
			}
		}
		return nil
	}
	if err := p.JoinGroup(ifi, group); err != nil {
		return fmt.Errorf("join %v: %w", opts.Group, err)
	}
	for _, src := range opts.Blocks {
		if err := p.ExcludeSourceSpecificGroup(ifi, group, &net.UDPAddr{IP: src.AsSlice()}); err != nil {
			return fmt.Errorf("block %v in %v: %w", src, opts.Group, err)
		}
	}
	return nil
}

// Close leaves the groups and closes the socket.
func (r *Receiver) Close() error { return r.conn.Close() }

// Run receives until a stop condition of the options holds or ctx ends, then closes
// the receiver and returns the report.
func (r *Receiver) Run(ctx context.Context) (Report, error) {
	defer r.conn.Close()
	tally := NewTally(r.joined)
	buf := make([]byte, 65536)
	var end time.Time
	if r.opts.Duration > 0 {
		end = r.joined.Add(r.opts.Duration)
	}
	for {
		now := time.Now()
		if ctx.Err() != nil || r.done(tally, end, now) {
			return tally.Report(), nil
		}
		wake := now.Add(pollInterval)
		if !end.IsZero() && end.Before(wake) {
			wake = end
		}
		if last := tally.LastArrival(); r.opts.Idle > 0 && !last.IsZero() && last.Add(r.opts.Idle).Before(wake) {
			wake = last.Add(r.opts.Idle)
		}
		if err := r.conn.SetReadDeadline(wake); err != nil {
			return tally.Report(), err
		}
		n, src, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return tally.Report(), err
		}
		tally.Add(buf[:n], src.Addr(), time.Now())
	}
}

func (r *Receiver) done(tally *Tally, end, now time.Time) bool {
	if !end.IsZero() && !now.Before(end) {
		return true
	}
	if r.opts.Count > 0 && tally.Received() >= r.opts.Count {
		return true
	}
	last := tally.LastArrival()
	return r.opts.Idle > 0 && !last.IsZero() && now.Sub(last) >= r.opts.Idle
}
