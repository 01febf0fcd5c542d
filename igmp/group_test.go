package igmp

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// srcTimer is a source and its time left; zero is an excluded source.
type srcTimer struct {
	n    int
	left time.Duration
}

// qs is an expected Q(G,A) (sources) or, with no sources, Q(G).
type qs struct {
	sources  []int
	suppress bool
}

// install puts a group into q at now as given, bypassing the protocol.
func install(q *Querier, now time.Time, group netip.Addr, mode FilterMode, groupTimer time.Duration, sources []srcTimer) {
	t := q.clock(now)
	slot, _ := q.admit(key(group))
	g := &q.slots[slot]
	g.mode = mode
	if groupTimer > 0 {
		q.setTimer(&g.expires, timerGroup, g.addr, 0, t.add(groupTimer))
	}
	for _, s := range sources {
		a := key(src(s.n))
		i, _ := g.find(a)
		g.sources = slices.Insert(g.sources, i, sourceRecord{addr: a})
		if s.left > 0 {
			q.setTimer(&g.sources[i].expires, timerSource, g.addr, a, t.add(s.left))
		}
	}
	q.finish(q.view())
}

func checkGroup(t *testing.T, q *Querier, now time.Time, mode FilterMode, groupTimer time.Duration, sources []srcTimer) {
	t.Helper()
	g, ok := q.Group(grp)
	if !ok {
		t.Fatal("group missing")
	}
	if g.Mode != mode {
		t.Errorf("mode %v, want %v", g.Mode, mode)
	}
	var wantExpires time.Time
	if groupTimer > 0 {
		wantExpires = now.Add(groupTimer)
	}
	if !g.Expires.Equal(wantExpires) {
		t.Errorf("group timer %v, want %v", g.Expires.Sub(now), groupTimer)
	}
	var got []srcTimer
	for _, s := range g.Sources {
		left := time.Duration(0)
		if !s.Expires.IsZero() {
			left = s.Expires.Sub(now)
		}
		got = append(got, srcTimer{int(s.Source.As4()[3]), left})
		if want := mode == Include || left > 0; s.Forward != want {
			t.Errorf("source %v forward %v", s.Source, s.Forward)
		}
	}
	if !slices.Equal(got, sources) {
		t.Errorf("sources %v, want %v", got, sources)
	}
}

// checkQueries checks the group-specific queries among actions.
func checkQueries(t *testing.T, actions []Action, want []qs) {
	t.Helper()
	var sent []SendQuery
	for _, s := range sentQueries(actions) {
		if s.Dst != AllSystems {
			sent = append(sent, s)
		}
	}
	if len(sent) != len(want) {
		t.Fatalf("sent %d queries %+v, want %d", len(sent), sent, len(want))
	}
	for i, s := range sent {
		q := s.Query
		if s.Dst != grp || q.Group != grp || q.Version != 3 || q.MaxResp != time.Second || q.QRV != 2 || q.QQI != 125*time.Second {
			t.Errorf("query %d: %+v", i, s)
		}
		if !slices.Equal(q.Sources, srcs(want[i].sources...)) || q.SuppressRtr != want[i].suppress {
			t.Errorf("query %d: sources %v S %v, want %v S %v", i, q.Sources, q.SuppressRtr, srcs(want[i].sources...), want[i].suppress)
		}
	}
}

