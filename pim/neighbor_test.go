package pim

import (
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"
)

var (
	nbrT0   = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	nbrSelf = addr("10.0.0.5")
	nbrLow  = addr("10.0.0.1")
	nbrHigh = addr("10.0.0.9")
)

func nbrAt(d time.Duration) time.Time { return nbrT0.Add(d) }

func nbrConfig() InterfaceConfig {
	return InterfaceConfig{HelloInterval: 30 * time.Second, DRPriority: 1, TriggeredHelloDelay: 5 * time.Second}
}

// started returns an Interface started at nbrT0, its start actions checked elsewhere.
func started(t *testing.T, cfg InterfaceConfig) *Interface {
	t.Helper()
	i := NewInterface(cfg, nbrSelf, 0xabcd)
	i.Start(nbrT0)
	return i
}

// peerHello is a hello as a typical neighbour sends it.
func peerHello(holdtime uint16, priority *uint32, genID uint32) *Hello {
	return &Hello{Holdtime: &holdtime, DRPriority: priority, GenerationID: &genID}
}

// ownHello is the hello we send with the given holdtime and priority.
func ownHello(holdtime uint16, priority uint32) SendHello {
	return SendHello{Hello: Hello{
		Holdtime:      &holdtime,
		DRPriority:    &priority,
		GenerationID:  ptr(uint32(0xabcd)),
		LANPruneDelay: &LANPruneDelay{PropagationDelay: 500, OverrideInterval: 2500},
	}}
}

func wantActions(t *testing.T, what string, got, want []Action) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: actions\n got %#v\nwant %#v", what, got, want)
	}
}

func TestStartAndPeriodicHello(t *testing.T) {
	i := NewInterface(nbrConfig(), nbrSelf, 0xabcd)
	if _, ok := i.NextDeadline(); ok {
		t.Fatal("stopped interface has a deadline")
	}
	wantActions(t, "start", i.Start(nbrT0), []Action{DRChanged{DR: nbrSelf, IsSelf: true}, ownHello(105, 1)})
	if !i.IsDR() || i.DR() != nbrSelf {
		t.Errorf("DR %v IsDR %v, want self", i.DR(), i.IsDR())
	}
	steps := []struct {
		at   time.Duration
		want []Action
	}{
		{29 * time.Second, nil},
		{30 * time.Second, []Action{ownHello(105, 1)}},
		{59 * time.Second, nil},
		{60 * time.Second, []Action{ownHello(105, 1)}},
	}
	for _, s := range steps {
		if d, _ := i.NextDeadline(); s.want != nil && !d.Equal(nbrAt(s.at)) {
			t.Errorf("deadline %v, want %v", d.Sub(nbrT0), s.at)
		}
		wantActions(t, "advance "+s.at.String(), i.Advance(nbrAt(s.at)), s.want)
	}
}

func TestHoldtimeAdvertised(t *testing.T) {
	tests := []struct {
		interval time.Duration
		want     uint16
	}{
		{0, 105}, // default interval
		{30 * time.Second, 105},
		{time.Second, 4}, // 3.5 s rounded up
		{100 * time.Millisecond, 1},
		{10 * time.Hour, 0xfffe}, // capped below forever
	}
	for _, tt := range tests {
		i := NewInterface(InterfaceConfig{HelloInterval: tt.interval}, nbrSelf, 1)
		acts := i.Start(nbrT0)
		h := acts[len(acts)-1].(SendHello).Hello
		if *h.Holdtime != tt.want {
			t.Errorf("interval %v: holdtime %d, want %d", tt.interval, *h.Holdtime, tt.want)
		}
	}
}

