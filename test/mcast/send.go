package mcast

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/ipv4"
)

// Defaults of SendOptions' zero values.
const (
	DefaultTTL  = 16
	DefaultSize = 64
)

// SendOptions describe a stream. Without Count or Duration a sender runs until its
// context ends.
type SendOptions struct {
	Group    netip.Addr
	Port     int
	Ifname   string        // multicast interface; empty lets the kernel choose by route
	Source   netip.Addr    // local address to send from; zero lets the kernel choose
	TTL      int           // zero means DefaultTTL
	Rate     float64       // datagrams per second; zero sends as fast as the socket takes them
	Count    uint64        // stop after this many datagrams
	Duration time.Duration // stop after this long
	Size     int           // UDP payload size, at least HeaderLen; zero means DefaultSize
	Stream   uint32        // stream ID, to tell senders of one group apart
	// Groups makes one stream to each of this many consecutive groups from Group; zero
	// means one. Rate and Count hold per group and each group numbers its datagrams
	// from 0, so a receiver of any one group sees what a sender of that group alone
	// would send. The groups take turns, evenly spaced in time.
	Groups int
}

// MaxGroups bounds SendOptions.Groups.
const MaxGroups = 1 << 20

// SendSummary is what a sender prints on exit.
type SendSummary struct {
	Sent uint64 `json:"sent"` // datagrams, to all groups together
	// FirstSent is when the first datagram was sent, by the wall clock; zero if none
	// was. A receiver's joined and *_ms figures line up with it.
	FirstSent time.Time `json:"first_sent"`
}

// Sender is an open sending socket. Create it with NewSender, in the network namespace
// to send from, then Run it from anywhere.
type Sender struct {
	opts SendOptions
	conn *net.UDPConn
	dsts []*net.UDPAddr // one per group, in turn
}

// NewSender opens the socket and sets its multicast interface and TTL.
func NewSender(opts SendOptions) (*Sender, error) {
	groups, err := GroupRange(opts.Group, opts.Groups)
	if err != nil {
		return nil, err
	}
	if opts.Port < 1 || opts.Port > 65535 {
		return nil, fmt.Errorf("port %d is out of range", opts.Port)
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Size == 0 {
		opts.Size = DefaultSize
	}
	if opts.Size < HeaderLen || opts.Size > 65507 {
		return nil, fmt.Errorf("size %d: want %d to 65507 bytes", opts.Size, HeaderLen)
	}
	if opts.Rate < 0 {
		return nil, fmt.Errorf("rate %v is negative", opts.Rate)
	}
	var local *net.UDPAddr
	if opts.Source.IsValid() {
		local = &net.UDPAddr{IP: opts.Source.AsSlice()}
	}
	conn, err := net.ListenUDP("udp4", local)
	if err != nil {
		return nil, err
	}
	p := ipv4.NewPacketConn(conn)
	if err := p.SetMulticastTTL(opts.TTL); err != nil {
		conn.Close()
		return nil, fmt.Errorf("set TTL %d: %w", opts.TTL, err)
	}
	if opts.Ifname != "" {
		ifi, err := net.InterfaceByName(opts.Ifname)
		if err == nil {
			err = p.SetMulticastInterface(ifi)
		}
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("multicast interface %s: %w", opts.Ifname, err)
		}
	}
	s := &Sender{opts: opts, conn: conn}
	for _, g := range groups {
		s.dsts = append(s.dsts, &net.UDPAddr{IP: g.AsSlice(), Port: opts.Port})
	}
	return s, nil
}

// GroupRange returns n consecutive IPv4 multicast groups from first; n of zero means
// one. They must all be multicast addresses.
func GroupRange(first netip.Addr, n int) ([]netip.Addr, error) {
	if n == 0 {
		n = 1
	}
	if n < 0 || n > MaxGroups {
		return nil, fmt.Errorf("groups %d: want 1 to %d", n, MaxGroups)
	}
	if !first.Is4() || !first.IsMulticast() {
		return nil, fmt.Errorf("group %v is not an IPv4 multicast address", first)
	}
	b := first.As4()
	base := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	const lastMulticast = 0xefffffff // 239.255.255.255
	if uint64(base)+uint64(n)-1 > lastMulticast {
		return nil, fmt.Errorf("%d groups from %v run past 239.255.255.255", n, first)
	}
	out := make([]netip.Addr, n)
	for i := range out {
		v := base + uint32(i)
		out[i] = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	return out, nil
}

// Close closes the socket.
func (s *Sender) Close() error { return s.conn.Close() }

// Run sends until Count or Duration is reached or ctx ends, then closes the sender.
// Datagram k (of all groups together) is due at start + k/(Rate*groups): a late
// wake-up sends the overdue ones back to back, so the average rate holds without drift.
func (s *Sender) Run(ctx context.Context) (SendSummary, error) {
	defer s.conn.Close()
	var sum SendSummary
	payload := make([]byte, s.opts.Size)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	groups := uint64(len(s.dsts))
	total := s.opts.Count * groups // zero: no end
	rate := s.opts.Rate * float64(groups)
	start := time.Now()
	for k := uint64(0); total == 0 || k < total; k++ {
		if rate > 0 {
			due := start.Add(time.Duration(float64(k) * float64(time.Second) / rate))
			if wait := time.Until(due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					return sum, nil
				case <-timer.C:
				}
			}
		}
		now := time.Now()
		if ctx.Err() != nil || (s.opts.Duration > 0 && now.Sub(start) >= s.opts.Duration) {
			break
		}
		seq, dst := k/groups, s.dsts[k%groups]
		Header{Stream: s.opts.Stream, Seq: seq, Sent: now}.Put(payload)
		if _, err := s.conn.WriteToUDP(payload, dst); err != nil {
			return sum, fmt.Errorf("send datagram %d to %v: %w", seq, dst.IP, err)
		}
		if sum.Sent == 0 {
			sum.FirstSent = now.Round(0).UTC()
		}
		sum.Sent++
	}
	return sum, nil
}