// TestGroupStateTables checks every row of RFC 3376 6.4.1 and 6.4.2 with
// this router as querier, and the no-state case as INCLUDE({}).
// INCLUDE rows start from A = {1,2} and get B = {2,3}; EXCLUDE rows start
// from X = {1,2}, Y = {3,4} and get A = {2,3,5}.
func TestGroupStateTables(t *testing.T) {
	include := []srcTimer{{1, 100 * time.Second}, {2, 100 * time.Second}}
	exclude := []srcTimer{{1, 100 * time.Second}, {2, 100 * time.Second}, {3, 0}, {4, 0}}
	const excludeTimer = 200 * time.Second
	b := []int{2, 3}
	a := []int{2, 3, 5}
	rows := []struct {
		name       string
		noState    bool
		mode       FilterMode
		sources    []srcTimer
		record     RecordType
		recSources []int
		gone       bool
		wantMode   FilterMode
		wantTimer  time.Duration
		want       []srcTimer
		queries    []qs
	}{
		// 6.4.1, INCLUDE
		{name: "INCLUDE IS_IN", sources: include, record: ModeIsInclude, recSources: b,
			want: []srcTimer{{1, 100 * time.Second}, {2, gmi}, {3, gmi}}},
		{name: "INCLUDE IS_EX", sources: include, record: ModeIsExclude, recSources: b,
			wantMode: Exclude, wantTimer: gmi, want: []srcTimer{{2, 100 * time.Second}, {3, 0}}},
		// 6.4.1, EXCLUDE
		{name: "EXCLUDE IS_IN", mode: Exclude, sources: exclude, record: ModeIsInclude, recSources: a,
			wantMode: Exclude, wantTimer: excludeTimer,
			want: []srcTimer{{1, 100 * time.Second}, {2, gmi}, {3, gmi}, {4, 0}, {5, gmi}}},
		{name: "EXCLUDE IS_EX", mode: Exclude, sources: exclude, record: ModeIsExclude, recSources: a,
			wantMode: Exclude, wantTimer: gmi, want: []srcTimer{{2, 100 * time.Second}, {3, 0}, {5, gmi}}},
		// 6.4.2, INCLUDE
		{name: "INCLUDE ALLOW", sources: include, record: AllowNewSources, recSources: b,
			want: []srcTimer{{1, 100 * time.Second}, {2, gmi}, {3, gmi}}},
		{name: "INCLUDE BLOCK", sources: include, record: BlockOldSources, recSources: b,
			want: []srcTimer{{1, 100 * time.Second}, {2, lmqt}}, queries: []qs{{sources: []int{2}}}},
		{name: "INCLUDE BLOCK of unknown sources", sources: include, record: BlockOldSources, recSources: []int{3},
			want: include},
		{name: "INCLUDE TO_EX", sources: include, record: ChangeToExclude, recSources: b,
			wantMode: Exclude, wantTimer: gmi, want: []srcTimer{{2, lmqt}, {3, 0}}, queries: []qs{{sources: []int{2}}}},
		{name: "INCLUDE TO_IN", sources: include, record: ChangeToInclude, recSources: b,
			want: []srcTimer{{1, lmqt}, {2, gmi}, {3, gmi}}, queries: []qs{{sources: []int{1}}}},
		// 6.4.2, EXCLUDE
		{name: "EXCLUDE ALLOW", mode: Exclude, sources: exclude, record: AllowNewSources, recSources: a,
			wantMode: Exclude, wantTimer: excludeTimer,
			want: []srcTimer{{1, 100 * time.Second}, {2, gmi}, {3, gmi}, {4, 0}, {5, gmi}}},
		{name: "EXCLUDE BLOCK", mode: Exclude, sources: exclude, record: BlockOldSources, recSources: a,
			wantMode: Exclude, wantTimer: excludeTimer,
			want:    []srcTimer{{1, 100 * time.Second}, {2, lmqt}, {3, 0}, {4, 0}, {5, lmqt}},
			queries: []qs{{sources: []int{2, 5}}}},
		{name: "EXCLUDE TO_EX", mode: Exclude, sources: exclude, record: ChangeToExclude, recSources: a,
			wantMode: Exclude, wantTimer: gmi, want: []srcTimer{{2, lmqt}, {3, 0}, {5, lmqt}},
			queries: []qs{{sources: []int{2, 5}}}},
		{name: "EXCLUDE TO_IN", mode: Exclude, sources: exclude, record: ChangeToInclude, recSources: a,
			wantMode: Exclude, wantTimer: lmqt,
			want:    []srcTimer{{1, lmqt}, {2, gmi}, {3, gmi}, {4, 0}, {5, gmi}},
			queries: []qs{{sources: []int{1}}, {}}},
		// No state: INCLUDE({})
		{name: "none IS_IN {}", noState: true, record: ModeIsInclude, gone: true},
		{name: "none IS_IN", noState: true, record: ModeIsInclude, recSources: []int{1}, want: []srcTimer{{1, gmi}}},
		{name: "none IS_EX {}", noState: true, record: ModeIsExclude, wantMode: Exclude, wantTimer: gmi},
		{name: "none IS_EX", noState: true, record: ModeIsExclude, recSources: []int{1},
			wantMode: Exclude, wantTimer: gmi, want: []srcTimer{{1, 0}}},
		{name: "none ALLOW", noState: true, record: AllowNewSources, recSources: []int{1}, want: []srcTimer{{1, gmi}}},
		{name: "none BLOCK", noState: true, record: BlockOldSources, recSources: []int{1}, gone: true},
		{name: "none TO_EX", noState: true, record: ChangeToExclude, recSources: []int{1},
			wantMode: Exclude, wantTimer: gmi, want: []srcTimer{{1, 0}}},
		{name: "none TO_IN {}", noState: true, record: ChangeToInclude, gone: true},
		{name: "none TO_IN", noState: true, record: ChangeToInclude, recSources: []int{1}, want: []srcTimer{{1, gmi}}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			q := started(t, testConfig())
			now := at(10 * time.Second)
			if !row.noState {
				timer := time.Duration(0)
				if row.mode == Exclude {
					timer = excludeTimer
				}
				install(q, now, grp, row.mode, timer, row.sources)
			}
			actions := q.Receive(now, host, v3Report(row.record, grp, row.recSources...))
			checkQueries(t, actions, row.queries)
			if row.gone {
				if _, ok := q.Group(grp); ok {
					t.Fatal("state created")
				}
				return
			}
			checkGroup(t, q, now, row.wantMode, row.wantTimer, row.want)
		})
	}
}