func TestNewNeighborTriggersHello(t *testing.T) {
	tests := []struct {
		name   string
		random func() float64
		delay  time.Duration // when the triggered hello goes out
	}{
		{"no random", nil, 0},
		{"random half", func() float64 { return 0.5 }, 2500 * time.Millisecond},
		{"random near one", func() float64 { return 0.999 }, 4995 * time.Millisecond},
		{"random out of range", func() float64 { return 1.5 }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := nbrConfig()
			cfg.Random = tt.random
			i := started(t, cfg)
			recv := nbrAt(10 * time.Second)
			got := i.ReceiveHello(recv, nbrLow, peerHello(105, ptr(uint32(1)), 7))
			want := []Action{NeighborUp{Address: nbrLow}}
			if tt.delay == 0 {
				want = append(want, ownHello(105, 1))
			}
			wantActions(t, "receive", got, want)
			if tt.delay > 0 {
				if d, _ := i.NextDeadline(); !d.Equal(recv.Add(tt.delay)) {
					t.Errorf("deadline %v, want %v", d.Sub(recv), tt.delay)
				}
				wantActions(t, "before delay", i.Advance(recv.Add(tt.delay-time.Millisecond)), nil)
				wantActions(t, "at delay", i.Advance(recv.Add(tt.delay)), []Action{ownHello(105, 1)})
			}
			// The periodic timer restarts from the triggered hello.
			if d, _ := i.NextDeadline(); !d.Equal(recv.Add(tt.delay + 30*time.Second)) {
				t.Errorf("next periodic hello %v after receive, want %v", d.Sub(recv), tt.delay+30*time.Second)
			}
			// A repeated hello from a known neighbour triggers nothing.
			wantActions(t, "repeat", i.ReceiveHello(recv.Add(tt.delay+time.Second), nbrLow, peerHello(105, ptr(uint32(1)), 7)), nil)
			n, ok := i.Neighbor(nbrLow)
			if !ok || !n.Since.Equal(recv) || !n.HasDRPriority || n.GenerationID != 7 {
				t.Errorf("neighbour %+v %v", n, ok)
			}
		})
	}
}

// TestOwedHelloGoesBeforeAJoin: a neighbour restarted, and our triggered hello
// waits for its random delay; a Join/Prune about to go out takes it along at once,
// and the periodic timer restarts from it. With nothing owed, nothing goes.
func TestOwedHelloGoesBeforeAJoin(t *testing.T) {
	cfg := nbrConfig()
	cfg.Random = func() float64 { return 0.8 } // 4 s
	i := started(t, cfg)
	wantActions(t, "nothing owed", i.OwedHello(nbrAt(time.Second)), nil)
	i.ReceiveHello(nbrAt(2*time.Second), nbrLow, peerHello(105, ptr(uint32(1)), 7))
	i.Advance(nbrAt(6 * time.Second)) // the triggered hello
	wantActions(t, "sent already", i.OwedHello(nbrAt(7*time.Second)), nil)

	restart := nbrAt(10 * time.Second)
	wantActions(t, "restart", i.ReceiveHello(restart, nbrLow, peerHello(105, ptr(uint32(1)), 8)),
		[]Action{NeighborRestarted{Address: nbrLow}})
	join := restart.Add(time.Second)
	wantActions(t, "before the join", i.OwedHello(join), []Action{ownHello(105, 1)})
	wantActions(t, "owed once", i.OwedHello(join), nil)
	if d, _ := i.NextDeadline(); !d.Equal(join.Add(30 * time.Second)) {
		t.Errorf("next hello %v after the join, want 30s", d.Sub(join))
	}
}

func TestTriggeredHelloNotLaterThanPeriodic(t *testing.T) {
	cfg := nbrConfig()
	cfg.Random = func() float64 { return 0.9 } // 4.5 s
	i := started(t, cfg)
	i.ReceiveHello(nbrAt(28*time.Second), nbrLow, peerHello(105, ptr(uint32(1)), 7))
	if d, _ := i.NextDeadline(); !d.Equal(nbrAt(30 * time.Second)) {
		t.Errorf("deadline %v, want the periodic hello at 30s", d.Sub(nbrT0))
	}
}

func TestNeighborExpiry(t *testing.T) {
	i := started(t, nbrConfig())
	i.ReceiveHello(nbrAt(time.Second), nbrHigh, peerHello(10, ptr(uint32(1)), 7))
	if i.DR() != nbrHigh {
		t.Fatalf("DR %v, want %v", i.DR(), nbrHigh)
	}
	n, _ := i.Neighbor(nbrHigh)
	if !n.Expires.Equal(nbrAt(11*time.Second)) || n.Holdtime != 10*time.Second {
		t.Errorf("expires %v holdtime %v", n.Expires.Sub(nbrT0), n.Holdtime)
	}
	if d, _ := i.NextDeadline(); !d.Equal(nbrAt(11 * time.Second)) {
		t.Errorf("deadline %v, want 11s", d.Sub(nbrT0))
	}
	// A later hello refreshes the liveness timer.
	i.ReceiveHello(nbrAt(5*time.Second), nbrHigh, peerHello(10, ptr(uint32(1)), 7))
	wantActions(t, "not yet", i.Advance(nbrAt(14*time.Second)), nil)
	wantActions(t, "expiry", i.Advance(nbrAt(15*time.Second)), []Action{
		NeighborDown{Address: nbrHigh},
		DRChanged{DR: nbrSelf, IsSelf: true},
	})
	if len(i.Neighbors()) != 0 {
		t.Errorf("neighbours left: %v", i.Neighbors())
	}
}

