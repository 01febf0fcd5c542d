// Package mcast sends and receives numbered multicast UDP streams and accounts for
// what arrived: loss, duplicates, reordering, timing. The mcast command wraps it.
package mcast

import (
	"encoding/binary"
	"time"
)

// Magic opens every datagram of the tool, so that other traffic on the port is told
// apart ("MCST").
const Magic uint32 = 0x4d435354

// HeaderLen is the size of the header: magic, stream, sequence number, send time.
const HeaderLen = 24

// Header is what each datagram carries before its padding.
type Header struct {
	Stream uint32
	Seq    uint64
	Sent   time.Time // wall clock of the sender, nanoseconds
}

// Put writes h at the start of b, which must hold HeaderLen bytes.
func (h Header) Put(b []byte) {
	binary.BigEndian.PutUint32(b[0:], Magic)
	binary.BigEndian.PutUint32(b[4:], h.Stream)
	binary.BigEndian.PutUint64(b[8:], h.Seq)
	binary.BigEndian.PutUint64(b[16:], uint64(h.Sent.UnixNano()))
}

// ParseHeader reads the header of a datagram; ok is false when it is not the tool's.
func ParseHeader(b []byte) (h Header, ok bool) {
	if len(b) < HeaderLen || binary.BigEndian.Uint32(b) != Magic {
		return Header{}, false
	}
	return Header{
		Stream: binary.BigEndian.Uint32(b[4:]),
		Seq:    binary.BigEndian.Uint64(b[8:]),
		Sent:   time.Unix(0, int64(binary.BigEndian.Uint64(b[16:]))),
	}, true
}
