package igmp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"time"
)

// Reasons a packet is rejected, one counter each. DecodeError.Reason is one of these.
const (
	ReasonShort           = "short"            // fewer bytes than the fixed header needs
	ReasonChecksum        = "checksum"         // IGMP checksum does not verify
	ReasonUnknownType     = "unknown-type"     // not a query, report or leave (DVMRP, mtrace, ...)
	ReasonBadLength       = "bad-length"       // a length no IGMP message can have
	ReasonTruncatedRecord = "truncated-record" // a record, source list or aux data runs past the end
	ReasonTooManySources  = "too-many-sources" // a source count no IPv4 packet could carry
	ReasonBadGroup        = "bad-group"        // group not multicast (or not 0.0.0.0 in a query)
	ReasonBadRecordType   = "bad-record-type"  // v3 record type outside 1-6
	ReasonBadSource       = "bad-source"       // source not a unicast address a host could send from
	ReasonBadIPHeader     = "bad-ip-header"    // not IPv4, bad header length, fragment
	ReasonIPChecksum      = "ip-checksum"      // IPv4 header checksum does not verify
	ReasonNotIGMP         = "not-igmp"         // IP protocol is not 2 (a kernel upcall, say)
	ReasonTTL             = "ttl"              // TTL other than 1: not from this link
)

// DecodeError is why Decode or DecodeIPv4 rejected a packet.
type DecodeError struct {
	Reason string // one of the Reason constants, fit for a counter label
	Detail string // specifics for a log line; may be empty
}

func (e *DecodeError) Error() string {
	if e.Detail == "" {
		return "igmp: " + e.Reason
	}
	return "igmp: " + e.Reason + ": " + e.Detail
}