func TestNeighborWithoutHoldtimeOrForever(t *testing.T) {
	i := started(t, nbrConfig())
	i.ReceiveHello(nbrT0, nbrLow, &Hello{})
	i.ReceiveHello(nbrT0, nbrHigh, peerHello(HoldtimeForever, nil, 1))
	if n, _ := i.Neighbor(nbrLow); !n.Expires.Equal(nbrAt(DefaultHelloHoldtime)) {
		t.Errorf("no holdtime option: expires %v, want default", n.Expires.Sub(nbrT0))
	}
	if n, _ := i.Neighbor(nbrHigh); !n.Expires.IsZero() {
		t.Errorf("holdtime forever: expires %v", n.Expires)
	}
	i.Advance(nbrAt(24 * time.Hour))
	if got := i.Neighbors(); len(got) != 1 || got[0].Address != nbrHigh {
		t.Errorf("after a day: %v", got)
	}
}

func TestGoodbye(t *testing.T) {
	i := started(t, nbrConfig())
	i.ReceiveHello(nbrT0, nbrHigh, peerHello(105, ptr(uint32(1)), 7))
	wantActions(t, "goodbye", i.ReceiveHello(nbrAt(time.Second), nbrHigh, peerHello(0, ptr(uint32(1)), 7)), []Action{
		NeighborDown{Address: nbrHigh},
		DRChanged{DR: nbrSelf, IsSelf: true},
	})
	wantActions(t, "goodbye from stranger", i.ReceiveHello(nbrAt(2*time.Second), nbrLow, peerHello(0, nil, 7)), nil)
	if len(i.Neighbors()) != 0 {
		t.Errorf("neighbours left: %v", i.Neighbors())
	}
}

func TestGenerationIDChange(t *testing.T) {
	i := started(t, nbrConfig())
	i.ReceiveHello(nbrT0, nbrLow, peerHello(105, ptr(uint32(1)), 7))
	got := i.ReceiveHello(nbrAt(40*time.Second), nbrLow, peerHello(105, ptr(uint32(1)), 8))
	wantActions(t, "restart", got, []Action{NeighborRestarted{Address: nbrLow}, ownHello(105, 1)})
	if n, _ := i.Neighbor(nbrLow); n.GenerationID != 8 || !n.Since.Equal(nbrAt(40*time.Second)) {
		t.Errorf("neighbour %+v", n)
	}
	// A hello without the option says nothing about a restart.
	wantActions(t, "no genid", i.ReceiveHello(nbrAt(41*time.Second), nbrLow, &Hello{Holdtime: ptr(uint16(105))}), nil)
}

func TestOwnHelloIgnored(t *testing.T) {
	i := started(t, nbrConfig())
	wantActions(t, "own", i.ReceiveHello(nbrT0, nbrSelf, peerHello(105, ptr(uint32(9)), 7)), nil)
	if len(i.Neighbors()) != 0 {
		t.Error("learned ourselves as a neighbour")
	}
	stopped := NewInterface(nbrConfig(), nbrSelf, 1)
	wantActions(t, "stopped", stopped.ReceiveHello(nbrT0, nbrLow, peerHello(105, nil, 7)), nil)
}

