package pim

import (
	"reflect"
	"testing"
)

func FuzzDecode(f *testing.F) {
	for _, m := range roundTripMessages {
		f.Add(mustMarshal(f, m))
	}
	for _, g := range goldenMessages {
		f.Add(fromHex(f, g.wire))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Random bytes almost never carry a right checksum, so each input is
		// also tried repaired, to reach the parsing behind the check.
		inputs := [][]byte{b}
		if len(b) >= headerLen {
			inputs = append(inputs, withChecksum(b))
		}
		for _, in := range inputs {
			msg, err := Decode(in)
			if err != nil {
				if _, ok := err.(*DecodeError); !ok || msg != nil {
					t.Fatalf("Decode(% x) = %v, %v", in, msg, err)
				}
				continue
			}
			m, ok := msg.(marshaler)
			if !ok {
				t.Fatalf("Decode returned a %T", msg)
			}
			out, err := m.Marshal()
			if err != nil {
				t.Fatalf("Marshal of decoded %+v: %v", msg, err)
			}
			again, err := Decode(out)
			if err != nil {
				t.Fatalf("Decode(Marshal(%+v)) = % x: %v", msg, out, err)
			}
			if !reflect.DeepEqual(again, msg) {
				t.Fatalf("re-decoded %+v, want %+v", again, msg)
			}
		}
	})
}
