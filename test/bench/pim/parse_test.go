package main

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"
)

var (
	testSource = netip.MustParseAddr("10.0.1.2")
	testGroups = []netip.Addr{netip.MustParseAddr("239.4.1.1"), netip.MustParseAddr("239.4.1.2"), netip.MustParseAddr("239.4.1.3")}
)

func TestSNMPCounters(t *testing.T) {
	const snmp = `Tcp: RtoAlgorithm RtoMin RtoMax MaxConn InCsumErrors
Tcp: 1 200 120000 -1 0
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 79 0 4 81 0 0 3 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 0 0 7 0 0
`
	c := snmpCounters(snmp)
	if c["Udp"]["InCsumErrors"] != 3 || c["Udp"]["InErrors"] != 4 || c["UdpLite"]["InCsumErrors"] != 7 || c["Tcp"]["RtoMin"] != 200 {
		t.Errorf("counters %v", c)
	}
	if _, ok := c["Tcp"]["MaxConn"]; ok {
		t.Errorf("a negative counter was read: %v", c["Tcp"])
	}
}

func TestFRRAsserts(t *testing.T) {
	const out = `Interface        Address         Source          Group           State  Winner          Uptime   Timer
eth2             10.0.9.1        10.0.1.2        239.4.1.1       LOSER  10.0.9.2        00:00:03 00:02:57
eth2             10.0.9.1        10.0.1.2        239.4.1.2       WINNER 10.0.9.1        00:00:03 00:02:57
eth1             10.0.12.2       10.0.1.2        239.4.1.3       WINNER 10.0.12.2       00:00:03 00:02:57
`
	got := frrAsserts(out, "eth2", testSource, testGroups)
	want := map[netip.Addr]string{testGroups[0]: "lost to 10.0.9.2", testGroups[1]: "won", testGroups[2]: "none"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	const joins = ` Interface  Address   Source    Group      State      Uptime    Expire  Prune
 eth2       10.0.9.1  *         239.4.1.1  JOIN       00:00:04  03:27   --:--
 eth2       10.0.9.1  10.0.1.2  239.4.1.1  SGRpt(PP)  --:--:--  03:27   00:00
`
	if rows := frrRows(joins, "eth2", "*", testGroups[0]); len(rows) != 1 || rows[0][4] != "JOIN" {
		t.Errorf("(*,G) rows %q", rows)
	}
}

// A pimd 2.3.2 dump, cut short: rb lost the assert of the first group and has the
// ASSERTED flag on the second.
const pimdDump = `Multicast Routing Table ======================================================
----------------------------------- (*,G) ------------------------------------
Source           Group            RP Address       Flags
---------------  ---------------  ---------------  ---------------------------
INADDR_ANY       239.4.1.1        10.0.12.2        WC RP
Joined   oifs: .j.
Pruned   oifs: ...
Leaves   oifs: ...
Asserted oifs: ...
Outgoing oifs: .o.
Incoming     : ..I
----------------------------------- (S,G) ------------------------------------
Source           Group            RP Address       Flags
---------------  ---------------  ---------------  ---------------------------
10.0.1.2         239.4.1.1        10.0.12.2        SPT CACHE SG
Joined   oifs: .j.
Pruned   oifs: ...
Leaves   oifs: ...
Asserted oifs: .a.
Outgoing oifs: ...
Incoming     : I..
----------------------------------- (S,G) ------------------------------------
Source           Group            RP Address       Flags
---------------  ---------------  ---------------  ---------------------------
10.0.1.2         239.4.1.2        10.0.12.2        SPT CACHE ASSERTED SG
Joined   oifs: .j.
Pruned   oifs: ...
Leaves   oifs: ...
Asserted oifs: ...
Outgoing oifs: .o.
Incoming     : I..
Number of Groups: 2
`

func TestPimdAsserts(t *testing.T) {
	got := pimdAsserts(pimdDump, testSource, testGroups)
	want := map[netip.Addr]string{testGroups[0]: "lost", testGroups[1]: "upstream is an assert winner", testGroups[2]: "none"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestCountWords(t *testing.T) {
	if got, want := countWords([]string{"rb", "ra and rb", "rb"}), "rb (2), ra and rb (1)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// The assert network's switch joins ra, rb and rc on a LAN: their interfaces there
// lead to routers, not hosts.
func TestLoadNetworkSwitch(t *testing.T) {
	n, err := loadNetwork("assert", "../../topologies/pim-assert.clab.yml", netip.MustParseAddr("10.0.12.2"), assertASM)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"r1", "ra", "rb", "rc"}; !slices.Equal(n.routers, want) {
		t.Errorf("routers %v, want %v", n.routers, want)
	}
	want := map[string][]string{"r1": {"eth1"}, "rc": {"eth2"}}
	if !reflect.DeepEqual(n.hostIfs, want) {
		t.Errorf("interfaces towards hosts %v, want %v", n.hostIfs, want)
	}
	if got := n.ifaces["ra"]; !slices.Equal(got, []string{"eth1", "eth2"}) {
		t.Errorf("ra's interfaces %v", got)
	}
}
