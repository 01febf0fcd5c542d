// Package pim is PIM-SM (RFC 7761) for mrouterd: the PIMv2 wire codec, and
// later the protocol state machines.
package pim
