package pim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mrouterd/mrouterd/igmp"
)

// Reasons a message is rejected, one counter each. DecodeError.Reason is one of these.
const (
	ReasonShort            = "short"              // fewer bytes than the message type's fixed part
	ReasonVersion          = "version"            // PIM version other than 2
	ReasonChecksum         = "checksum"           // checksum does not verify
	ReasonUnknownType      = "unknown-type"       // a type this codec does not handle
	ReasonTruncated        = "truncated"          // an option, group or source list runs past the end
	ReasonBadAddressFamily = "bad-address-family" // an encoded address that is not IPv4
	ReasonBadEncoding      = "bad-encoding"       // encoding type other than 0 (native)
	ReasonBadMask          = "bad-mask"           // mask length above 32
	ReasonTooMany          = "too-many"           // a source count no IPv4 packet could carry
	ReasonBadOption        = "bad-option"         // a Hello option of the wrong length for its type
	ReasonTooLong          = "too-long"           // longer than any IPv4 packet could carry
)

// DecodeError is why Decode rejected a message.
type DecodeError struct {
	Reason string // one of the Reason constants, fit for a counter label
	Detail string // specifics for a log line; may be empty
}

func (e *DecodeError) Error() string {
	if e.Detail == "" {
		return "pim: " + e.Reason
	}
	return "pim: " + e.Reason + ": " + e.Detail
}

