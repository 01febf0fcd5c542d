package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mrouterd/mrouterd/test/bench/internal/benchlab"
)

// report builds the tables, one column per implementation, and the notes that give
// every failure in full.
type report struct {
	results []*result
	columns []string
	notes   []string
	context string // names the table in the notes, where its labels alone would not
}

// row adds a row to t with one cell per result; cell returns the text and, for
// failures, the errors to note (several joined with errors.Join); an empty text shows
// the first.
func (rp *report) row(t *benchlab.Table, label string, cell func(r *result) (string, error)) {
	var cells []string
	for _, r := range rp.results {
		if r.err != nil {
			cells = append(cells, "-")
			continue
		}
		text, err := cell(r)
		if err != nil {
			errs := []error{err}
			if joined, ok := err.(interface{ Unwrap() []error }); ok {
				errs = joined.Unwrap()
			}
			for _, e := range errs {
				rp.note(r, label, e)
			}
			if text == "" {
				text = benchlab.Failed(err)
			}
		}
		cells = append(cells, text)
	}
	t.Add(label, cells...)
}

// note adds a note on r's figure label.
func (rp *report) note(r *result, label string, what any) {
	if rp.context != "" {
		label = rp.context + ": " + label
	}
	rp.notes = append(rp.notes, fmt.Sprintf("%s: %s: %v", r.impl.name, label, what))
}

func (rp *report) table(title string) *benchlab.Table {
	return &benchlab.Table{Title: title, Columns: rp.columns}
}

func printResults(results []*result, o options) {
	rp := &report{results: results}
	for _, r := range results {
		rp.columns = append(rp.columns, r.impl.name)
		if r.err != nil {
			rp.notes = append(rp.notes, fmt.Sprintf("%s: %v", r.impl.name, r.err))
		}
	}

	t := rp.table("Start to first forwarded packet: receiver joined and source sending from the start")
	for _, net := range []struct {
		name  string
		modes []mode
	}{
		{"chain", []mode{ssmMode, chainASM}},
		{"diamond", []mode{ssmMode, diamondASM}},
		{"assert", []mode{assertASM}},
	} {
		if !slices.ContainsFunc(results, func(r *result) bool { return r.ready[net.name] != nil }) {
			continue
		}
		for _, m := range net.modes {
			rp.row(t, net.name+" "+m.name, func(r *result) (string, error) {
				rd, ok := r.ready[net.name][m.name]
				if !ok {
					return "-", nil
				}
				if rd.err != nil {
					return "", rd.err
				}
				return benchlab.Seconds(rd.after), nil
			})
		}
	}
	t.Print()

	if o.measure[measureJoins] {
		rp.joinTable(o)
	}
	if o.measure[measureSources] {
		t = rp.table(fmt.Sprintf("A new source through the register tunnel (chain): src, behind r1, starts %d pps to a group rcv joined before,\n"+
			"for %v, %d times per router; it spans the RP's switch from Registers to the source's tree and r3's switch to it", ratePPS, sourceStream, o.sources))
		rp.context = "new source"
		rp.sourceRows(t, func(r *result) []sourceRun { return r.sources }, o.sources)
		rp.context = ""
		t.Print()
	}
	if o.measure[measureRPF] {
		rp.rpfTable(o)
	}
	if o.measure[measureGroups] {
		rp.manyTables(o)
	}
	if o.measure[measureAsserts] {
		rp.assertTable(o)
	}

	t = rp.table("Setup and run time")
	t.Add("PIM timers", cells(results, func(r *result) string { return r.impl.timers })...)
	t.Add("labs up to down", cells(results, func(r *result) string { return benchlab.Seconds(r.took) })...)
	t.Print()

	benchlab.PrintNotes(rp.notes)
}

func (rp *report) joinTable(o options) {
	t := rp.table(fmt.Sprintf("Join to first packet across three routers (chain): %d joins per mode, each of a fresh group whose source has sent for %v", o.trials, joinLead))
	for _, m := range []mode{ssmMode, chainASM} {
		join := map[string]string{"SSM": "(S,G)", "ASM": "(*,G) via the RP"}[m.name]
		spread := func(r *result) (median, maximum string, ok int, errs []error) {
			ds, errs := joinFigures(r.joins[m.name])
			median, maximum = benchlab.Spread(ds, errs)
			return median, maximum, len(ds), errs
		}
		rp.row(t, m.name+" "+join+", median", func(r *result) (string, error) {
			median, _, _, errs := spread(r)
			return median, errors.Join(errs...)
		})
		rp.row(t, m.name+" "+join+", max", func(r *result) (string, error) {
			_, maximum, _, _ := spread(r)
			return maximum, nil
		})
		rp.row(t, m.name+" got packets", func(r *result) (string, error) {
			_, _, ok, _ := spread(r)
			return fmt.Sprintf("%d of %d", ok, o.trials), nil
		})
	}
	t.Print()
}

