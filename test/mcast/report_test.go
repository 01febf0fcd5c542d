package mcast

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

var (
	joined = time.Unix(1000, 0)
	srcA   = netip.MustParseAddr("10.0.1.2")
	srcB   = netip.MustParseAddr("10.0.1.3")
)

// datagram builds a payload of the tool, sent at sent.
func datagram(stream uint32, seq uint64, sent time.Time) []byte {
	b := make([]byte, DefaultSize)
	Header{Stream: stream, Seq: seq, Sent: sent}.Put(b)
	return b
}

// feed adds seqs of stream 0 from srcA, arriving 10ms apart from 5ms after the join,
// each 1ms after it was sent.
func feed(t *Tally, seqs ...uint64) {
	for i, seq := range seqs {
		at := joined.Add(5*time.Millisecond + time.Duration(i)*10*time.Millisecond)
		t.Add(datagram(0, seq, at.Add(-time.Millisecond)), srcA, at)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	sent := time.Unix(1700000000, 123456789)
	h, ok := ParseHeader(datagram(7, 1<<40, sent))
	if !ok || h.Stream != 7 || h.Seq != 1<<40 || !h.Sent.Equal(sent) {
		t.Errorf("ParseHeader = %+v, %v", h, ok)
	}
	if _, ok := ParseHeader([]byte("short")); ok {
		t.Error("short datagram parsed")
	}
	if _, ok := ParseHeader(make([]byte, 64)); ok {
		t.Error("datagram without magic parsed")
	}
}

func TestTallyInOrder(t *testing.T) {
	tally := NewTally(joined)
	feed(tally, 0, 1, 2, 3, 4)
	got := tally.Report().Stats
	want := Stats{
		Received: 5, Unique: 5, LastSeq: 4,
		FirstPacketMs: 5, LastPacketMs: 45, MaxGapMs: 10, MaxLatencyMs: 1,
	}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestTallyLossAtStart(t *testing.T) {
	tally := NewTally(joined)
	feed(tally, 3, 4, 6)
	r := tally.Report()
	if r.FirstSeq != 3 || r.LastSeq != 6 || r.Unique != 3 || r.Lost != 4 {
		t.Errorf("first %d last %d unique %d lost %d, want 3 6 3 4 (0, 1, 2 and 5 lost)",
			r.FirstSeq, r.LastSeq, r.Unique, r.Lost)
	}
}

// TestTallyLowestSeq: a packet overtaken by the first to arrive is the lowest.
func TestTallyLowestSeq(t *testing.T) {
	tally := NewTally(joined)
	feed(tally, 8, 7, 9)
	if r := tally.Report(); r.FirstSeq != 8 || r.LowestSeq != 7 || r.LastSeq != 9 || r.Reordered != 1 {
		t.Errorf("first %d lowest %d last %d reordered %d, want 8 7 9 1", r.FirstSeq, r.LowestSeq, r.LastSeq, r.Reordered)
	}
}

func TestTallyDuplicatesAndReorder(t *testing.T) {
	tally := NewTally(joined)
	feed(tally, 0, 1, 3, 2, 2, 5, 3, 4)
	got := tally.Report().Stats
	// 2 and 4 arrive after higher numbers; the second 2 and 3 are duplicates, not reorders.
	if got.Received != 8 || got.Unique != 6 || got.Duplicates != 2 || got.Lost != 0 || got.Reordered != 2 {
		t.Errorf("got %+v", got)
	}
	// The second 3 is the last duplicate, the 7th arrival: 5 + 6*10 ms after the join.
	if got.LastDuplicateMs != 65 {
		t.Errorf("last duplicate %v ms after the join, want 65", got.LastDuplicateMs)
	}
}

func TestTallyLastDuplicatePerStream(t *testing.T) {
	tally := NewTally(joined)
	at := func(ms int) time.Time { return joined.Add(time.Duration(ms) * time.Millisecond) }
	tally.Add(datagram(1, 0, at(1)), srcA, at(1))
	tally.Add(datagram(1, 0, at(2)), srcB, at(2)) // stream 1's duplicate
	tally.Add(datagram(2, 0, at(3)), srcA, at(3))
	tally.Add(datagram(2, 1, at(4)), srcA, at(4))
	r := tally.Report()
	if r.LastDuplicateMs != 2 || r.Streams["1"].LastDuplicateMs != 2 || r.Streams["2"].LastDuplicateMs != 0 {
		t.Errorf("last duplicate: all %v, stream 1 %v, stream 2 %v; want 2, 2, 0 (none)",
			r.LastDuplicateMs, r.Streams["1"].LastDuplicateMs, r.Streams["2"].LastDuplicateMs)
	}
	if !r.Joined.Equal(joined) {
		t.Errorf("joined %v, want %v", r.Joined, joined)
	}
}

func TestTallyStreamsSourcesForeign(t *testing.T) {
	tally := NewTally(joined)
	at := joined.Add(time.Millisecond)
	tally.Add(datagram(2, 5, at), srcB, at)
	for seq := range uint64(3) {
		at = at.Add(time.Millisecond)
		tally.Add(datagram(1, seq, at), srcA, at)
	}
	if tally.Add([]byte("not ours, long enough to hold a header"), srcA, at) {
		t.Error("foreign datagram accepted")
	}
	if tally.Add(datagram(1, maxTrackedSeq, at), srcA, at) {
		t.Error("datagram with an absurd sequence number accepted")
	}
	r := tally.Report()
	if r.Foreign != 2 || r.Received != 4 || r.Unique != 4 || r.Lost != 5 || r.FirstSeq != 5 || r.LastSeq != 5 {
		t.Errorf("totals %+v foreign %d", r.Stats, r.Foreign)
	}
	if want := map[string]uint64{"10.0.1.2": 3, "10.0.1.3": 1}; !reflect.DeepEqual(r.Sources, want) {
		t.Errorf("sources %v, want %v", r.Sources, want)
	}
	if s := r.Streams["1"]; s.Received != 3 || s.Lost != 0 || s.LastSeq != 2 || s.FirstPacketMs != 2 {
		t.Errorf("stream 1: %+v", s)
	}
	if s := r.Streams["2"]; s.Received != 1 || s.Lost != 5 || s.FirstSeq != 5 {
		t.Errorf("stream 2: %+v", s)
	}
}

func TestEmptyReport(t *testing.T) {
	r := NewTally(joined).Report()
	if r.Received != 0 || r.Lost != 0 || r.FirstPacketMs != 0 || len(r.Streams) != 0 {
		t.Errorf("empty report %+v", r)
	}
}

func TestParseReport(t *testing.T) {
	tally := NewTally(joined)
	feed(tally, 0, 2, 2)
	want := tally.Report()
	data, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseReport(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got  %+v\n want %+v", got, want)
	}
	// The field names are a contract with scripts and other tests.
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"received", "unique", "duplicates", "lost", "first_seq", "last_seq",
		"first_packet_ms", "last_packet_ms", "reordered", "max_gap_ms", "last_duplicate_ms", "joined", "sources", "streams", "foreign"} {
		if _, ok := fields[name]; !ok {
			t.Errorf("report lacks %q: %s", name, data)
		}
	}
	if _, err := ParseReport([]byte("{")); err == nil {
		t.Error("ParseReport accepted broken JSON")
	}
}
