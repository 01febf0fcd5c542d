package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// table is one metric: a row per figure, a column per router.
type table struct {
	title   string
	columns []string
	rows    [][]string // label first
}

func (t *table) add(label string, cells ...string) {
	t.rows = append(t.rows, append([]string{label}, cells...))
}

func (t *table) print() {
	fmt.Println(t.title)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 3, ' ', 0)
	fmt.Fprintln(w, "\t"+strings.Join(t.columns, "\t")+"\t")
	for _, row := range t.rows {
		fmt.Fprintln(w, strings.Join(row, "\t")+"\t")
	}
	w.Flush()
	fmt.Println()
}

// failed renders an error as a cell: its first line, cut short; the notes under the
// tables give it whole.
func failed(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	const maxLen = 60
	if len(msg) > maxLen {
		msg = msg[:maxLen-3] + "..."
	}
	return "failed: " + msg
}

// millis renders a latency in milliseconds, or in seconds once they read better.
func millis(d time.Duration) string {
	if d >= 10*time.Second {
		return seconds(d)
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func megabytes(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

// spread renders the median and maximum of the durations that succeeded, or why none
// did.
func spread(ds []time.Duration, errs []error) (median, maximum string) {
	if len(ds) == 0 {
		if len(errs) > 0 {
			return failed(errs[0]), ""
		}
		return "none", ""
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return millis(m), millis(s[len(s)-1])
}

func memoryCell(mem []processMemory) string {
	var parts []string
	for _, p := range mem {
		parts = append(parts, fmt.Sprintf("%s %s", p.process, megabytes(p.rssKB)))
	}
	return strings.Join(parts, " + ")
}

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
	s := summary{timers: r.timers, runTime: seconds(r.took)}
	if r.err != nil {
		const none = "-"
		s.joinMedian, s.joinMax, s.joined, s.reportMedian, s.reportMax = none, none, none, none, none
		s.leaveMedian, s.leaveMax, s.left = none, none, none
		s.manyTook, s.manyHeld, s.stateEvery, s.memoryBefore, s.memoryAfter = none, none, none, none, none
		s.startup = failed(r.err)
		return s, []string{fmt.Sprintf("%s: %v", r.name, r.err)}
	}
	var notes []string
	s.startup = seconds(r.startup)
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
	s.joinMedian, s.joinMax = spread(joins, joinErrs)
	s.reportMedian, s.reportMax = spread(reports, reportErrs)
	s.joined = fmt.Sprintf("%d of %d", len(joins), len(r.trials))
	s.leaveMedian, s.leaveMax = spread(leaves, leaveErrs)
	s.left = fmt.Sprintf("%d of %d", len(leaves), len(joins))

	m := r.many
	if m.err != nil {
		s.manyTook = failed(m.err)
		notes = append(notes, fmt.Sprintf("%s: %d groups: %v", r.name, groups, m.err))
	} else {
		s.manyTook = fmt.Sprintf("%.2f-%.2f s", m.lower.Seconds(), m.upper.Seconds())
		if m.lower == 0 {
			s.manyTook = fmt.Sprintf("<= %.2f s", m.upper.Seconds())
		}
	}
	s.manyHeld = fmt.Sprint(m.held)
	s.stateEvery = fmt.Sprintf("%s, a read took up to %s", seconds(r.stateInterval), seconds(m.slowestRead))
	if m.memoryErr != nil {
		s.memoryBefore = failed(m.memoryErr)
		notes = append(notes, fmt.Sprintf("%s: memory: %v", r.name, m.memoryErr))
	} else {
		s.memoryBefore, s.memoryAfter = memoryCell(m.before), memoryCell(m.after)
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

	t := &table{title: "Start to first forwarded packet (receiver joined and source sending from the start)", columns: columns}
	t.add("time", cells(func(s summary) string { return s.startup })...)
	t.print()

	t = &table{title: fmt.Sprintf("Join to first packet: %d groups, each joined %v after its source started", trials, joinLead), columns: columns}
	t.add("median, from the join call", cells(func(s summary) string { return s.joinMedian })...)
	t.add("max, from the join call", cells(func(s summary) string { return s.joinMax })...)
	t.add("median, from the report", cells(func(s summary) string { return s.reportMedian })...)
	t.add("max, from the report", cells(func(s summary) string { return s.reportMax })...)
	t.add("got packets", cells(func(s summary) string { return s.joined })...)
	t.print()

	t = &table{title: "Leave to last packet: the receiver leaves (IGMPv3 TO_IN{}), last packet seen on rcv's eth1", columns: columns}
	t.add("median", cells(func(s summary) string { return s.leaveMedian })...)
	t.add("max", cells(func(s summary) string { return s.leaveMax })...)
	t.add("stopped", cells(func(s summary) string { return s.left })...)
	t.add("IGMP timers", cells(func(s summary) string { return s.timers })...)
	t.print()

	t = &table{title: fmt.Sprintf("%d groups joined at once on rcv's eth1, from the host's first report", groups), columns: columns}
	t.add("time to hold all", cells(func(s summary) string { return s.manyTook })...)
	t.add("groups held", cells(func(s summary) string { return s.manyHeld })...)
	t.add("state read every", cells(func(s summary) string { return s.stateEvery })...)
	t.add("memory before (RSS)", cells(func(s summary) string { return s.memoryBefore })...)
	t.add("memory after (RSS)", cells(func(s summary) string { return s.memoryAfter })...)
	t.print()

	t = &table{title: "Run time", columns: columns}
	t.add("lab up to down", cells(func(s summary) string { return s.runTime })...)
	t.print()

	if len(notes) > 0 {
		fmt.Println("Notes:")
		// Trials often fail alike: say each thing once, with how often.
		count := map[string]int{}
		for _, n := range notes {
			count[n]++
		}
		for _, n := range notes {
			switch c := count[n]; {
			case c == 1:
				fmt.Println("  " + n)
			case c > 1:
				fmt.Printf("  %s (%d times)\n", n, c)
			}
			count[n] = 0
		}
	}
}
