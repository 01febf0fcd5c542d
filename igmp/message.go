// Package igmp is IGMP for a multicast router: the v1/v2/v3 wire codec and the
// router side of RFC 3376 (querier election, group and source state, host
// compatibility) as a pure state machine driven by events and an injected clock.
package igmp

import (
	"net/netip"
	"time"
)

// IGMP message types (RFC 3376 section 4, RFC 2236, RFC 1112).
const (
	TypeQuery    = 0x11
	TypeV1Report = 0x12
	TypeV2Report = 0x16
	TypeLeave    = 0x17
	TypeV3Report = 0x22
)

// Well-known groups.
var (
	AllSystems   = netip.AddrFrom4([4]byte{224, 0, 0, 1})
	AllRouters   = netip.AddrFrom4([4]byte{224, 0, 0, 2})
	AllV3Routers = netip.AddrFrom4([4]byte{224, 0, 0, 22})
)

// Query is a Membership Query of any version. Version is 1 (max resp code 0, 8
// bytes), 2 (8 bytes) or 3 (12 bytes or more), as RFC 3376 section 7.1 tells them apart.
type Query struct {
	Version     int
	MaxResp     time.Duration
	Group       netip.Addr // the zero Addr (or 0.0.0.0 on the wire) for a general query
	SuppressRtr bool       // S flag (v3)
	QRV         int        // querier's robustness variable (v3), 0 when unset
	QQI         time.Duration
	Sources     []netip.Addr
}

// RecordType is the type of a v3 group record (RFC 3376 section 4.2.12).
type RecordType uint8

const (
	ModeIsInclude   RecordType = 1
	ModeIsExclude   RecordType = 2
	ChangeToInclude RecordType = 3
	ChangeToExclude RecordType = 4
	AllowNewSources RecordType = 5
	BlockOldSources RecordType = 6
)

// Record is one group record of a v3 report.
type Record struct {
	Type    RecordType
	Group   netip.Addr
	Sources []netip.Addr
	AuxData []byte // kept as received; length in 32-bit words on the wire
}

// Report is a membership report: v1 or v2 name one group; v3 carries records.
type Report struct {
	Version int
	Group   netip.Addr // v1, v2
	Records []Record   // v3
}

// Leave is an IGMPv2 Leave Group message.
type Leave struct {
	Group netip.Addr
}
