package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mrouterd/mrouterd/conf"
	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/pim"
	"github.com/mrouterd/mrouterd/router/mrib"
	"github.com/mrouterd/mrouterd/router/netwatch"
)

// Options are what the daemon's command line hands the router.
type Options struct {
	Config  *conf.Config
	Socket  string // control socket path; overrides the config when set
	Version string
	Logger  *slog.Logger
	// Load, when set, reads the config anew for POST /v1/reload and SIGHUP.
	Load func() (*conf.Config, error)
	// Applied, when set, is called with the config the router started with once it
	// runs, and with each config a reload applied, in the order applied; never on
	// the loop.
	Applied func(*conf.Config)
	// Adopt, when set, is the table the program before this one handed over
	// (Inherit): the router takes it, and all it forwards, instead of a new one.
	Adopt *Handoff
	// CheckRestart, when set, allows restarts in place (Restart): it checks that
	// the program on disk runs with the config file, and returns its version.
	CheckRestart func(ctx context.Context) (string, error)
	// Replaced, when set, reports whether the program on disk is no longer the one
	// running: a reload then restarts in place (ReloadOrRestart).
	Replaced func() bool
	// Handoffs, when set, is called on the loop with the table's Handoff (its
	// descriptor left out) at start and whenever its VIFs change.
	Handoffs func(*Handoff)
	// KeepTable, when set, says whether to leave the table as it is when the router
	// stops: a file descriptor store holds its socket for the next start (ShareTable).
	KeepTable func() bool
}

// Router is the daemon's state and its loop.
type Router struct {
	log     *slog.Logger
	cfg     *conf.Config
	load    func() (*conf.Config, error)
	applied func(*conf.Config)
	version string
	socket  string
	started time.Time
	// clock is where the loop reads the time: the wall clock, or a test's.
	clock func() time.Time
	// random is where the protocols draw their random delays, in [0,1): math/rand,
	// or a test's.
	random func() float64

	mrt     mrtTable
	fib     fib
	links   netState
	igmp    igmpConn
	pimIO   pimConn
	tap     packetTap // nil where none could be opened: IGMP, PIM and sources are not heard
	vifs    *mroute.VIFTable
	ifaces  map[string]*iface // by name
	indexes map[int]*iface    // the same, by ifindex
	rps     *pim.RPSet
	fab     *fabricState // the node fabric; in use while fabricOn
	rib     *mrib.RIB    // routes and PIM state
	// memberIfaces are the interfaces where IGMP runs; nil until the RIB asks.
	memberIfaces []string
	paths        pathCache
	joinsHeld    time.Time // since when the Tree holds Join/Prunes back; zero when it holds none
	regVIF       int       // the register VIF, -1 when there is none

	counters                        counters
	mrtReader, pimReader, tapReader readerStats
	// tapExcluded are the interfaces the tap's filter leaves data packets out for.
	tapExcluded []int
	// unroutable are sources seen sending with a TTL the kernel does not forward.
	unroutable map[sgKey]*unroutable
	// kernelByKey is the last MFC dump, used for counters and idle detection.
	kernelByKey map[sgKey]mroute.KernelEntry
	// installed is what the router last put in the MFC, per entry, and the RIB's
	// changed routes what changed since: together they let a change skip the dump.
	installed map[sgKey]desiredEntry

	in inbox
	// metrics is what /metrics serves, published by the loop; metricsHandler
	// serves it.
	metrics        atomic.Pointer[metricsSnapshot]
	metricsHandler http.Handler
	// configGen numbers the configs applied, the one started with being 1; the loop
	// owns it. appliedGen is the last number handed to applied, under appliedMu.
	configGen  uint64
	appliedMu  sync.Mutex
	appliedGen uint64
	// panics carries a panic of another goroutine of the router to the loop, which
	// ends with it.
	panics chan error

	reconcileWanted bool

	// A restart in place: checkRestart vets it, handoff is what was handed over.
	checkRestart func(ctx context.Context) (string, error)
	replaced     func() bool
	handoff      *Handoff
	handoffs     func(*Handoff)
	published    *[]handedVIF // the VIFs last handed to handoffs
	keepTable    func() bool
	// Adopting a table at start: the Handoff until the interfaces are synced, the
	// VIFs not yet given to their links, and the adopted entries held until
	// holdUntil (nil once the hold is over).
	adopting    *Handoff
	adoptedVIFs map[int]handedVIF
	held        map[sgKey]mroute.KernelEntry
	heldFrom    string // the version that handed them over
	// adoptedSources are the adopted (S,G) entries' incoming ifindexes, replayed
	// as upcalls at the start and at the end of the hold.
	adoptedSources map[sgKey]int
	// waiting are sources the kernel asked about when nothing wanted them.
	waiting map[sgKey]waitingSource
	// arrivals are held entries whose routes want another incoming interface: the
	// interface their packets arrive on, to be told to the RIB.
	arrivals  map[sgKey]string
	holdUntil time.Time
}