func TestDRElection(t *testing.T) {
	type peer struct {
		addr     netip.Addr
		priority *uint32
	}
	tests := []struct {
		name     string
		self     uint32
		peers    []peer
		wantDR   netip.Addr
		wantSelf bool
	}{
		{"alone", 1, nil, nbrSelf, true},
		{"higher priority wins", 1, []peer{{nbrLow, ptr(uint32(5))}, {nbrHigh, ptr(uint32(1))}}, nbrLow, false},
		{"our priority wins", 10, []peer{{nbrLow, ptr(uint32(5))}, {nbrHigh, ptr(uint32(1))}}, nbrSelf, true},
		{"tie by highest address", 1, []peer{{nbrLow, ptr(uint32(1))}, {nbrHigh, ptr(uint32(1))}}, nbrHigh, false},
		{"tie with us, we are higher", 5, []peer{{nbrLow, ptr(uint32(5))}}, nbrSelf, true},
		{"missing priority: address decides", 100, []peer{{nbrLow, ptr(uint32(5))}, {nbrHigh, nil}}, nbrHigh, false},
		{"missing priority: we have the highest address", 0, []peer{{nbrLow, nil}}, nbrSelf, true},
		{"zero priority loses", 0, []peer{{nbrLow, ptr(uint32(1))}}, nbrLow, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := nbrConfig()
			cfg.DRPriority = tt.self
			i := started(t, cfg)
			for _, p := range tt.peers {
				i.ReceiveHello(nbrT0, p.addr, peerHello(105, p.priority, 1))
			}
			if i.DR() != tt.wantDR || i.IsDR() != tt.wantSelf {
				t.Errorf("DR %v IsDR %v, want %v %v", i.DR(), i.IsDR(), tt.wantDR, tt.wantSelf)
			}
		})
	}
}

func TestDRChangedOnlyOnChange(t *testing.T) {
	i := started(t, nbrConfig())
	got := i.ReceiveHello(nbrT0, nbrHigh, peerHello(105, ptr(uint32(1)), 1))
	wantActions(t, "high joins", got, []Action{NeighborUp{Address: nbrHigh}, DRChanged{DR: nbrHigh}, ownHello(105, 1)})
	got = i.ReceiveHello(nbrT0, nbrLow, peerHello(105, ptr(uint32(1)), 1))
	wantActions(t, "low joins", got, []Action{NeighborUp{Address: nbrLow}, ownHello(105, 1)})
	// Dropping the priority option switches to address order; the DR stays.
	got = i.ReceiveHello(nbrAt(time.Second), nbrLow, peerHello(105, nil, 1))
	wantActions(t, "low drops priority", got, nil)
}

func TestSetConfigPriority(t *testing.T) {
	i := started(t, nbrConfig())
	i.ReceiveHello(nbrT0, nbrHigh, peerHello(105, ptr(uint32(1)), 1))
	cfg := nbrConfig()
	cfg.DRPriority = 50
	wantActions(t, "raise", i.SetConfig(cfg, nbrAt(time.Second)), []Action{DRChanged{DR: nbrSelf, IsSelf: true}, ownHello(105, 50)})
	if d, _ := i.NextDeadline(); !d.Equal(nbrAt(31 * time.Second)) {
		t.Errorf("next hello %v, want 31s", d.Sub(nbrT0))
	}
	wantActions(t, "same again", i.SetConfig(cfg, nbrAt(2*time.Second)), nil)
	cfg.DRPriority = 0
	wantActions(t, "lower", i.SetConfig(cfg, nbrAt(3*time.Second)), []Action{DRChanged{DR: nbrHigh}, ownHello(105, 0)})
	cfg.HelloInterval = 10 * time.Second
	wantActions(t, "interval", i.SetConfig(cfg, nbrAt(4*time.Second)), []Action{ownHello(35, 0)})
}

func TestSetAddress(t *testing.T) {
	i := started(t, nbrConfig())
	i.ReceiveHello(nbrT0, nbrHigh, peerHello(105, ptr(uint32(1)), 1))
	newSelf := addr("10.0.0.20")
	got := i.SetAddress(newSelf, nbrAt(time.Second))
	wantActions(t, "move", got, []Action{ownHello(0, 1), DRChanged{DR: newSelf, IsSelf: true}, ownHello(105, 1)})
	if !i.IsDR() {
		t.Error("not DR at the highest address")
	}
}

