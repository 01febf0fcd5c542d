package mroute

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

// The layouts below are written out from <linux/mroute.h> with literal offsets,
// independently of the constants the encoders use.

func TestKernelStructSizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"vifctl", sizeofVifctl, 16},
		{"mfcctl", sizeofMfcctl, 60},
		{"sioc_sg_req", sizeofSiocSGReq, 32},
		{"sioc_vif_req", sizeofSiocVIFReq, 40},
		{"igmpmsg", sizeofIgmpmsg, 20},
		{"rtmsg", sizeofRtmsg, 12},
		{"rtnexthop", sizeofRtnexthop, 8},
		{"rta_mfc_stats", sizeofMfcStats, 24},
	} {
		if c.got != c.want {
			t.Errorf("sizeof(struct %s) = %d, kernel has %d", c.name, c.got, c.want)
		}
	}
}

func TestKernelStructOffsets(t *testing.T) {
	for _, c := range []struct {
		field     string
		got, want int
	}{
		{"vifctl.vifc_vifi", vifctlVifi, 0},
		{"vifctl.vifc_flags", vifctlFlags, 2},
		{"vifctl.vifc_threshold", vifctlThreshold, 3},
		{"vifctl.vifc_rate_limit", vifctlRateLimit, 4},
		{"vifctl.vifc_lcl_ifindex", vifctlLocal, 8},
		{"vifctl.vifc_rmt_addr", vifctlRemote, 12},
		{"mfcctl.mfcc_origin", mfcctlOrigin, 0},
		{"mfcctl.mfcc_mcastgrp", mfcctlGroup, 4},
		{"mfcctl.mfcc_parent", mfcctlParent, 8},
		{"mfcctl.mfcc_ttls", mfcctlTTLs, 10},
		{"mfcctl.mfcc_pkt_cnt", mfcctlPktCnt, 44},
		{"mfcctl.mfcc_byte_cnt", mfcctlByteCnt, 48},
		{"mfcctl.mfcc_wrong_if", mfcctlWrongIf, 52},
		{"mfcctl.mfcc_expire", mfcctlExpire, 56},
		{"sioc_sg_req.src", sgReqSource, 0},
		{"sioc_sg_req.grp", sgReqGroup, 4},
		{"sioc_sg_req.pktcnt", sgReqPackets, 8},
		{"sioc_sg_req.bytecnt", sgReqBytes, 16},
		{"sioc_sg_req.wrong_if", sgReqWrongIf, 24},
		{"sioc_vif_req.vifi", vifReqVifi, 0},
		{"sioc_vif_req.icount", vifReqPacketsIn, 8},
		{"sioc_vif_req.ocount", vifReqPacketsOut, 16},
		{"sioc_vif_req.ibytes", vifReqBytesIn, 24},
		{"sioc_vif_req.obytes", vifReqBytesOut, 32},
		{"igmpmsg.im_msgtype", igmpmsgType, 8},
		{"igmpmsg.im_mbz", igmpmsgMbz, 9},
		{"igmpmsg.im_vif", igmpmsgVIF, 10},
		{"igmpmsg.im_vif_hi", igmpmsgVIFHigh, 11},
		{"igmpmsg.im_src", igmpmsgSource, 12},
		{"igmpmsg.im_dst", igmpmsgGroup, 16},
	} {
		if c.got != c.want {
			t.Errorf("offsetof(%s) = %d, kernel has %d", c.field, c.got, c.want)
		}
	}
	// The TTL array must end where the padding before the counters starts.
	if end := mfcctlTTLs + MaxVIFs; end+2 != mfcctlPktCnt {
		t.Errorf("mfcc_ttls ends at %d; want 2 bytes of padding before mfcc_pkt_cnt at %d", end, mfcctlPktCnt)
	}
}

func TestEncodeVIF(t *testing.T) {
	got, err := encodeVIF(VIF{Index: 5, IfIndex: 0x01020304, Threshold: 0})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 16)
	binary.NativeEndian.PutUint16(want[0:], 5)
	want[2] = 0x8 // VIFF_USE_IFINDEX
	want[3] = 1   // threshold 0 becomes 1
	binary.NativeEndian.PutUint32(want[8:], 0x01020304)
	if !bytes.Equal(got[:], want) {
		t.Errorf("vifctl\n got %x\nwant %x", got, want)
	}

	got, err = encodeVIF(VIF{Index: 31, IfIndex: 99, Register: true, Threshold: 7})
	if err != nil {
		t.Fatal(err)
	}
	want = make([]byte, 16)
	binary.NativeEndian.PutUint16(want[0:], 31)
	want[2] = 0x4 // VIFF_REGISTER, no ifindex
	want[3] = 7
	if !bytes.Equal(got[:], want) {
		t.Errorf("register vifctl\n got %x\nwant %x", got, want)
	}
}

