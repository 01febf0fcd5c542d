package igmp

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// With these values: GMI 260s, other querier present 255s, LMQT 2s,
// startup query interval 31.25s.
func testConfig() Config {
	return Config{
		Version:                 3,
		Robustness:              2,
		QueryInterval:           125 * time.Second,
		QueryResponseInterval:   10 * time.Second,
		LastMemberQueryInterval: time.Second,
	}
}

const (
	gmi  = 260 * time.Second
	oqpi = 255 * time.Second
	lmqt = 2 * time.Second
)

var (
	t0     = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	self   = netip.MustParseAddr("10.0.0.5")
	lower  = netip.MustParseAddr("10.0.0.1")
	higher = netip.MustParseAddr("10.0.0.9")
	host   = netip.MustParseAddr("10.0.0.100")
	grp    = netip.MustParseAddr("239.1.1.1")
)

func at(d time.Duration) time.Time { return t0.Add(d) }

// src returns the numbered test source 192.0.2.n.
func src(n int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(n)}) }

func srcs(ns ...int) []netip.Addr {
	out := make([]netip.Addr, len(ns))
	for i, n := range ns {
		out[i] = src(n)
	}
	return out
}

// started returns a querier that became querier at t0, its startup
// queries discarded.
func started(t *testing.T, cfg Config) *Querier {
	t.Helper()
	q := NewQuerier(cfg, self)
	q.Start(t0)
	return q
}

func v3Report(typ RecordType, group netip.Addr, sources ...int) *Report {
	return &Report{Version: 3, Records: []Record{{Type: typ, Group: group, Sources: srcs(sources...)}}}
}

func sentQueries(actions []Action) []SendQuery {
	var out []SendQuery
	for _, a := range actions {
		if s, ok := a.(SendQuery); ok {
			out = append(out, s)
		}
	}
	return out
}

func changedGroups(actions []Action) []netip.Addr {
	var out []netip.Addr
	for _, a := range actions {
		if c, ok := a.(GroupChanged); ok {
			out = append(out, c.Group)
		}
	}
	return out
}

func querierChanges(actions []Action) []QuerierChanged {
	var out []QuerierChanged
	for _, a := range actions {
		if c, ok := a.(QuerierChanged); ok {
			out = append(out, c)
		}
	}
	return out
}

// advanceTo runs every deadline up to and including when, one by one as a
// router loop would, and returns all actions.
func advanceTo(q *Querier, when time.Time) []Action {
	var all []Action
	for {
		next, ok := q.NextDeadline()
		if !ok || next.After(when) {
			break
		}
		all = append(all, q.Advance(next)...)
	}
	return append(all, q.Advance(when)...)
}

func checkGeneralQuery(t *testing.T, s SendQuery, version int) {
	t.Helper()
	if s.Dst != AllSystems || s.Query.Group.IsValid() || s.Query.Version != version || len(s.Query.Sources) != 0 {
		t.Fatalf("not a v%d general query: %+v", version, s)
	}
}

func TestQuerierStartupAndCadence(t *testing.T) {
	q := NewQuerier(testConfig(), self)
	actions := q.Start(t0)
	if got := querierChanges(actions); len(got) != 1 || got[0] != (QuerierChanged{Querier: self, IsSelf: true}) {
		t.Fatalf("querier changes %+v", got)
	}
	sent := sentQueries(actions)
	if len(sent) != 1 {
		t.Fatalf("sent %d queries at start", len(sent))
	}
	checkGeneralQuery(t, sent[0], 3)
	want := Query{Version: 3, MaxResp: 10 * time.Second, QRV: 2, QQI: 125 * time.Second}
	if got := sent[0].Query; got.MaxResp != want.MaxResp || got.QRV != want.QRV || got.QQI != want.QQI || got.SuppressRtr {
		t.Fatalf("general query %+v, want %+v", got, want)
	}
	if !q.IsQuerier() || q.QuerierAddress() != self || !q.OtherQuerierExpires().IsZero() {
		t.Fatal("not querier after start")
	}
	// Robustness 2: the second startup query a quarter interval later, then every QI.
	wantTimes := []time.Duration{31250 * time.Millisecond, 156250 * time.Millisecond, 281250 * time.Millisecond, 406250 * time.Millisecond}
	for _, d := range wantTimes {
		next, ok := q.NextDeadline()
		if !ok || !next.Equal(at(d)) {
			t.Fatalf("next deadline %v, want %v", next.Sub(t0), d)
		}
		if q.Advance(at(d-1)) != nil {
			t.Fatal("acted before the deadline")
		}
		sent := sentQueries(q.Advance(at(d)))
		if len(sent) != 1 {
			t.Fatalf("at %v sent %d queries", d, len(sent))
		}
		checkGeneralQuery(t, sent[0], 3)
	}
	if st := q.Stats(); st.QueriesSent != 5 {
		t.Fatalf("QueriesSent %d", st.QueriesSent)
	}
	if q.Start(at(500*time.Second)) != nil {
		t.Fatal("a second Start acted")
	}
}

