package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/mrouterd/mrouterd/test/bench/internal/benchlab"
	"github.com/mrouterd/mrouterd/test/mcast"
)

// Timing of the join trials.
const (
	joinLead    = time.Second      // a source sends this long before its receiver joins
	joinTimeout = 20 * time.Second // pimd takes up to 10 s for an SSM join
	joinPackets = 100              // the receiver leaves after this many packets
	// Trials stop after this many failures in a row: the rest would fail alike.
	failuresInARow = 2
)

// trial is one receiver's join of a group its source already sends to.
type trial struct {
	join time.Duration // from the receiver's join call, as mcast recv reports it
	err  error
}

// joinTrials joins n fresh groups one after the other, each while its source has been
// sending for joinLead: no router holds state of the group before its join, so each
// builds the whole tree. A fresh group rather than a leave and a join again of one:
// pimd 2.3 lets IGMPv3 memberships time out instead of leaving.
func (d *deployment) joinTrials(m mode, n int) []trial {
	if err := d.notReady(m); err != nil {
		return []trial{{err: err}}
	}
	return repeat(n, "trials", func(i int) (trial, error) {
		t := d.joinTrial(m, benchlab.AddrAdd(m.trials, i))
		return t, t.err
	}, func(err error) trial { return trial{err: err} })
}

// repeat runs one n times, with i from 0, and returns the outcomes. After
// failuresInARow failures in a row it gives up and adds, instead of the rest, what
// skipped makes of an error that says so.
func repeat[T any](n int, what string, one func(i int) (T, error), skipped func(error) T) []T {
	var out []T
	failures := 0
	for i := range n {
		t, err := one(i)
		out = append(out, t)
		if err == nil {
			failures = 0
		} else if failures++; failures == failuresInARow && i+1 < n {
			out = append(out, skipped(fmt.Errorf("%d more %s skipped after %d failures in a row", n-i-1, what, failures)))
			break
		}
	}
	return out
}

func (d *deployment) joinTrial(m mode, group netip.Addr) trial {
	send, err := d.sender(m, group, 1, ratePPS)
	if err != nil {
		return trial{err: err}
	}
	defer send.Stop()
	// The source must be sending before the join: that is the case being measured.
	time.Sleep(joinLead)
	args := append([]string{"mcast", "recv", "-count", strconv.Itoa(joinPackets), "-duration", joinTimeout.String()}, m.join(group)...)
	out, err := d.lab.Command(receiverNode, args...).Output()
	if err != nil {
		return trial{err: fmt.Errorf("mcast recv: %v%s", err, send.ExitNote())}
	}
	report, err := mcast.ParseReport(out)
	if err != nil {
		return trial{err: fmt.Errorf("mcast recv: %v", err)}
	}
	if report.Received == 0 {
		return trial{err: fmt.Errorf("no packet within %v of the join%s", joinTimeout, send.ExitNote())}
	}
	return trial{join: time.Duration(report.FirstPacketMs * float64(time.Millisecond))}
}

// joinFigures returns the join times of the trials that succeeded and the errors of
// those that did not.
func joinFigures(trials []trial) ([]time.Duration, []error) {
	var ds []time.Duration
	var errs []error
	for _, t := range trials {
		if t.err != nil {
			errs = append(errs, t.err)
		} else {
			ds = append(ds, t.join)
		}
	}
	return ds, errs
}
