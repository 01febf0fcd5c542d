package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/router/api"
	"github.com/mrouterd/mrouterd/router/mrib"
)

// A restart in place hands the kernel's table to the process that replaces this
// one, and the kernel forwards throughout:
//
//	old process                          new process (same pid, after exec)
//	Restart: check binary and config
//	loop: handOver → Handoff             Inherit ← $MROUTERD_HANDOFF
//	  (MRT socket kept open on exec)     New: mroute.Adopt, VIFs reserved
//	Run returns ErrRestart; exec         Run: adopted VIFs kept, MFC held,
//	                                          sources replayed as upcalls
//
// The new process rebuilds its protocol state the usual way: a general query
// asks the members again, and hellos with a new generation ID make every PIM
// neighbour send its joins again at once (RFC 7761 4.3.1, 4.5.7). Until that state
// is back, the entries the old process installed are held: merged into what the
// new state wants, never taken away.

// ErrRestart ends Run once the router has handed its table over: the caller execs
// the program with the Handoff's environment (Router.Handoff).
var ErrRestart = errors.New("router: handed over for a restart in place")

// handoffEnv carries a Handoff across exec.
const handoffEnv = "MROUTERD_HANDOFF"

// Handoff is what a router hands the process that replaces it: the multicast
// routing socket, left open across exec, and the VIFs installed through it, which
// the kernel cannot list for any table but the default.
type Handoff struct {
	MRT   int         `json:"mrt_fd"`
	Table uint32      `json:"table"`
	VIFs  []handedVIF `json:"vifs"`
	From  string      `json:"from"` // the version handing over
}

// handedVIF is one VIF of a Handoff.
type handedVIF struct {
	VIF      uint16 `json:"vif"`
	IfIndex  int    `json:"ifindex,omitempty"` // none for the register VIF
	Name     string `json:"name"`
	Register bool   `json:"register,omitempty"`
}

// Env is the environment entry that hands h to the next program.
func (h *Handoff) Env() string {
	b, _ := json.Marshal(h) // plain fields: cannot fail
	return handoffEnv + "=" + string(b)
}

// Inherit takes the Handoff the program before this one left in the environment,
// nil when there is none. It removes it from the environment, so that nothing this
// process starts inherits it.
func Inherit() (*Handoff, error) {
	v, ok := os.LookupEnv(handoffEnv)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(handoffEnv)
	var h Handoff
	if err := json.Unmarshal([]byte(v), &h); err != nil {
		return nil, fmt.Errorf("$%s: %w", handoffEnv, err)
	}
	if h.MRT < 3 {
		return nil, fmt.Errorf("$%s: no multicast routing socket (descriptor %d)", handoffEnv, h.MRT)
	}
	return &h, nil
}

// Restart checks that the program on disk runs with the config, then hands the
// table over: Run returns ErrRestart, and the caller execs the program. Nothing is
// handed over when a check fails, and the router serves on.
func (r *Router) Restart(ctx context.Context) (api.Restart, error) {
	if r.checkRestart == nil {
		return api.Restart{}, errors.New("restart: this daemon cannot restart in place")
	}
	next, err := r.checkRestart(ctx)
	if err == nil && r.load != nil {
		c, loadErr := r.load()
		switch {
		case loadErr != nil:
			err = loadErr
		case c.Router.Table != r.cfg.Router.Table:
			err = fmt.Errorf("router.table cannot change in a restart in place (%d -> %d); stop and start the daemon",
				r.cfg.Router.Table, c.Router.Table)
		}
	}
	if err != nil {
		r.countOutsideLoop(ctx, "restarts_refused")
		return api.Restart{}, fmt.Errorf("restart refused, still serving: %w", err)
	}
	var handOverErr error
	if err := r.call(ctx, func() { handOverErr = r.handOver() }); err != nil {
		return api.Restart{}, err
	}
	if handOverErr != nil {
		return api.Restart{}, handOverErr
	}
	return api.Restart{From: r.version, To: next, Started: r.started.Format(time.RFC3339Nano)}, nil
}

// ReloadOrRestart reloads the config or, when an upgrade replaced the program on
// disk, restarts in place, which reads the config anew too: what a service
// manager's reload does.
func (r *Router) ReloadOrRestart(ctx context.Context) (api.Reload, error) {
	if r.replaced == nil || !r.replaced() {
		summary, err := r.Reload(ctx)
		return api.Reload{Changed: len(summary) > 0, Summary: nonNil(summary)}, err
	}
	rs, err := r.Restart(ctx)
	if err != nil {
		return api.Reload{}, err
	}
	return api.Reload{Changed: true, Restart: &rs,
		Summary: []string{fmt.Sprintf("the program on disk is new: restarting in place (%s -> %s)", rs.From, rs.To)}}, nil
}