// igmpPacket is an IGMP packet as the socket reader hands it to the loop.
type igmpPacket struct {
	data    []byte
	ifindex int
}

// sgKey names an (S,G) entry; Source is the zero Addr for (*,G). Routes and PIM
// state share the one key type.
type sgKey = pim.Key

// New opens the kernel's multicast routing table and prepares the router. It fails
// when another daemon owns the table.
func New(opts Options) (*Router, error) {
	if opts.Config == nil {
		return nil, errors.New("router: no config")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	mrt, err := openTable(opts.Config.Router.Table, opts.Adopt)
	if err != nil {
		return nil, err
	}
	igmpIO, err := openIGMP()
	if err != nil {
		mrt.Close()
		return nil, err
	}
	pimIO, err := openPIM()
	if err != nil {
		igmpIO.Close()
		mrt.Close()
		return nil, err
	}
	// IGMP arrives through the tap, on every interface; the MRT socket keeps only
	// the kernel's upcalls, or each report would arrive twice.
	tap, err := openTap()
	if err == nil {
		err = mrt.OnlyUpcalls()
	}
	if err != nil {
		if tap != nil {
			tap.Close()
		}
		pimIO.Close()
		igmpIO.Close()
		mrt.Close()
		return nil, err
	}
	socket := opts.Socket
	if socket == "" {
		socket = opts.Config.Control.Socket
	}
	r := newState(opts.Config, log)
	r.load, r.applied, r.version, r.socket = opts.Load, opts.Applied, opts.Version, socket
	r.checkRestart, r.replaced, r.adopting = opts.CheckRestart, opts.Replaced, opts.Adopt
	r.handoffs, r.keepTable = opts.Handoffs, opts.KeepTable
	r.mrt, r.igmp, r.pimIO, r.tap = kernelMRT{mrt}, igmpIO, pimIO, tap
	return r, nil
}

// newState makes a router with empty state and no sockets: what New builds on, and
// what tests of the state alone use.
func newState(cfg *conf.Config, log *slog.Logger) *Router {
	r := &Router{
		log:         log,
		cfg:         cfg,
		clock:       time.Now, // the loop's one clock source
		random:      rand.Float64,
		fib:         netlinkFIB{},
		links:       netwatch.Netlink{Log: log},
		rps:         rpSet(cfg),
		vifs:        mroute.NewVIFTable(),
		ifaces:      make(map[string]*iface),
		indexes:     make(map[int]*iface),
		counters:    make(counters),
		kernelByKey: make(map[sgKey]mroute.KernelEntry),
		adoptedVIFs: make(map[int]handedVIF),
		arrivals:    make(map[sgKey]string),
		waiting:     make(map[sgKey]waitingSource),
		installed:   make(map[sgKey]desiredEntry),
		paths:       pathCache{byAddr: make(map[netip.Addr]*reversePath)},
		unroutable:  make(map[sgKey]*unroutable),
		fab:         newFabricState(),
		regVIF:      -1,
		configGen:   1,
		panics:      make(chan error, 1),
		in: inbox{
			calls:       make(chan func()),
			upcalls:     make(chan mroute.Upcall, 1024),
			igmpPackets: make(chan igmpPacket, 1024),
			pimPackets:  make(chan pimPacket, 1024),
			netEvents:   make(chan netwatch.Event, 256),
			sightings:   make(chan sighting, 256),
		},
	}
	r.started = r.now()
	r.metricsHandler = newMetricsHandler(r)
	r.rib = mrib.New(r.ribConfig(), ribEnv{r}, r.treeConfig(), log)
	r.rib.SetStatic(r.started, cfg.Static)
	return r
}

// Run serves until ctx is done, then removes everything it installed. ready is called
// once the router has synced with the kernel and the control API is listening. A
// panic in the loop or in a goroutine of the router is logged and returned as an
// error, and nothing is removed: the daemon is to exit at once (see recovered).
func (r *Router) Run(ctx context.Context, ready func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = r.recovered("router loop", p)
		}
		switch _, panicked := err.(*panicError); {
		case errors.Is(err, ErrRestart), err == nil && r.keepTable != nil && r.keepTable():
			r.release()
		case !panicked:
			r.shutdown()
		}
	}()

	ctl, err := r.listenControl()
	if err != nil {
		return err
	}
	defer ctl.Close()

	loopCtx, stop := context.WithCancel(ctx)
	defer stop()
	r.goGuarded("MRT socket reader", func() { r.readMRT(loopCtx) })
	r.goGuarded("PIM socket reader", func() { r.readPIM(loopCtx) })
	r.goGuarded("netlink watcher", func() { r.links.Watch(loopCtx, r.in.netEvents) })
	if r.tap != nil {
		r.goGuarded("packet tap reader", func() { r.readTap(loopCtx) })
	}
	r.goGuarded("fabric resolver", func() { r.resolveFabric(loopCtx) })

	r.adoptVIFs()
	if err := r.syncInterfaces(); err != nil {
		return err
	}
	// PIM mode: WRONGVIF upcalls from any interface, which tell when a source's own
	// tree starts to deliver, and decapsulation of registers on an RP.
	if err := r.mrt.SetPIM(true); err != nil {
		return err
	}
	r.updateRegisterVIF()
	r.holdAdopted()
	r.reconcile("start")
	r.warnMisconfigurations()
	if ready != nil {
		ready()
	}
	r.keepApplied(r.cfg, r.configGen)
	r.log.Info("mrouterd running", "table", r.cfg.Router.Table, "socket", r.socket,
		"interfaces", len(r.ifaces), "vifs", r.vifs.Used())
	return r.loop(loopCtx)
}