func TestQuerierStartupCountFollowsRobustness(t *testing.T) {
	cfg := testConfig()
	cfg.Robustness = 3
	q := NewQuerier(cfg, self)
	q.Start(t0)
	sent := 1
	sent += len(sentQueries(advanceTo(q, at(125*time.Second))))
	// Three startup queries by 62.5s, the next one at 187.5s.
	if sent != 3 {
		t.Fatalf("%d queries in the first QI, want 3", sent)
	}
	if next, _ := q.NextDeadline(); !next.Equal(at(187500 * time.Millisecond)) {
		t.Fatalf("next query at %v", next.Sub(t0))
	}
}

func TestQuerierElection(t *testing.T) {
	q := started(t, testConfig())
	now := at(5 * time.Second)

	// Higher addresses and our own looped-back queries change nothing.
	if a := q.Receive(now, higher, &Query{Version: 3, MaxResp: 10 * time.Second}); a != nil {
		t.Fatalf("query from a higher address: %v", a)
	}
	if a := q.Receive(now, self, &Query{Version: 3}); a != nil || q.Stats().QueriesReceived != 1 {
		t.Fatalf("own query: %v, %+v", a, q.Stats())
	}

	actions := q.Receive(now, lower, &Query{Version: 3, MaxResp: 10 * time.Second})
	if got := querierChanges(actions); len(got) != 1 || got[0] != (QuerierChanged{Querier: lower}) {
		t.Fatalf("querier changes %+v", got)
	}
	if q.IsQuerier() || q.QuerierAddress() != lower || !q.OtherQuerierExpires().Equal(now.Add(oqpi)) {
		t.Fatalf("after a lower query: querier %v at %v, expires %v", q.IsQuerier(), q.QuerierAddress(), q.OtherQuerierExpires())
	}
	if next, _ := q.NextDeadline(); !next.Equal(now.Add(oqpi)) {
		t.Fatalf("next deadline %v: general queries still scheduled", next.Sub(t0))
	}

	// A query between the elected querier and us does not displace it.
	between := netip.MustParseAddr("10.0.0.3")
	if a := q.Receive(now.Add(time.Second), between, &Query{Version: 3}); a != nil || q.QuerierAddress() != lower {
		t.Fatalf("a higher non-querier took over: %v", q.QuerierAddress())
	}

	// The elected querier refreshes its timer.
	now = now.Add(100 * time.Second)
	q.Receive(now, lower, &Query{Version: 3})
	if !q.OtherQuerierExpires().Equal(now.Add(oqpi)) {
		t.Fatal("timer not restarted")
	}

	// Silence: we take over, send a general query at once and then every QI.
	expiry := now.Add(oqpi)
	if got := advanceTo(q, expiry.Add(-time.Millisecond)); got != nil {
		t.Fatalf("acted before expiry: %v", got)
	}
	actions = q.Advance(expiry)
	if got := querierChanges(actions); len(got) != 1 || got[0] != (QuerierChanged{Querier: self, IsSelf: true}) {
		t.Fatalf("takeover changes %+v", got)
	}
	if sent := sentQueries(actions); len(sent) != 1 {
		t.Fatalf("takeover sent %d queries", len(sent))
	}
	if next, _ := q.NextDeadline(); !next.Equal(expiry.Add(125 * time.Second)) {
		t.Fatalf("next general query at %v after takeover", next.Sub(expiry))
	}
	if !q.IsQuerier() || q.QuerierAddress() != self || !q.OtherQuerierExpires().IsZero() {
		t.Fatal("not querier after takeover")
	}
}

func TestQuerierElectionAnyVersion(t *testing.T) {
	for _, version := range []int{1, 2, 3} {
		q := started(t, testConfig())
		q.Receive(at(time.Second), lower, &Query{Version: version, MaxResp: time.Second})
		if q.IsQuerier() {
			t.Fatalf("a v%d query from a lower address did not win", version)
		}
	}
	// A query from 0.0.0.0, as snooping switches send, takes no part.
	q := started(t, testConfig())
	q.Receive(at(time.Second), netip.IPv4Unspecified(), &Query{Version: 3})
	if !q.IsQuerier() {
		t.Fatal("a query from 0.0.0.0 won the election")
	}
}