// A non-querier applies the same tables but neither queries nor lowers
// timers: it waits for the querier's queries.
func TestGroupStateTablesAsNonQuerier(t *testing.T) {
	q := started(t, testConfig())
	now := at(10 * time.Second)
	q.Receive(now, lower, &Query{Version: 3, MaxResp: 10 * time.Second})
	exclude := []srcTimer{{1, 100 * time.Second}, {2, 100 * time.Second}, {3, 0}, {4, 0}}
	install(q, now, grp, Exclude, 200*time.Second, exclude)
	actions := q.Receive(now, host, v3Report(ChangeToExclude, grp, 2, 3, 5))
	checkQueries(t, actions, nil)
	checkGroup(t, q, now, Exclude, gmi, []srcTimer{{2, 100 * time.Second}, {3, 0}, {5, 200 * time.Second}})
	actions = q.Receive(now, host, v3Report(ChangeToInclude, grp, 3))
	checkQueries(t, actions, nil)
	checkGroup(t, q, now, Exclude, gmi, []srcTimer{{2, 100 * time.Second}, {3, gmi}, {5, 200 * time.Second}})
}

func TestGroupNonQuerierLowersTimersOnQueries(t *testing.T) {
	q := started(t, testConfig())
	now := at(10 * time.Second)
	q.Receive(now, lower, &Query{Version: 3, MaxResp: 10 * time.Second})
	install(q, now, grp, Exclude, 200*time.Second, []srcTimer{{1, 100 * time.Second}, {2, 100 * time.Second}, {3, 0}})

	// S set: nothing changes.
	q.Receive(now, lower, &Query{Version: 3, Group: grp, SuppressRtr: true, MaxResp: time.Second})
	q.Receive(now, lower, &Query{Version: 3, Group: grp, SuppressRtr: true, MaxResp: time.Second, Sources: srcs(1)})
	checkGroup(t, q, now, Exclude, 200*time.Second, []srcTimer{{1, 100 * time.Second}, {2, 100 * time.Second}, {3, 0}})

	// S clear: the named source, then the group, drop to LMQT.
	q.Receive(now, lower, &Query{Version: 3, Group: grp, MaxResp: time.Second, Sources: srcs(1, 3, 9)})
	checkGroup(t, q, now, Exclude, 200*time.Second, []srcTimer{{1, lmqt}, {2, 100 * time.Second}, {3, 0}})
	q.Receive(now, lower, &Query{Version: 3, Group: grp, MaxResp: time.Second})
	checkGroup(t, q, now, Exclude, lmqt, []srcTimer{{1, lmqt}, {2, 100 * time.Second}, {3, 0}})

	// A v2 group-specific query: LMQC times its max response time.
	other := netip.MustParseAddr("239.7.7.7")
	q.Receive(now, host, &Report{Version: 2, Group: other})
	q.Receive(now, lower, &Query{Version: 2, Group: other, MaxResp: 3 * time.Second})
	if g, _ := q.Group(other); !g.Expires.Equal(now.Add(6 * time.Second)) {
		t.Fatalf("v2 query lowered the timer to %v", g.Expires.Sub(now))
	}
	// The querier lets the group go when nobody answers.
	advanceTo(q, now.Add(6*time.Second))
	if _, ok := q.Group(other); ok {
		t.Fatal("group kept")
	}
}

