package fabric

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

var _ Resolver = net.DefaultResolver

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestParsePeers(t *testing.T) {
	got, err := ParsePeers([]string{"10.0.1.5", "dns:mrouterd-fabric.kube-system.svc.cluster.local", "dns:peers."})
	if err != nil {
		t.Fatal(err)
	}
	want := []PeerSpec{
		{Addr: netip.MustParseAddr("10.0.1.5")},
		{Name: "mrouterd-fabric.kube-system.svc.cluster.local"},
		{Name: "peers."},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}

	for _, bad := range []string{"", "10.0.1.5/24", "fd00::1", "::ffff:10.0.0.1", " 10.0.1.5", "node-a", "dns:",
		"dns:-a.b", "dns:a..b", "dns:a_b", "dns:" + strings.Repeat("a", 64), "DNS:peers", "0.0.0.0", "127.0.0.1",
		"239.1.2.3", "255.255.255.255"} {
		_, err := ParsePeers([]string{"10.0.0.1", bad})
		if err == nil {
			t.Errorf("%q: no error", bad)
		} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
			t.Errorf("%q: error does not name it: %v", bad, err)
		}
	}

	many := make([]string, MaxPeers+1)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}).String()
	}
	if _, err := ParsePeers(many); err == nil {
		t.Errorf("%d peers: no error", len(many))
	}
}

// fakeResolver answers from a table; a name missing from it fails.
type fakeResolver struct {
	answers map[string][]netip.Addr
	asked   []string
}

func (r *fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.asked = append(r.asked, network+" "+host)
	a, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return a, nil
}

