package mcast

import (
	"net/netip"
	"slices"
	"testing"
)

func TestGroupRange(t *testing.T) {
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	for _, tc := range []struct {
		first string
		n     int
		want  []netip.Addr
	}{
		{"239.1.1.1", 0, addrs("239.1.1.1")},
		{"239.1.1.1", 1, addrs("239.1.1.1")},
		{"232.1.0.254", 4, addrs("232.1.0.254", "232.1.0.255", "232.1.1.0", "232.1.1.1")},
		{"239.255.255.254", 2, addrs("239.255.255.254", "239.255.255.255")},
	} {
		got, err := GroupRange(netip.MustParseAddr(tc.first), tc.n)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("GroupRange(%s, %d) = %v, %v; want %v", tc.first, tc.n, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		first string
		n     int
	}{
		{"239.255.255.255", 2}, // past the multicast range
		{"10.0.0.1", 1},        // not multicast
		{"ff02::1", 1},         // not IPv4
		{"239.1.1.1", -1},
		{"224.0.0.1", MaxGroups + 1},
	} {
		if got, err := GroupRange(netip.MustParseAddr(tc.first), tc.n); err == nil {
			t.Errorf("GroupRange(%s, %d) = %v, want an error", tc.first, tc.n, got)
		}
	}
}