// A v2 host leaving a group on a v3 querier: Q(G) LMQC times LMQI apart,
// the group timer lowered to LMQT, and the group gone after it.
func TestGroupLeaveLastMemberQueries(t *testing.T) {
	q := started(t, testConfig())
	now := at(10 * time.Second)
	q.Receive(now, host, &Report{Version: 2, Group: grp})
	actions := q.Receive(now, host, &Leave{Group: grp})
	checkQueries(t, actions, []qs{{}})
	checkGroup(t, q, now, Exclude, lmqt, nil)
	if changed := changedGroups(actions); len(changed) != 0 {
		t.Fatalf("leave reported a change before anything changed: %v", changed)
	}
	// A second leave while the queries run adds none.
	checkQueries(t, q.Receive(now.Add(500*time.Millisecond), host, &Leave{Group: grp}), nil)
	checkQueries(t, q.Advance(now.Add(time.Second)), []qs{{}})
	actions = q.Advance(now.Add(lmqt))
	checkQueries(t, actions, nil)
	if _, ok := q.Group(grp); ok {
		t.Fatal("group kept after LMQT without a report")
	}
	if got := changedGroups(actions); !slices.Equal(got, []netip.Addr{grp}) {
		t.Fatalf("changes %v", got)
	}
	if st := q.Stats(); st.Leaves != 2 || st.ReportsV2 != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A report during the last member queries raises the group timer: the
// retransmission then carries the S flag, and the group stays.
func TestGroupLastMemberQuerySuppressFlag(t *testing.T) {
	q := started(t, testConfig())
	now := at(10 * time.Second)
	q.Receive(now, host, v3Report(ChangeToExclude, grp))
	checkQueries(t, q.Receive(now, host, v3Report(ChangeToInclude, grp)), []qs{{}})
	report := now.Add(500 * time.Millisecond)
	q.Receive(report, host, v3Report(ModeIsExclude, grp))
	checkQueries(t, q.Advance(now.Add(time.Second)), []qs{{suppress: true}})
	checkQueries(t, advanceTo(q, now.Add(time.Minute)), nil)
	checkGroup(t, q, report, Exclude, gmi, nil)
}

func TestGroupBlockSourceQueries(t *testing.T) {
	q := started(t, testConfig())
	now := at(10 * time.Second)
	q.Receive(now, host, v3Report(AllowNewSources, grp, 1, 2, 3))
	checkQueries(t, q.Receive(now, host, v3Report(BlockOldSources, grp, 1, 2)), []qs{{sources: []int{1, 2}}})
	checkGroup(t, q, now, Include, 0, []srcTimer{{1, lmqt}, {2, lmqt}, {3, gmi}})

	// Another host still wants source 2: the retransmission splits, with
	// the S flag set for 2, whose timer is above LMQT again.
	q.Receive(now.Add(500*time.Millisecond), netip.MustParseAddr("10.0.0.101"), v3Report(ModeIsInclude, grp, 2, 3))
	checkQueries(t, q.Advance(now.Add(time.Second)), []qs{{sources: []int{2}, suppress: true}, {sources: []int{1}}})

	actions := q.Advance(now.Add(lmqt))
	checkQueries(t, actions, nil)
	if got := changedGroups(actions); !slices.Equal(got, []netip.Addr{grp}) {
		t.Fatalf("changes %v", got)
	}
	if q.Forward(src(1), grp) || !q.Forward(src(2), grp) {
		t.Fatal("forwarding after the source query")
	}
	checkGroup(t, q, now.Add(500*time.Millisecond), Include, 0, []srcTimer{{2, gmi}, {3, gmi}})

	// Blocking every source empties the group after LMQT.
	now = now.Add(time.Minute)
	checkQueries(t, q.Receive(now, host, v3Report(BlockOldSources, grp, 2, 3)), []qs{{sources: []int{2, 3}}})
	advanceTo(q, now.Add(lmqt))
	if _, ok := q.Group(grp); ok {
		t.Fatal("group kept with no sources")
	}
}

// A source being queried is not queried again (its timer is not above
// LMQT); a newly blocked one is, and the round goes to all pending ones.
func TestGroupOverlappingSourceQueries(t *testing.T) {
	q := started(t, testConfig())
	now := at(10 * time.Second)
	q.Receive(now, host, v3Report(AllowNewSources, grp, 1, 2))
	checkQueries(t, q.Receive(now, host, v3Report(BlockOldSources, grp, 1)), []qs{{sources: []int{1}}})
	checkQueries(t, q.Receive(now, host, v3Report(BlockOldSources, grp, 1)), nil)
	later := now.Add(500 * time.Millisecond)
	checkQueries(t, q.Receive(later, host, v3Report(BlockOldSources, grp, 2)), []qs{{sources: []int{1, 2}}})
	checkQueries(t, q.Advance(later.Add(time.Second)), []qs{{sources: []int{2}}})
	advanceTo(q, later.Add(lmqt))
	if _, ok := q.Group(grp); ok {
		t.Fatal("group kept")
	}
}

func TestGroupSourceQuerySplitsLargeLists(t *testing.T) {
	q := started(t, testConfig())
	now := at(10 * time.Second)
	many := make([]int, 0, 500)
	sources := make([]netip.Addr, 0, 500)
	for i := range 500 {
		many = append(many, i)
		sources = append(sources, netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}))
	}
	q.Receive(now, host, &Report{Version: 3, Records: []Record{{Type: AllowNewSources, Group: grp, Sources: sources}}})
	sent := sentQueries(q.Receive(now, host, &Report{Version: 3, Records: []Record{{Type: BlockOldSources, Group: grp, Sources: sources}}}))
	if len(sent) != 2 || len(sent[0].Query.Sources) != maxSourcesPerQuery || len(sent[1].Query.Sources) != len(many)-maxSourcesPerQuery {
		t.Fatalf("%d queries", len(sent))
	}
}