func decodeError(reason, format string, args ...any) *DecodeError {
	return &DecodeError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Message types (RFC 7761 4.9) that this codec reads and writes.
const (
	TypeHello        = 0
	TypeRegister     = 1
	TypeRegisterStop = 2
	TypeJoinPrune    = 3
	TypeAssert       = 5
)

// Hello option types (RFC 7761 4.9.2, RFC 4601 for the address list).
const (
	OptionHoldtime      = 1
	OptionLANPruneDelay = 2
	OptionDRPriority    = 19
	OptionGenerationID  = 20
	OptionAddressList   = 24
	// OptionSourcePrefixes lists the prefixes of the sources behind the sender, so
	// that routers whose unicast routes do not lead to them (nodes joined by a
	// fabric) can find the reverse path. It is from the experimental range
	// (RFC 7761 4.9.2, 65000 to 65535). Each entry is an IPv4 address and a
	// prefix length: 5 bytes.
	OptionSourcePrefixes = 65001
)

const (
	version         = 2
	headerLen       = 4 // version/type, reserved, checksum
	registerHdrLen  = 8 // header plus the B and N flag word
	optionHdrLen    = 4 // option type and length
	familyIPv4      = 1
	familyIPv6      = 2 // only ever skipped, in a Hello address list
	encodingNative  = 0
	unicastLen      = 6 // family, encoding, IPv4 address
	groupLen        = 8 // family, encoding, flags, mask length, IPv4 address
	sourceLen       = 8 // same layout as a group
	jpHeaderLen     = headerLen + unicastLen + 4
	jpGroupHdrLen   = groupLen + 4 // encoded group, joined and pruned counts
	registerStopLen = headerLen + groupLen + unicastLen
	assertLen       = headerLen + groupLen + unicastLen + 8
	// Holdtime, LAN Prune Delay, DR Priority, Generation ID, and the address list header.
	knownOptionsLen = 5*optionHdrLen + 2 + 4 + 4 + 4

	// The longest PIM message: an IPv4 packet's largest payload behind the
	// shortest header. A source count implying more is a lie.
	maxMessageLen = 65535 - 20
	maxJPSources  = (maxMessageLen - jpHeaderLen - jpGroupHdrLen) / sourceLen

	groupFlagBidir      = 0x80
	groupFlagAdminScope = 0x01
	sourceFlagSparse    = 0x04
	sourceFlagWildcard  = 0x02
	sourceFlagRPT       = 0x01
	registerFlagBorder  = 0x80000000
	registerFlagNull    = 0x40000000
	assertFlagRPT       = 0x80000000
	lanDelayFlagT       = 0x8000
	maxPropagationDelay = 0x7fff
	maxMetricPreference = 0x7fffffff
)

// Hello announces a router on a link (RFC 7761 4.9.2). Options left nil were absent.
type Hello struct {
	Holdtime      *uint16 // seconds; 0xffff means never time out, 0 means forget now
	DRPriority    *uint32
	GenerationID  *uint32
	LANPruneDelay *LANPruneDelay
	Addresses     []netip.Addr // secondary IPv4 addresses; IPv6 entries are dropped
	// SourcePrefixes are the prefixes of the sources behind the sender
	// (OptionSourcePrefixes).
	SourcePrefixes []netip.Prefix
	Unknown        []HelloOption // options without a field above, in the order received
}

// LANPruneDelay is the LAN Prune Delay option's value.
type LANPruneDelay struct {
	TrackingSupport  bool   // the T bit: this router can disable join suppression
	PropagationDelay uint16 // milliseconds, 15 bits
	OverrideInterval uint16 // milliseconds
}

// HelloOption is a Hello option kept as raw bytes.
type HelloOption struct {
	Type  uint16
	Value []byte
}

// JoinPrune is a Join/Prune message (RFC 7761 4.9.5).
type JoinPrune struct {
	UpstreamNeighbor netip.Addr
	Holdtime         uint16 // seconds
	Groups           []JPGroup
}

// JPGroup is one group of a Join/Prune message and the sources joined and pruned for it.
type JPGroup struct {
	Group      netip.Prefix // not masked: the address is kept as sent
	Bidir      bool         // the B bit of the encoded group
	AdminScope bool         // the Z bit of the encoded group
	Joins      []JPSource
	Prunes     []JPSource
}

// JPSource is an encoded source of a Join/Prune: (S,G) with neither Wildcard
// nor RPT, (*,G) with both, (S,G,rpt) with RPT alone.
type JPSource struct {
	Source   netip.Prefix // not masked; the RP address for a (*,G) entry
	Sparse   bool         // the S bit, always set by PIM-SM
	Wildcard bool         // the W bit
	RPT      bool         // the R bit
}

// Register carries a data packet from a first-hop router to the RP (RFC 7761 4.9.3).
type Register struct {
	Border bool   // the B bit
	Null   bool   // the N bit: a probe, Packet holds only an IP header
	Packet []byte // the encapsulated IPv4 packet
}

// RegisterStop tells a first-hop router to stop registering (RFC 7761 4.9.4).
type RegisterStop struct {
	Group  netip.Prefix
	Source netip.Addr // 0.0.0.0 stops every source of the group
}

// Assert elects a single forwarder on a link (RFC 7761 4.9.6).
type Assert struct {
	Group            netip.Addr
	Source           netip.Addr // 0.0.0.0 for a (*,G) assert
	RPT              bool       // the R bit
	MetricPreference uint32     // 31 bits
	Metric           uint32
}

// Decode parses a PIM message (the IP payload) into a *Hello, *JoinPrune,
// *Register, *RegisterStop or *Assert. It verifies the checksum and every
// count against the length before allocating; what it rejects comes back as a
// *DecodeError. The result shares no memory with b.
func Decode(b []byte) (any, error) {
	if len(b) < headerLen {
		return nil, decodeError(ReasonShort, "%d bytes", len(b))
	}
	if v := b[0] >> 4; v != version {
		return nil, decodeError(ReasonVersion, "version %d", v)
	}
	if len(b) > maxMessageLen {
		return nil, decodeError(ReasonTooLong, "%d bytes", len(b))
	}
	typ := b[0] & 0x0f
	if !checksumOK(typ, b) {
		return nil, decodeError(ReasonChecksum, "type %d, %d bytes", typ, len(b))
	}
	// Each case returns its own error explicitly: a nil *T in an interface is not nil.
	switch typ {
	case TypeHello:
		h, err := decodeHello(b[headerLen:])
		if err != nil {
			return nil, err
		}
		return h, nil
	case TypeRegister:
		r, err := decodeRegister(b)
		if err != nil {
			return nil, err
		}
		return r, nil
	case TypeRegisterStop:
		r, err := decodeRegisterStop(b)
		if err != nil {
			return nil, err
		}
		return r, nil
	case TypeJoinPrune:
		jp, err := decodeJoinPrune(b)
		if err != nil {
			return nil, err
		}
		return jp, nil
	case TypeAssert:
		a, err := decodeAssert(b)
		if err != nil {
			return nil, err
		}
		return a, nil
	}
	return nil, decodeError(ReasonUnknownType, "type %d", typ)
}

// checksumOK verifies the checksum. RFC 7761 has a Register's checksum cover
// only its 8-byte header, but some routers sum the whole message, so either
// is accepted there.
func checksumOK(typ uint8, b []byte) bool {
	if typ == TypeRegister && len(b) >= registerHdrLen && igmp.Checksum(b[:registerHdrLen]) == 0 {
		return true
	}
	return igmp.Checksum(b) == 0
}

func decodeHello(opts []byte) (*Hello, error) {
	h := &Hello{}
	for len(opts) > 0 {
		if len(opts) < optionHdrLen {
			return nil, decodeError(ReasonTruncated, "%d bytes after the last option", len(opts))
		}
		typ := binary.BigEndian.Uint16(opts[0:2])
		n := int(binary.BigEndian.Uint16(opts[2:4]))
		if optionHdrLen+n > len(opts) {
			return nil, decodeError(ReasonTruncated, "option %d of %d bytes, %d left", typ, n, len(opts)-optionHdrLen)
		}
		value := opts[optionHdrLen : optionHdrLen+n]
		opts = opts[optionHdrLen+n:]
		if want, fixed := fixedOptionLen(typ); fixed && n != want {
			return nil, decodeError(ReasonBadOption, "option %d of %d bytes, want %d", typ, n, want)
		}
		switch typ {
		case OptionHoldtime:
			v := binary.BigEndian.Uint16(value)
			h.Holdtime = &v
		case OptionLANPruneDelay:
			delay := binary.BigEndian.Uint16(value[0:2])
			h.LANPruneDelay = &LANPruneDelay{
				TrackingSupport:  delay&lanDelayFlagT != 0,
				PropagationDelay: delay & maxPropagationDelay,
				OverrideInterval: binary.BigEndian.Uint16(value[2:4]),
			}
		case OptionDRPriority:
			v := binary.BigEndian.Uint32(value)
			h.DRPriority = &v
		case OptionGenerationID:
			v := binary.BigEndian.Uint32(value)
			h.GenerationID = &v
		case OptionAddressList:
			var err error
			if h.Addresses, err = decodeAddressList(h.Addresses, value); err != nil {
				return nil, err
			}
		case OptionSourcePrefixes:
			var err error
			if h.SourcePrefixes, err = decodeSourcePrefixes(h.SourcePrefixes, value); err != nil {
				return nil, err
			}
		default:
			opt := HelloOption{Type: typ}
			if n > 0 {
				opt.Value = append([]byte(nil), value...)
			}
			h.Unknown = append(h.Unknown, opt)
		}
	}
	return h, nil
}

// fixedOptionLen is the value length of an option type that has a field in Hello.
func fixedOptionLen(typ uint16) (n int, fixed bool) {
	switch typ {
	case OptionHoldtime:
		return 2, true
	case OptionLANPruneDelay, OptionDRPriority, OptionGenerationID:
		return 4, true
	}
	return 0, false
}

// decodeAddressList appends the IPv4 entries of an address list option to
// addrs. IPv6 entries are skipped: a dual-stack neighbour may list them.
func decodeAddressList(addrs []netip.Addr, b []byte) ([]netip.Addr, error) {
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, decodeError(ReasonTruncated, "address list entry of %d bytes", len(b))
		}
		if b[1] != encodingNative {
			return nil, decodeError(ReasonBadEncoding, "address list encoding %d", b[1])
		}
		size := 2 + 4
		switch b[0] {
		case familyIPv4:
		case familyIPv6:
			size = 2 + 16
		default:
			return nil, decodeError(ReasonBadAddressFamily, "address list family %d", b[0])
		}
		if size > len(b) {
			return nil, decodeError(ReasonTruncated, "address list entry of %d bytes, %d left", size, len(b))
		}
		if b[0] == familyIPv4 {
			addrs = append(addrs, netip.AddrFrom4([4]byte(b[2:6])))
		}
		b = b[size:]
	}
	return addrs, nil
}