func TestSecondaryAddresses(t *testing.T) {
	i := started(t, nbrConfig())
	shared, other := addr("192.0.2.1"), addr("192.0.2.2")
	h := peerHello(105, nil, 1)
	h.Addresses = []netip.Addr{shared, other, nbrLow, shared}
	i.ReceiveHello(nbrT0, nbrLow, h)
	if n, _ := i.Neighbor(nbrLow); !reflect.DeepEqual(n.Secondary, []netip.Addr{shared, other}) {
		t.Errorf("secondary %v", n.Secondary)
	}
	h = peerHello(105, nil, 1)
	h.Addresses = []netip.Addr{shared}
	i.ReceiveHello(nbrT0, nbrHigh, h)
	if n, _ := i.Neighbor(nbrLow); !reflect.DeepEqual(n.Secondary, []netip.Addr{other}) {
		t.Errorf("after the move, low has %v", n.Secondary)
	}
	if n, _ := i.Neighbor(nbrHigh); !reflect.DeepEqual(n.Secondary, []netip.Addr{shared}) {
		t.Errorf("after the move, high has %v", n.Secondary)
	}
}

func TestStop(t *testing.T) {
	i := started(t, nbrConfig())
	i.ReceiveHello(nbrT0, nbrHigh, peerHello(105, ptr(uint32(1)), 1))
	i.ReceiveHello(nbrT0, nbrLow, peerHello(105, ptr(uint32(1)), 1))
	wantActions(t, "stop", i.Stop(nbrAt(time.Second)), []Action{
		ownHello(0, 1),
		NeighborDown{Address: nbrLow},
		NeighborDown{Address: nbrHigh},
	})
	if len(i.Neighbors()) != 0 || i.IsDR() {
		t.Errorf("after stop: neighbours %v IsDR %v", i.Neighbors(), i.IsDR())
	}
	if _, ok := i.NextDeadline(); ok {
		t.Error("deadline after stop")
	}
	wantActions(t, "advance after stop", i.Advance(nbrAt(time.Hour)), nil)
	wantActions(t, "stop twice", i.Stop(nbrAt(time.Hour)), nil)
	wantActions(t, "restart", i.Start(nbrAt(time.Hour)), []Action{DRChanged{DR: nbrSelf, IsSelf: true}, ownHello(105, 1)})
}

func TestNeighborsSortedAndCopied(t *testing.T) {
	i := started(t, nbrConfig())
	h := peerHello(105, nil, 1)
	h.LANPruneDelay = &LANPruneDelay{PropagationDelay: 100, OverrideInterval: 200}
	h.Addresses = []netip.Addr{addr("192.0.2.1")}
	for _, a := range []netip.Addr{nbrHigh, nbrLow, addr("10.0.0.3")} {
		i.ReceiveHello(nbrT0, a, h)
	}
	got := i.Neighbors()
	if len(got) != 3 || got[0].Address != nbrLow || got[1].Address != addr("10.0.0.3") || got[2].Address != nbrHigh {
		t.Fatalf("order %v", got)
	}
	got[2].LANPruneDelay.PropagationDelay = 9
	got[1].Secondary[0] = nbrLow
	h.LANPruneDelay.OverrideInterval = 9
	n, _ := i.Neighbor(nbrHigh)
	if n.LANPruneDelay.PropagationDelay != 100 || n.LANPruneDelay.OverrideInterval != 200 {
		t.Errorf("LAN prune delay aliased: %+v", n.LANPruneDelay)
	}
	// Only the last to claim 192.0.2.1 holds it.
	if len(n.Secondary) != 0 {
		t.Errorf("secondary %v", n.Secondary)
	}
	if n, _ := i.Neighbor(addr("10.0.0.3")); !reflect.DeepEqual(n.Secondary, []netip.Addr{addr("192.0.2.1")}) {
		t.Errorf("secondary aliased or lost: %v", n.Secondary)
	}
}

func TestSetAddressEdges(t *testing.T) {
	stopped := NewInterface(nbrConfig(), nbrSelf, 1)
	wantActions(t, "stopped", stopped.SetAddress(nbrLow, nbrT0), nil)
	wantActions(t, "stopped start", stopped.Start(nbrT0)[:1], []Action{DRChanged{DR: nbrLow, IsSelf: true}})

	i := started(t, nbrConfig())
	wantActions(t, "same", i.SetAddress(nbrSelf, nbrT0), nil)
	i.ReceiveHello(nbrT0, nbrHigh, peerHello(105, ptr(uint32(1)), 1))
	// Taking a neighbour's address makes what we knew of it stale.
	got := i.SetAddress(nbrHigh, nbrAt(time.Second))
	wantActions(t, "take", got, []Action{ownHello(0, 1), NeighborDown{Address: nbrHigh}, DRChanged{DR: nbrHigh, IsSelf: true}, ownHello(105, 1)})
	if _, ok := i.Neighbor(nbrHigh); ok || i.GenerationID() != 0xabcd {
		t.Errorf("neighbour kept or generation ID changed")
	}
}