func TestGroupTimerExpirySwitchesToInclude(t *testing.T) {
	q := started(t, testConfig())
	now := at(10 * time.Second)
	install(q, now, grp, Exclude, 100*time.Second, []srcTimer{{1, 300 * time.Second}, {2, 0}})
	if !q.Forward(src(9), grp) || q.Forward(src(2), grp) {
		t.Fatal("EXCLUDE forwarding")
	}
	actions := advanceTo(q, now.Add(100*time.Second))
	if got := changedGroups(actions); !slices.Equal(got, []netip.Addr{grp}) {
		t.Fatalf("changes %v", got)
	}
	checkGroup(t, q, now, Include, 0, []srcTimer{{1, 300 * time.Second}})
	if q.Forward(src(9), grp) || !q.Forward(src(1), grp) {
		t.Fatal("INCLUDE forwarding")
	}
	advanceTo(q, now.Add(300*time.Second))
	if _, ok := q.Group(grp); ok {
		t.Fatal("group kept after its last source expired")
	}

	// EXCLUDE with no requested sources: the group goes.
	install(q, now.Add(300*time.Second), grp, Exclude, 50*time.Second, []srcTimer{{2, 0}})
	advanceTo(q, now.Add(350*time.Second))
	if _, ok := q.Group(grp); ok {
		t.Fatal("EXCLUDE group without requested sources kept")
	}
}

func TestGroupSourceTimerExpiry(t *testing.T) {
	q := started(t, testConfig())
	now := at(10 * time.Second)
	q.Receive(now, host, v3Report(AllowNewSources, grp, 1))
	q.Receive(now.Add(100*time.Second), host, v3Report(AllowNewSources, grp, 2))
	advanceTo(q, now.Add(gmi))
	checkGroup(t, q, now.Add(100*time.Second), Include, 0, []srcTimer{{2, gmi}})
	advanceTo(q, now.Add(100*time.Second+gmi))
	if _, ok := q.Group(grp); ok {
		t.Fatal("group kept after its last source expired")
	}

	// In EXCLUDE mode an expired source moves to the exclude list.
	now = now.Add(time.Hour)
	install(q, now, grp, Exclude, 200*time.Second, []srcTimer{{1, 50 * time.Second}})
	if !q.Forward(src(1), grp) {
		t.Fatal("requested source not forwarded")
	}
	actions := advanceTo(q, now.Add(50*time.Second))
	if len(changedGroups(actions)) != 1 || q.Forward(src(1), grp) {
		t.Fatal("expired source still forwarded")
	}
	checkGroup(t, q, now, Exclude, 200*time.Second, []srcTimer{{1, 0}})
}