// sourcePrefixLen is the size of one OptionSourcePrefixes entry.
const sourcePrefixLen = 5

// decodeSourcePrefixes appends the entries of a source prefixes option; one
// with host bits set is refused, as no router would send it.
func decodeSourcePrefixes(list []netip.Prefix, b []byte) ([]netip.Prefix, error) {
	if len(b)%sourcePrefixLen != 0 {
		return nil, decodeError(ReasonBadOption, "source prefixes option of %d bytes", len(b))
	}
	for ; len(b) > 0; b = b[sourcePrefixLen:] {
		bits := int(b[4])
		if bits > 32 {
			return nil, decodeError(ReasonBadOption, "source prefix length %d", bits)
		}
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte(b[:4])), bits)
		if p != p.Masked() {
			return nil, decodeError(ReasonBadOption, "source prefix %s has host bits set", p)
		}
		list = append(list, p)
	}
	return list, nil
}

func decodeRegister(b []byte) (*Register, error) {
	if len(b) < registerHdrLen {
		return nil, decodeError(ReasonShort, "%d-byte Register", len(b))
	}
	r := &Register{}
	flags := binary.BigEndian.Uint32(b[headerLen:registerHdrLen])
	r.Border = flags&registerFlagBorder != 0
	r.Null = flags&registerFlagNull != 0
	if len(b) > registerHdrLen {
		r.Packet = append([]byte(nil), b[registerHdrLen:]...)
	}
	return r, nil
}

