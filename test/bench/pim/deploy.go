package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/mrouterd/mrouterd/test/bench/internal/benchlab"
	"github.com/mrouterd/mrouterd/test/lab"
)

// Timing of startup.
const (
	// pimd takes its static RP into use some 15 s after start, and makes the (*,G) of
	// a member only at the member's next report, after its next query: it forwards
	// 20-30 s after start.
	startupTimeout = 60 * time.Second
	// A probe that starts late, after the startup deadline, still gets this long.
	probeAtLeast = 10 * time.Second
	pollEvery    = 5 * time.Millisecond
)

// deployment is one implementation running on one network's lab.
type deployment struct {
	net     *network
	lab     *lab.Lab
	router  router
	capture *benchlab.Capture // of the receiver's link
	started time.Time         // when the routers were started
	// ready holds, per mode, how long after start the first packet reached the
	// receiver, or why none did.
	ready map[string]readiness
}

type readiness struct {
	after time.Duration
	err   error
}

// deploy brings n's lab up and starts an instance of impl on its routers. It returns a
// deployment to undeploy even on an error, which says what failed.
func deploy(n *network, impl implementation, bin string) (*deployment, error) {
	d := &deployment{net: n, ready: map[string]readiness{}}
	l, err := benchlab.Up(n.topo, bin)
	if err != nil {
		return d, fmt.Errorf("%s: %w", n.name, err)
	}
	d.lab = l
	benchlab.Logf("%s: lab %s", n.name, l.Prefix)
	// The receiver joins a thousand groups on a socket: above the default of 20.
	if _, err := l.Exec(receiverNode, "sysctl", "-qw", "net.ipv4.igmp_max_memberships="+strconv.Itoa(benchlab.GroupsPerSocket)); err != nil {
		return d, err
	}
	if d.capture, err = benchlab.StartCapture(l, receiverNode, hostIfname); err != nil {
		return d, err
	}
	d.router = impl.instance()
	d.started = time.Now()
	if err := d.router.start(l, n); err != nil {
		return d, fmt.Errorf("%s: %w", n.name, err)
	}
	return d, nil
}

// undeploy stops the routers and tears the lab down.
func (d *deployment) undeploy() {
	if d.capture != nil {
		d.capture.Close()
	}
	if d.router != nil {
		if err := d.router.stop(d.lab); err != nil {
			benchlab.Logf("%s: stop: %v", d.net.name, err)
		}
	}
	if d.lab != nil {
		benchlab.Down(d.lab)
	}
}

// sender streams from the mode's source to count groups from first, each at rate.
func (d *deployment) sender(m mode, first netip.Addr, count, rate int) (*benchlab.Background, error) {
	return benchlab.StartBackground(d.lab, m.sourceNode, "mcast", "send", "-group", first.String(),
		"-groups", strconv.Itoa(count), "-port", strconv.Itoa(port), "-ifname", hostIfname,
		"-ttl", strconv.Itoa(sendTTL), "-rate", strconv.Itoa(rate), "-duration", "1h")
}

// probe measures, for every mode of the network at once, the time from the routers'
// start to the first packet at the receiver, with the receiver joined and the source
// sending from the probe's start on.
func (d *deployment) probe() {
	done := make(chan struct{})
	results := make([]readiness, len(d.net.modes))
	for i, m := range d.net.modes {
		go func() {
			defer func() { done <- struct{}{} }()
			results[i].after, results[i].err = d.firstForward(m)
		}()
	}
	for range d.net.modes {
		<-done
	}
	for i, m := range d.net.modes {
		d.ready[m.name] = results[i]
	}
}

func (d *deployment) firstForward(m mode) (time.Duration, error) {
	deadline := d.started.Add(startupTimeout)
	if least := time.Now().Add(probeAtLeast); deadline.Before(least) {
		deadline = least
	}
	send, err := d.sender(m, m.probe, 1, ratePPS)
	if err != nil {
		return 0, err
	}
	defer send.Stop()
	recv, err := benchlab.StartBackground(d.lab, receiverNode, append([]string{"mcast", "recv", "-count", "1",
		"-duration", time.Until(deadline).Round(time.Second).String()}, m.join(m.probe)...)...)
	if err != nil {
		return 0, err
	}
	defer recv.Stop()
	for {
		if first, _ := d.capture.Data(m.probe); !first.IsZero() {
			return first.Sub(d.started), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("nothing forwarded within %v of start%s%s%s", deadline.Sub(d.started).Round(time.Second),
				send.ExitNote(), recv.ExitNote(), d.capture.Note())
		}
		time.Sleep(pollEvery)
	}
}

// notReady says why measurements of mode m cannot run, if they cannot.
func (d *deployment) notReady(m mode) error {
	r, ok := d.ready[m.name]
	switch {
	case !ok:
		return errors.New("not probed")
	case r.err != nil:
		return fmt.Errorf("never forwarded: %w", r.err)
	}
	return nil
}