func TestGroupCompatibilityModes(t *testing.T) {
	q := started(t, testConfig())
	now := at(10 * time.Second)
	q.Receive(now, host, v3Report(ModeIsInclude, grp, 1))

	// A v2 report is IS_EX({}) and puts the group in v2 mode.
	actions := q.Receive(now, host, &Report{Version: 2, Group: grp})
	if len(changedGroups(actions)) != 1 {
		t.Fatal("no change on v2 mode")
	}
	g, _ := q.Group(grp)
	if g.Version != 2 || g.Mode != Exclude || !g.Expires.Equal(now.Add(gmi)) {
		t.Fatalf("after v2 report %+v", g)
	}
	// BLOCK is ignored; TO_EX(x) is TO_EX({}).
	ignored := q.Stats().Ignored
	checkQueries(t, q.Receive(now, host, v3Report(BlockOldSources, grp, 1)), nil)
	if q.Stats().Ignored != ignored+1 {
		t.Fatal("BLOCK not counted as ignored")
	}
	q.Receive(now, host, v3Report(ChangeToExclude, grp, 7))
	checkGroup(t, q, now, Exclude, gmi, nil)
	// Older hosts cannot exclude: every source is forwarded, even one a v3
	// host's timed-out request left on the exclude list.
	install(q, now, grp, Exclude, gmi, []srcTimer{{7, 0}})
	if !q.Forward(src(7), grp) {
		t.Fatal("excluded source not forwarded in v2 mode")
	}
	if g, _ := q.Group(grp); !g.Sources[0].Forward {
		t.Fatal("GroupState disagrees with Forward")
	}

	// A v1 report: v1 mode, leaves ignored.
	later := now.Add(100 * time.Second)
	q.Receive(later, host, &Report{Version: 1, Group: grp})
	if g, _ := q.Group(grp); g.Version != 1 {
		t.Fatalf("version %d after v1 report", g.Version)
	}
	ignored = q.Stats().Ignored
	checkQueries(t, q.Receive(later, host, &Leave{Group: grp}), nil)
	if q.Stats().Ignored != ignored+1 {
		t.Fatal("leave in v1 mode not ignored")
	}

	// v3 reports keep the group; the v2 host timer lapses at now+GMI (v1
	// still present), the v1 one at later+GMI.
	q.Receive(now.Add(200*time.Second), host, v3Report(ModeIsExclude, grp))
	advanceTo(q, now.Add(gmi))
	if g, _ := q.Group(grp); g.Version != 1 {
		t.Fatalf("version %d while a v1 host is present", g.Version)
	}
	q.Receive(now.Add(300*time.Second), host, v3Report(ModeIsExclude, grp))
	actions = advanceTo(q, later.Add(gmi))
	if g, _ := q.Group(grp); g.Version != 3 || len(changedGroups(actions)) != 1 {
		t.Fatalf("version %d after the older hosts left", g.Version)
	}
	install(q, later.Add(gmi), grp, Exclude, 0, []srcTimer{{7, 0}})
	if q.Forward(src(7), grp) || !q.Forward(src(8), grp) {
		t.Fatal("v3 EXCLUDE forwarding after compatibility mode ended")
	}
}

func TestGroupForward(t *testing.T) {
	q := started(t, testConfig())
	now := at(time.Second)
	inc := netip.MustParseAddr("239.0.0.1")
	exc := netip.MustParseAddr("239.0.0.2")
	q.Receive(now, host, v3Report(ModeIsInclude, inc, 1))
	q.Receive(now, host, v3Report(ModeIsExclude, exc, 2))
	q.Receive(now, host, v3Report(AllowNewSources, exc, 3))
	cases := []struct {
		source, group netip.Addr
		want          bool
	}{
		{src(1), inc, true},
		{src(2), inc, false},
		{src(2), exc, false},
		{src(3), exc, true},
		{src(4), exc, true},
		{src(1), grp, false},
		{src(1), netip.MustParseAddr("224.0.0.251"), false},
		{netip.Addr{}, exc, false},
	}
	for _, c := range cases {
		if got := q.Forward(c.source, c.group); got != c.want {
			t.Errorf("Forward(%v, %v) = %v", c.source, c.group, got)
		}
	}
}

