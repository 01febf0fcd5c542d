package fabric

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// MaxPeers bounds the peer list: every peer costs an FDB entry per MAC and a copy
// of every flooded frame.
const MaxPeers = 1024

// dnsPrefix marks a peer spec that names a headless Service instead of an address.
const dnsPrefix = "dns:"

// PeerSpec is one configured peer: an address, or a DNS name whose IPv4
// addresses are peers.
type PeerSpec struct {
	Addr netip.Addr // valid for an address
	Name string     // set for a DNS name
}

// ParsePeers reads the configured peers: "10.0.1.5" or "dns:NAME".
func ParsePeers(specs []string) ([]PeerSpec, error) {
	if len(specs) > MaxPeers {
		return nil, fmt.Errorf("fabric peers: %d entries, at most %d", len(specs), MaxPeers)
	}
	out := make([]PeerSpec, 0, len(specs))
	for _, s := range specs {
		if name, ok := strings.CutPrefix(s, dnsPrefix); ok {
			if !validDNSName(name) {
				return nil, fmt.Errorf("fabric peer %q: %q is not a DNS name", s, name)
			}
			out = append(out, PeerSpec{Name: name})
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("fabric peer %q: want an IPv4 address or %sNAME", s, dnsPrefix)
		}
		if !usable(a) {
			return nil, fmt.Errorf("fabric peer %q: not a unicast address", s)
		}
		out = append(out, PeerSpec{Addr: a})
	}
	return out, nil
}

// usable says whether a can be a peer's underlay address.
func usable(a netip.Addr) bool {
	return a.Is4() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsMulticast() &&
		a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// validDNSName accepts a host name in the usual letters-digits-hyphens syntax,
// with or without its final dot.
func validDNSName(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Resolver looks names up; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Origin says where a peer came from.
type Origin string

// The origins of a peer.
const (
	OriginConfig Origin = "config"
	OriginDNS    Origin = "dns"
)

// Peer is another node of the fabric.
type Peer struct {
	Addr   netip.Addr
	Origin Origin
	Name   string // the DNS name that gave it, for OriginDNS
}

// PeerSet is the current list of peers. The caller owns the clock and decides
// when to resolve again (Due). A PeerSet is used from one goroutine.
type PeerSet struct {
	addrs    []netip.Addr // configured, sorted and unique
	names    []string     // DNS names, sorted and unique
	resolver Resolver

	// lastGood holds each name's last answer, which stands while lookups fail.
	lastGood map[string][]netip.Addr
	resolved bool
	at       time.Time // of the last Resolve

	peers []Peer
	self  netip.Addr
}

// NewPeerSet makes a set that has not resolved yet: no peers, no self.
func NewPeerSet(specs []PeerSpec, r Resolver) *PeerSet {
	s := &PeerSet{resolver: r, lastGood: make(map[string][]netip.Addr)}
	for _, p := range specs {
		if p.Name != "" {
			s.names = append(s.names, p.Name)
		} else {
			s.addrs = append(s.addrs, p.Addr)
		}
	}
	slices.Sort(s.names)
	s.names = slices.Compact(s.names)
	slices.SortFunc(s.addrs, netip.Addr.Compare)
	s.addrs = slices.Compact(s.addrs)
	return s
}

// Due says whether the DNS names should be looked up again at now.
func (s *PeerSet) Due(now time.Time, every time.Duration) bool {
	return !s.resolved || !now.Before(s.at.Add(every))
}

// Resolve looks the DNS names up and rebuilds the list, own being the node's
// addresses. A name whose lookup fails, or answers no usable IPv4 address, keeps
// its last good answer. The error lists those names, and the peers left out over
// MaxPeers; the list is updated all the same.
func (s *PeerSet) Resolve(ctx context.Context, now time.Time, own []netip.Addr) error {
	s.resolved, s.at = true, now
	var errs []error
	for _, name := range s.names {
		addrs, err := s.lookup(ctx, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.lastGood[name] = addrs
	}

	byAddr := make(map[netip.Addr]Peer)
	for _, a := range s.addrs {
		byAddr[a] = Peer{Addr: a, Origin: OriginConfig}
	}
	for _, name := range s.names {
		for _, a := range s.lastGood[name] {
			if _, ok := byAddr[a]; !ok {
				byAddr[a] = Peer{Addr: a, Origin: OriginDNS, Name: name}
			}
		}
	}

	s.self = netip.Addr{}
	peers := make([]Peer, 0, len(byAddr))
	for a, p := range byAddr {
		if !slices.Contains(own, a) {
			peers = append(peers, p)
		} else if !s.self.IsValid() || a.Less(s.self) {
			s.self = a
		}
	}
	if len(peers) > MaxPeers {
		// Configured peers first, then the lowest addresses, so that every node
		// cuts the same ones.
		slices.SortFunc(peers, func(a, b Peer) int {
			if (a.Origin == OriginConfig) != (b.Origin == OriginConfig) {
				if a.Origin == OriginConfig {
					return -1
				}
				return 1
			}
			return a.Addr.Compare(b.Addr)
		})
		errs = append(errs, fmt.Errorf("fabric peers: %d addresses from DNS left out, over the limit of %d", len(peers)-MaxPeers, MaxPeers))
		peers = peers[:MaxPeers]
	}
	slices.SortFunc(peers, func(a, b Peer) int { return a.Addr.Compare(b.Addr) })
	s.peers = peers
	return errors.Join(errs...)
}

// lookup returns name's usable IPv4 addresses, sorted and unique.
func (s *PeerSet) lookup(ctx context.Context, name string) ([]netip.Addr, error) {
	answer, err := s.resolver.LookupNetIP(ctx, "ip4", name)
	if err != nil {
		return nil, fmt.Errorf("fabric peers %s%s: %w", dnsPrefix, name, err)
	}
	var addrs []netip.Addr
	for _, a := range answer {
		// The resolver may hand IPv4 answers over as IPv4-mapped IPv6.
		if a = a.Unmap(); usable(a) {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("fabric peers %s%s: no IPv4 address in the answer", dnsPrefix, name)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	return slices.Compact(addrs), nil
}

// Peers is the list as of the last Resolve, sorted by address, the node itself
// left out.
func (s *PeerSet) Peers() []Peer { return slices.Clone(s.peers) }

// Addrs is the peers' addresses, as Ensure and SetFlood take them.
func (s *PeerSet) Addrs() []netip.Addr {
	out := make([]netip.Addr, len(s.peers))
	for i, p := range s.peers {
		out[i] = p.Addr
	}
	return out
}

// Self is the node's own address in the list, the lowest if it has several; ok
// is false when none of its addresses is listed.
func (s *PeerSet) Self() (addr netip.Addr, ok bool) { return s.self, s.self.IsValid() }