func (rp *report) rpfTable(o options) {
	t := rp.table(fmt.Sprintf("Stream gap at the receiver when %s goes down (diamond): the tree moves from r2 to r3; %d runs per mode", failedLinkOn, o.rpfRuns))
	for _, m := range []mode{ssmMode, diamondASM} {
		figures := func(r *result) (gaps []time.Duration, lost []uint64, errs []error) {
			for _, run := range r.rpf[m.name] {
				if run.err != nil {
					errs = append(errs, run.err)
					continue
				}
				gaps, lost = append(gaps, run.gap), append(lost, run.lost)
			}
			return gaps, lost, errs
		}
		rp.row(t, m.name+" longest gap, median", func(r *result) (string, error) {
			gaps, _, errs := figures(r)
			median, _ := benchlab.Spread(gaps, errs)
			return median, errors.Join(errs...)
		})
		rp.row(t, m.name+" longest gap, max", func(r *result) (string, error) {
			gaps, _, errs := figures(r)
			_, maximum := benchlab.Spread(gaps, errs)
			return maximum, nil
		})
		rp.row(t, m.name+" datagrams lost, median", func(r *result) (string, error) {
			_, lost, _ := figures(r)
			if len(lost) == 0 {
				return "-", nil
			}
			slices.Sort(lost)
			return fmt.Sprint(lost[len(lost)/2]), nil
		})
		rp.row(t, m.name+" restored", func(r *result) (string, error) {
			gaps, _, _ := figures(r)
			return fmt.Sprintf("%d of %d", len(gaps), o.rpfRuns), nil
		})
	}
	t.Print()
}

func (rp *report) manyTables(o options) {
	t := rp.table(fmt.Sprintf("%d groups joined at once across the chain, the source sending %d pps to each from %v before", o.groups, manyRate, manyLead))
	for _, m := range []mode{chainASM, ssmMode} {
		rp.row(t, m.name+" all delivered after", func(r *result) (string, error) {
			mg := r.many[m.name]
			if mg.err != nil {
				return "", mg.err
			}
			return benchlab.Seconds(mg.took), nil
		})
		rp.row(t, m.name+" groups delivered", func(r *result) (string, error) {
			return fmt.Sprintf("%d of %d", r.many[m.name].delivered, o.groups), nil
		})
	}
	t.Print()

	t = rp.table("Memory (RSS) of the routing daemons on the chain")
	for _, node := range []string{"r1", "r2", "r3"} {
		for _, stage := range []struct {
			label string
			mem   func(*result) map[string]nodeMemory
		}{
			{"idle", func(r *result) map[string]nodeMemory { return r.memory.idle }},
			{fmt.Sprintf("%d ASM + %d SSM groups", o.groups, o.groups), func(r *result) map[string]nodeMemory { return r.memory.loaded }},
		} {
			rp.row(t, node+" "+stage.label, func(r *result) (string, error) {
				nm, ok := stage.mem(r)[node]
				if !ok {
					return "-", nil
				}
				if nm.err != nil {
					return "", nm.err
				}
				return benchlab.MemoryCell(nm.processes), nil
			})
		}
	}
	t.Print()
}

// cells renders a row that every result has, failed or not.
func cells(results []*result, cell func(*result) string) []string {
	var row []string
	for _, r := range results {
		row = append(row, cell(r))
	}
	return row
}

// sourceRows adds the rows of a run of source starts: how the first packets came
// through the register tunnel and how the stream fared across the switches.
func (rp *report) sourceRows(t *benchlab.Table, runs func(*result) []sourceRun, n int) {
	figures := func(r *result) (ok []sourceRun, errs []error) {
		for _, run := range runs(r) {
			if run.err != nil {
				errs = append(errs, run.err)
			} else {
				ok = append(ok, run)
			}
		}
		return ok, errs
	}
	durations := func(r *result, of func(sourceRun) time.Duration) (median, maximum string) {
		ok, errs := figures(r)
		var ds []time.Duration
		for _, run := range ok {
			ds = append(ds, of(run))
		}
		return benchlab.Spread(ds, errs)
	}
	counts := func(r *result, of func(sourceRun) uint64) (median, maximum string) {
		ok, _ := figures(r)
		var vs []uint64
		for _, run := range ok {
			vs = append(vs, of(run))
		}
		return countSpread(vs)
	}
	rp.row(t, "first packet after the source's, median", func(r *result) (string, error) {
		median, _ := durations(r, sourceRun.firstPacket)
		_, errs := figures(r)
		return median, errors.Join(errs...)
	})
	rp.row(t, "first packet after the source's, max", func(r *result) (string, error) {
		_, maximum := durations(r, sourceRun.firstPacket)
		return maximum, nil
	})
	rp.row(t, "first on rcv's link, any checksum, median / max", func(r *result) (string, error) {
		ok, _ := figures(r)
		var ds []time.Duration
		for _, run := range ok {
			if !run.onLink.IsZero() {
				ds = append(ds, run.firstOnLink())
			}
		}
		median, maximum := benchlab.Spread(ds, nil)
		if maximum == "" {
			return "-", nil
		}
		return median + " / " + maximum, nil
	})
	for _, c := range []struct {
		label string
		of    func(sourceRun) uint64
	}{
		{"datagrams lost", sourceRun.lost},
		{"duplicates", func(run sourceRun) uint64 { return run.stream.Duplicates }},
	} {
		rp.row(t, c.label+", median / max", func(r *result) (string, error) {
			median, maximum := counts(r, c.of)
			return median + " / " + maximum, nil
		})
	}
	rp.row(t, "first datagram to arrive, seq median / max", func(r *result) (string, error) {
		median, maximum := counts(r, func(run sourceRun) uint64 { return run.stream.FirstSeq })
		return median + " / " + maximum, nil
	})
	rp.row(t, "taken out of Registers at the RP, median / max", func(r *result) (string, error) {
		median, maximum := counts(r, func(run sourceRun) uint64 { return run.registered })
		return median + " / " + maximum, nil
	})
	rp.row(t, "largest gap, median / max", func(r *result) (string, error) {
		median, maximum := durations(r, func(run sourceRun) time.Duration { return msDuration(run.stream.MaxGapMs) })
		if maximum == "" {
			return "-", nil
		}
		return median + " / " + maximum, nil
	})
	rp.row(t, "dropped by rcv for a bad UDP checksum", func(r *result) (string, error) {
		var sum uint64
		for _, run := range runs(r) {
			sum += run.csumErrors
		}
		return fmt.Sprintf("%d in all", sum), nil
	})
	rp.row(t, "streams that arrived", func(r *result) (string, error) {
		ok, _ := figures(r)
		return fmt.Sprintf("%d of %d", len(ok), n), nil
	})
	for _, r := range rp.results {
		var dropped, registered uint64
		for _, run := range runs(r) {
			dropped += run.csumErrors
			registered += run.registered
		}
		if dropped > 0 {
			rp.note(r, "bad UDP checksums", fmt.Sprintf("rcv's kernel dropped %d datagrams for one, and the RP took %d out of Registers:"+
				" Registers built from what veth hands up, its UDP checksum unfinished", dropped, registered))
		}
	}
}