func TestGroupLimits(t *testing.T) {
	cfg := testConfig()
	cfg.AllowedGroups = []netip.Prefix{netip.MustParsePrefix("239.0.0.0/8")}
	cfg.MaxGroups = 2
	q := started(t, cfg)
	now := at(time.Second)
	g1, g2, g3 := netip.MustParseAddr("239.0.0.1"), netip.MustParseAddr("239.0.0.2"), netip.MustParseAddr("239.0.0.3")
	q.Receive(now, host, &Report{Version: 2, Group: netip.MustParseAddr("238.1.1.1")})
	q.Receive(now, host, v3Report(ChangeToExclude, netip.MustParseAddr("224.0.0.251")))
	q.Receive(now, host, &Report{Version: 2, Group: netip.MustParseAddr("224.0.0.22")})
	q.Receive(now, host, &Report{Version: 2, Group: netip.MustParseAddr("10.1.1.1")})
	q.Receive(now, host, &Report{Version: 3, Records: []Record{
		{Type: ChangeToExclude, Group: g1},
		{Type: ChangeToExclude, Group: g2},
		{Type: ChangeToExclude, Group: g3},
		{Type: BlockOldSources, Group: g3, Sources: srcs(1)}, // creates nothing, so refuses nothing
	}})
	st := q.Stats()
	if st.NotAllowed != 1 || st.LinkLocal != 2 || st.Refused != 1 || st.Ignored != 1 {
		t.Fatalf("stats %+v", st)
	}
	if got := q.Groups(); len(got) != 2 || got[0].Group != g1 || got[1].Group != g2 {
		t.Fatalf("groups %+v", got)
	}
	// Existing groups are still refreshed at the limit; a freed place is
	// taken again.
	later := at(100 * time.Second)
	q.Receive(later, host, v3Report(ModeIsExclude, g1))
	if g, _ := q.Group(g1); !g.Expires.Equal(later.Add(gmi)) {
		t.Fatal("group at the limit not refreshed")
	}
	q.Receive(later, host, v3Report(ChangeToInclude, g2))
	advanceTo(q, later.Add(lmqt))
	q.Receive(later.Add(lmqt), host, v3Report(ChangeToExclude, g3))
	if _, ok := q.Group(g3); !ok || q.Stats().Refused != 1 {
		t.Fatal("freed place not reused")
	}
}

func TestGroupChangedActions(t *testing.T) {
	q := started(t, testConfig())
	now := at(time.Second)
	other := netip.MustParseAddr("239.0.0.9")
	actions := q.Receive(now, host, &Report{Version: 3, Records: []Record{
		{Type: ModeIsInclude, Group: other, Sources: srcs(1)},
		{Type: AllowNewSources, Group: grp, Sources: srcs(1)},
		{Type: AllowNewSources, Group: grp, Sources: srcs(2)},
	}})
	if got := changedGroups(actions); !slices.Equal(got, []netip.Addr{other, grp}) {
		t.Fatalf("changes %v", got)
	}
	// A refresh changes nothing that forwarding depends on.
	if a := q.Receive(now, host, v3Report(ModeIsInclude, grp, 1, 2)); a != nil {
		t.Fatalf("refresh: %v", a)
	}
	g, _ := q.Group(grp)
	if g.Reporter != host || g.Version != 3 {
		t.Fatalf("state %+v", g)
	}
}

// Retransmissions go on when another router takes over as querier, and
// stop when this one loses its address.
func TestGroupQueriesAfterQuerierChange(t *testing.T) {
	q := started(t, testConfig())
	now := at(10 * time.Second)
	q.Receive(now, host, v3Report(ChangeToExclude, grp, 1))
	q.Receive(now, host, v3Report(AllowNewSources, grp, 2))
	checkQueries(t, q.Receive(now, host, v3Report(ChangeToInclude, grp)), []qs{{sources: []int{2}}, {}})
	q.Receive(now.Add(100*time.Millisecond), lower, &Query{Version: 3, MaxResp: 10 * time.Second})
	checkQueries(t, q.Advance(now.Add(time.Second)), []qs{{}, {sources: []int{2}}})

	q = started(t, testConfig())
	q.Receive(now, host, v3Report(ChangeToExclude, grp))
	checkQueries(t, q.Receive(now, host, v3Report(ChangeToInclude, grp)), []qs{{}})
	q.SetAddress(netip.Addr{}, now.Add(100*time.Millisecond))
	checkQueries(t, advanceTo(q, now.Add(time.Minute)), nil)
}

// A report arriving after a deadline the owner has not yet advanced to is
// handled against the state after that deadline.
func TestGroupEventsRunDueTimersFirst(t *testing.T) {
	q := started(t, testConfig())
	now := at(10 * time.Second)
	install(q, now, grp, Exclude, 10*time.Second, nil)
	actions := q.Receive(now.Add(20*time.Second), host, v3Report(AllowNewSources, grp, 1))
	checkGroup(t, q, now.Add(20*time.Second), Include, 0, []srcTimer{{1, gmi}})
	if got := changedGroups(actions); !slices.Equal(got, []netip.Addr{grp}) {
		t.Fatalf("changes %v", got)
	}
}