func decodeError(reason, format string, args ...any) *DecodeError {
	return &DecodeError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

const (
	headerLen        = 8  // type, code, checksum, group (or reserved and record count)
	v3QueryHeaderLen = 12 // header plus Resv/S/QRV, QQIC and source count
	recordHeaderLen  = 8  // record type, aux data length, source count, group

	ipv4MinHeaderLen = 20
	protocolIGMP     = 2

	// The longest IGMP message: an IPv4 packet's largest payload behind the
	// shortest header. Any count implying more is a lie, whatever the buffer holds.
	maxMessageLen    = 65535 - ipv4MinHeaderLen
	maxQuerySources  = (maxMessageLen - v3QueryHeaderLen) / 4
	maxRecordSources = (maxMessageLen - headerLen - recordHeaderLen) / 4

	respUnit = 100 * time.Millisecond // max response time unit, v2 and v3
	qqiUnit  = time.Second

	// Largest value of the 8-bit floating-point code: mantissa 0xf, exponent 7.
	floatCodeMax = 0x1f << 10
)

// Decode parses an IGMP message (the IP payload) into a *Query, *Report or
// *Leave. It verifies the checksum and every count against the length before
// allocating, and rejects what a router must not act on with a *DecodeError.
// Bytes past the end of a message are ignored, as the RFCs require.
func Decode(b []byte) (any, error) {
	if len(b) < headerLen {
		return nil, decodeError(ReasonShort, "%d bytes", len(b))
	}
	if len(b) > maxMessageLen {
		return nil, decodeError(ReasonBadLength, "%d bytes, more than an IPv4 packet carries", len(b))
	}
	if Checksum(b) != 0 {
		return nil, decodeError(ReasonChecksum, "type 0x%02x, %d bytes", b[0], len(b))
	}
	switch b[0] {
	case TypeQuery:
		q, err := decodeQuery(b)
		if err != nil {
			return nil, err // not q: a nil *Query in an interface is not nil
		}
		return q, nil
	case TypeV1Report, TypeV2Report:
		group, err := decodeGroup(b[4:8])
		if err != nil {
			return nil, err
		}
		version := 2
		if b[0] == TypeV1Report {
			version = 1
		}
		return &Report{Version: version, Group: group}, nil
	case TypeLeave:
		group, err := decodeGroup(b[4:8])
		if err != nil {
			return nil, err
		}
		return &Leave{Group: group}, nil
	case TypeV3Report:
		r, err := decodeV3Report(b)
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	return nil, decodeError(ReasonUnknownType, "type 0x%02x", b[0])
}

// decodeQuery tells the version from the length and max resp code (RFC 3376 7.1).
func decodeQuery(b []byte) (*Query, error) {
	if len(b) > headerLen && len(b) < v3QueryHeaderLen {
		return nil, decodeError(ReasonBadLength, "%d-byte query", len(b))
	}
	group := netip.AddrFrom4([4]byte(b[4:8]))
	switch {
	case group.IsUnspecified():
		group = netip.Addr{}
	case !group.IsMulticast():
		return nil, decodeError(ReasonBadGroup, "query for %v", group)
	}
	if len(b) == headerLen {
		q := &Query{Version: 2, MaxResp: time.Duration(b[1]) * respUnit, Group: group}
		if b[1] == 0 {
			q.Version = 1
		}
		return q, nil
	}
	q := &Query{
		Version:     3,
		MaxResp:     MaxRespTime(b[1]),
		Group:       group,
		SuppressRtr: b[8]&0x08 != 0,
		QRV:         int(b[8] & 0x07),
		QQI:         QQITime(b[9]),
	}
	n := int(binary.BigEndian.Uint16(b[10:12]))
	if n > maxQuerySources {
		return nil, decodeError(ReasonTooManySources, "query claims %d sources", n)
	}
	if v3QueryHeaderLen+4*n > len(b) {
		return nil, decodeError(ReasonTruncatedRecord, "query claims %d sources in %d bytes", n, len(b))
	}
	if n > 0 && !group.IsValid() {
		return nil, decodeError(ReasonBadGroup, "general query lists %d sources", n)
	}
	var err error
	if q.Sources, err = decodeSources(b[v3QueryHeaderLen:], n); err != nil {
		return nil, err
	}
	return q, nil
}

func decodeV3Report(b []byte) (*Report, error) {
	count := int(binary.BigEndian.Uint16(b[6:8]))
	rest := b[headerLen:]
	// Every record takes at least its header, so this bounds the allocation below.
	if count*recordHeaderLen > len(rest) {
		return nil, decodeError(ReasonTruncatedRecord, "report claims %d records in %d bytes", count, len(b))
	}
	r := &Report{Version: 3}
	if count > 0 {
		r.Records = make([]Record, 0, count)
	}
	for i := range count {
		if len(rest) < recordHeaderLen {
			return nil, decodeError(ReasonTruncatedRecord, "record %d: header cut short", i+1)
		}
		rec := Record{Type: RecordType(rest[0])}
		auxLen := int(rest[1]) * 4
		n := int(binary.BigEndian.Uint16(rest[2:4]))
		if rec.Type < ModeIsInclude || rec.Type > BlockOldSources {
			return nil, decodeError(ReasonBadRecordType, "record %d: type %d", i+1, rec.Type)
		}
		var err error
		if rec.Group, err = decodeGroup(rest[4:8]); err != nil {
			return nil, err
		}
		if n > maxRecordSources {
			return nil, decodeError(ReasonTooManySources, "record %d claims %d sources", i+1, n)
		}
		size := recordHeaderLen + 4*n + auxLen
		if size > len(rest) {
			return nil, decodeError(ReasonTruncatedRecord,
				"record %d: %d sources and %d aux bytes need %d bytes, %d left", i+1, n, auxLen, size, len(rest))
		}
		if rec.Sources, err = decodeSources(rest[recordHeaderLen:], n); err != nil {
			return nil, err
		}
		if auxLen > 0 {
			// Copied: the caller's buffer is reused for the next packet.
			rec.AuxData = append([]byte(nil), rest[size-auxLen:size]...)
		}
		r.Records = append(r.Records, rec)
		rest = rest[size:]
	}
	return r, nil
}

// decodeGroup reads a group address that must be multicast.
func decodeGroup(b []byte) (netip.Addr, error) {
	group := netip.AddrFrom4([4]byte(b))
	if !group.IsMulticast() {
		return netip.Addr{}, decodeError(ReasonBadGroup, "group %v", group)
	}
	return group, nil
}

// decodeSources reads n sources that the caller has checked fit in b.
func decodeSources(b []byte, n int) ([]netip.Addr, error) {
	if n == 0 {
		return nil, nil
	}
	sources := make([]netip.Addr, n)
	for i := range sources {
		sources[i] = netip.AddrFrom4([4]byte(b[4*i : 4*i+4]))
		if !validSource(sources[i]) {
			return nil, decodeError(ReasonBadSource, "source %v", sources[i])
		}
	}
	return sources, nil
}

// validSource rejects what the kernel treats as a martian source (this-network,
// loopback, multicast, limited broadcast): no data can ever arrive from it.
func validSource(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	first := a.As4()[0]
	return first != 0 && !a.IsLoopback() && !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// DecodeIPv4 parses a whole IPv4 packet as a raw IGMP socket returns it and
// decodes its IGMP message. IP options such as Router Alert are allowed. A TTL
// other than 1 is rejected: IGMP is always sent with TTL 1, so such a packet
// was forwarded to us or forged. src and dst are set whenever the IP header
// could be read, for logging a rejection.
func DecodeIPv4(pkt []byte) (src, dst netip.Addr, msg any, err error) {
	if len(pkt) < ipv4MinHeaderLen {
		return src, dst, nil, decodeError(ReasonShort, "%d-byte IP packet", len(pkt))
	}
	if version := pkt[0] >> 4; version != 4 {
		return src, dst, nil, decodeError(ReasonBadIPHeader, "IP version %d", version)
	}
	hlen := int(pkt[0]&0x0f) * 4
	if hlen < ipv4MinHeaderLen {
		return src, dst, nil, decodeError(ReasonBadIPHeader, "IP header length %d", hlen)
	}
	if hlen > len(pkt) {
		return src, dst, nil, decodeError(ReasonShort, "IP header of %d bytes in %d", hlen, len(pkt))
	}
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	if total < hlen {
		return src, dst, nil, decodeError(ReasonBadIPHeader, "IP total length %d, header %d", total, hlen)
	}
	if total > len(pkt) {
		return src, dst, nil, decodeError(ReasonShort, "IP total length %d, %d bytes read", total, len(pkt))
	}
	if Checksum(pkt[:hlen]) != 0 {
		return src, dst, nil, decodeError(ReasonIPChecksum, "")
	}
	src = netip.AddrFrom4([4]byte(pkt[12:16]))
	dst = netip.AddrFrom4([4]byte(pkt[16:20]))
	// More-fragments flag or an offset: a piece of a message, never a whole one.
	if binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 {
		return src, dst, nil, decodeError(ReasonBadIPHeader, "fragment")
	}
	if pkt[9] != protocolIGMP {
		return src, dst, nil, decodeError(ReasonNotIGMP, "IP protocol %d", pkt[9])
	}
	if pkt[8] != 1 {
		return src, dst, nil, decodeError(ReasonTTL, "TTL %d", pkt[8])
	}
	msg, err = Decode(pkt[hlen:total])
	return src, dst, msg, err
}

// RouterAlert returns the IP Router Alert option (RFC 2113) with value 0,
// which every IGMP message is sent with.
func RouterAlert() []byte {
	return []byte{0x94, 0x04, 0x00, 0x00}
}

// Checksum is the Internet checksum (RFC 1071) of b. Over a message whose
// checksum field is filled in correctly it is 0.
func Checksum(b []byte) uint16 {
	var sum uint64 // no overflow for any slice that fits in memory
	for len(b) >= 2 {
		sum += uint64(b[0])<<8 | uint64(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// The v3 max resp code and QQIC share an 8-bit format (RFC 3376 4.1.1, 4.1.7):
// below 128 the code is the value; from 128 on it is 1|exp(3)|mant(4) standing
// for (mant|0x10) << (exp+3), up to 31744. Every code stands for a distinct
// value, increasing with the code, so decoding then encoding any code gives it back.

// floatCode encodes a positive count of units, rounding down to the largest
// value the format holds that is not above units.
func floatCode(units int64) uint8 {
	switch {
	case units < 128:
		return uint8(units)
	case units >= floatCodeMax:
		return 0xff
	}
	exp := bits.Len64(uint64(units)) - 8 // 0..7, as 128 <= units < 2^15
	mant := units >> (exp + 3) & 0x0f
	return 0x80 | uint8(exp)<<4 | uint8(mant)
}

func floatValue(code uint8) int64 {
	if code < 128 {
		return int64(code)
	}
	exp := code >> 4 & 0x07
	mant := int64(code & 0x0f)
	return (mant | 0x10) << (exp + 3)
}

// durationCode encodes d in units, never above d, except that a positive d
// shorter than one unit becomes 1: a zero time would ask hosts to answer at
// once, or announce no query interval, which d does not mean.
func durationCode(d, unit time.Duration) uint8 {
	if d <= 0 {
		return 0
	}
	return floatCode(max(int64(d/unit), 1))
}

// MaxRespCode is the v3 Max Resp Code for d (units of 1/10 s): the code whose
// time is the longest not exceeding d, 1 for 0 < d < 100ms, 0 for d <= 0, and
// 0xff (3174.4s) for anything longer.
func MaxRespCode(d time.Duration) uint8 { return durationCode(d, respUnit) }

// MaxRespTime is the time a v3 Max Resp Code stands for.
func MaxRespTime(code uint8) time.Duration { return time.Duration(floatValue(code)) * respUnit }

// QQICode is the Querier's Query Interval Code for d (units of 1 s), rounded
// like MaxRespCode: 1 for 0 < d < 1s, 0xff (31744s) for anything longer.
func QQICode(d time.Duration) uint8 { return durationCode(d, qqiUnit) }

// QQITime is the interval a QQIC stands for.
func QQITime(code uint8) time.Duration { return time.Duration(floatValue(code)) * qqiUnit }

// Marshal encodes the query in the format of q.Version, checksum included.
// Fields the version has no room for (MaxResp in v1; S, QRV and QQI in v1
// and v2) are left out; sources, which change what is asked, are an error
// before v3. A v2 max response time is whole tenths of a second from 0.1s to
// 25.5s, rounded down and clamped into that range. A QRV above 7 is sent as 0,
// as RFC 3376 4.1.6 prescribes.
func (q *Query) Marshal() ([]byte, error) {
	var group [4]byte
	if q.Group.IsValid() {
		if !q.Group.Is4() || !(q.Group.IsMulticast() || q.Group.IsUnspecified()) {
			return nil, fmt.Errorf("igmp: query for %v, not an IPv4 multicast group", q.Group)
		}
		group = q.Group.As4()
	}
	if q.Version != 3 && len(q.Sources) > 0 {
		return nil, fmt.Errorf("igmp: a v%d query cannot carry sources", q.Version)
	}
	var b []byte
	switch q.Version {
	case 1:
		b = make([]byte, headerLen)
	case 2:
		if q.MaxResp <= 0 {
			return nil, errors.New("igmp: a v2 query needs a max response time; zero marks a v1 query")
		}
		b = make([]byte, headerLen)
		b[1] = uint8(min(max(q.MaxResp/respUnit, 1), 255))
	case 3:
		if len(q.Sources) > 0 && !q.Group.IsValid() {
			return nil, errors.New("igmp: a general query cannot carry sources")
		}
		if len(q.Sources) > maxQuerySources {
			return nil, fmt.Errorf("igmp: %d sources do not fit in one query", len(q.Sources))
		}
		if q.QRV < 0 {
			return nil, fmt.Errorf("igmp: negative QRV %d", q.QRV)
		}
		b = make([]byte, v3QueryHeaderLen+4*len(q.Sources))
		b[1] = MaxRespCode(q.MaxResp)
		if q.SuppressRtr {
			b[8] = 0x08
		}
		if q.QRV <= 7 {
			b[8] |= uint8(q.QRV)
		}
		b[9] = QQICode(q.QQI)
		binary.BigEndian.PutUint16(b[10:12], uint16(len(q.Sources)))
		if err := putSources(b[v3QueryHeaderLen:], q.Sources); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("igmp: query version %d", q.Version)
	}
	b[0] = TypeQuery
	copy(b[4:8], group[:])
	return finish(b), nil
}

// Marshal encodes the report: Group for v1 and v2, Records for v3.
func (r *Report) Marshal() ([]byte, error) {
	switch r.Version {
	case 1, 2:
		if len(r.Records) > 0 {
			return nil, fmt.Errorf("igmp: a v%d report carries one group, not records", r.Version)
		}
		typ := uint8(TypeV2Report)
		if r.Version == 1 {
			typ = TypeV1Report
		}
		return marshalGroupMessage(typ, r.Group)
	case 3:
		return r.marshalV3()
	}
	return nil, fmt.Errorf("igmp: report version %d", r.Version)
}

func (r *Report) marshalV3() ([]byte, error) {
	if r.Group.IsValid() {
		return nil, errors.New("igmp: a v3 report carries records, not a group")
	}
	size := headerLen
	for i, rec := range r.Records {
		if rec.Type < ModeIsInclude || rec.Type > BlockOldSources {
			return nil, fmt.Errorf("igmp: record %d: type %d", i+1, rec.Type)
		}
		if !isMulticast4(rec.Group) {
			return nil, fmt.Errorf("igmp: record %d: group %v is not IPv4 multicast", i+1, rec.Group)
		}
		if len(rec.AuxData)%4 != 0 || len(rec.AuxData) > 255*4 {
			return nil, fmt.Errorf("igmp: record %d: %d aux data bytes, not up to 255 words", i+1, len(rec.AuxData))
		}
		size += recordHeaderLen + 4*len(rec.Sources) + len(rec.AuxData)
		if size > maxMessageLen {
			return nil, fmt.Errorf("igmp: report longer than an IPv4 packet carries at record %d", i+1)
		}
	}
	b := make([]byte, size)
	b[0] = TypeV3Report
	binary.BigEndian.PutUint16(b[6:8], uint16(len(r.Records)))
	rest := b[headerLen:]
	for _, rec := range r.Records {
		rest[0] = uint8(rec.Type)
		rest[1] = uint8(len(rec.AuxData) / 4)
		binary.BigEndian.PutUint16(rest[2:4], uint16(len(rec.Sources)))
		group := rec.Group.As4()
		copy(rest[4:8], group[:])
		if err := putSources(rest[recordHeaderLen:], rec.Sources); err != nil {
			return nil, err
		}
		n := recordHeaderLen + 4*len(rec.Sources)
		n += copy(rest[n:], rec.AuxData)
		rest = rest[n:]
	}
	return finish(b), nil
}

// Marshal encodes the leave.
func (l *Leave) Marshal() ([]byte, error) {
	return marshalGroupMessage(TypeLeave, l.Group)
}

// marshalGroupMessage encodes the 8-byte messages naming one group.
func marshalGroupMessage(typ uint8, group netip.Addr) ([]byte, error) {
	if !isMulticast4(group) {
		return nil, fmt.Errorf("igmp: group %v is not IPv4 multicast", group)
	}
	b := make([]byte, headerLen)
	b[0] = typ
	g := group.As4()
	copy(b[4:8], g[:])
	return finish(b), nil
}

func putSources(b []byte, sources []netip.Addr) error {
	for i, s := range sources {
		if !validSource(s) {
			return fmt.Errorf("igmp: source %v is not an IPv4 unicast address", s)
		}
		a := s.As4()
		copy(b[4*i:], a[:])
	}
	return nil
}

func isMulticast4(a netip.Addr) bool { return a.Is4() && a.IsMulticast() }

// finish fills in the checksum of a message whose checksum field is zero.
func finish(b []byte) []byte {
	binary.BigEndian.PutUint16(b[2:4], Checksum(b))
	return b
}
