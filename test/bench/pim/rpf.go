package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mrouterd/mrouterd/test/bench/internal/benchlab"
	"github.com/mrouterd/mrouterd/test/mcast"
)

// The receiver's router on the diamond and its two ways towards the source: eth1
// through r2 (route metric 10) and eth2 through r3 (metric 20).
const (
	rpfNode      = "r4"
	preferredIf  = "eth1"
	alternateIf  = "eth2"
	failedLinkOn = rpfNode + "'s " + preferredIf
)

// Timing of the RPF-change runs.
const (
	// The stream must come back to the preferred path after the link does, within
	// this long: a router must see its neighbour again before it joins there.
	settleTimeout = 40 * time.Second
	// The stream must come back at the receiver within this long of the link failure.
	// pimd asks the kernel for route changes every 20 s on a 5 s tick.
	restoreTimeout = 40 * time.Second
	// A stream counts as restored when its last packet is this recent at least
	// restoreSettle after the failure.
	flowing       = 20 * time.Millisecond
	restoreSettle = time.Second
	// The receiver of a run gets the stream for this long before the failure and
	// after the stream is back.
	baseline   = 300 * time.Millisecond
	rateWindow = 200 * time.Millisecond
	readyWait  = 5 * time.Second
)

// rpfRun is one link failure under a flowing stream.
type rpfRun struct {
	gap  time.Duration // the longest silence at the receiver
	lost uint64        // datagrams that never arrived, of those sent since the first that did
	err  error
}

// stream is one mode's traffic during the RPF-change runs.
type stream struct {
	mode
	send, member *benchlab.Background
	recv         *benchlab.Background // the receiver of the current run
	ready        string               // the file that receiver creates once joined
	back         bool                 // the stream is back since the current failure
	runs         []rpfRun
}

// rpfChanges streams to each mode's group with a receiver joined for the whole
// measurement, and n times takes r4's link on the preferred path down, measures the
// gap of each stream at the receiver while the routers move the trees to the other
// path, and brings the link (and its routes) back.
func (d *deployment) rpfChanges(n int) map[string][]rpfRun {
	results := map[string][]rpfRun{}
	var streams []*stream
	defer func() {
		for _, s := range streams {
			s.send.Stop()
			s.member.Stop()
		}
	}()
	routes, err := d.routes()
	for _, m := range d.net.modes {
		if err == nil {
			err = d.notReady(m)
		}
		if err != nil {
			results[m.name] = []rpfRun{{err: err}}
			continue
		}
		s := &stream{mode: m, ready: filepath.Join(d.lab.StateDir, "rpf-ready-"+m.name)}
		if s.send, err = d.sender(m, m.rpfGroup, 1, ratePPS); err != nil {
			results[m.name] = []rpfRun{{err: err}}
			continue
		}
		// Holds the membership across the runs, whose own receivers come and go.
		s.member, err = benchlab.StartBackground(d.lab, receiverNode, append([]string{"mcast", "recv", "-duration", "1h"}, m.join(m.rpfGroup)...)...)
		if err != nil {
			s.send.Stop()
			results[m.name] = []rpfRun{{err: err}}
			continue
		}
		streams = append(streams, s)
	}
	for i := range n {
		if len(streams) == 0 {
			break
		}
		if err := d.waitPreferred(streams); err != nil {
			for _, s := range streams {
				s.runs = append(s.runs, rpfRun{err: fmt.Errorf("%v%s%s", err, s.send.ExitNote(), s.member.ExitNote())})
				if i+1 < n {
					s.runs = append(s.runs, rpfRun{err: fmt.Errorf("%d more runs skipped: the stream is not back on the preferred path", n-i-1)})
				}
			}
			break
		}
		d.rpfChange(streams)
		if err := d.restoreLink(routes); err != nil {
			for _, s := range streams {
				s.runs = append(s.runs, rpfRun{err: err})
			}
			break
		}
	}
	for _, s := range streams {
		results[s.name] = s.runs
	}
	return results
}