func decodeRegisterStop(b []byte) (*RegisterStop, error) {
	if len(b) < registerStopLen {
		return nil, decodeError(ReasonShort, "%d-byte Register-Stop", len(b))
	}
	group, _, err := decodeGroup(b[headerLen:])
	if err != nil {
		return nil, err
	}
	source, err := decodeUnicast(b[headerLen+groupLen:])
	if err != nil {
		return nil, err
	}
	return &RegisterStop{Group: group, Source: source}, nil
}

func decodeAssert(b []byte) (*Assert, error) {
	if len(b) < assertLen {
		return nil, decodeError(ReasonShort, "%d-byte Assert", len(b))
	}
	group, _, err := decodeGroup(b[headerLen:])
	if err != nil {
		return nil, err
	}
	rest := b[headerLen+groupLen:]
	source, err := decodeUnicast(rest)
	if err != nil {
		return nil, err
	}
	pref := binary.BigEndian.Uint32(rest[unicastLen:])
	return &Assert{
		Group:            group.Addr(),
		Source:           source,
		RPT:              pref&assertFlagRPT != 0,
		MetricPreference: pref & maxMetricPreference,
		Metric:           binary.BigEndian.Uint32(rest[unicastLen+4:]),
	}, nil
}

func decodeJoinPrune(b []byte) (*JoinPrune, error) {
	if len(b) < jpHeaderLen {
		return nil, decodeError(ReasonShort, "%d-byte Join/Prune", len(b))
	}
	upstream, err := decodeUnicast(b[headerLen:])
	if err != nil {
		return nil, err
	}
	jp := &JoinPrune{
		UpstreamNeighbor: upstream,
		Holdtime:         binary.BigEndian.Uint16(b[jpHeaderLen-2 : jpHeaderLen]),
	}
	count := int(b[jpHeaderLen-3])
	rest := b[jpHeaderLen:]
	// Every group takes at least its header, which bounds the allocation.
	if count*jpGroupHdrLen > len(rest) {
		return nil, decodeError(ReasonTruncated, "%d groups in %d bytes", count, len(rest))
	}
	if count > 0 {
		jp.Groups = make([]JPGroup, 0, count)
	}
	for i := range count {
		if len(rest) < jpGroupHdrLen {
			return nil, decodeError(ReasonTruncated, "group %d: header cut short", i+1)
		}
		group, flags, err := decodeGroup(rest)
		if err != nil {
			return nil, err
		}
		joins := int(binary.BigEndian.Uint16(rest[groupLen:]))
		prunes := int(binary.BigEndian.Uint16(rest[groupLen+2:]))
		if joins+prunes > maxJPSources {
			return nil, decodeError(ReasonTooMany, "group %d: %d joins and %d prunes", i+1, joins, prunes)
		}
		size := jpGroupHdrLen + sourceLen*(joins+prunes)
		if size > len(rest) {
			return nil, decodeError(ReasonTruncated, "group %d: %d joins and %d prunes need %d bytes, %d left",
				i+1, joins, prunes, size, len(rest))
		}
		g := JPGroup{Group: group, Bidir: flags&groupFlagBidir != 0, AdminScope: flags&groupFlagAdminScope != 0}
		sources := rest[jpGroupHdrLen:size]
		if g.Joins, err = decodeSources(sources[:sourceLen*joins]); err != nil {
			return nil, err
		}
		if g.Prunes, err = decodeSources(sources[sourceLen*joins:]); err != nil {
			return nil, err
		}
		jp.Groups = append(jp.Groups, g)
		rest = rest[size:]
	}
	return jp, nil
}

