package fabric

import (
	"net"
	"net/netip"
	"reflect"
	"testing"
)

func mustMAC(s string) mac {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != len(mac{}) {
		panic(s)
	}
	return mac(hw)
}

func entry(m, remote string) fdbEntry {
	return fdbEntry{mustMAC(m), netip.MustParseAddr(remote)}
}

func TestGroupMAC(t *testing.T) {
	for g, want := range map[string]string{
		"224.0.0.13":      "01:00:5e:00:00:0d",
		"239.1.2.3":       "01:00:5e:01:02:03",
		"239.129.2.3":     "01:00:5e:01:02:03", // the 24th bit is dropped
		"232.255.255.255": "01:00:5e:7f:ff:ff",
	} {
		if got := groupMAC(netip.MustParseAddr(g)).String(); got != want {
			t.Errorf("%s: got %s, want %s", g, got, want)
		}
	}
	for m, want := range map[string]bool{
		"01:00:5e:01:02:03": true, "01:00:5e:7f:ff:ff": true, "01:00:5e:80:00:01": false,
		"00:00:00:00:00:00": false, "33:33:00:00:00:01": false, "02:00:5e:01:02:03": false,
	} {
		if got := isGroupMAC(mustMAC(m)); got != want {
			t.Errorf("isGroupMAC(%s) = %v", m, got)
		}
	}
}

func TestDiffFDB(t *testing.T) {
	have := []fdbEntry{
		entry("00:00:00:00:00:00", "10.0.0.2"),
		entry("00:00:00:00:00:00", "10.0.0.3"),
		entry("01:00:5e:01:02:03", "10.0.0.2"),
		entry("02:11:22:33:44:55", "10.0.0.7"), // someone else's
	}
	want := []fdbEntry{
		entry("00:00:00:00:00:00", "10.0.0.3"),
		entry("00:00:00:00:00:00", "10.0.0.4"),
	}
	add, del := diffFDB(want, have, isFlood)
	if w := []fdbEntry{entry("00:00:00:00:00:00", "10.0.0.4")}; !reflect.DeepEqual(add, w) {
		t.Errorf("add: got %v, want %v", add, w)
	}
	if w := []fdbEntry{entry("00:00:00:00:00:00", "10.0.0.2")}; !reflect.DeepEqual(del, w) {
		t.Errorf("delete: got %v, want %v", del, w)
	}

	// Group entries: the flood entries and the unicast one are not the groups'.
	add, del = diffFDB(nil, have, isGroupMAC)
	if w := []fdbEntry{entry("01:00:5e:01:02:03", "10.0.0.2")}; add != nil || !reflect.DeepEqual(del, w) {
		t.Errorf("groups: add %v, delete %v, want delete %v", add, del, w)
	}

	if add, del := diffFDB(want, want, isFlood); add != nil || del != nil {
		t.Errorf("in step: add %v, delete %v", add, del)
	}
}

func TestGroupEntries(t *testing.T) {
	got, err := groupEntries(map[netip.Addr][]netip.Addr{
		// Two groups with one MAC: its entry has the union of their peers.
		netip.MustParseAddr("239.1.2.3"):   addrs("10.0.0.3", "10.0.0.2"),
		netip.MustParseAddr("239.129.2.3"): addrs("10.0.0.2", "10.0.0.4"),
		// No peer wants it: no entry, so it is flooded.
		netip.MustParseAddr("239.5.5.5"): nil,
		// It shares its MAC with 224.0.0.13, the PIM hellos: flooded.
		netip.MustParseAddr("239.0.0.13"): addrs("10.0.0.2"),
		netip.MustParseAddr("224.0.0.22"): addrs("10.0.0.2"),
		// 239.128.1.13 has 01:00:5e:00:01:0d, clear of 224.0.0.0/24.
		netip.MustParseAddr("239.128.1.13"): addrs("10.0.0.5"),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []fdbEntry{
		entry("01:00:5e:00:01:0d", "10.0.0.5"),
		entry("01:00:5e:01:02:03", "10.0.0.2"),
		entry("01:00:5e:01:02:03", "10.0.0.3"),
		entry("01:00:5e:01:02:03", "10.0.0.4"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}

	for _, bad := range []map[netip.Addr][]netip.Addr{
		{netip.MustParseAddr("10.1.2.3"): addrs("10.0.0.2")},
		{netip.MustParseAddr("ff0e::1"): addrs("10.0.0.2")},
		{netip.MustParseAddr("239.1.2.3"): addrs("fd00::2")},
		{netip.MustParseAddr("239.1.2.3"): {{}}},
	} {
		if _, err := groupEntries(bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func TestFloodEntries(t *testing.T) {
	got, err := floodEntries(addrs("10.0.0.2", "10.0.0.3"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []fdbEntry{entry("00:00:00:00:00:00", "10.0.0.2"), entry("00:00:00:00:00:00", "10.0.0.3")}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := floodEntries(addrs("224.0.0.1")); err == nil {
		t.Error("a group as peer: no error")
	}
}

func TestFabricMTU(t *testing.T) {
	for _, tt := range []struct {
		configured, underlay, want int
		err                        bool
	}{
		{0, 1500, 1450, false},
		{0, 9001, 8951, false},
		{1400, 1500, 1400, false},
		{0, 100, 0, true},
	} {
		got, err := fabricMTU(tt.configured, tt.underlay)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("fabricMTU(%d, %d) = %d, %v", tt.configured, tt.underlay, got, err)
		}
	}
}