func (r *Router) loop(ctx context.Context) error {
	resync := time.NewTimer(r.cfg.Router.ResyncInterval)
	defer resync.Stop()
	sweep := time.NewTimer(r.sweepInterval())
	defer sweep.Stop()
	protoTimer := time.NewTimer(time.Hour)
	defer protoTimer.Stop()
	var protoDeadline time.Time
	// A snapshot now, so /metrics answers at once, and one more when the start has settled.
	r.publishMetrics()
	metricsTimer := time.NewTimer(metricsDelay)
	defer metricsTimer.Stop()
	metricsDue := true
	for {
		r.settle()
		// Join/Prunes wait while more events are queued, so a burst of membership
		// changes leaves in a few full packets; with nothing queued they go at once.
		if r.rib.Tree().Pending() {
			if r.joinsHeld.IsZero() {
				r.joinsHeld = r.now()
			}
			if r.in.queued() == 0 || r.now().Sub(r.joinsHeld) >= maxJoinHold {
				r.joinsHeld = time.Time{}
				r.treeActions(r.rib.Tree().Flush())
			}
		}
		// One timer serves every protocol state machine: it is set to the earliest
		// deadline of any of them.
		if next, ok := r.nextProtocolDeadline(); ok && !next.Equal(protoDeadline) {
			protoDeadline = next
			protoTimer.Reset(next.Sub(r.now()))
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-r.panics:
			return err
		case fn := <-r.in.calls:
			fn()
			if r.handoff != nil {
				return ErrRestart
			}
		case u := <-r.in.upcalls:
			r.handleUpcall(u)
		case ev := <-r.in.netEvents:
			r.handleNetwork(ev)
		case p := <-r.in.igmpPackets:
			r.handleIGMP(p.data, p.ifindex, r.now())
		case p := <-r.in.pimPackets:
			r.handlePIM(p, r.now())
		case s := <-r.in.sightings:
			r.handleSighting(s, r.now())
		case <-protoTimer.C:
			protoDeadline = time.Time{}
			r.advanceProtocols(r.now())
		case <-resync.C:
			r.reconcile("periodic")
			resync.Reset(r.cfg.Router.ResyncInterval)
		case <-sweep.C:
			r.expireIdle(r.now())
			sweep.Reset(r.sweepInterval())
		case <-metricsTimer.C:
			metricsDue = false
			r.publishMetrics()
			continue
		}
		// Every event may change what /metrics shows: a snapshot follows shortly, one
		// for a whole burst.
		if !metricsDue {
			metricsDue = true
			metricsTimer.Reset(metricsDelay)
		}
	}
}

