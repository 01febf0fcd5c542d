package mrib

import (
	"net/netip"
	"testing"

	"github.com/mrouterd/mrouterd/igmp"
	"github.com/mrouterd/mrouterd/pim"
)

func TestNullRegisterAndInnerKey(t *testing.T) {
	key := Key{Source: netip.MustParseAddr("10.0.1.2"), Group: netip.MustParseAddr("239.1.1.1")}
	reg := nullRegister(key)
	b, err := reg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m, err := pim.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := innerKey(m.(*pim.Register).Packet)
	if !ok || got != key || !m.(*pim.Register).Null {
		t.Fatalf("null register carries %v %v", got, ok)
	}
	if igmp.Checksum(reg.Packet) != 0 {
		t.Fatal("the null register's IP header checksum is wrong")
	}
	if _, ok := innerKey([]byte{0x45, 0}); ok {
		t.Fatal("a truncated packet gave an (S,G)")
	}
	if _, ok := innerKey(reg.Packet); !ok {
		t.Fatal("a header-only packet is what a null register carries")
	}
}
