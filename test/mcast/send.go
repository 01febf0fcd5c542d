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
}

// SendSummary is what a sender prints on exit.
type SendSummary struct {
	Sent uint64 `json:"sent"`
}

// Sender is an open sending socket. Create it with NewSender, in the network namespace
// to send from, then Run it from anywhere.
type Sender struct {
	opts SendOptions
	conn *net.UDPConn
	dst  *net.UDPAddr
}

// NewSender opens the socket and sets its multicast interface and TTL.
func NewSender(opts SendOptions) (*Sender, error) {
	if !opts.Group.Is4() || !opts.Group.IsMulticast() {
		return nil, fmt.Errorf("group %v is not an IPv4 multicast address", opts.Group)
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
	dst := &net.UDPAddr{IP: opts.Group.AsSlice(), Port: opts.Port}
	return &Sender{opts: opts, conn: conn, dst: dst}, nil
}

// Close closes the socket.
func (s *Sender) Close() error { return s.conn.Close() }

// Run sends until Count or Duration is reached or ctx ends, then closes the sender.
// Datagram n is due at start + n/Rate: a late wake-up sends the overdue ones back to
// back, so the average rate holds without drift.
func (s *Sender) Run(ctx context.Context) (SendSummary, error) {
	defer s.conn.Close()
	var sum SendSummary
	payload := make([]byte, s.opts.Size)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	for seq := uint64(0); s.opts.Count == 0 || seq < s.opts.Count; seq++ {
		if s.opts.Rate > 0 {
			due := start.Add(time.Duration(float64(seq) * float64(time.Second) / s.opts.Rate))
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
		Header{Stream: s.opts.Stream, Seq: seq, Sent: now}.Put(payload)
		if _, err := s.conn.WriteToUDP(payload, s.dst); err != nil {
			return sum, fmt.Errorf("send datagram %d: %w", seq, err)
		}
		sum.Sent++
	}
	return sum, nil
}