func TestNeighborHoldtimeCapped(t *testing.T) {
	const max = 210 * time.Second
	tests := []struct {
		name     string
		hello    *Hello
		expires  time.Duration // after the hello; 0 for never
		holdtime time.Duration // as advertised
	}{
		{"forever", peerHello(HoldtimeForever, nil, 1), max, HoldtimeForever * time.Second},
		{"longest finite", peerHello(0xfffe, nil, 1), max, 0xfffe * time.Second},
		{"just above the cap", peerHello(211, nil, 1), max, 211 * time.Second},
		{"at the cap", peerHello(210, nil, 1), max, max},
		{"below the cap", peerHello(35, nil, 1), 35 * time.Second, 35 * time.Second},
		{"no holdtime option", &Hello{}, DefaultHelloHoldtime, DefaultHelloHoldtime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := nbrConfig()
			cfg.MaxHoldtime = max
			i := started(t, cfg)
			i.ReceiveHello(nbrT0, nbrHigh, tt.hello)
			n, ok := i.Neighbor(nbrHigh)
			if !ok || !n.Expires.Equal(nbrAt(tt.expires)) || n.Holdtime != tt.holdtime {
				t.Fatalf("neighbour %v: expires in %v, holdtime %v; want %v, %v", ok, n.Expires.Sub(nbrT0), n.Holdtime, tt.expires, tt.holdtime)
			}
			i.Advance(nbrAt(tt.expires))
			if len(i.Neighbors()) != 0 {
				t.Fatalf("still a neighbour when its time ran out: %v", i.Neighbors())
			}
		})
	}
	// A goodbye still removes a neighbour at once.
	cfg := nbrConfig()
	cfg.MaxHoldtime = max
	i := started(t, cfg)
	i.ReceiveHello(nbrT0, nbrHigh, peerHello(HoldtimeForever, nil, 1))
	wantActions(t, "goodbye", i.ReceiveHello(nbrAt(time.Second), nbrHigh, peerHello(0, nil, 1)),
		[]Action{NeighborDown{Address: nbrHigh}, DRChanged{DR: nbrSelf, IsSelf: true}})
}

func TestForget(t *testing.T) {
	i := started(t, nbrConfig())
	i.ReceiveHello(nbrT0, nbrLow, peerHello(105, nil, 1))
	i.ReceiveHello(nbrT0, nbrHigh, peerHello(105, nil, 2))
	wantActions(t, "forget the DR", i.Forget(nbrAt(time.Second), func(a netip.Addr) bool { return a != nbrHigh }),
		[]Action{NeighborDown{Address: nbrHigh}, DRChanged{DR: nbrSelf, IsSelf: true}})
	if got := i.Neighbors(); len(got) != 1 || got[0].Address != nbrLow {
		t.Errorf("left %v", got)
	}
	wantActions(t, "keep all", i.Forget(nbrAt(time.Second), func(netip.Addr) bool { return true }), nil)
}

func TestMaxNeighbors(t *testing.T) {
	cfg := nbrConfig()
	cfg.MaxNeighbors = 1
	i := started(t, cfg)
	i.ReceiveHello(nbrT0, nbrLow, peerHello(105, nil, 1))
	got := i.ReceiveHello(nbrT0, nbrHigh, peerHello(105, nil, 2))
	wantActions(t, "second neighbour", got, []Action{Refused{Reason: "neighbors", Count: 1}})
	if ns := i.Neighbors(); len(ns) != 1 || ns[0].Address != nbrLow {
		t.Errorf("neighbours %v", ns)
	}
	// The neighbour already known keeps being refreshed, and its place frees up
	// when it leaves.
	if got := i.ReceiveHello(nbrAt(time.Second), nbrLow, peerHello(105, nil, 1)); len(got) != 0 {
		t.Errorf("refresh: %#v", got)
	}
	i.ReceiveHello(nbrAt(2*time.Second), nbrLow, peerHello(0, nil, 1))
	i.ReceiveHello(nbrAt(3*time.Second), nbrHigh, peerHello(105, nil, 2))
	if _, ok := i.Neighbor(nbrHigh); !ok {
		t.Error("no room after the first neighbour left")
	}
}

