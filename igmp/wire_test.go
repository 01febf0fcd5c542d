package igmp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

type marshaler interface{ Marshal() ([]byte, error) }

func fromHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = addr(s)
	}
	return out
}

// withChecksum returns a copy of b with its IGMP checksum recomputed, so that
// a test reaches the check it is after.
func withChecksum(b []byte) []byte {
	b = append([]byte(nil), b...)
	b[2], b[3] = 0, 0
	binary.BigEndian.PutUint16(b[2:4], Checksum(b))
	return b
}

func mustMarshal(t testing.TB, m marshaler) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatalf("Marshal(%+v): %v", m, err)
	}
	return b
}

// Checksums worked out by hand: sum the 16-bit words with end-around carry,
// then complement.
var goldenMessages = []struct {
	name string
	msg  marshaler
	wire string
}{
	{"v1 general query", &Query{Version: 1}, "11 00 ee ff 00000000"},
	{"v2 general query 10s", &Query{Version: 2, MaxResp: 10 * time.Second}, "11 64 ee 9b 00000000"},
	{"v1 report", &Report{Version: 1, Group: addr("239.1.1.1")}, "12 00 fd fc ef010101"},
	{"v2 report", &Report{Version: 2, Group: addr("239.1.1.1")}, "16 00 f9 fc ef010101"},
	{"leave", &Leave{Group: addr("239.1.1.1")}, "17 00 f8 fc ef010101"},
	{
		"v3 general query 10s QRV 2 QQI 125s",
		&Query{Version: 3, MaxResp: 10 * time.Second, QRV: 2, QQI: 125 * time.Second},
		"11 64 ec 1e 00000000 02 7d 0000",
	},
	{
		"v3 group-and-source query with S",
		&Query{Version: 3, MaxResp: time.Second, Group: addr("232.1.1.1"), SuppressRtr: true,
			QRV: 2, QQI: 125 * time.Second, Sources: addrs("10.0.0.1")},
		"11 0a f1 73 e8010101 0a 7d 0001 0a000001",
	},
	{
		"v3 report joining one group",
		&Report{Version: 3, Records: []Record{{Type: ChangeToExclude, Group: addr("239.1.1.1")}}},
		"22 00 e9 fb 0000 0001 04 00 0000 ef010101",
	},
}

func TestWireGolden(t *testing.T) {
	for _, tc := range goldenMessages {
		t.Run(tc.name, func(t *testing.T) {
			want := fromHex(t, tc.wire)
			if got := mustMarshal(t, tc.msg); !bytes.Equal(got, want) {
				t.Errorf("Marshal = % x, want % x", got, want)
			}
			got, err := Decode(want)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.msg) {
				t.Errorf("Decode = %+v, want %+v", got, tc.msg)
			}
		})
	}
}

func TestWireChecksum(t *testing.T) {
	// The worked example of RFC 1071 section 3: sum 0xddf2, checksum 0x220d.
	if got := Checksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); got != 0x220d {
		t.Errorf("Checksum = %#04x, want 0x220d", got)
	}
	// An odd byte counts as the high half of a word.
	if got, want := Checksum([]byte{0x12, 0x34, 0x56}), ^uint16(0x1234+0x5600); got != want {
		t.Errorf("odd-length Checksum = %#04x, want %#04x", got, want)
	}
	for _, tc := range goldenMessages {
		if got := Checksum(fromHex(t, tc.wire)); got != 0 {
			t.Errorf("%s: checksum over the message = %#04x, want 0", tc.name, got)
		}
	}
}

func TestWireRouterAlert(t *testing.T) {
	if got := RouterAlert(); !bytes.Equal(got, []byte{0x94, 0x04, 0, 0}) {
		t.Errorf("RouterAlert = % x", got)
	}
	RouterAlert()[0] = 0
	if RouterAlert()[0] != 0x94 {
		t.Error("RouterAlert returns shared storage")
	}
}

