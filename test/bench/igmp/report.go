package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/mrouterd/mrouterd/test/bench/internal/benchlab"
)

// summary is one router's column, cell by cell.
type summary struct {
	startup                            string
	joinMedian, joinMax, joined        string
	reportMedian, reportMax            string
	leaveMedian, leaveMax, left        string
	timers                             string
	manyTook, manyHeld, stateEvery     string
	memoryBefore, memoryAfter, runTime string
}

// summarize fills r's column and returns the errors behind its failures in full.
func summarize(r *result, groups int) (summary, []string) {
	s := summary{timers: r.timers, runTime: benchlab.Seconds(r.took)}
	if r.err != nil {
		const none = "-"
		s.joinMedian, s.joinMax, s.joined, s.reportMedian, s.reportMax = none, none, none, none, none
		s.leaveMedian, s.leaveMax, s.left = none, none, none
		s.manyTook, s.manyHeld, s.stateEvery, s.memoryBefore, s.memoryAfter = none, none, none, none, none
		s.startup = benchlab.Failed(r.err)
		return s, []string{fmt.Sprintf("%s: %v", r.name, r.err)}
	}
	var notes []string
	s.startup = benchlab.Seconds(r.startup)
	var joins, reports, leaves []time.Duration
	var joinErrs, reportErrs, leaveErrs []error
	for _, t := range r.trials {
		if t.joinErr != nil {
			joinErrs = append(joinErrs, t.joinErr)
			continue
		}
		joins = append(joins, t.join)
		if t.reportErr != nil {
			reportErrs = append(reportErrs, t.reportErr)
		} else {
			reports = append(reports, t.report)
		}
		if t.leaveErr != nil {
			leaveErrs = append(leaveErrs, t.leaveErr)
		} else {
			leaves = append(leaves, t.leave)
		}
	}
	for _, err := range slices.Concat(joinErrs, reportErrs, leaveErrs) {
		notes = append(notes, fmt.Sprintf("%s: %v", r.name, err))
	}
	s.joinMedian, s.joinMax = benchlab.Spread(joins, joinErrs)
	s.reportMedian, s.reportMax = benchlab.Spread(reports, reportErrs)
	s.joined = fmt.Sprintf("%d of %d", len(joins), len(r.trials))
	s.leaveMedian, s.leaveMax = benchlab.Spread(leaves, leaveErrs)
	s.left = fmt.Sprintf("%d of %d", len(leaves), len(joins))

	m := r.many
	if m.err != nil {
		s.manyTook = benchlab.Failed(m.err)
		notes = append(notes, fmt.Sprintf("%s: %d groups: %v", r.name, groups, m.err))
	} else {
		s.manyTook = fmt.Sprintf("%.2f-%.2f s", m.lower.Seconds(), m.upper.Seconds())
		if m.lower == 0 {
			s.manyTook = fmt.Sprintf("<= %.2f s", m.upper.Seconds())
		}
	}
	s.manyHeld = fmt.Sprint(m.held)
	s.stateEvery = fmt.Sprintf("%s, a read took up to %s", benchlab.Seconds(r.stateInterval), benchlab.Seconds(m.slowestRead))
	if m.memoryErr != nil {
		s.memoryBefore = benchlab.Failed(m.memoryErr)
		notes = append(notes, fmt.Sprintf("%s: memory: %v", r.name, m.memoryErr))
	} else {
		s.memoryBefore, s.memoryAfter = benchlab.MemoryCell(m.before), benchlab.MemoryCell(m.after)
	}
	return s, notes
}

func printResults(results []*result, trials, groups int) {
	var columns []string
	var sums []summary
	var notes []string
	for _, r := range results {
		columns = append(columns, r.name)
		s, n := summarize(r, groups)
		sums = append(sums, s)
		notes = append(notes, n...)
	}
	cells := func(cell func(summary) string) []string {
		var row []string
		for _, s := range sums {
			row = append(row, cell(s))
		}
		return row
	}

	t := &benchlab.Table{Title: "Start to first forwarded packet (receiver joined and source sending from the start)", Columns: columns}
	t.Add("time", cells(func(s summary) string { return s.startup })...)
	t.Print()

	t = &benchlab.Table{Title: fmt.Sprintf("Join to first packet: %d groups, each joined %v after its source started", trials, joinLead), Columns: columns}
	t.Add("median, from the join call", cells(func(s summary) string { return s.joinMedian })...)
	t.Add("max, from the join call", cells(func(s summary) string { return s.joinMax })...)
	t.Add("median, from the report", cells(func(s summary) string { return s.reportMedian })...)
	t.Add("max, from the report", cells(func(s summary) string { return s.reportMax })...)
	t.Add("got packets", cells(func(s summary) string { return s.joined })...)
	t.Print()

	t = &benchlab.Table{Title: "Leave to last packet: the receiver leaves (IGMPv3 TO_IN{}), last packet seen on rcv's eth1", Columns: columns}
	t.Add("median", cells(func(s summary) string { return s.leaveMedian })...)
	t.Add("max", cells(func(s summary) string { return s.leaveMax })...)
	t.Add("stopped", cells(func(s summary) string { return s.left })...)
	t.Add("IGMP timers", cells(func(s summary) string { return s.timers })...)
	t.Print()

	t = &benchlab.Table{Title: fmt.Sprintf("%d groups joined at once on rcv's eth1, from the host's first report", groups), Columns: columns}
	t.Add("time to hold all", cells(func(s summary) string { return s.manyTook })...)
	t.Add("groups held", cells(func(s summary) string { return s.manyHeld })...)
	t.Add("state read every", cells(func(s summary) string { return s.stateEvery })...)
	t.Add("memory before (RSS)", cells(func(s summary) string { return s.memoryBefore })...)
	t.Add("memory after (RSS)", cells(func(s summary) string { return s.memoryAfter })...)
	t.Print()

	t = &benchlab.Table{Title: "Run time", Columns: columns}
	t.Add("lab up to down", cells(func(s summary) string { return s.runTime })...)
	t.Print()

	benchlab.PrintNotes(notes)
}