func TestQuerierAdoptsQRVAndQQI(t *testing.T) {
	q := started(t, testConfig())
	now := at(time.Second)
	q.Receive(now, lower, &Query{Version: 3, MaxResp: 10 * time.Second, QRV: 4, QQI: 60 * time.Second})
	// Other querier present: 4*60s + 5s.
	if want := now.Add(245 * time.Second); !q.OtherQuerierExpires().Equal(want) {
		t.Fatalf("other querier expires after %v", q.OtherQuerierExpires().Sub(now))
	}
	// Group membership interval: 4*60s + 10s.
	q.Receive(now, host, v3Report(ChangeToExclude, grp))
	if g, _ := q.Group(grp); !g.Expires.Equal(now.Add(250 * time.Second)) {
		t.Fatalf("group timer %v", g.Expires.Sub(now))
	}
	// Zero QRV and QQI in a v3 query stand for our own values.
	q.Receive(now, lower, &Query{Version: 3, MaxResp: 10 * time.Second})
	if want := now.Add(oqpi); !q.OtherQuerierExpires().Equal(want) {
		t.Fatal("zero QRV/QQI did not bring back our values")
	}
	q.Receive(now, lower, &Query{Version: 3, MaxResp: 10 * time.Second, QRV: 4, QQI: 60 * time.Second})
	// Once querier again, our own values are back and advertised.
	sent := sentQueries(advanceTo(q, now.Add(245*time.Second)))
	if len(sent) != 1 || sent[0].Query.QRV != 2 || sent[0].Query.QQI != 125*time.Second {
		t.Fatalf("after takeover sent %+v", sent)
	}
	// Our own query interval too.
	nextQuery := now.Add(245*time.Second + 125*time.Second)
	if sent := sentQueries(advanceTo(q, nextQuery.Add(-time.Millisecond))); len(sent) != 0 {
		t.Fatalf("query before our interval: %+v", sent)
	}
	if sent := sentQueries(q.Advance(nextQuery)); len(sent) != 1 {
		t.Fatal("no query after our interval")
	}
}

func TestQuerierWithoutAddress(t *testing.T) {
	q := NewQuerier(testConfig(), netip.Addr{})
	if a := q.Start(t0); a != nil || q.IsQuerier() {
		t.Fatalf("querier without an address: %v", a)
	}
	if _, ok := q.NextDeadline(); ok {
		t.Fatal("timers without an address")
	}
	// Any querier beats an addressless router.
	q.Receive(at(time.Second), higher, &Query{Version: 3})
	if q.QuerierAddress() != higher {
		t.Fatal("did not follow the only querier")
	}
	// An address lower than the elected querier's takes over at once.
	actions := q.SetAddress(self, at(2*time.Second))
	if !q.IsQuerier() || len(sentQueries(actions)) != 1 || len(querierChanges(actions)) != 1 {
		t.Fatalf("no takeover on getting a lower address: %v", actions)
	}

	// First address with nobody else around: startup queries.
	q = NewQuerier(testConfig(), netip.Addr{})
	q.Start(t0)
	actions = q.SetAddress(self, at(time.Second))
	if !q.IsQuerier() || len(sentQueries(actions)) != 1 {
		t.Fatalf("no querier on first address: %v", actions)
	}
	if next, _ := q.NextDeadline(); !next.Equal(at(time.Second + 31250*time.Millisecond)) {
		t.Fatalf("no startup query after first address: %v", next.Sub(t0))
	}
	// Losing the address loses the role and the queries.
	actions = q.SetAddress(netip.Addr{}, at(2*time.Second))
	if q.IsQuerier() || len(querierChanges(actions)) != 1 {
		t.Fatalf("still querier without an address: %v", actions)
	}
	if _, ok := q.NextDeadline(); ok {
		t.Fatal("queries still scheduled without an address")
	}
	// A new address while querier keeps the role under the new address.
	q = started(t, testConfig())
	actions = q.SetAddress(higher, at(time.Second))
	if got := querierChanges(actions); len(got) != 1 || got[0] != (QuerierChanged{Querier: higher, IsSelf: true}) {
		t.Fatalf("address change: %+v", got)
	}
}

