package main

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mrouterd/mrouterd/test/bench/internal/benchlab"
)

// report builds the tables, one column per implementation, and the notes that give
// every failure in full.
type report struct {
	results []*result
	columns []string
	notes   []string
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
				rp.notes = append(rp.notes, fmt.Sprintf("%s: %s: %v", r.impl.name, label, e))
			}
			if text == "" {
				text = benchlab.Failed(err)
			}
		}
		cells = append(cells, text)
	}
	t.Add(label, cells...)
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
		ready func(*result) map[string]readiness
		modes []mode
	}{
		{"chain", func(r *result) map[string]readiness { return r.chain }, []mode{ssmMode, chainASM}},
		{"diamond", func(r *result) map[string]readiness { return r.diamond }, []mode{ssmMode, diamondASM}},
	} {
		for _, m := range net.modes {
			rp.row(t, net.name+" "+m.name, func(r *result) (string, error) {
				rd := net.ready(r)[m.name]
				if rd.err != nil {
					return "", rd.err
				}
				return benchlab.Seconds(rd.after), nil
			})
		}
	}
	t.Print()

	t = rp.table(fmt.Sprintf("Join to first packet across three routers (chain): %d joins per mode, each of a fresh group whose source has sent for %v", o.trials, joinLead))
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

	t = rp.table(fmt.Sprintf("Stream gap at the receiver when %s goes down (diamond): the tree moves from r2 to r3; %d runs per mode", failedLinkOn, o.rpfRuns))
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

	t = rp.table(fmt.Sprintf("%d groups joined at once across the chain, the source sending %d pps to each from %v before", o.groups, manyRate, manyLead))
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

	t = rp.table("Setup and run time")
	t.Add("PIM timers", cells(results, func(r *result) string { return r.impl.timers })...)
	t.Add("labs up to down", cells(results, func(r *result) string { return benchlab.Seconds(r.took) })...)
	t.Print()

	benchlab.PrintNotes(rp.notes)
}

// cells renders a row that every result has, failed or not.
func cells(results []*result, cell func(*result) string) []string {
	var row []string
	for _, r := range results {
		row = append(row, cell(r))
	}
	return row
}