// decodeSources reads the encoded sources filling b, whose length the caller checked.
func decodeSources(b []byte) ([]JPSource, error) {
	if len(b) == 0 {
		return nil, nil
	}
	sources := make([]JPSource, len(b)/sourceLen)
	for i := range sources {
		prefix, flags, err := decodeGroup(b[sourceLen*i:])
		if err != nil {
			return nil, err
		}
		sources[i] = JPSource{
			Source:   prefix,
			Sparse:   flags&sourceFlagSparse != 0,
			Wildcard: flags&sourceFlagWildcard != 0,
			RPT:      flags&sourceFlagRPT != 0,
		}
	}
	return sources, nil
}

// decodeUnicast reads an Encoded-Unicast address from the front of b, which
// the caller checked holds unicastLen bytes.
func decodeUnicast(b []byte) (netip.Addr, error) {
	if err := checkFamily(b); err != nil {
		return netip.Addr{}, err
	}
	return netip.AddrFrom4([4]byte(b[2:6])), nil
}

// decodeGroup reads an Encoded-Group or Encoded-Source address, which share a
// layout, from the front of b (checked to hold groupLen bytes), and returns
// its flag byte.
func decodeGroup(b []byte) (netip.Prefix, uint8, error) {
	if err := checkFamily(b); err != nil {
		return netip.Prefix{}, 0, err
	}
	if b[3] > 32 {
		return netip.Prefix{}, 0, decodeError(ReasonBadMask, "mask length %d", b[3])
	}
	return netip.PrefixFrom(netip.AddrFrom4([4]byte(b[4:8])), int(b[3])), b[2], nil
}

func checkFamily(b []byte) error {
	if b[0] != familyIPv4 {
		return decodeError(ReasonBadAddressFamily, "family %d", b[0])
	}
	if b[1] != encodingNative {
		return decodeError(ReasonBadEncoding, "encoding %d", b[1])
	}
	return nil
}

// newMessage returns a message header, checksum left zero, with room for size bytes.
func newMessage(typ uint8, size int) []byte {
	b := make([]byte, headerLen, size)
	b[0] = version<<4 | typ
	return b
}

// sealMessage fills in the checksum over b[:covered].
func sealMessage(b []byte, covered int) []byte {
	binary.BigEndian.PutUint16(b[2:4], igmp.Checksum(b[:covered]))
	return b
}

