package pim

import (
	"net/netip"
	"slices"
)

// RPMapping maps a range of groups to a rendezvous point.
type RPMapping struct {
	Groups netip.Prefix
	RP     netip.Addr
	Origin string // "static" for configured mappings
}

// RPSet answers which RP serves a group. SSM groups have none (RFC 4607): their
// trees are always source trees.
type RPSet struct {
	mappings []RPMapping // most specific range first
	ssm      netip.Prefix
}

// NewRPSet builds the set from mappings and the SSM range.
func NewRPSet(mappings []RPMapping, ssm netip.Prefix) *RPSet {
	s := &RPSet{mappings: slices.Clone(mappings), ssm: ssm}
	// Longest prefix first; among equal prefixes the highest RP address wins, so the
	// choice does not depend on the order of the config.
	slices.SortStableFunc(s.mappings, func(a, b RPMapping) int {
		if a.Groups.Bits() != b.Groups.Bits() {
			return b.Groups.Bits() - a.Groups.Bits()
		}
		return b.RP.Compare(a.RP)
	})
	return s
}

// SSM reports whether the group is in the source-specific range.
func (s *RPSet) SSM(group netip.Addr) bool { return s.ssm.IsValid() && s.ssm.Contains(group) }

// Lookup returns the RP of a group: the mapping with the longest matching range.
func (s *RPSet) Lookup(group netip.Addr) (RPMapping, bool) {
	if s.SSM(group) {
		return RPMapping{}, false
	}
	for _, m := range s.mappings {
		if m.Groups.Contains(group) {
			return m, true
		}
	}
	return RPMapping{}, false
}

// Mappings lists the mappings, most specific first.
func (s *RPSet) Mappings() []RPMapping { return slices.Clone(s.mappings) }