func TestQuerierOlderVersionQuerier(t *testing.T) {
	q := started(t, testConfig())
	now := at(time.Second)
	q.Receive(now, lower, &Query{Version: 2, MaxResp: 10 * time.Second})
	if q.Stats().OlderQueries != 1 {
		t.Fatal("older query not counted")
	}
	// We take over at 255s while the older querier present timer (260s)
	// still runs: that query is v2; the next, at 380s, is v3 again.
	sent := sentQueries(advanceTo(q, now.Add(oqpi)))
	if len(sent) != 1 {
		t.Fatalf("takeover sent %d", len(sent))
	}
	checkGeneralQuery(t, sent[0], 2)
	sent = sentQueries(advanceTo(q, now.Add(oqpi+125*time.Second)))
	if len(sent) != 1 {
		t.Fatalf("sent %d", len(sent))
	}
	checkGeneralQuery(t, sent[0], 3)

	// A v1 querier makes our queries v1 (max response 0) and leaves ignored.
	q = started(t, testConfig())
	q.Receive(now, lower, &Query{Version: 1})
	q.Receive(now, host, &Report{Version: 2, Group: grp})
	q.Receive(now, host, &Leave{Group: grp})
	if q.Stats().Ignored != 1 {
		t.Fatalf("leave under a v1 querier: %+v", q.Stats())
	}
	sent = sentQueries(advanceTo(q, now.Add(oqpi)))
	if len(sent) != 1 || sent[0].Query.Version != 1 || sent[0].Query.MaxResp != 0 {
		t.Fatalf("under a v1 querier sent %+v", sent)
	}
}

func TestQuerierSetConfigAppliesFromNextTimer(t *testing.T) {
	q := started(t, testConfig())
	advanceTo(q, at(31250*time.Millisecond)) // startup done; next at 156.25s
	cfg := testConfig()
	cfg.QueryInterval = 60 * time.Second
	cfg.Version = 2
	if a := q.SetConfig(cfg, at(40*time.Second)); a != nil {
		t.Fatalf("reload acted: %v", a)
	}
	if next, _ := q.NextDeadline(); !next.Equal(at(156250 * time.Millisecond)) {
		t.Fatal("reload moved the running timer")
	}
	sent := sentQueries(q.Advance(at(156250 * time.Millisecond)))
	checkGeneralQuery(t, sent[0], 2)
	if next, _ := q.NextDeadline(); !next.Equal(at(216250 * time.Millisecond)) {
		t.Fatalf("new interval not applied: next %v", next.Sub(t0))
	}
}

func TestQuerierV2OnlyMode(t *testing.T) {
	cfg := testConfig()
	cfg.Version = 2
	q := NewQuerier(cfg, self)
	sent := sentQueries(q.Start(t0))
	checkGeneralQuery(t, sent[0], 2)
	if sent[0].Query.MaxResp != 10*time.Second || sent[0].Query.QRV != 0 || sent[0].Query.QQI != 0 {
		t.Fatalf("v2 general query %+v", sent[0].Query)
	}

	now := at(time.Second)
	if a := q.Receive(now, host, v3Report(ChangeToExclude, grp)); a != nil {
		t.Fatalf("v3 report acted on in v2 mode: %v", a)
	}
	if st := q.Stats(); st.Ignored != 1 || st.ReportsV3 != 1 || len(q.Groups()) != 0 {
		t.Fatalf("v3 report in v2 mode: %+v", st)
	}

	q.Receive(now, host, &Report{Version: 2, Group: grp})
	g, ok := q.Group(grp)
	if !ok || g.Version != 2 || g.Mode != Exclude || !g.Expires.Equal(now.Add(gmi)) || g.Reporter != host {
		t.Fatalf("after v2 report: %+v", g)
	}

	// Leave: LMQC v2 group-specific queries LMQI apart, then the group goes.
	now = at(10 * time.Second)
	sent = sentQueries(q.Receive(now, host, &Leave{Group: grp}))
	for i := range 2 {
		if len(sent) != 1 {
			t.Fatalf("round %d: sent %v", i, sent)
		}
		s := sent[0]
		if s.Dst != grp || s.Query.Group != grp || s.Query.Version != 2 || s.Query.MaxResp != time.Second || s.Query.SuppressRtr {
			t.Fatalf("round %d: %+v", i, s)
		}
		sent = sentQueries(q.Advance(now.Add(time.Duration(i+1) * time.Second)))
	}
	if len(sent) != 0 {
		t.Fatalf("a third query: %+v", sent)
	}
	if _, ok := q.Group(grp); ok {
		t.Fatal("group kept after the last member query time")
	}

	// A v1 host present: leaves are ignored.
	q.Receive(now, host, &Report{Version: 1, Group: grp})
	if g, _ := q.Group(grp); g.Version != 1 {
		t.Fatalf("version %d with a v1 host", g.Version)
	}
	if sent := sentQueries(q.Receive(now, host, &Leave{Group: grp})); len(sent) != 0 {
		t.Fatal("leave acted on with a v1 host present")
	}
}