// Marshal encodes the Hello, checksum included. Unknown options must not use a
// type that has a field of its own, which would say the same thing twice.
func (m *Hello) Marshal() ([]byte, error) {
	for _, a := range m.Addresses {
		if !a.Is4() {
			return nil, fmt.Errorf("pim: hello address %v is not IPv4", a)
		}
	}
	if m.LANPruneDelay != nil && m.LANPruneDelay.PropagationDelay > maxPropagationDelay {
		return nil, fmt.Errorf("pim: propagation delay %d ms does not fit in 15 bits", m.LANPruneDelay.PropagationDelay)
	}
	addrListLen := (2 + 4) * len(m.Addresses)
	if addrListLen > 0xffff {
		return nil, fmt.Errorf("pim: %d addresses do not fit in one option", len(m.Addresses))
	}
	b := newMessage(TypeHello, headerLen+knownOptionsLen+addrListLen)
	if m.Holdtime != nil {
		b = appendOption(b, OptionHoldtime, binary.BigEndian.AppendUint16(nil, *m.Holdtime))
	}
	if d := m.LANPruneDelay; d != nil {
		delay := d.PropagationDelay
		if d.TrackingSupport {
			delay |= lanDelayFlagT
		}
		b = appendOption(b, OptionLANPruneDelay, binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, delay), d.OverrideInterval))
	}
	if m.DRPriority != nil {
		b = appendOption(b, OptionDRPriority, binary.BigEndian.AppendUint32(nil, *m.DRPriority))
	}
	if m.GenerationID != nil {
		b = appendOption(b, OptionGenerationID, binary.BigEndian.AppendUint32(nil, *m.GenerationID))
	}
	if len(m.Addresses) > 0 {
		list := make([]byte, 0, addrListLen)
		for _, a := range m.Addresses {
			list = appendUnicast(list, a)
		}
		b = appendOption(b, OptionAddressList, list)
	}
	if len(m.SourcePrefixes) > 0 {
		if len(m.SourcePrefixes)*sourcePrefixLen > 0xffff {
			return nil, fmt.Errorf("pim: %d source prefixes do not fit in one option", len(m.SourcePrefixes))
		}
		list := make([]byte, 0, len(m.SourcePrefixes)*sourcePrefixLen)
		for _, p := range m.SourcePrefixes {
			if !p.Addr().Is4() || p != p.Masked() {
				return nil, fmt.Errorf("pim: source prefix %s", p)
			}
			list = append(append(list, p.Addr().AsSlice()...), byte(p.Bits()))
		}
		b = appendOption(b, OptionSourcePrefixes, list)
	}
	for _, opt := range m.Unknown {
		if _, fixed := fixedOptionLen(opt.Type); fixed || opt.Type == OptionAddressList || opt.Type == OptionSourcePrefixes {
			return nil, fmt.Errorf("pim: option %d given as unknown", opt.Type)
		}
		if len(opt.Value) > 0xffff {
			return nil, fmt.Errorf("pim: option %d of %d bytes", opt.Type, len(opt.Value))
		}
		b = appendOption(b, opt.Type, opt.Value)
	}
	if len(b) > maxMessageLen {
		return nil, fmt.Errorf("pim: %d-byte hello does not fit in an IPv4 packet", len(b))
	}
	return sealMessage(b, len(b)), nil
}

func appendOption(b []byte, typ uint16, value []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	return append(b, value...)
}

// appendUnicast appends a as an Encoded-Unicast address; a is known to be IPv4.
func appendUnicast(b []byte, a netip.Addr) []byte {
	ip := a.As4()
	return append(b, familyIPv4, encodingNative, ip[0], ip[1], ip[2], ip[3])
}

// appendPrefix appends p as an Encoded-Group or Encoded-Source address with
// the given flag byte; p is known to be a valid IPv4 prefix.
func appendPrefix(b []byte, p netip.Prefix, flags uint8) []byte {
	ip := p.Addr().As4()
	return append(b, familyIPv4, encodingNative, flags, uint8(p.Bits()), ip[0], ip[1], ip[2], ip[3])
}

func checkAddr(what string, a netip.Addr) error {
	if !a.Is4() {
		return fmt.Errorf("pim: %s %v is not an IPv4 address", what, a)
	}
	return nil
}

func checkPrefix(what string, p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is4() {
		return fmt.Errorf("pim: %s %v is not an IPv4 prefix", what, p)
	}
	return nil
}

// Size is the length of the encoded message, for packing groups under an MTU.
func (m *JoinPrune) Size() int {
	n := jpHeaderLen
	for _, g := range m.Groups {
		n += jpGroupHdrLen + sourceLen*(len(g.Joins)+len(g.Prunes))
	}
	return n
}