// settle brings routes and the kernel up to date with the events handled so far:
// reverse paths looked up again after a route change, changed groups recomputed,
// and the MFC reconciled.
func (r *Router) settle() {
	if r.paths.stale {
		r.rerunRPF(r.now())
	}
	r.sendAll(r.rib.Refresh(r.now()))
	if len(r.waiting) > 0 {
		r.routeWaiting(r.now())
	}
	r.updateVIFs(r.now())
	r.updateTap()
	r.updateFabric(r.now())
	r.publishHandoff()
	r.reconcileChanges()
	if len(r.arrivals) > 0 {
		r.replayArrivals()
		r.sendAll(r.rib.Refresh(r.now()))
		r.reconcileChanges()
	}
}

// reconcileChanges brings the kernel's MFC up to date with the routes.
func (r *Router) reconcileChanges() {
	if r.reconcileWanted {
		r.reconcile("change")
	} else if r.rib.Changed() {
		r.reconcileKeys()
	}
}

// now is the loop's clock.
func (r *Router) now() time.Time { return r.clock() }

// draw is the protocols' random source, read at each draw so that a test can set it.
func (r *Router) draw() float64 { return r.random() }

// maxJoinHold bounds how long Join/Prunes wait for a burst of events to end.
const maxJoinHold = 20 * time.Millisecond

// inbox carries work from other goroutines into the loop.
type inbox struct {
	calls       chan func()
	upcalls     chan mroute.Upcall
	igmpPackets chan igmpPacket
	pimPackets  chan pimPacket
	netEvents   chan netwatch.Event
	sightings   chan sighting
}

// queued counts the events waiting for the loop.
func (in *inbox) queued() int {
	return len(in.upcalls) + len(in.igmpPackets) + len(in.pimPackets) + len(in.netEvents) + len(in.sightings)
}

// sweepInterval is how often learned entries are checked for traffic: often enough
// that an idle entry goes within a third of its timeout of expiring.
func (r *Router) sweepInterval() time.Duration {
	return max(r.cfg.Router.IdleTimeout/3, 100*time.Millisecond)
}

