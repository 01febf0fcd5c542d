package mcast

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"time"
)

// Stats account for the datagrams of one stream, or of all streams together.
type Stats struct {
	Received   uint64 `json:"received"`   // datagrams of the tool, duplicates included
	Unique     uint64 `json:"unique"`     // distinct sequence numbers
	Duplicates uint64 `json:"duplicates"` // Received - Unique
	// Lost counts the sequence numbers from 0 to LastSeq never received, so that packets
	// missing before the first arrival count too.
	Lost          uint64  `json:"lost"`
	FirstSeq      uint64  `json:"first_seq"`       // sequence number of the first arrival
	LowestSeq     uint64  `json:"lowest_seq"`      // lowest sequence number received: below FirstSeq when reordered
	LastSeq       uint64  `json:"last_seq"`        // highest sequence number received
	FirstPacketMs float64 `json:"first_packet_ms"` // from the join to the first arrival
	LastPacketMs  float64 `json:"last_packet_ms"`  // from the join to the last arrival
	// Reordered counts new sequence numbers that arrived after a higher one.
	Reordered uint64 `json:"reordered"`
	// MaxGapMs is the longest silence between two consecutive arrivals.
	MaxGapMs float64 `json:"max_gap_ms"`
	// MaxLatencyMs is the largest delay from the send time to arrival; meaningful when
	// sender and receiver share a clock, as lab nodes do.
	MaxLatencyMs float64 `json:"max_latency_ms"`
	// LastDuplicateMs is from the join to the arrival of the last duplicate; zero when
	// none arrived. It tells when duplicates stopped, e.g. once an assert settled.
	LastDuplicateMs float64 `json:"last_duplicate_ms"`
}

// Report is what a receiver prints on exit. The top-level Stats cover all streams.
type Report struct {
	Stats
	// Joined is when the receiver joined, by the wall clock: the *_ms figures count
	// from it, so that they line up with a sender's first_sent.
	Joined  time.Time         `json:"joined"`
	Foreign uint64            `json:"foreign"` // datagrams without the tool's header
	Sources map[string]uint64 `json:"sources"` // datagrams of the tool per source address
	Streams map[string]Stats  `json:"streams"` // per stream ID
}

// ParseReport decodes a report as the mcast command prints it.
func ParseReport(data []byte) (Report, error) {
	var r Report
	err := json.Unmarshal(data, &r)
	return r, err
}

// maxTrackedSeq bounds the memory a corrupt or hostile sequence number can claim.
const maxTrackedSeq = 1 << 28

// Tally accounts for arriving datagrams. It is not safe for concurrent use.
type Tally struct {
	joined  time.Time
	all     timing
	streams map[uint32]*streamTally
	order   []uint32 // stream of the first arrival first
	sources map[string]uint64
	foreign uint64
}

// timing follows arrival times.
type timing struct {
	first, last   time.Time
	lastDuplicate time.Time
	maxGap        time.Duration
	maxLatency    time.Duration
}

func (t *timing) add(at, sent time.Time) {
	if t.first.IsZero() {
		t.first = at
	} else if gap := at.Sub(t.last); gap > t.maxGap {
		t.maxGap = gap
	}
	t.last = at
	if latency := at.Sub(sent); latency > t.maxLatency {
		t.maxLatency = latency
	}
}

type streamTally struct {
	timing
	seen       []uint64 // bitset of sequence numbers received
	received   uint64
	unique     uint64
	reordered  uint64
	firstSeq   uint64
	lowestSeq  uint64
	highestSeq uint64
}

// NewTally starts accounting for a receiver that joined at joined.
func NewTally(joined time.Time) *Tally {
	return &Tally{joined: joined, streams: map[uint32]*streamTally{}, sources: map[string]uint64{}}
}

// Add accounts for one datagram with payload from src, arrived at at. It reports
// whether the datagram was the tool's.
func (t *Tally) Add(payload []byte, src netip.Addr, at time.Time) bool {
	h, ok := ParseHeader(payload)
	if !ok || h.Seq >= maxTrackedSeq {
		t.foreign++
		return false
	}
	s := t.streams[h.Stream]
	if s == nil {
		s = &streamTally{firstSeq: h.Seq, lowestSeq: h.Seq}
		t.streams[h.Stream] = s
		t.order = append(t.order, h.Stream)
	}
	t.sources[src.Unmap().String()]++
	t.all.add(at, h.Sent)
	if !s.add(h.Seq, at, h.Sent) {
		t.all.lastDuplicate = at
	}
	return true
}

// add accounts for one datagram of the stream; it returns false for a duplicate.
func (s *streamTally) add(seq uint64, at, sent time.Time) bool {
	s.timing.add(at, sent)
	first := s.received == 0
	s.received++
	word, bit := seq/64, uint64(1)<<(seq%64)
	for uint64(len(s.seen)) <= word {
		s.seen = append(s.seen, 0)
	}
	if s.seen[word]&bit != 0 {
		s.lastDuplicate = at
		return false
	}
	s.seen[word] |= bit
	s.unique++
	if !first && seq < s.highestSeq {
		s.reordered++
	}
	s.highestSeq = max(s.highestSeq, seq)
	s.lowestSeq = min(s.lowestSeq, seq)
	return true
}

// Received returns how many of the tool's datagrams arrived so far.
func (t *Tally) Received() uint64 {
	var n uint64
	for _, s := range t.streams {
		n += s.received
	}
	return n
}

// LastArrival returns when the last of the tool's datagrams arrived; zero if none did.
func (t *Tally) LastArrival() time.Time { return t.all.last }

// Report sums up what arrived so far.
func (t *Tally) Report() Report {
	r := Report{Joined: t.joined.Round(0).UTC(), Foreign: t.foreign, Sources: map[string]uint64{}, Streams: map[string]Stats{}}
	for src, n := range t.sources {
		r.Sources[src] = n
	}
	for i, id := range t.order {
		st := t.streams[id].stats(t.joined)
		r.Streams[strconv.FormatUint(uint64(id), 10)] = st
		r.Received += st.Received
		r.Unique += st.Unique
		r.Duplicates += st.Duplicates
		r.Lost += st.Lost
		r.Reordered += st.Reordered
		if i == 0 {
			r.FirstSeq, r.LowestSeq = st.FirstSeq, st.LowestSeq
		}
		r.LastSeq = max(r.LastSeq, st.LastSeq)
	}
	r.Stats.setTiming(t.joined, t.all)
	return r
}

func (s *streamTally) stats(joined time.Time) Stats {
	st := Stats{
		Received:   s.received,
		Unique:     s.unique,
		Duplicates: s.received - s.unique,
		FirstSeq:   s.firstSeq,
		LowestSeq:  s.lowestSeq,
		LastSeq:    s.highestSeq,
		Reordered:  s.reordered,
	}
	if s.received > 0 {
		st.Lost = s.highestSeq + 1 - s.unique
	}
	st.setTiming(joined, s.timing)
	return st
}

func (st *Stats) setTiming(joined time.Time, t timing) {
	if t.first.IsZero() {
		return
	}
	st.FirstPacketMs = ms(t.first.Sub(joined))
	st.LastPacketMs = ms(t.last.Sub(joined))
	st.MaxGapMs = ms(t.maxGap)
	st.MaxLatencyMs = ms(t.maxLatency)
	if !t.lastDuplicate.IsZero() {
		st.LastDuplicateMs = ms(t.lastDuplicate.Sub(joined))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