func TestQuerierBadInputNeverPanics(t *testing.T) {
	q := started(t, testConfig())
	v6 := netip.MustParseAddr("ff02::1")
	mapped := netip.AddrFrom16(netip.MustParseAddr("239.2.2.2").As16())
	inputs := []any{
		nil, 42, (*Query)(nil), (*Report)(nil), (*Leave)(nil),
		&Query{}, &Query{Version: 9}, &Query{Version: 3, Group: v6, Sources: []netip.Addr{v6, {}}},
		&Query{Version: 3, Group: netip.MustParseAddr("10.1.1.1")},
		&Query{Version: 2, Group: grp, MaxResp: -time.Hour},
		&Query{Version: 3, QRV: 1 << 40, QQI: 1 << 62},
		&Report{}, &Report{Version: 7}, &Report{Version: 2}, &Report{Version: 1, Group: v6},
		&Report{Version: 3, Records: []Record{{}, {Type: 99, Group: grp}, {Type: ModeIsExclude, Group: netip.Addr{}}}},
		&Report{Version: 3, Records: []Record{{Type: ChangeToExclude, Group: mapped, Sources: []netip.Addr{v6, {}, src(1), src(1)}}}},
		&Leave{}, &Leave{Group: v6},
	}
	for i, in := range inputs {
		for _, from := range []netip.Addr{{}, v6, host, lower} {
			q.Receive(at(time.Duration(i)*time.Second), from, in)
		}
	}
	advanceTo(q, at(time.Hour))
	q.Forward(netip.Addr{}, v6)
	q.Group(v6)
	q.SetAddress(v6, at(time.Hour))
	q.SetConfig(Config{Robustness: -1, QueryInterval: 1 << 62, Version: 17}, at(time.Hour))
	advanceTo(q, at(2*time.Hour))
	// Time going backwards is taken as no time passing.
	q.Receive(t0, host, v3Report(AllowNewSources, grp, 1))
	q.Advance(time.Time{})
	q.Stop()
	if q.Stats().Ignored == 0 {
		t.Fatal("bad input not counted")
	}

	// A zero time first and real times after: the real ones set the clock.
	q = NewQuerier(testConfig(), self)
	q.Start(time.Time{})
	q.Receive(t0, host, v3Report(ChangeToExclude, grp, 1))
	q.Receive(t0, host, v3Report(ChangeToInclude, grp))
	q.Advance(t0.Add(time.Hour))
	if next, ok := q.NextDeadline(); !ok || !next.After(t0.Add(time.Hour)) {
		t.Fatalf("next deadline %v", next)
	}

	// A clock run to its cap stops rather than wrapping, and nothing fires
	// over and over.
	q = NewQuerier(testConfig(), self)
	q.Start(t0)
	q.Receive(t0, host, v3Report(ChangeToExclude, grp, 1))
	far := t0.Add(time.Duration(maxTick) + time.Hour)
	q.Receive(far, host, v3Report(ChangeToInclude, grp))
	q.Advance(far.Add(time.Hour))
	if next, ok := q.NextDeadline(); !ok || !next.After(t0.Add(time.Duration(maxTick))) {
		t.Fatalf("next deadline %v", next)
	}
}

func TestQuerierStop(t *testing.T) {
	q := started(t, testConfig())
	q.Receive(at(time.Second), host, v3Report(AllowNewSources, grp, 1))
	other := netip.MustParseAddr("239.9.9.9")
	q.Receive(at(time.Second), host, &Report{Version: 2, Group: other})
	got := changedGroups(q.Stop())
	if !slices.Equal(got, []netip.Addr{grp, other}) {
		t.Fatalf("stop reported %v", got)
	}
	if len(q.Groups()) != 0 || q.IsQuerier() {
		t.Fatal("state left after stop")
	}
	if _, ok := q.NextDeadline(); ok {
		t.Fatal("timers left after stop")
	}
	if sent := sentQueries(q.Start(at(time.Minute))); len(sent) != 1 {
		t.Fatal("no fresh start after stop")
	}
}