// roundTripMessages hold every kind and version in the form Decode produces.
var roundTripMessages = []marshaler{
	&Query{Version: 1},
	&Query{Version: 1, Group: addr("239.1.1.1")},
	&Query{Version: 2, MaxResp: 100 * time.Millisecond},
	&Query{Version: 2, MaxResp: 25500 * time.Millisecond, Group: addr("224.0.1.1")},
	&Query{Version: 3},
	&Query{Version: 3, MaxResp: MaxRespTime(0xff), QQI: QQITime(0xff), QRV: 7, SuppressRtr: true},
	&Query{Version: 3, MaxResp: MaxRespTime(0x8a), QQI: QQITime(0x93), QRV: 2, Group: addr("239.255.255.250")},
	&Query{Version: 3, MaxResp: time.Second, QRV: 2, QQI: 125 * time.Second, Group: addr("232.1.2.3"),
		Sources: addrs("10.0.0.1", "192.0.2.7", "198.51.100.255", "240.0.0.1", "169.254.1.1")},
	&Report{Version: 1, Group: addr("224.0.0.251")},
	&Report{Version: 2, Group: addr("239.255.255.255")},
	&Report{Version: 3},
	&Report{Version: 3, Records: []Record{
		{Type: ModeIsInclude, Group: addr("232.1.1.1"), Sources: addrs("10.1.1.2", "10.1.1.3")},
		{Type: ModeIsExclude, Group: addr("239.1.1.1")},
		{Type: ChangeToInclude, Group: addr("239.1.1.2"), AuxData: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{Type: ChangeToExclude, Group: addr("239.1.1.3"), Sources: addrs("10.9.9.9"), AuxData: []byte{9, 9, 9, 9}},
		{Type: AllowNewSources, Group: addr("232.0.0.1"), Sources: addrs("172.16.0.1")},
		{Type: BlockOldSources, Group: addr("232.0.0.1"), Sources: addrs("172.16.0.1", "172.16.0.2")},
	}},
	&Leave{Group: addr("239.0.0.1")},
}

func TestWireRoundTrip(t *testing.T) {
	for _, m := range roundTripMessages {
		b := mustMarshal(t, m)
		got, err := Decode(b)
		if err != nil {
			t.Errorf("Decode(Marshal(%+v)): %v", m, err)
			continue
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip of %+v gave %+v", m, got)
		}
	}
}

func TestMarshalNormalizes(t *testing.T) {
	tests := []struct {
		name string
		in   marshaler
		want marshaler // what Decode gives back
	}{
		{"0.0.0.0 group is a general query",
			&Query{Version: 3, Group: addr("0.0.0.0")}, &Query{Version: 3}},
		{"v1 has no max response field",
			&Query{Version: 1, MaxResp: 10 * time.Second}, &Query{Version: 1}},
		{"v2 leaves out v3 fields",
			&Query{Version: 2, MaxResp: time.Second, QRV: 2, QQI: time.Minute, SuppressRtr: true},
			&Query{Version: 2, MaxResp: time.Second}},
		{"v2 max response rounds down",
			&Query{Version: 2, MaxResp: 1999 * time.Millisecond}, &Query{Version: 2, MaxResp: 1900 * time.Millisecond}},
		{"v2 max response below a tenth is a tenth",
			&Query{Version: 2, MaxResp: time.Millisecond}, &Query{Version: 2, MaxResp: 100 * time.Millisecond}},
		{"v2 max response clamps at 25.5s",
			&Query{Version: 2, MaxResp: time.Minute}, &Query{Version: 2, MaxResp: 25500 * time.Millisecond}},
		{"QRV above 7 is sent as 0",
			&Query{Version: 3, QRV: 8}, &Query{Version: 3}},
		{"v3 times round down to a code",
			&Query{Version: 3, MaxResp: 13 * time.Second, QQI: 207 * time.Second},
			&Query{Version: 3, MaxResp: 12800 * time.Millisecond, QQI: 200 * time.Second}},
	}
	for _, tc := range tests {
		got, err := Decode(mustMarshal(t, tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestMarshalRejects(t *testing.T) {
	tooMany := make([]netip.Addr, maxQuerySources+1)
	for i := range tooMany {
		tooMany[i] = addr("10.0.0.1")
	}
	tests := []struct {
		name string
		msg  marshaler
	}{
		{"query version 0", &Query{}},
		{"query version 4", &Query{Version: 4}},
		{"v2 query without max response", &Query{Version: 2}},
		{"v2 query with sources", &Query{Version: 2, MaxResp: time.Second, Group: addr("239.1.1.1"), Sources: addrs("10.0.0.1")}},
		{"unicast query group", &Query{Version: 3, Group: addr("10.0.0.1")}},
		{"IPv6 query group", &Query{Version: 3, Group: addr("ff02::1")}},
		{"general query with sources", &Query{Version: 3, Sources: addrs("10.0.0.1")}},
		{"multicast query source", &Query{Version: 3, Group: addr("232.1.1.1"), Sources: addrs("224.0.0.1")}},
		{"IPv6 query source", &Query{Version: 3, Group: addr("232.1.1.1"), Sources: addrs("2001:db8::1")}},
		{"query source 0.0.0.0", &Query{Version: 3, Group: addr("232.1.1.1"), Sources: addrs("0.0.0.0")}},
		{"too many query sources", &Query{Version: 3, Group: addr("232.1.1.1"), Sources: tooMany}},
		{"negative QRV", &Query{Version: 3, QRV: -1}},
		{"report version 0", &Report{}},
		{"v2 report for a unicast group", &Report{Version: 2, Group: addr("10.0.0.1")}},
		{"v2 report without a group", &Report{Version: 2}},
		{"v2 report with records", &Report{Version: 2, Group: addr("239.1.1.1"),
			Records: []Record{{Type: ModeIsExclude, Group: addr("239.1.1.1")}}}},
		{"v3 report with a group", &Report{Version: 3, Group: addr("239.1.1.1")}},
		{"record type 0", &Report{Version: 3, Records: []Record{{Group: addr("239.1.1.1")}}}},
		{"record type 7", &Report{Version: 3, Records: []Record{{Type: 7, Group: addr("239.1.1.1")}}}},
		{"record for a unicast group", &Report{Version: 3, Records: []Record{{Type: ModeIsExclude, Group: addr("10.1.1.1")}}}},
		{"record with a loopback source", &Report{Version: 3, Records: []Record{
			{Type: ModeIsInclude, Group: addr("232.1.1.1"), Sources: addrs("127.0.0.1")}}}},
		{"record with a broadcast source", &Report{Version: 3, Records: []Record{
			{Type: ModeIsInclude, Group: addr("232.1.1.1"), Sources: addrs("255.255.255.255")}}}},
		{"aux data not whole words", &Report{Version: 3, Records: []Record{
			{Type: ModeIsInclude, Group: addr("232.1.1.1"), AuxData: []byte{1, 2, 3}}}}},
		{"aux data over 255 words", &Report{Version: 3, Records: []Record{
			{Type: ModeIsInclude, Group: addr("232.1.1.1"), AuxData: make([]byte, 256*4)}}}},
		{"report longer than a packet", &Report{Version: 3, Records: []Record{
			{Type: ModeIsInclude, Group: addr("232.1.1.1"), Sources: tooMany}}}},
		{"leave without a group", &Leave{}},
		{"leave for a unicast group", &Leave{Group: addr("192.0.2.1")}},
	}
	for _, tc := range tests {
		if b, err := tc.msg.Marshal(); err == nil {
			t.Errorf("%s: Marshal gave % x, want an error", tc.name, b)
		}
	}
}

func TestCodeTables(t *testing.T) {
	for c := range 256 {
		code := uint8(c)
		if got := MaxRespCode(MaxRespTime(code)); got != code {
			t.Errorf("MaxRespCode(MaxRespTime(%#02x)) = %#02x", code, got)
		}
		if got := QQICode(QQITime(code)); got != code {
			t.Errorf("QQICode(QQITime(%#02x)) = %#02x", code, got)
		}
		if code > 0 && MaxRespTime(code) <= MaxRespTime(code-1) {
			t.Errorf("MaxRespTime(%#02x) = %v, not above the previous code's %v", code, MaxRespTime(code), MaxRespTime(code-1))
		}
		if QQITime(code) != 10*MaxRespTime(code) {
			t.Errorf("QQITime(%#02x) = %v, want ten times MaxRespTime %v", code, QQITime(code), MaxRespTime(code))
		}
	}
	examples := []struct {
		d    time.Duration
		code uint8
	}{
		{-time.Second, 0},
		{0, 0},
		{time.Nanosecond, 1},
		{99 * time.Millisecond, 1},
		{100 * time.Millisecond, 1},
		{199 * time.Millisecond, 1},
		{10 * time.Second, 100},
		{12700 * time.Millisecond, 0x7f},
		{12800 * time.Millisecond, 0x80}, // 16 << 3
		{13500 * time.Millisecond, 0x80},
		{13600 * time.Millisecond, 0x81}, // 17 << 3
		{24800 * time.Millisecond, 0x8f}, // 31 << 3
		{25500 * time.Millisecond, 0x8f},
		{25600 * time.Millisecond, 0x90}, // 16 << 4
		{3174400 * time.Millisecond, 0xff},
		{time.Hour, 0xff},
		{1 << 62, 0xff},
	}
	for _, e := range examples {
		if got := MaxRespCode(e.d); got != e.code {
			t.Errorf("MaxRespCode(%v) = %#02x, want %#02x", e.d, got, e.code)
		}
	}
	qqiExamples := []struct {
		d    time.Duration
		code uint8
	}{
		{0, 0},
		{500 * time.Millisecond, 1},
		{125 * time.Second, 125},
		{128 * time.Second, 0x80},
		{200 * time.Second, 0x89}, // 25 << 3
		{207 * time.Second, 0x89},
		{31744 * time.Second, 0xff},
		{100 * time.Hour, 0xff},
	}
	for _, e := range qqiExamples {
		if got := QQICode(e.d); got != e.code {
			t.Errorf("QQICode(%v) = %#02x, want %#02x", e.d, got, e.code)
		}
	}
	if MaxRespTime(0xff) != 3174400*time.Millisecond || QQITime(0xff) != 31744*time.Second {
		t.Errorf("largest codes: %v, %v", MaxRespTime(0xff), QQITime(0xff))
	}
}

// The encoding of any duration from one unit up decodes to the longest code
// time not above it.
func TestCodeRoundsToClosestBelow(t *testing.T) {
	for tenths := int64(1); tenths <= 32000; tenths++ {
		for _, d := range []time.Duration{
			time.Duration(tenths) * respUnit,
			time.Duration(tenths)*respUnit + respUnit/2,
			time.Duration(tenths+1)*respUnit - 1,
		} {
			code := MaxRespCode(d)
			if MaxRespTime(code) > d {
				t.Fatalf("MaxRespTime(MaxRespCode(%v)) = %v, above it", d, MaxRespTime(code))
			}
			if code < 0xff && MaxRespTime(code+1) <= d {
				t.Fatalf("MaxRespCode(%v) = %#02x, but %#02x (%v) is closer", d, code, code+1, MaxRespTime(code+1))
			}
		}
		d := time.Duration(tenths) * time.Second
		if code := QQICode(d); QQITime(code) > d || code < 0xff && QQITime(code+1) <= d {
			t.Fatalf("QQICode(%v) = %#02x (%v)", d, code, QQITime(code))
		}
	}
}

func decodeReason(t *testing.T, b []byte) string {
	t.Helper()
	msg, err := Decode(b)
	if err == nil {
		t.Fatalf("Decode(% x) = %+v, want an error", b, msg)
	}
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("Decode error %v is a %T, not a *DecodeError", err, err)
	}
	if msg != nil {
		t.Errorf("Decode returned %+v along with %v", msg, err)
	}
	return de.Reason
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name   string
		wire   string
		reason string
		keep   bool // keep the checksum as written instead of fixing it
	}{
		{"empty", "", ReasonShort, true},
		{"7 bytes", "16 00 00 00 ef 01 01", ReasonShort, true},
		{"bad checksum", "16 00 f9 fd ef010101", ReasonChecksum, true},
		{"checksum over trailing bytes", "16 00 f9 fc ef010101 0001", ReasonChecksum, true},
		{"unknown type DVMRP", "13 00 0000 00000000", ReasonUnknownType, false},
		{"unknown type mtrace", "1f 00 0000 00000000", ReasonUnknownType, false},
		{"9-byte query", "11 64 0000 00000000 02", ReasonBadLength, false},
		{"11-byte query", "11 64 0000 00000000 02 7d 00", ReasonBadLength, false},
		{"v1 report unicast group", "12 00 0000 0a000001", ReasonBadGroup, false},
		{"v2 report unicast group", "16 00 0000 0a000001", ReasonBadGroup, false},
		{"v2 report group 0", "16 00 0000 00000000", ReasonBadGroup, false},
		{"leave unicast group", "17 00 0000 c0000201", ReasonBadGroup, false},
		{"v2 query unicast group", "11 64 0000 0a000001", ReasonBadGroup, false},
		{"v3 query unicast group", "11 64 0000 0a000001 02 7d 0000", ReasonBadGroup, false},
		{"v3 general query with sources", "11 64 0000 00000000 02 7d 0001 0a000001", ReasonBadGroup, false},
		{"v3 query sources cut short", "11 64 0000 e8010101 02 7d 0002 0a000001", ReasonTruncatedRecord, false},
		{"v3 query absurd source count", "11 64 0000 e8010101 02 7d ffff 0a000001", ReasonTooManySources, false},
		{"v3 query multicast source", "11 64 0000 e8010101 02 7d 0001 e0000001", ReasonBadSource, false},
		{"v3 query source 0.1.2.3", "11 64 0000 e8010101 02 7d 0001 00010203", ReasonBadSource, false},
		{"v3 report more records than bytes", "22 00 0000 0000 0002 04 00 0000 ef010101", ReasonTruncatedRecord, false},
		{"v3 report record header cut", "22 00 0000 0000 0001 04 00 0000 ef01", ReasonTruncatedRecord, false},
		{"v3 report second record cut after aux of first",
			"22 00 0000 0000 0002 04 01 0000 ef010101 00000000 04 00 0000 ef01", ReasonTruncatedRecord, false},
		{"v3 record sources cut short", "22 00 0000 0000 0001 01 00 0002 e8010101 0a000001", ReasonTruncatedRecord, false},
		{"v3 record aux data overflows", "22 00 0000 0000 0001 01 02 0001 e8010101 0a000001 00000000", ReasonTruncatedRecord, false},
		{"v3 record absurd source count", "22 00 0000 0000 0001 01 00 ffff e8010101 0a000001", ReasonTooManySources, false},
		{"v3 record type 0", "22 00 0000 0000 0001 00 00 0000 ef010101", ReasonBadRecordType, false},
		{"v3 record type 7", "22 00 0000 0000 0001 07 00 0000 ef010101", ReasonBadRecordType, false},
		{"v3 record unicast group", "22 00 0000 0000 0001 04 00 0000 0a010101", ReasonBadGroup, false},
		{"v3 record loopback source", "22 00 0000 0000 0001 01 00 0001 e8010101 7f000001", ReasonBadSource, false},
		{"v3 record broadcast source", "22 00 0000 0000 0001 01 00 0001 e8010101 ffffffff", ReasonBadSource, false},
		{"bad second record", "22 00 0000 0000 0002 01 00 0000 e8010101 09 00 0000 e8010101", ReasonBadRecordType, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := fromHex(t, tc.wire)
			if !tc.keep {
				b = withChecksum(b)
			}
			if got := decodeReason(t, b); got != tc.reason {
				t.Errorf("reason %q, want %q", got, tc.reason)
			}
		})
	}
	if got := decodeReason(t, withChecksum(make([]byte, maxMessageLen+1))); got != ReasonBadLength {
		t.Errorf("oversized message: reason %q, want %q", got, ReasonBadLength)
	}
}

func TestDecodeErrorText(t *testing.T) {
	_, err := Decode(withChecksum(fromHex(t, "22 00 0000 0000 0001 01 00 0005 e8010101 0a000001")))
	if got := err.Error(); !strings.HasPrefix(got, "igmp: truncated-record: record 1") {
		t.Errorf("Error() = %q", got)
	}
	if got := (&DecodeError{Reason: ReasonTTL}).Error(); got != "igmp: ttl" {
		t.Errorf("Error() without detail = %q", got)
	}
}

// A count of 65535 sources in a 40-byte message must be refused before
// anything is sized from it.
func TestDecodeAbsurdCountAllocatesLittle(t *testing.T) {
	query := make([]byte, 40)
	copy(query, fromHex(t, "11 64 0000 e8010101 02 7d ffff"))
	report := make([]byte, 40)
	copy(report, fromHex(t, "22 00 0000 0000 ffff 01 00 ffff e8010101"))
	record := make([]byte, 40)
	copy(record, fromHex(t, "22 00 0000 0000 0001 01 00 ffff e8010101"))
	for _, b := range [][]byte{withChecksum(query), withChecksum(report), withChecksum(record)} {
		if _, err := Decode(b); err == nil {
			t.Fatalf("Decode(% x) accepted", b)
		}
		const runs = 100
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range runs {
			_, _ = Decode(b)
		}
		runtime.ReadMemStats(&after)
		if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 512 {
			t.Errorf("Decode(% x) allocated %d bytes per call", b[:12], perRun)
		}
	}
}

func TestDecodeIgnoresTrailingBytes(t *testing.T) {
	tests := []struct {
		wire string
		want any
	}{
		{"16 00 0000 ef010101 deadbeef", &Report{Version: 2, Group: addr("239.1.1.1")}},
		{"12 00 0000 ef010101 00", &Report{Version: 1, Group: addr("239.1.1.1")}},
		{"17 00 0000 ef010101 0000", &Leave{Group: addr("239.1.1.1")}},
		{"11 64 0000 00000000 02 7d 0000 ff", &Query{Version: 3, MaxResp: 10 * time.Second, QRV: 2, QQI: 125 * time.Second}},
		{"22 00 0000 0000 0001 04 00 0000 ef010101 0102030405",
			&Report{Version: 3, Records: []Record{{Type: ChangeToExclude, Group: addr("239.1.1.1")}}}},
	}
	for _, tc := range tests {
		got, err := Decode(withChecksum(fromHex(t, tc.wire)))
		if err != nil {
			t.Errorf("Decode(%s): %v", tc.wire, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Decode(%s) = %+v, want %+v", tc.wire, got, tc.want)
		}
	}
}

func TestDecodeReservedBitsIgnored(t *testing.T) {
	// Resv bits of byte 8 set, along with S and QRV 5; reserved fields of a v3 report set.
	got, err := Decode(withChecksum(fromHex(t, "11 00 0000 00000000 fd 00 0000")))
	if err != nil {
		t.Fatal(err)
	}
	if want := (&Query{Version: 3, SuppressRtr: true, QRV: 5}); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := Decode(withChecksum(fromHex(t, "22 ff 0000 ffff 0000"))); err != nil {
		t.Errorf("v3 report with reserved fields set: %v", err)
	}
}

func TestDecodeDoesNotKeepInput(t *testing.T) {
	b := mustMarshal(t, &Report{Version: 3, Records: []Record{
		{Type: ModeIsInclude, Group: addr("232.1.1.1"), Sources: addrs("10.0.0.1"), AuxData: []byte{1, 2, 3, 4}}}})
	msg, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if aux := msg.(*Report).Records[0].AuxData; !bytes.Equal(aux, []byte{1, 2, 3, 4}) {
		t.Errorf("aux data changed with the input buffer: % x", aux)
	}
}

// ipv4Packet wraps msg in an IPv4 header built by gopacket.
func ipv4Packet(t testing.TB, src, dst string, ttl uint8, routerAlert bool, msg []byte) []byte {
	t.Helper()
	ip := &layers.IPv4{
		Version:  4,
		TOS:      0xc0,
		TTL:      ttl,
		Protocol: layers.IPProtocolIGMP,
		SrcIP:    net.ParseIP(src).To4(),
		DstIP:    net.ParseIP(dst).To4(),
	}
	if routerAlert {
		ra := RouterAlert()
		ip.Options = []layers.IPv4Option{{OptionType: ra[0], OptionLength: ra[1], OptionData: ra[2:]}}
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ip, gopacket.Payload(msg)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// setIPHeader changes one header byte and repairs the header checksum.
func setIPHeader(pkt []byte, i int, v byte) []byte {
	pkt = append([]byte(nil), pkt...)
	pkt[i] = v
	hlen := int(pkt[0]&0x0f) * 4
	pkt[10], pkt[11] = 0, 0
	binary.BigEndian.PutUint16(pkt[10:12], Checksum(pkt[:hlen]))
	return pkt
}

func TestDecodeIPv4(t *testing.T) {
	report := mustMarshal(t, &Report{Version: 3, Records: []Record{{Type: ChangeToExclude, Group: addr("239.1.1.1")}}})
	for _, ra := range []bool{true, false} {
		pkt := ipv4Packet(t, "10.3.3.2", "224.0.0.22", 1, ra, report)
		if ra && !bytes.Equal(pkt[20:24], RouterAlert()) {
			t.Fatalf("option bytes % x", pkt[20:24])
		}
		src, dst, msg, err := DecodeIPv4(pkt)
		if err != nil {
			t.Fatalf("router alert %v: %v", ra, err)
		}
		if src != addr("10.3.3.2") || dst != addr("224.0.0.22") {
			t.Errorf("src %v dst %v", src, dst)
		}
		if want, _ := Decode(report); !reflect.DeepEqual(msg, want) {
			t.Errorf("msg %+v, want %+v", msg, want)
		}
		// Link-layer padding or a larger read buffer past the total length.
		if _, _, _, err := DecodeIPv4(append(pkt, 0, 0, 0, 0)); err != nil {
			t.Errorf("bytes past the total length: %v", err)
		}
	}
	// A report from a host with no address yet (RFC 3376 4.2.13).
	if src, _, _, err := DecodeIPv4(ipv4Packet(t, "0.0.0.0", "224.0.0.22", 1, true, report)); err != nil || src != addr("0.0.0.0") {
		t.Errorf("source 0.0.0.0: %v, %v", src, err)
	}
}

func TestDecodeIPv4Errors(t *testing.T) {
	leave := mustMarshal(t, &Leave{Group: addr("239.1.1.1")})
	good := ipv4Packet(t, "10.3.3.2", "224.0.0.2", 1, true, leave)
	badIGMP := append([]byte(nil), good...)
	badIGMP[len(badIGMP)-1] ^= 0xff
	badIPSum := append([]byte(nil), good...)
	badIPSum[10] ^= 0xff
	tests := []struct {
		name   string
		pkt    []byte
		reason string
	}{
		{"empty", nil, ReasonShort},
		{"19 bytes", good[:19], ReasonShort},
		{"IPv6", setIPHeader(good, 0, 0x66), ReasonBadIPHeader},
		{"IHL 4", setIPHeader(good, 0, 0x44), ReasonBadIPHeader},
		{"IHL past the data", setIPHeader(good[:20], 0, 0x46), ReasonShort},
		{"total length below header", setIPHeader(setIPHeader(good, 2, 0), 3, 20), ReasonBadIPHeader},
		{"total length past the data", good[:len(good)-1], ReasonShort},
		{"header checksum", badIPSum, ReasonIPChecksum},
		{"more fragments", setIPHeader(good, 6, 0x20), ReasonBadIPHeader},
		{"fragment offset", setIPHeader(good, 7, 0x01), ReasonBadIPHeader},
		{"upcall (protocol 0)", setIPHeader(good, 9, 0), ReasonNotIGMP},
		{"PIM", setIPHeader(good, 9, 103), ReasonNotIGMP},
		{"TTL 2", setIPHeader(good, 8, 2), ReasonTTL},
		{"TTL 0", setIPHeader(good, 8, 0), ReasonTTL},
		{"IGMP checksum", badIGMP, ReasonChecksum},
		{"no IGMP bytes", ipv4Packet(t, "10.3.3.2", "224.0.0.2", 1, false, nil), ReasonShort},
	}
	for _, tc := range tests {
		src, _, msg, err := DecodeIPv4(tc.pkt)
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%s: error %v (msg %+v), want a *DecodeError", tc.name, err, msg)
			continue
		}
		if de.Reason != tc.reason {
			t.Errorf("%s: reason %q (%v), want %q", tc.name, de.Reason, err, tc.reason)
		}
		if tc.reason == ReasonTTL && src != addr("10.3.3.2") {
			t.Errorf("%s: src %v, want it for the log line", tc.name, src)
		}
	}
}

// gopacket's IGMP layer must agree with Decode on well-formed messages for
// what it reads correctly: types, groups, record types, sources, max response.
func TestWireGopacketAgrees(t *testing.T) {
	for _, m := range append(roundTripMessages, &Report{Version: 3, Records: []Record{
		{Type: ModeIsInclude, Group: addr("232.1.1.1"), Sources: addrs("10.1.1.2", "10.1.1.3")},
		{Type: BlockOldSources, Group: addr("232.1.1.2"), Sources: addrs("10.1.1.4")},
	}}) {
		b := mustMarshal(t, m)
		pkt := gopacket.NewPacket(b, layers.LayerTypeIGMP, gopacket.Default)
		if el := pkt.ErrorLayer(); el != nil {
			t.Errorf("gopacket failed on % x: %v", b, el.Error())
			continue
		}
		ours, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		switch l := pkt.Layer(layers.LayerTypeIGMP).(type) {
		case *layers.IGMPv1or2:
			var group netip.Addr
			var version uint8
			switch o := ours.(type) {
			case *Query:
				group, version = o.Group, uint8(o.Version)
				if o.Version == 2 && o.MaxResp < 12800*time.Millisecond && l.MaxResponseTime != o.MaxResp {
					t.Errorf("% x: gopacket max response %v, ours %v", b, l.MaxResponseTime, o.MaxResp)
				}
			case *Report:
				group, version = o.Group, uint8(o.Version)
			case *Leave:
				group, version = o.Group, 2
			}
			if !group.IsValid() {
				group = netip.IPv4Unspecified()
			}
			if gpGroup, _ := netip.AddrFromSlice(l.GroupAddress); gpGroup != group || l.Version != version || uint8(l.Type) != b[0] {
				t.Errorf("% x: gopacket v%d type %#x group %v, ours %+v", b, l.Version, l.Type, gpGroup, ours)
			}
		case *layers.IGMP:
			if l.Version != 3 || uint8(l.Type) != b[0] {
				t.Errorf("% x: gopacket v%d type %#x", b, l.Version, l.Type)
			}
			switch o := ours.(type) {
			case *Query:
				group := o.Group
				if !group.IsValid() {
					group = netip.IPv4Unspecified()
				}
				// gopacket reads only codes below 128 right; see TestWireGopacketDiffers.
				if b[1] < 128 && l.MaxResponseTime != o.MaxResp {
					t.Errorf("% x: gopacket max response %v, ours %v", b, l.MaxResponseTime, o.MaxResp)
				}
				if gpGroup, _ := netip.AddrFromSlice(l.GroupAddress); gpGroup != group || int(l.RobustnessValue) != o.QRV ||
					l.SupressRouterProcessing != o.SuppressRtr || !sameAddrs(l.SourceAddresses, o.Sources) {
					t.Errorf("% x: gopacket %+v, ours %+v", b, l, o)
				}
			case *Report:
				if hasAuxData(o) {
					continue // gopacket does not skip aux data; see TestWireGopacketDiffers
				}
				if len(l.GroupRecords) != len(o.Records) {
					t.Errorf("% x: gopacket %d records, ours %d", b, len(l.GroupRecords), len(o.Records))
					continue
				}
				for i, gr := range l.GroupRecords {
					rec := o.Records[i]
					if gpGroup, _ := netip.AddrFromSlice(gr.MulticastAddress); uint8(gr.Type) != uint8(rec.Type) ||
						gpGroup != rec.Group || !sameAddrs(gr.SourceAddresses, rec.Sources) {
						t.Errorf("% x record %d: gopacket %+v, ours %+v", b, i, gr, rec)
					}
				}
			}
		default:
			t.Errorf("% x: gopacket layer %T", b, l)
		}
	}
}

func hasAuxData(r *Report) bool {
	for _, rec := range r.Records {
		if len(rec.AuxData) > 0 {
			return true
		}
	}
	return false
}

func sameAddrs(ips []net.IP, as []netip.Addr) bool {
	if len(ips) != len(as) {
		return false
	}
	for i, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip); !ok || a != as[i] {
			return false
		}
	}
	return true
}

func gopacketIGMP(t *testing.T, b []byte) gopacket.Layer {
	t.Helper()
	pkt := gopacket.NewPacket(b, layers.LayerTypeIGMP, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("gopacket: %v", el.Error())
	}
	return pkt.Layer(layers.LayerTypeIGMP)
}

// Where gopacket v1.1.19's IGMP layer goes wrong, which is why the codec is
// our own and gopacket only checks it:
//   - QQIC is decoded in tenths of a second like Max Resp Code, not in seconds,
//     so IntervalTime is a tenth of the real interval;
//   - codes of 128 and up have exponent and mantissa swapped and are computed
//     in 8 bits, so most decode to 0 or some small wrong time;
//   - a v2 Max Resp Time of 128 or more is read as such a floating-point code
//     instead of as plain tenths;
//   - a v3 report or query whose counts run past the data decodes without
//     error, keeping the records read so far;
//   - aux data is not skipped, so the records after one with aux data are
//     read from the wrong offset;
//   - the checksum is not verified;
//   - it has no serializer.
func TestWireGopacketDiffers(t *testing.T) {
	t.Run("QQIC units", func(t *testing.T) {
		b := mustMarshal(t, &Query{Version: 3, MaxResp: 10 * time.Second, QQI: 125 * time.Second})
		l := gopacketIGMP(t, b).(*layers.IGMP)
		if l.IntervalTime != 12500*time.Millisecond {
			t.Errorf("gopacket IntervalTime %v; expected its tenths-of-a-second reading 12.5s", l.IntervalTime)
		}
		q, _ := Decode(b)
		if got := q.(*Query).QQI; got != 125*time.Second {
			t.Errorf("QQI %v", got)
		}
	})
	t.Run("floating-point codes", func(t *testing.T) {
		wrong := 0
		for c := 128; c < 256; c++ {
			b := mustMarshal(t, &Query{Version: 3, MaxResp: MaxRespTime(uint8(c))})
			if gopacketIGMP(t, b).(*layers.IGMP).MaxResponseTime != MaxRespTime(uint8(c)) {
				wrong++
			}
		}
		// Only 0x80, where the swapped fields are both 0, comes out right.
		if wrong != 127 {
			t.Errorf("gopacket misread %d of the 128 codes from 0x80; expected 127", wrong)
		}
		b := mustMarshal(t, &Query{Version: 3, MaxResp: 20800 * time.Millisecond}) // code 0x8a
		if l := gopacketIGMP(t, b).(*layers.IGMP); l.MaxResponseTime == 20800*time.Millisecond {
			t.Errorf("gopacket read code 0x8a right; this note is stale")
		}
	})
	t.Run("v2 max response time as float", func(t *testing.T) {
		b := mustMarshal(t, &Query{Version: 2, MaxResp: 20 * time.Second}) // code 200 = 0xc8
		if l := gopacketIGMP(t, b).(*layers.IGMPv1or2); l.MaxResponseTime == 20*time.Second {
			t.Errorf("gopacket read v2 code 200 as 20s; this note is stale")
		}
		q, _ := Decode(b)
		if got := q.(*Query).MaxResp; got != 20*time.Second {
			t.Errorf("MaxResp %v", got)
		}
	})
	t.Run("truncated record swallowed", func(t *testing.T) {
		// Two records claimed; the second says 5 sources and holds 1.
		b := withChecksum(fromHex(t, "22 00 0000 0000 0002 04 00 0000 ef010101 01 00 0005 e8010101 0a000001"))
		l := gopacketIGMP(t, b).(*layers.IGMP)
		if len(l.GroupRecords) != 1 || l.NumberOfGroupRecords != 2 {
			t.Errorf("gopacket kept %d of %d records; expected a silent partial decode", len(l.GroupRecords), l.NumberOfGroupRecords)
		}
		if got := decodeReason(t, b); got != ReasonTruncatedRecord {
			t.Errorf("reason %q", got)
		}
	})
	t.Run("truncated query sources swallowed", func(t *testing.T) {
		b := withChecksum(fromHex(t, "11 64 0000 e8010101 02 7d 0003 0a000001"))
		l := gopacketIGMP(t, b).(*layers.IGMP)
		if len(l.SourceAddresses) != 0 || l.NumberOfSources != 3 {
			t.Errorf("gopacket read %d of %d sources; expected none and no error", len(l.SourceAddresses), l.NumberOfSources)
		}
		if got := decodeReason(t, b); got != ReasonTruncatedRecord {
			t.Errorf("reason %q", got)
		}
	})
	t.Run("aux data not skipped", func(t *testing.T) {
		b := mustMarshal(t, &Report{Version: 3, Records: []Record{
			{Type: ModeIsInclude, Group: addr("232.1.1.1"), AuxData: []byte{0, 0, 0, 0}},
			{Type: ModeIsExclude, Group: addr("239.1.1.1")},
		}})
		l := gopacketIGMP(t, b).(*layers.IGMP)
		if len(l.GroupRecords) == 2 && l.GroupRecords[1].MulticastAddress.Equal(net.IPv4(239, 1, 1, 1)) {
			t.Errorf("gopacket read the record after aux data correctly; this note is stale")
		}
		r, _ := Decode(b)
		if got := r.(*Report).Records[1].Group; got != addr("239.1.1.1") {
			t.Errorf("second record group %v", got)
		}
	})
	t.Run("checksum not verified", func(t *testing.T) {
		b := fromHex(t, "16 00 0000 ef010101")
		if l := gopacketIGMP(t, b).(*layers.IGMPv1or2); !l.GroupAddress.Equal(net.IPv4(239, 1, 1, 1)) {
			t.Errorf("gopacket group %v", l.GroupAddress)
		}
		if got := decodeReason(t, b); got != ReasonChecksum {
			t.Errorf("reason %q", got)
		}
	})
}

// gopacket's IPv4 layer reads the same addresses from what DecodeIPv4 accepts.
func TestDecodeIPv4GopacketAgrees(t *testing.T) {
	for _, m := range roundTripMessages {
		pkt := ipv4Packet(t, "192.0.2.9", "224.0.0.1", 1, true, mustMarshal(t, m))
		src, dst, _, err := DecodeIPv4(pkt)
		if err != nil {
			t.Fatal(err)
		}
		p := gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.Default)
		ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ok {
			t.Fatalf("gopacket: no IPv4 layer: %v", p.ErrorLayer())
		}
		if gpSrc, _ := netip.AddrFromSlice(ip.SrcIP); gpSrc != src {
			t.Errorf("src %v, gopacket %v", src, gpSrc)
		}
		if gpDst, _ := netip.AddrFromSlice(ip.DstIP); gpDst != dst {
			t.Errorf("dst %v, gopacket %v", dst, gpDst)
		}
		if len(ip.Options) != 1 || ip.Options[0].OptionType != 0x94 {
			t.Errorf("gopacket options %+v", ip.Options)
		}
		if !bytes.Equal(ip.Payload, mustMarshal(t, m)) {
			t.Errorf("gopacket payload % x", ip.Payload)
		}
	}
}
