package pim

import (
	"net/netip"
	"time"
)

// Register timing (RFC 7761 4.11).
const (
	RegisterSuppressionTime = 60 * time.Second
	RegisterProbeTime       = 5 * time.Second
)

// registerState is a first-hop DR's per-(S,G) register state (RFC 7761 4.4.1).
type registerState uint8

const (
	regNoInfo      registerState = iota
	regJoin                      // registering: data goes to the RP encapsulated
	regJoinPending               // probing with a null register before registering again
	regPrune                     // the RP said stop
)

func (s registerState) String() string {
	return [...]string{"noinfo", "join", "join-pending", "prune"}[s]
}

// SendNullRegister asks for a Null-Register (the source's and group's header
// only) to go to the RP: a probe for whether it still wants registers.
type SendNullRegister struct {
	Key Key
	RP  netip.Addr
}

func (SendNullRegister) isAction() {}

// SetCouldRegister says whether we are the DR of a directly connected, active
// source of an ASM group, and which RP it registers to (CouldRegister(S,G)). A new
// RP starts registering again.
func (t *Tree) SetCouldRegister(now time.Time, key Key, rp netip.Addr, on bool) []Action {
	t.begin()
	e := t.entries[key]
	if on {
		e = t.entry(now, key)
	}
	switch {
	case on && (e.register == regNoInfo || e.regRP != rp):
		e.register, e.regRP, e.regStop = regJoin, rp, time.Time{}
		t.changed[key] = true
	case !on && e != nil && e.register != regNoInfo:
		e.register, e.regRP, e.regStop = regNoInfo, netip.Addr{}, time.Time{}
		t.changed[key] = true
	}
	if e != nil {
		t.update(now, e)
	}
	return t.finish()
}

// ReceiveRegisterStop acts on a Register-Stop for a group and a source, or every
// source of the group when source is 0.0.0.0.
func (t *Tree) ReceiveRegisterStop(now time.Time, group, source netip.Addr) []Action {
	t.begin()
	for _, e := range t.byGroup[group] {
		if e.key.Wildcard() || (!source.IsUnspecified() && e.key.Source != source) {
			continue
		}
		switch e.register {
		case regJoin:
			t.changed[e.key] = true
			fallthrough
		case regJoinPending:
			// Suppressed for a random part of the suppression time, less the probe
			// time, so that the probe comes before registering resumes.
			e.register = regPrune
			spread := (0.5 + t.cfg.Random()) * float64(RegisterSuppressionTime)
			e.regStop = now.Add(time.Duration(spread) - RegisterProbeTime)
			t.schedule(e)
		}
	}
	return t.finish()
}

// registerStopTimerExpired moves a suppressed source to probing, and an
// unanswered probe back to registering.
func (t *Tree) registerStopTimerExpired(now time.Time, e *entry) {
	e.regStop = time.Time{}
	switch e.register {
	case regPrune:
		e.register, e.regStop = regJoinPending, now.Add(RegisterProbeTime)
		t.acts = append(t.acts, SendNullRegister{Key: e.key, RP: e.regRP})
	case regJoinPending:
		e.register = regJoin
		t.changed[e.key] = true
	}
}

// Registering reports whether data from the source is to be register-encapsulated
// to the RP, and to which.
func (t *Tree) Registering(key Key) (netip.Addr, bool) {
	if e := t.entries[key]; e != nil && e.register == regJoin {
		return e.regRP, true
	}
	return netip.Addr{}, false
}

// RegisterRP is the RP a source has register state towards, whatever the state:
// packets the kernel handed over before a Register-Stop took effect still go.
func (t *Tree) RegisterRP(key Key) (netip.Addr, bool) {
	if e := t.entries[key]; e != nil && e.register != regNoInfo {
		return e.regRP, true
	}
	return netip.Addr{}, false
}

// SetKeepalive says whether the source's traffic is flowing (the owner runs the
// keepalive timer from the kernel's counters). While it is, an RP or a last-hop
// router joins towards the source wherever the shared tree wants it.
func (t *Tree) SetKeepalive(now time.Time, key Key, on bool) []Action {
	return t.setSourceFlag(now, key, on, func(e *entry) *bool { return &e.keepalive })
}

// SetSPTBit records that the source's traffic now arrives along its own tree; on
// a router whose shared tree comes another way, that prunes the source off it.
func (t *Tree) SetSPTBit(now time.Time, key Key, on bool) []Action {
	return t.setSourceFlag(now, key, on, func(e *entry) *bool { return &e.sptBit })
}

// setSourceFlag sets one of an (S,G) entry's flags, making the entry to hold it.
func (t *Tree) setSourceFlag(now time.Time, key Key, on bool, flag func(*entry) *bool) []Action {
	t.begin()
	e := t.entries[key]
	if on {
		e = t.entry(now, key)
	}
	if e != nil && *flag(e) != on {
		*flag(e) = on
		t.changed[key] = true
		t.update(now, e)
	}
	return t.finish()
}

// SPTBit reports whether the source's traffic arrives along its own tree.
func (t *Tree) SPTBit(key Key) bool {
	e := t.entries[key]
	return e != nil && e.sptBit
}

// Keepalive reports whether the source's traffic is known to flow.
func (t *Tree) Keepalive(key Key) bool {
	e := t.entries[key]
	return e != nil && e.keepalive
}