// handOver detaches the table's socket for the next program and has the loop end.
// It runs on the loop.
func (r *Router) handOver() error {
	if r.handoff != nil {
		return errors.New("restart: already handing over")
	}
	h := &Handoff{Table: r.cfg.Router.Table, From: r.version, VIFs: r.handedVIFs()}
	fd, err := r.mrt.Detach()
	if err != nil {
		r.counters.inc("restarts_refused")
		return fmt.Errorf("restart refused, still serving: %w", err)
	}
	h.MRT = fd
	r.handoff = h
	r.counters.inc("restarts")
	r.log.Info("handing the multicast routing table over for a restart in place", "vifs", len(h.VIFs))
	return nil
}

// handedVIFs are the VIFs a Handoff lists: those of interfaces, then the register VIF.
func (r *Router) handedVIFs() []handedVIF {
	var out []handedVIF
	for _, ifc := range r.sortedInterfaces() {
		if ifc.hasVIF() && !ifc.register {
			out = append(out, handedVIF{VIF: uint16(ifc.vif), IfIndex: ifc.index, Name: ifc.name})
		}
	}
	if r.regVIF >= 0 {
		out = append(out, handedVIF{VIF: uint16(r.regVIF), Name: r.registerName(), Register: true})
	}
	return out
}

// publishHandoff hands Options.Handoffs the table's Handoff whenever its VIFs
// change, so that a store holding the table's socket can give the next start all
// it needs to adopt it, whenever that start comes.
func (r *Router) publishHandoff() {
	if r.handoffs == nil {
		return
	}
	vifs := r.handedVIFs()
	if r.published != nil && slices.Equal(vifs, *r.published) {
		return
	}
	r.published = &vifs
	r.handoffs(&Handoff{Table: r.cfg.Router.Table, From: r.version, VIFs: vifs})
}

// ShareTable runs fn with the descriptor of the table's socket, for a file
// descriptor store to keep a copy of: while a copy is open, the kernel keeps the
// table, and forwards, whatever becomes of this process.
func (r *Router) ShareTable(fn func(fd int) error) error { return r.mrt.Share(fn) }

// Handoff is what Run handed over when it returned ErrRestart.
func (r *Router) Handoff() *Handoff { return r.handoff }

// release closes what the next program opens anew. The table's socket stays open
// for it, and the fabric's interface stays up, carrying traffic.
func (r *Router) release() {
	r.igmp.Close()
	r.pimIO.Close()
	if r.tap != nil {
		r.tap.Close()
	}
	r.log.Info("mrouterd stopped; the kernel keeps forwarding, and the next start takes the table")
}

// adoptVIFs takes the VIFs of the Handoff the router started with. It runs before
// the interfaces are first synced, which then find their VIFs in place.
func (r *Router) adoptVIFs() {
	if r.adopting == nil {
		return
	}
	r.held = make(map[sgKey]mroute.KernelEntry) // the hold starts now: no adopted VIF goes
	for _, v := range r.adopting.VIFs {
		if err := r.vifs.Reserve(v.VIF, v.Name); err != nil {
			r.log.Warn("adopt VIF", "err", err)
			continue
		}
		if v.Register {
			r.regVIF = int(v.VIF)
			r.rib.SetRegisterVIF(r.ribConfig().RegisterVIF)
			continue
		}
		r.adoptedVIFs[v.IfIndex] = v
	}
	r.log.Info("adopted the multicast routing table", "from", r.adopting.From, "vifs", len(r.adopting.VIFs))
}

// takeAdoptedVIF gives a link seen for the first time the VIF it had before the
// restart.
func (r *Router) takeAdoptedVIF(ifc *iface) {
	v, ok := r.adoptedVIFs[ifc.index]
	if !ok || v.Name != ifc.name {
		return
	}
	delete(r.adoptedVIFs, ifc.index)
	ifc.vif = int(v.VIF)
	ifc.adopted = true
}

// holdAdopted reads the entries the process before this one installed and holds
// them until the protocols have had the time to want them again; each adopted
// source is replayed as the upcall that first made its route. VIFs whose link went
// away during the restart are given back.
func (r *Router) holdAdopted() {
	if r.adopting == nil {
		return
	}
	for index, v := range r.adoptedVIFs {
		if err := r.mrt.DelVIF(v.VIF); err != nil {
			r.log.Warn("delete the VIF of a link gone during the restart", "interface", v.Name, "err", err)
		}
		r.vifs.Free(v.VIF)
		delete(r.adoptedVIFs, index)
	}
	r.heldFrom = r.adopting.From
	r.adopting = nil
	r.holdUntil = r.now().Add(r.restartHold())
	entries, err := r.mrt.Dump()
	if err != nil {
		r.counters.inc("mfc_dump_errors")
		r.log.Error("read the adopted MFC; nothing held", "err", err)
		return
	}
	for _, e := range entries {
		if !e.Unresolved {
			r.held[sgKey{Source: e.Source, Group: e.Group}] = e
		}
	}
	r.adoptedSources = make(map[sgKey]int)
	for key, e := range r.held {
		if key.Source.IsValid() && !key.Source.IsUnspecified() {
			r.adoptedSources[key] = e.IIF
		}
	}
	r.replayAdopted()
	r.log.Info("holding the adopted MFC entries while the protocols rebuild", "entries", len(r.held), "until", r.holdUntil)
}