func mustParse(t *testing.T, specs ...string) []PeerSpec {
	t.Helper()
	p, err := ParsePeers(specs)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPeerSetResolve(t *testing.T) {
	r := &fakeResolver{answers: map[string][]netip.Addr{
		// Mapped, IPv6 and duplicate answers, an address also configured, and
		// the node itself.
		"peers": {netip.MustParseAddr("::ffff:10.0.0.3"), netip.MustParseAddr("fd00::3"), netip.MustParseAddr("10.0.0.2"),
			netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.0.1")},
	}}
	s := NewPeerSet(mustParse(t, "10.0.0.9", "dns:peers", "10.0.0.9"), r)
	if _, ok := s.Self(); ok || len(s.Peers()) != 0 {
		t.Fatalf("before Resolve: self or peers")
	}
	t0 := time.Unix(1000, 0)
	if err := s.Resolve(context.Background(), t0, addrs("10.0.0.1", "192.168.1.1")); err != nil {
		t.Fatal(err)
	}
	want := []Peer{
		{Addr: netip.MustParseAddr("10.0.0.2"), Origin: OriginDNS, Name: "peers"},
		{Addr: netip.MustParseAddr("10.0.0.3"), Origin: OriginDNS, Name: "peers"},
		{Addr: netip.MustParseAddr("10.0.0.9"), Origin: OriginConfig},
	}
	if got := s.Peers(); !reflect.DeepEqual(got, want) {
		t.Errorf("peers: got %+v, want %+v", got, want)
	}
	if self, ok := s.Self(); !ok || self != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("self: got %v %v, want 10.0.0.1", self, ok)
	}
	if got, want := s.Addrs(), addrs("10.0.0.2", "10.0.0.3", "10.0.0.9"); !reflect.DeepEqual(got, want) {
		t.Errorf("addresses: got %v, want %v", got, want)
	}
	if !reflect.DeepEqual(r.asked, []string{"ip4 peers"}) {
		t.Errorf("asked %q", r.asked)
	}

	// The lookup fails: the last good answer stands, and the error names it.
	delete(r.answers, "peers")
	err := s.Resolve(context.Background(), t0.Add(time.Minute), addrs("10.0.0.1"))
	if err == nil || !strings.Contains(err.Error(), "dns:peers") {
		t.Errorf("failed lookup: error %v", err)
	}
	if got := s.Peers(); !reflect.DeepEqual(got, want) {
		t.Errorf("after a failed lookup: got %+v, want %+v", got, want)
	}

	// An answer without a usable IPv4 address is a failure too.
	r.answers["peers"] = addrs("fd00::3", "127.0.0.1")
	if err := s.Resolve(context.Background(), t0.Add(2*time.Minute), addrs("10.0.0.1")); err == nil {
		t.Errorf("no IPv4 answer: no error")
	}
	if got := s.Peers(); !reflect.DeepEqual(got, want) {
		t.Errorf("after an empty answer: got %+v, want %+v", got, want)
	}

	// A new answer replaces the old one.
	r.answers["peers"] = addrs("10.0.0.4", "10.0.0.1")
	if err := s.Resolve(context.Background(), t0.Add(3*time.Minute), addrs("10.0.0.1")); err != nil {
		t.Fatal(err)
	}
	want = []Peer{
		{Addr: netip.MustParseAddr("10.0.0.4"), Origin: OriginDNS, Name: "peers"},
		{Addr: netip.MustParseAddr("10.0.0.9"), Origin: OriginConfig},
	}
	if got := s.Peers(); !reflect.DeepEqual(got, want) {
		t.Errorf("new answer: got %+v, want %+v", got, want)
	}
}

func TestPeerSetSelf(t *testing.T) {
	s := NewPeerSet(mustParse(t, "10.0.0.5", "10.0.0.3", "10.0.0.7"), &fakeResolver{})
	// The node holds two listed addresses: the lowest is itself, neither is a peer.
	if err := s.Resolve(context.Background(), time.Time{}, addrs("10.0.0.7", "10.0.0.3")); err != nil {
		t.Fatal(err)
	}
	if self, ok := s.Self(); !ok || self != netip.MustParseAddr("10.0.0.3") {
		t.Errorf("self: got %v %v", self, ok)
	}
	if got, want := s.Peers(), []Peer{{Addr: netip.MustParseAddr("10.0.0.5"), Origin: OriginConfig}}; !reflect.DeepEqual(got, want) {
		t.Errorf("peers: got %+v, want %+v", got, want)
	}
	// The address moved away: the node is no longer in the list.
	if err := s.Resolve(context.Background(), time.Time{}, addrs("192.168.0.1")); err != nil {
		t.Fatal(err)
	}
	if self, ok := s.Self(); ok {
		t.Errorf("self: got %v, want none", self)
	}
	if got := len(s.Peers()); got != 3 {
		t.Errorf("%d peers, want 3", got)
	}
}

func TestPeerSetCap(t *testing.T) {
	var answer []netip.Addr
	for i := range MaxPeers + 10 {
		answer = append(answer, netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}))
	}
	s := NewPeerSet(mustParse(t, "10.9.9.9", "dns:big"), &fakeResolver{answers: map[string][]netip.Addr{"big": answer}})
	err := s.Resolve(context.Background(), time.Time{}, nil)
	if err == nil || !strings.Contains(err.Error(), "11 addresses") {
		t.Errorf("error %v, want 11 left out", err)
	}
	peers := s.Peers()
	if len(peers) != MaxPeers {
		t.Fatalf("%d peers, want %d", len(peers), MaxPeers)
	}
	// The configured peer stays; the highest DNS addresses go.
	if last := peers[len(peers)-1]; last.Addr != netip.MustParseAddr("10.9.9.9") || last.Origin != OriginConfig {
		t.Errorf("last peer %+v, want the configured one", last)
	}
	if p := peers[len(peers)-2]; p.Addr != answer[MaxPeers-2] {
		t.Errorf("last DNS peer %v, want %v", p.Addr, answer[MaxPeers-2])
	}
}

func TestPeerSetDue(t *testing.T) {
	s := NewPeerSet(nil, &fakeResolver{})
	t0 := time.Unix(1000, 0)
	if !s.Due(t0, time.Minute) {
		t.Error("never resolved: not due")
	}
	if err := s.Resolve(context.Background(), t0, nil); err != nil {
		t.Fatal(err)
	}
	if s.Due(t0.Add(59*time.Second), time.Minute) {
		t.Error("due before the interval")
	}
	if !s.Due(t0.Add(time.Minute), time.Minute) {
		t.Error("not due after the interval")
	}
}

func TestResolveErrorUnwraps(t *testing.T) {
	s := NewPeerSet(mustParse(t, "dns:gone"), &fakeResolver{})
	err := s.Resolve(context.Background(), time.Time{}, nil)
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("error %v does not carry the resolver's", err)
	}
}