// helloAddresses returns n distinct addresses of 172.16.0.0/12.
func helloAddresses(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for k := range out {
		out[k] = netip.AddrFrom4([4]byte{172, 16 + byte(k>>16), byte(k >> 8), byte(k)})
	}
	return out
}

func TestMaxHelloAddresses(t *testing.T) {
	i := started(t, nbrConfig())
	h := peerHello(105, nil, 1)
	h.Addresses = helloAddresses(MaxHelloAddresses + 10)
	got := i.ReceiveHello(nbrT0, nbrLow, h)
	if !slices.Contains(got, Action(Refused{Reason: "hello_addresses", Count: 10})) {
		t.Errorf("actions %#v: no refusal of 10", got)
	}
	if n, _ := i.Neighbor(nbrLow); !slices.Equal(n.Secondary, h.Addresses[:MaxHelloAddresses]) {
		t.Errorf("secondary %d addresses, want the lowest %d", len(n.Secondary), MaxHelloAddresses)
	}
}

// BenchmarkHelloAddresses receives a Hello listing n addresses, up to what a
// 64 KiB Hello can carry and beyond, from one of 63 neighbours that each hold
// the most addresses: the cost per address stays flat.
func BenchmarkHelloAddresses(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			i := NewInterface(nbrConfig(), nbrSelf, 0xabcd)
			i.Start(nbrT0)
			all := helloAddresses(64 * MaxHelloAddresses)
			for k := range 63 {
				h := peerHello(105, nil, 1)
				h.Addresses = all[k*MaxHelloAddresses : (k+1)*MaxHelloAddresses]
				i.ReceiveHello(nbrT0, netip.AddrFrom4([4]byte{10, 0, 1, byte(k)}), h)
			}
			h := peerHello(105, nil, 1)
			h.Addresses = helloAddresses(n)
			b.ResetTimer()
			for range b.N {
				i.ReceiveHello(nbrT0, nbrLow, h)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/address")
		})
	}
}

// TestSourcePrefixes: a neighbour's source prefixes are kept, a change is
// reported, a flood of them is cut and counted; ours go out in every hello and a
// change of them at once.
func TestSourcePrefixes(t *testing.T) {
	i := started(t, nbrConfig())
	h := peerHello(105, nil, 1)
	h.SourcePrefixes = []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24")}
	acts := i.ReceiveHello(nbrAt(time.Second), nbrLow, h)
	if !slices.Contains(acts, Action(SourcePrefixesChanged{Address: nbrLow})) {
		t.Fatalf("first hello: %v", acts)
	}
	if acts := i.ReceiveHello(nbrAt(2*time.Second), nbrLow, h); slices.Contains(acts, Action(SourcePrefixesChanged{Address: nbrLow})) {
		t.Fatalf("the same prefixes again: %v", acts)
	}
	h.SourcePrefixes = make([]netip.Prefix, MaxSourcePrefixes+3)
	for k := range h.SourcePrefixes {
		h.SourcePrefixes[k] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(k >> 8), byte(k), 0}), 24)
	}
	acts = i.ReceiveHello(nbrAt(3*time.Second), nbrLow, h)
	if !slices.Contains(acts, Action(Refused{Reason: "source_prefixes", Count: 3})) {
		t.Fatalf("a flood of prefixes: %v", acts)
	}
	if n, _ := i.Neighbor(nbrLow); len(n.SourcePrefixes) != MaxSourcePrefixes {
		t.Fatalf("kept %d", len(n.SourcePrefixes))
	}
	cfg := nbrConfig()
	cfg.SourcePrefixes = []netip.Prefix{netip.MustParsePrefix("10.244.2.0/24")}
	acts = i.SetConfig(cfg, nbrAt(4*time.Second))
	var sent *Hello
	for _, a := range acts {
		if s, ok := a.(SendHello); ok {
			sent = &s.Hello
		}
	}
	if sent == nil || !slices.Equal(sent.SourcePrefixes, cfg.SourcePrefixes) {
		t.Fatalf("after the change: %v", acts)
	}
}