// replayAdopted hands the RIB each adopted source as the upcall that first made
// its route: at once, for a first hop's own sources, and again when the hold
// ends, for sources whose routes needed the join state rebuilt first (an RP's).
func (r *Router) replayAdopted() {
	keys := make([]sgKey, 0, len(r.adoptedSources))
	for key := range r.adoptedSources {
		keys = append(keys, key)
	}
	slices.SortFunc(keys, sgKey.Compare)
	for _, key := range keys {
		if in := r.byIndex(r.adoptedSources[key]); in != nil && in.hasVIF() {
			r.sourceArrived(in, key)
		}
	}
}

// restartHold is how long adopted entries are held: a neighbour that ignores a new
// generation ID sends its joins again within a Join/Prune period, and members
// answer the first general query within its response interval.
func (r *Router) restartHold() time.Duration {
	return r.cfg.PIM.JoinPruneInterval + r.cfg.IGMP.QueryResponseInterval
}

// endHold stops holding adopted entries once the hold is over: what the
// protocols do not want by now goes.
func (r *Router) endHold(now time.Time) {
	if r.held == nil || now.Before(r.holdUntil) {
		return
	}
	r.log.Info("restart complete; adopted entries no longer held", "still_held", len(r.held))
	// The sources again, now that join state is back, and the arrivals that puts
	// at odds with a route, before the adopted entries stop speaking for them.
	r.replayAdopted()
	r.sendAll(r.rib.Refresh(now))
	for key, held := range r.held {
		rt, _ := r.rib.Route(key)
		want, ok := r.desiredEntry(rt)
		r.noteArrival(key, want, ok, held)
	}
	r.replayArrivals()
	r.sendAll(r.rib.Refresh(now))
	r.held, r.adoptedSources = nil, nil
	for _, ifc := range r.ifaces {
		ifc.adopted = false
	}
	r.reconcileWanted = true
}

// holdView is the restart's hold for show status; nil when nothing is held.
func (r *Router) holdView(now time.Time) *api.RestartHold {
	if r.held == nil {
		return nil
	}
	return &api.RestartHold{From: r.heldFrom, Entries: len(r.held), ExpiresS: int64(r.holdUntil.Sub(now).Seconds())}
}

// wanted is the entry the kernel is to hold for key: the route's (rt may be nil),
// merged with the adopted entry while the restart's hold lasts. The adopted entry's
// incoming interface is where the source's packets arrive, so it stays: a route
// that wants another (an RP that has not yet learned it is on the source's tree,
// and would take the source from registers) is told the packets arrive there
// (replayArrivals).
func (r *Router) wanted(key sgKey, rt *mrib.Route) (desiredEntry, bool) {
	want, ok := r.desiredEntry(rt)
	held, isHeld := r.held[key]
	if !isHeld {
		return want, ok
	}
	if ok && want.iifIndex == held.IIF && isSubset(held.OIFs, want.oifIndex) {
		delete(r.held, key) // the protocols want it all again
		return want, true
	}
	in := r.byIndex(held.IIF)
	if in == nil || !in.hasVIF() {
		return want, ok
	}
	r.noteArrival(key, want, ok, held)
	merged := desiredEntry{mfc: mroute.MFC{Source: key.Source, Group: key.Group, IIF: uint16(in.vif)}, iifIndex: in.index}
	for _, index := range slices.Concat(want.oifIndex, held.OIFs) {
		out := r.byIndex(index)
		if out == nil || !out.hasVIF() || index == merged.iifIndex || slices.Contains(merged.oifIndex, index) {
			continue
		}
		merged.mfc.OIFs = append(merged.mfc.OIFs, uint16(out.vif))
		merged.oifIndex = append(merged.oifIndex, index)
	}
	slices.Sort(merged.oifIndex)
	return merged, true
}

// noteArrival notes a held entry whose route wants another incoming interface
// than the one its packets arrive on, for replayArrivals.
func (r *Router) noteArrival(key sgKey, want desiredEntry, ok bool, held mroute.KernelEntry) {
	if in := r.byIndex(held.IIF); ok && in != nil && want.iifIndex != held.IIF {
		r.arrivals[key] = in.name
	}
}

// replayArrivals tells the routes that want another incoming interface than the
// adopted entry's where their source's packets arrive (see wanted).
func (r *Router) replayArrivals() {
	for key, in := range r.arrivals {
		delete(r.arrivals, key)
		r.sendAll(r.rib.ArrivingNatively(r.now(), key, in))
	}
}

// isSubset reports whether every element of a is in b.
func isSubset(a, b []int) bool {
	for _, v := range a {
		if !slices.Contains(b, v) {
			return false
		}
	}
	return true
}
