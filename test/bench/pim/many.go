package main

import (
	"fmt"
	"time"

	"github.com/mrouterd/mrouterd/test/bench/internal/benchlab"
	"github.com/mrouterd/mrouterd/test/mcast"
)

// Sizing and timing of the many-groups run.
const (
	manyRate    = 10              // datagrams per second to each group
	manyLead    = 2 * time.Second // the source sends to every group this long before the joins
	manyTimeout = 60 * time.Second
	// The run gives up when no group delivered its first packet for this long.
	manyStall    = 20 * time.Second
	manyPollTime = 20 * time.Millisecond
)

// many is the outcome of joining many groups at once.
type many struct {
	took      time.Duration // from the first join to the first packet of the last group
	delivered int           // groups that delivered a packet
	joined    *benchlab.Joined
	err       error
}

// joinMany makes the receiver host join n groups at once, which its own IGMP stack
// announces one report each, while the source already sends to all of them, and
// measures how long it takes until every group has delivered a packet. The groups
// stay joined, for the memory figures, until the caller leaves them.
func (d *deployment) joinMany(m mode, n int) *many {
	mg := &many{}
	if mg.err = d.notReady(m); mg.err != nil {
		return mg
	}
	groups, err := mcast.GroupRange(m.many, n)
	if err != nil {
		mg.err = err
		return mg
	}
	send, err := d.sender(m, m.many, n, manyRate)
	if err != nil {
		mg.err = err
		return mg
	}
	defer send.Stop()
	time.Sleep(manyLead)
	mg.joined, mg.err = benchlab.JoinMany(d.lab, receiverNode, hostIfname, groups, m.joinSource())
	if mg.err != nil {
		return mg
	}
	deadline := mg.joined.Start.Add(manyTimeout)
	for {
		last := mg.joined.Start // the latest first packet of a group
		mg.delivered = 0
		for _, g := range groups {
			if first, _ := d.capture.Data(g); !first.IsZero() {
				mg.delivered++
				last = maxTime(last, first)
			}
		}
		if mg.delivered == n {
			mg.took = last.Sub(mg.joined.Start)
			return mg
		}
		if time.Now().After(deadline) || time.Since(last) > manyStall {
			mg.err = fmt.Errorf("%d of %d groups delivered in %v after the joins, none more in the last %v%s%s",
				mg.delivered, n, time.Since(mg.joined.Start).Round(time.Second), time.Since(last).Round(time.Second), send.ExitNote(), d.capture.Note())
			return mg
		}
		time.Sleep(manyPollTime)
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// memoryFigures are the routers' memory on the chain, idle and with the many groups.
type memoryFigures struct {
	idle, loaded map[string]nodeMemory // by router node
}

type nodeMemory struct {
	processes []benchlab.ProcessMemory
	err       error
}

// memory reads the memory of the router on every router node.
func (d *deployment) memory() map[string]nodeMemory {
	mem := map[string]nodeMemory{}
	for _, node := range d.net.routers {
		var nm nodeMemory
		nm.processes, nm.err = d.router.memory(d.lab, node)
		mem[node] = nm
	}
	return mem
}