func TestEncodeVIFRejects(t *testing.T) {
	for _, c := range []struct {
		vif  VIF
		want string
	}{
		{VIF{Index: 32, IfIndex: 2}, "vif 32: index out of range"},
		{VIF{Index: 1, IfIndex: 0}, "vif 1: invalid ifindex 0"},
		{VIF{Index: 1, IfIndex: -3}, "vif 1: invalid ifindex -3"},
		{VIF{Index: 1, IfIndex: 1 << 40}, "invalid ifindex"},
	} {
		_, err := encodeVIF(c.vif)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("encodeVIF(%+v) = %v, want error containing %q", c.vif, err, c.want)
		}
	}
	if _, err := encodeVIFIndex(MaxVIFs); err == nil {
		t.Error("encodeVIFIndex(32) succeeded")
	}
}

func TestEncodeMFC(t *testing.T) {
	e := MFC{
		Source: netip.MustParseAddr("10.1.2.3"),
		Group:  netip.MustParseAddr("239.4.5.6"),
		IIF:    2,
		OIFs:   []uint16{0, 7, 31},
	}
	got, err := encodeMFC(&e)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 60)
	copy(want[0:], []byte{10, 1, 2, 3})
	copy(want[4:], []byte{239, 4, 5, 6})
	binary.NativeEndian.PutUint16(want[8:], 2)
	want[10+0], want[10+7], want[10+31] = 1, 1, 1
	if !bytes.Equal(got[:], want) {
		t.Errorf("mfcctl\n got %x\nwant %x", got, want)
	}

	star := MFC{Source: netip.IPv4Unspecified(), Group: netip.MustParseAddr("::ffff:239.1.1.1"), IIF: 0}
	if _, err := encodeMFC(&star); err != nil {
		t.Errorf("(*,G) with a v4-mapped group: %v", err)
	}

	del, err := encodeSourceGroup(e.Source, e.Group)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(del[:8], want[:8]) || !bytes.Equal(del[8:], make([]byte, 52)) {
		t.Errorf("delete mfcctl = %x", del)
	}
}

func TestEncodeMFCRejects(t *testing.T) {
	src, grp := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("239.0.0.1")
	for _, c := range []struct {
		name string
		e    MFC
		want string
	}{
		{"zero source", MFC{Group: grp}, "source (none): not an IPv4 address"},
		{"v6 source", MFC{Source: netip.MustParseAddr("2001:db8::1"), Group: grp}, "not an IPv4 address"},
		{"multicast source", MFC{Source: grp, Group: grp}, "a multicast address cannot be a source"},
		{"unicast group", MFC{Source: src, Group: src}, "group 10.0.0.1: not an IPv4 multicast address"},
		{"v6 group", MFC{Source: src, Group: netip.MustParseAddr("ff02::1")}, "not an IPv4 multicast address"},
		{"iif", MFC{Source: src, Group: grp, IIF: 32}, "iif vif 32 out of range"},
		{"oif", MFC{Source: src, Group: grp, OIFs: []uint16{1, 40}}, "oif vif 40 out of range"},
	} {
		_, err := encodeMFC(&c.e)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: encodeMFC = %v, want error containing %q", c.name, err, c.want)
		}
	}
}

func TestSGReq(t *testing.T) {
	req, err := encodeSGReq(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("232.1.1.1"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(req[:8], []byte{192, 0, 2, 1, 232, 1, 1, 1}) || !bytes.Equal(req[8:], make([]byte, 24)) {
		t.Errorf("sioc_sg_req = %x", req)
	}
	binary.NativeEndian.PutUint64(req[8:], 11)
	binary.NativeEndian.PutUint64(req[16:], 2200)
	binary.NativeEndian.PutUint64(req[24:], 3)
	if got, want := decodeSGReq(&req), (SGCount{Packets: 11, Bytes: 2200, WrongIf: 3}); got != want {
		t.Errorf("decodeSGReq = %+v, want %+v", got, want)
	}
}

func TestVIFReq(t *testing.T) {
	req, err := encodeVIFReq(9)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 40)
	binary.NativeEndian.PutUint16(want, 9)
	if !bytes.Equal(req[:], want) {
		t.Errorf("sioc_vif_req = %x, want %x", req, want)
	}
	for i, v := range []uint64{1, 2, 300, 400} {
		binary.NativeEndian.PutUint64(req[8+8*i:], v)
	}
	if got, want := decodeVIFReq(&req), (VIFCount{PacketsIn: 1, PacketsOut: 2, BytesIn: 300, BytesOut: 400}); got != want {
		t.Errorf("decodeVIFReq = %+v, want %+v", got, want)
	}
	if _, err := encodeVIFReq(32); err == nil {
		t.Error("encodeVIFReq(32) succeeded")
	}
}