func (rp *report) assertTable(o options) {
	t := rp.table(fmt.Sprintf("A new source onto a LAN (assert): src, behind r1, starts %d pps to a group rcv joined before, for %v,\n"+
		"%d times per router; once rc joins the source's tree through rb, ra (the RP) and rb both forward onto rc's LAN until an assert", ratePPS, sourceStream, o.asserts))
	runs := func(r *result) (ok []sourceRun) {
		for _, run := range r.asserts {
			if run.err == nil {
				ok = append(ok, run)
			}
		}
		return ok
	}
	rp.row(t, "duplicates end after the source's first packet, median / max", func(r *result) (string, error) {
		var ds []time.Duration
		never := 0
		for _, run := range runs(r) {
			switch {
			case len(run.forwarding) > 1:
				never++
			case run.stream.Duplicates > 0:
				ds = append(ds, run.duplicatesStop())
			}
		}
		var parts []string
		if len(ds) > 0 {
			median, maximum := benchlab.Spread(ds, nil)
			parts = append(parts, fmt.Sprintf("%s / %s (%d runs)", median, maximum, len(ds)))
		}
		if never > 0 {
			parts = append(parts, fmt.Sprintf("never (%d runs: to the stream's end)", never))
		}
		if len(parts) == 0 {
			return "no duplicates", nil
		}
		return strings.Join(parts, ", "), nil
	})
	rp.row(t, "forwarding onto the LAN at the end", func(r *result) (string, error) {
		var words []string
		for _, run := range runs(r) {
			w := strings.Join(run.forwarding, " and ")
			if w == "" {
				w = "neither"
			}
			words = append(words, w)
		}
		if len(words) == 0 {
			return "-", nil
		}
		return countWords(words), nil
	})
	rp.context = "assert"
	defer func() { rp.context = "" }()
	for _, node := range []string{"ra", "rb"} {
		rp.row(t, node+"'s assert state", func(r *result) (string, error) {
			st, ok := r.won[node]
			if !ok {
				return "-", nil
			}
			return st.summary, st.err
		})
	}
	rp.sourceRows(t, func(r *result) []sourceRun { return r.asserts }, o.asserts)
	t.Print()
	for _, r := range rp.results {
		ok := runs(r)
		both, raOnly := 0, 0
		for _, run := range ok {
			switch {
			case len(run.forwarding) > 1:
				both++
			case slices.Equal(run.forwarding, []string{"ra"}):
				raOnly++
			}
		}
		switch {
		case both > 0:
			rp.note(r, "forwarding onto the LAN", fmt.Sprintf("ra and rb both still forwarded onto it at the end of %d of %d streams;"+
				" ra's assert state: %s; rb's: %s", both, len(ok), r.won["ra"].summary, r.won["rb"].summary))
		case raOnly > 0 && raOnly == len(ok):
			rp.note(r, "forwarding onto the LAN", "only ra, the RP, forwarded onto it: rc stayed on the RP's tree, so no assert was needed")
		}
	}
}

// countSpread renders the median and maximum of counts; "-" for none.
func countSpread(vs []uint64) (median, maximum string) {
	if len(vs) == 0 {
		return "-", "-"
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	return fmt.Sprint(s[len(s)/2]), fmt.Sprint(s[len(s)-1])
}