// Marshal encodes the Join/Prune, checksum included. Keeping it under the
// link MTU is the caller's job; Size tells the length beforehand.
func (m *JoinPrune) Marshal() ([]byte, error) {
	if err := checkAddr("upstream neighbor", m.UpstreamNeighbor); err != nil {
		return nil, err
	}
	if len(m.Groups) > 0xff {
		return nil, fmt.Errorf("pim: %d groups do not fit in one Join/Prune", len(m.Groups))
	}
	size := m.Size()
	if size > maxMessageLen {
		return nil, fmt.Errorf("pim: %d-byte Join/Prune does not fit in an IPv4 packet", size)
	}
	b := newMessage(TypeJoinPrune, size)
	b = appendUnicast(b, m.UpstreamNeighbor)
	b = append(b, 0, uint8(len(m.Groups)))
	b = binary.BigEndian.AppendUint16(b, m.Holdtime)
	for _, g := range m.Groups {
		if err := checkPrefix("group", g.Group); err != nil {
			return nil, err
		}
		var flags uint8
		if g.Bidir {
			flags |= groupFlagBidir
		}
		if g.AdminScope {
			flags |= groupFlagAdminScope
		}
		b = appendPrefix(b, g.Group, flags)
		b = binary.BigEndian.AppendUint16(b, uint16(len(g.Joins)))
		b = binary.BigEndian.AppendUint16(b, uint16(len(g.Prunes)))
		for _, list := range [][]JPSource{g.Joins, g.Prunes} {
			for _, s := range list {
				if err := checkPrefix("source", s.Source); err != nil {
					return nil, err
				}
				b = appendPrefix(b, s.Source, s.flags())
			}
		}
	}
	return sealMessage(b, len(b)), nil
}

func (s JPSource) flags() uint8 {
	var f uint8
	if s.Sparse {
		f |= sourceFlagSparse
	}
	if s.Wildcard {
		f |= sourceFlagWildcard
	}
	if s.RPT {
		f |= sourceFlagRPT
	}
	return f
}

// Marshal encodes the Register with the checksum over its header only, as
// RFC 7761 4.9.3 specifies.
func (m *Register) Marshal() ([]byte, error) {
	if registerHdrLen+len(m.Packet) > maxMessageLen {
		return nil, fmt.Errorf("pim: %d-byte packet does not fit in a Register", len(m.Packet))
	}
	b := newMessage(TypeRegister, registerHdrLen+len(m.Packet))
	var flags uint32
	if m.Border {
		flags |= registerFlagBorder
	}
	if m.Null {
		flags |= registerFlagNull
	}
	b = binary.BigEndian.AppendUint32(b, flags)
	sealMessage(b, registerHdrLen)
	return append(b, m.Packet...), nil
}

// Marshal encodes the Register-Stop, checksum included.
func (m *RegisterStop) Marshal() ([]byte, error) {
	if err := checkPrefix("group", m.Group); err != nil {
		return nil, err
	}
	if err := checkAddr("source", m.Source); err != nil {
		return nil, err
	}
	b := newMessage(TypeRegisterStop, registerStopLen)
	b = appendPrefix(b, m.Group, 0)
	b = appendUnicast(b, m.Source)
	return sealMessage(b, len(b)), nil
}

// Marshal encodes the Assert, checksum included; the group goes out as a /32.
func (m *Assert) Marshal() ([]byte, error) {
	if err := checkAddr("group", m.Group); err != nil {
		return nil, err
	}
	if err := checkAddr("source", m.Source); err != nil {
		return nil, err
	}
	if m.MetricPreference > maxMetricPreference {
		return nil, errors.New("pim: metric preference does not fit in 31 bits")
	}
	b := newMessage(TypeAssert, assertLen)
	b = appendPrefix(b, netip.PrefixFrom(m.Group, 32), 0)
	b = appendUnicast(b, m.Source)
	pref := m.MetricPreference
	if m.RPT {
		pref |= assertFlagRPT
	}
	b = binary.BigEndian.AppendUint32(b, pref)
	b = binary.BigEndian.AppendUint32(b, m.Metric)
	return sealMessage(b, len(b)), nil
}