func TestGroupFilterModeString(t *testing.T) {
	if Include.String() != "include" || Exclude.String() != "exclude" {
		t.Fatal(Include.String(), Exclude.String())
	}
}

func TestMaxSources(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSources = 3
	q := started(t, cfg)
	q.Receive(at(time.Second), host, v3Report(AllowNewSources, grp, 1, 2))
	q.Receive(at(2*time.Second), host, v3Report(AllowNewSources, grp, 3, 4, 5))
	g, ok := q.Group(grp)
	if !ok || len(g.Sources) != 3 {
		t.Fatalf("group %+v", g)
	}
	for i, want := range srcs(1, 2, 3) {
		if g.Sources[i].Source != want || !g.Sources[i].Forward {
			t.Errorf("source %d = %+v, want %v forwarded", i, g.Sources[i], want)
		}
	}
	if got := q.Stats().SourcesRefused; got != 2 {
		t.Errorf("SourcesRefused = %d, want 2", got)
	}
	// A full group still refreshes the sources it has, and stays when a record
	// brings only refused ones.
	q.Receive(at(3*time.Second), host, v3Report(ModeIsInclude, grp, 1, 6))
	if g, _ := q.Group(grp); len(g.Sources) != 3 || !q.Forward(src(1), grp) || q.Forward(src(6), grp) {
		t.Errorf("after a refresh: %+v", g)
	}
	// The exclude list counts too.
	q.Receive(at(4*time.Second), host, v3Report(ChangeToExclude, grp, 7, 8, 9, 10))
	if g, _ := q.Group(grp); g.Mode != Exclude || len(g.Sources) != 3 {
		t.Errorf("after TO_EX: %+v", g)
	}
}

// TestMaxSourcesPerInterface: the sources of all groups together stay within the
// interface's limit, whichever way they come and go, and room a group gives
// back is taken by another.
func TestMaxSourcesPerInterface(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSourcesPerInterface = 4
	q := started(t, cfg)
	other := netip.MustParseAddr("239.1.1.2")
	count := func(when string, want int) {
		t.Helper()
		held := 0
		for _, g := range q.Groups() {
			held += len(g.Sources)
		}
		if held != want || q.sources != want {
			t.Fatalf("%s: %d sources held, %d counted; want %d", when, held, q.sources, want)
		}
	}
	q.Receive(at(time.Second), host, v3Report(AllowNewSources, grp, 1, 2, 3))
	q.Receive(at(time.Second), host, v3Report(AllowNewSources, other, 4, 5, 6))
	count("after two groups' sources", 4)
	if !q.Forward(src(4), other) || q.Forward(src(5), other) || q.Stats().SourcesRefused != 2 {
		t.Fatalf("the second group: %v refused", q.Stats().SourcesRefused)
	}
	// A TO_EX keeps only the record's sources, on the exclude list.
	q.Receive(at(2*time.Second), host, v3Report(ChangeToExclude, grp, 1))
	count("after TO_EX", 2)
	// The sources' timers run out: the other group goes, and the first group's
	// source stays, on its exclude list.
	advanceTo(q, at(time.Second+gmi+time.Millisecond))
	count("after the sources' timers ran out", 1)
	q.Receive(at(time.Second+gmi+time.Millisecond), host, v3Report(AllowNewSources, other, 5, 6, 7, 8))
	count("after room was given back", 4)
	// The first group's timer runs out: its exclude list goes with it.
	advanceTo(q, at(2*time.Second+gmi+time.Millisecond))
	count("after the exclude-mode group timed out", 3)
	advanceTo(q, at(2*time.Second+2*gmi))
	count("after everything timed out", 0)
}

func TestInsertSourcesKeepsOrder(t *testing.T) {
	q := started(t, testConfig())
	q.Receive(at(time.Second), host, v3Report(AllowNewSources, grp, 10, 30, 50))
	q.Receive(at(2*time.Second), host, v3Report(AllowNewSources, grp, 60, 5, 30, 20, 40))
	g, _ := q.Group(grp)
	var got []netip.Addr
	for _, s := range g.Sources {
		got = append(got, s.Source)
	}
	if want := srcs(5, 10, 20, 30, 40, 50, 60); !slices.Equal(got, want) {
		t.Errorf("sources %v, want %v", got, want)
	}
}