// call runs fn in the loop and waits for it, so the control API reads state safely.
func (r *Router) call(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	select {
	case r.in.calls <- func() { fn(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Ping returns once the loop has served a request; the systemd watchdog uses it to
// prove the loop is alive, not just the process.
func (r *Router) Ping(ctx context.Context) error {
	return r.call(ctx, func() {})
}

// Reload reads the config again and applies the difference.
func (r *Router) Reload(ctx context.Context) ([]string, error) {
	if r.load == nil {
		return nil, errors.New("reload: the daemon runs on embedded defaults; start it with -c to reload a file")
	}
	next, err := r.load()
	if err != nil {
		// Reload runs on the caller's goroutine: the counters belong to the loop.
		r.countOutsideLoop(ctx, "reload_failed")
		return nil, err
	}
	var summary []string
	var applyErr error
	var gen uint64
	if err := r.call(ctx, func() { summary, applyErr = r.apply(next); gen = r.configGen }); err != nil {
		return nil, err
	}
	if applyErr == nil {
		r.keepApplied(next, gen)
	}
	return summary, applyErr
}

// keepApplied hands an applied config to Options.Applied. Of two reloads racing, the
// config the loop applied last is the one handed on last.
func (r *Router) keepApplied(c *conf.Config, gen uint64) {
	if r.applied == nil {
		return
	}
	r.appliedMu.Lock()
	defer r.appliedMu.Unlock()
	if gen <= r.appliedGen {
		return
	}
	r.appliedGen = gen
	r.applied(c)
}

// apply switches to a new config, keeping everything that did not change untouched:
// unchanged routes are not reinstalled and keep their kernel counters.
func (r *Router) apply(next *conf.Config) ([]string, error) {
	if next.Router.Table != r.cfg.Router.Table {
		r.counters.inc("reload_failed")
		return nil, fmt.Errorf("reload: router.table cannot change while running (%d -> %d); restart the daemon",
			r.cfg.Router.Table, next.Router.Table)
	}
	summary := conf.Diff(r.cfg, next)
	fabricChanged := !reflect.DeepEqual(r.cfg.Fabric, next.Fabric)
	r.cfg = next
	r.configGen++
	r.rps = rpSet(next)
	r.fab.rp = netip.Addr{}
	r.electFabricRP()
	r.rib.SetConfig(r.ribConfig(), r.treeConfig())
	r.paths.stale = true // the RP of a group may have moved
	r.counters.inc("reloads")
	if len(summary) == 0 {
		return nil, nil
	}
	for _, line := range summary {
		r.log.Info("reload", "change", line)
	}
	now := r.now()
	r.rib.SetStatic(now, next.Static)
	r.updateRegisterVIF()
	for _, ifc := range r.sortedInterfaces() {
		ifc.cached = false // the [[interface]] blocks may have changed
		if ifc.querier != nil {
			r.igmpActions(ifc, ifc.querier.SetConfig(r.igmpConfig(), now))
		}
		if ifc.pim != nil {
			r.pimActions(ifc, ifc.pim.SetConfig(r.pimConfig(ifc), now))
			allowed := r.allowedNeighbors(ifc)
			r.pimActions(ifc, ifc.pim.Forget(now, func(a netip.Addr) bool { return allowedNeighborRefusal(allowed, a) == "" }))
		}
		r.updateProtocols(ifc, now)
	}
	r.updateVIFs(now)
	if fabricChanged {
		r.fab.groupsStale = true // replication may have changed
		offer(r.fab.kick, struct{}{})
	}
	r.reconcileWanted = true
	return summary, nil
}

// shutdown removes every VIF and MFC entry this daemon installed and releases the
// table, so a stopped daemon leaves nothing forwarding behind.
func (r *Router) shutdown() {
	now := r.now()
	for _, ifc := range r.ifaces {
		if ifc.pim != nil {
			// Goodbye hellos let neighbours drop us at once, not after the holdtime.
			r.pimActions(ifc, ifc.pim.Stop(now))
		}
	}
	r.stopFabric()
	r.igmp.Close()
	r.pimIO.Close()
	if r.tap != nil {
		r.tap.Close()
	}
	if err := r.mrt.Flush(mroute.FlushMFC | mroute.FlushVIFs); err != nil {
		r.log.Warn("flush on exit", "err", err)
	}
	if err := r.mrt.Close(); err != nil {
		r.log.Warn("close multicast routing socket", "err", err)
	}
	r.log.Info("mrouterd stopped")
}

// panicError is a panic the router recovered from and ends with.
type panicError struct {
	where string
	value any
}

func (e *panicError) Error() string { return fmt.Sprintf("panic in the %s: %v", e.where, e.value) }

// recovered logs a panic with its stack. The daemon then exits without cleaning up:
// its state cannot be trusted after a panic, cleanup could panic again, and the
// kernel flushes what the daemon installed when the MRT socket closes with the
// process. The service manager restarts it.
func (r *Router) recovered(where string, p any) error {
	r.log.Error("panic; exiting", "in", where, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	return &panicError{where: where, value: p}
}

// goGuarded runs fn in a goroutine of its own; a panic there ends the loop, and
// with it the daemon.
func (r *Router) goGuarded(where string, fn func()) {
	go func() {
		defer func() {
			if p := recover(); p != nil {
				offer(r.panics, r.recovered(where, p))
			}
		}()
		fn()
	}()
}

// readMRT reads the kernel's upcalls from the multicast routing socket, which
// passes nothing else (mroute.Socket.OnlyUpcalls).
func (r *Router) readMRT(ctx context.Context) {
	buf := make([]byte, 65536)
	pump(ctx, &r.mrtReader, func() (mroute.Message, error) { return r.mrt.Read(buf) }, func(m mroute.Message) bool {
		return m.Upcall == nil || offer(r.in.upcalls, *m.Upcall)
	})
}

// readerStats are counted by a socket reader, which runs outside the loop.
type readerStats struct{ readErrors, queueFull atomic.Uint64 }

// pump reads messages until the socket is closed and hands each to deliver. A message
// the loop has no room for is dropped and counted rather than left to block the
// socket, whose kernel queue would then overflow unseen.
func pump[T any](ctx context.Context, stats *readerStats, read func() (T, error), deliver func(T) bool) {
	for {
		m, err := read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			stats.readErrors.Add(1)
			continue
		}
		if !deliver(m) {
			stats.queueFull.Add(1)
		}
	}
}

// offer sends v if ch has room.
func offer[T any](ch chan<- T, v T) bool {
	select {
	case ch <- v:
		return true
	default:
		return false
	}
}
