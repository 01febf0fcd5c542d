package mcast

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/mrouterd/mrouterd/test/lab"
)

// pairTopology is two hosts on one link; h1 has two addresses to send from.
const pairTopology = `
name: mcast-pair
topology:
  defaults:
    kind: linux
    image: alpine:3
  nodes:
    h1:
      exec:
        - ip addr add 10.9.0.1/24 dev eth1
        - ip addr add 10.9.0.3/24 dev eth1
    h2:
      exec:
        - ip addr add 10.9.0.2/24 dev eth1
  links:
    - endpoints: ["h1:eth1", "h2:eth1"]
`

func deployPair(t *testing.T) *lab.Lab {
	t.Helper()
	lab.RequireRoot(t)
	path := filepath.Join(t.TempDir(), "pair.clab.yml")
	if err := os.WriteFile(path, []byte(pairTopology), 0o644); err != nil {
		t.Fatal(err)
	}
	return lab.Deploy(t, path, lab.Options{})
}

type recvResult struct {
	report Report
	err    error
}

// listen joins on node and starts receiving in the background.
func listen(t *testing.T, ctx context.Context, l *lab.Lab, node string, opts ReceiveOptions) <-chan recvResult {
	t.Helper()
	var r *Receiver
	err := l.InNetns(node, func() error {
		var err error
		r, err = Listen(opts)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan recvResult, 1)
	go func() {
		report, err := r.Run(ctx)
		done <- recvResult{report, err}
	}()
	return done
}

// send runs a sender on node to completion.
func send(t *testing.T, l *lab.Lab, node string, opts SendOptions) SendSummary {
	t.Helper()
	var s *Sender
	err := l.InNetns(node, func() error {
		var err error
		s, err = NewSender(opts)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func wait(t *testing.T, done <-chan recvResult) Report {
	t.Helper()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	return res.report
}

func TestStreamOverVeth(t *testing.T) {
	l := deployPair(t)
	group := netip.MustParseAddr("239.1.2.3")
	done := listen(t, context.Background(), l, "h2", ReceiveOptions{
		Group: group, Port: 5000, Ifname: "eth1", Count: 1000, Duration: 10 * time.Second,
	})
	start := time.Now()
	sum := send(t, l, "h1", SendOptions{Group: group, Port: 5000, Ifname: "eth1", Rate: 1000, Count: 1000})
	if elapsed := time.Since(start); elapsed < 990*time.Millisecond || elapsed > 3*time.Second {
		t.Errorf("1000 datagrams at 1000/s took %v", elapsed)
	}
	if sum.Sent != 1000 {
		t.Errorf("sent %d, want 1000", sum.Sent)
	}
	r := wait(t, done)
	if r.Unique != 1000 || r.Lost != 0 || r.Duplicates != 0 || r.LastSeq != 999 || r.Foreign != 0 {
		t.Errorf("report %+v", r)
	}
	if want := map[string]uint64{"10.9.0.1": 1000}; !reflect.DeepEqual(r.Sources, want) {
		t.Errorf("sources %v, want %v", r.Sources, want)
	}
	// The receiver joined before the sender's first datagram, which arrived soon after.
	first := r.Joined.Add(time.Duration(r.FirstPacketMs * float64(time.Millisecond)))
	if sum.FirstSent.Before(r.Joined) || sum.FirstSent.Before(start) || first.Before(sum.FirstSent) || first.Sub(sum.FirstSent) > 100*time.Millisecond {
		t.Errorf("joined %v, first sent %v, first arrival %v: want them in that order, the arrival soon after", r.Joined, sum.FirstSent, first)
	}
	t.Logf("max gap %.2f ms, first %.2f ms", r.MaxGapMs, r.FirstPacketMs)
	if r.MaxGapMs > 200 {
		t.Errorf("max gap %.1f ms at 1000 datagrams/s", r.MaxGapMs)
	}
}

// TestManyGroups: one sender streams to consecutive groups, each numbered from 0 at
// the rate asked for, so a receiver of one group sees a whole stream.
func TestManyGroups(t *testing.T) {
	l := deployPair(t)
	first := netip.MustParseAddr("239.1.2.255")
	const port, groups, count = 5002, 3, 300
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var done []<-chan recvResult
	for i := range groups + 1 { // the last group is past the sender's range
		done = append(done, listen(t, ctx, l, "h2", ReceiveOptions{
			Group: addrAdd(first, i), Port: port, Ifname: "eth1", Count: count,
		}))
	}
	start := time.Now()
	sum := send(t, l, "h1", SendOptions{Group: first, Groups: groups, Port: port, Ifname: "eth1", Rate: 1000, Count: count})
	if elapsed := time.Since(start); elapsed < 290*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("%d datagrams to each of %d groups at 1000/s each took %v", count, groups, elapsed)
	}
	if sum.Sent != groups*count {
		t.Errorf("sent %d, want %d", sum.Sent, groups*count)
	}
	timer := time.AfterFunc(5*time.Second, cancel) // a deadline, should a stream fall short
	defer timer.Stop()
	for i := range groups {
		if r := wait(t, done[i]); r.Unique != count || r.Lost != 0 || r.FirstSeq != 0 || r.LastSeq != count-1 {
			t.Errorf("group %v: %+v", addrAdd(first, i), r.Stats)
		}
	}
	cancel()
	if r := wait(t, done[groups]); r.Received != 0 {
		t.Errorf("group %v, past the range, got %d datagrams", addrAdd(first, groups), r.Received)
	}
}

func addrAdd(a netip.Addr, n int) netip.Addr {
	for range n {
		a = a.Next()
	}
	return a
}

// TestSourceFilters checks that each receiving socket sees only what it asked for,
// even next to other sockets of the same port that joined differently.
func TestSourceFilters(t *testing.T) {
	l := deployPair(t)
	group, otherGroup := netip.MustParseAddr("239.1.2.3"), netip.MustParseAddr("239.1.2.4")
	first, second := netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("10.9.0.3")
	const port, count = 5001, 200

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	include := listen(t, ctx, l, "h2", ReceiveOptions{
		Group: group, Port: port, Ifname: "eth1", Sources: []netip.Addr{first}, Count: count,
	})
	exclude := listen(t, ctx, l, "h2", ReceiveOptions{
		Group: group, Port: port, Ifname: "eth1", Blocks: []netip.Addr{first}, Count: count,
	})
	other := listen(t, ctx, l, "h2", ReceiveOptions{Group: otherGroup, Port: port, Ifname: "eth1"})

	for _, src := range []netip.Addr{first, second} {
		send(t, l, "h1", SendOptions{
			Group: group, Port: port, Ifname: "eth1", Source: src,
			Rate: 2000, Count: count, Stream: uint32(src.As4()[3]),
		})
	}
	timer := time.AfterFunc(10*time.Second, cancel) // a deadline, should a stream fall short
	defer timer.Stop()

	if r := wait(t, include); r.Received != count || !reflect.DeepEqual(r.Sources, map[string]uint64{"10.9.0.1": count}) {
		t.Errorf("include %v: received %d from %v, want %d from it alone", first, r.Received, r.Sources, count)
	}
	if r := wait(t, exclude); r.Received != count || !reflect.DeepEqual(r.Sources, map[string]uint64{"10.9.0.3": count}) {
		t.Errorf("block %v: received %d from %v, want %d from %v alone", first, r.Received, r.Sources, count, second)
	}
	cancel()
	if r := wait(t, other); r.Received != 0 || r.Foreign != 0 {
		t.Errorf("receiver of %v on the same port got %d datagrams", otherGroup, r.Received+r.Foreign)
	}
}