// rpfChange takes the link down under the flowing streams and measures their gaps.
func (d *deployment) rpfChange(streams []*stream) {
	var running []*stream // the streams whose receiver started
	for _, s := range streams {
		s.back = false
		if err := os.Remove(s.ready); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.runs = append(s.runs, rpfRun{err: err})
			continue
		}
		recv, err := benchlab.StartBackground(d.lab, receiverNode, append([]string{"mcast", "recv", "-duration", "2m", "-ready", s.ready}, s.join(s.rpfGroup)...)...)
		if err != nil {
			s.runs = append(s.runs, rpfRun{err: err})
			continue
		}
		s.recv = recv
		running = append(running, s)
	}
	defer func() {
		for _, s := range running {
			s.recv.Stop()
		}
	}()
	deadline := time.Now().Add(readyWait)
	for _, s := range running {
		for !exists(s.ready) && time.Now().Before(deadline) {
			time.Sleep(pollEvery)
		}
	}
	var joined []*stream
	for _, s := range running {
		if exists(s.ready) {
			joined = append(joined, s)
		} else {
			s.runs = append(s.runs, rpfRun{err: fmt.Errorf("receiver not joined within %v%s", readyWait, s.recv.ExitNote())})
		}
	}
	time.Sleep(baseline)
	down := time.Now()
	if _, err := d.lab.Exec(rpfNode, "ip", "link", "set", preferredIf, "down"); err != nil {
		for _, s := range joined {
			s.runs = append(s.runs, rpfRun{err: err})
		}
		return
	}
	for pending := len(joined); pending > 0 && time.Since(down) <= restoreTimeout; time.Sleep(pollEvery) {
		for _, s := range joined {
			if _, last := d.capture.Data(s.rpfGroup); !s.back && time.Since(down) >= restoreSettle && time.Since(last) < flowing {
				s.back = true
				pending--
			}
		}
	}
	time.Sleep(baseline)
	for _, s := range joined {
		if !s.back {
			s.runs = append(s.runs, rpfRun{err: fmt.Errorf("stream not back within %v of %s going down", restoreTimeout, failedLinkOn)})
			continue
		}
		s.runs = append(s.runs, gapOf(s.recv.Output()))
	}
}

// gapOf reads the figures of a run from its receiver's report.
func gapOf(out []byte) rpfRun {
	report, err := mcast.ParseReport(out)
	if err != nil {
		return rpfRun{err: fmt.Errorf("mcast recv: %v", err)}
	}
	// The receiver joined mid-stream: only what went missing after its first datagram
	// counts.
	var lost uint64
	if span := report.LastSeq - report.FirstSeq + 1; report.Received > 0 && span > report.Unique {
		lost = span - report.Unique
	}
	return rpfRun{gap: time.Duration(report.MaxGapMs * float64(time.Millisecond)), lost: lost}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// waitPreferred waits until the streams reach r4 on the preferred path alone, and the
// receiver.
func (d *deployment) waitPreferred(streams []*stream) error {
	deadline := time.Now().Add(settleTimeout)
	var onPreferred, onAlternate uint64
	for {
		p1, a1, err := d.rxPackets()
		if err != nil {
			return err
		}
		time.Sleep(rateWindow)
		p2, a2, err := d.rxPackets()
		if err != nil {
			return err
		}
		onPreferred, onAlternate = p2-p1, a2-a1
		var since time.Duration // since the receiver's last packet of the stream it lacks longest
		for _, s := range streams {
			_, last := d.capture.Data(s.rpfGroup)
			if last.IsZero() {
				last = d.started
			}
			since = max(since, time.Since(last))
		}
		expected := uint64(len(streams)) * uint64(ratePPS*rateWindow/time.Second)
		if onPreferred >= expected/2 && onAlternate <= expected/10 && since < flowing {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("streams not on %s alone within %v: %d packets in %v there, %d on %s's %s, none at %s for %v",
				failedLinkOn, settleTimeout, onPreferred, rateWindow, onAlternate, rpfNode, alternateIf, receiverNode, since.Round(time.Millisecond))
		}
	}
}

// rxPackets reads how many packets r4 has received on each path.
func (d *deployment) rxPackets() (preferred, alternate uint64, err error) {
	p, err := d.linkStats(rpfNode, preferredIf)
	if err != nil {
		return 0, 0, err
	}
	a, err := d.linkStats(rpfNode, alternateIf)
	return p.RxPackets, a.RxPackets, err
}

// routes returns r4's IPv4 routes as ip prints them, one a line.
func (d *deployment) routes() ([]string, error) {
	out, err := d.lab.Exec(rpfNode, "ip", "-4", "route", "show")
	if err != nil {
		return nil, err
	}
	var routes []string
	for _, line := range strings.Split(out, "\n") {
		if line = strings.TrimSpace(strings.ReplaceAll(line, " linkdown", "")); line != "" {
			routes = append(routes, line)
		}
	}
	return routes, nil
}

// restoreLink brings the link back up and adds back the routes that the kernel removed
// when it went down.
func (d *deployment) restoreLink(routes []string) error {
	if _, err := d.lab.Exec(rpfNode, "ip", "link", "set", preferredIf, "up"); err != nil {
		return err
	}
	now, err := d.routes()
	if err != nil {
		return err
	}
	for _, r := range routes {
		if !slices.Contains(now, r) {
			if _, err := d.lab.Exec(rpfNode, "sh", "-c", "ip route add "+r); err != nil {
				return fmt.Errorf("restore route: %v", err)
			}
		}
	}
	return nil
}
