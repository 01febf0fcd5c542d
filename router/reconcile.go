package router

import (
	"errors"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/mrouterd/mrouterd/mroute"
	"github.com/mrouterd/mrouterd/router/mrib"
)

// desiredEntry is an MFC entry as the router wants the kernel to hold it, both in VIF
// numbers (to program it) and in ifindexes (to compare with the kernel's dump).
type desiredEntry struct {
	mfc      mroute.MFC
	iifIndex int
	oifIndex []int
}

// desired computes the MFC entries the routes call for.
func (r *Router) desired() map[sgKey]desiredEntry {
	out := make(map[sgKey]desiredEntry, r.rib.Len())
	for rt := range r.rib.Routes() {
		if e, ok := r.wanted(rt.Key, rt); ok {
			out[rt.Key] = e
		}
	}
	for key := range r.held {
		if _, done := out[key]; !done {
			if e, ok := r.wanted(key, nil); ok {
				out[key] = e
			}
		}
	}
	return out
}

// desiredEntry is the MFC entry a route calls for. A route whose incoming interface
// has no VIF cannot be installed; outgoing interfaces without a VIF are left out
// until they get one.
func (r *Router) desiredEntry(rt *mrib.Route) (desiredEntry, bool) {
	if rt == nil || !rt.Installable() {
		return desiredEntry{}, false
	}
	in := r.ifaces[rt.IIF]
	if in == nil || !in.hasVIF() {
		return desiredEntry{}, false
	}
	e := desiredEntry{
		mfc:      mroute.MFC{Source: rt.Key.Source, Group: rt.Key.Group, IIF: uint16(in.vif)},
		iifIndex: in.index,
	}
	for _, name := range rt.OIFs {
		out := r.ifaces[name]
		if out == nil || !out.hasVIF() || out == in {
			continue
		}
		e.mfc.OIFs = append(e.mfc.OIFs, uint16(out.vif))
		e.oifIndex = append(e.oifIndex, out.index)
	}
	slices.Sort(e.oifIndex)
	return e, true
}

// same reports whether the kernel holds the entry as desired.
func (d desiredEntry) same(iifIndex int, oifIndex []int) bool {
	return d.iifIndex == iifIndex && slices.Equal(d.oifIndex, oifIndex)
}

// reconcileKeys applies the routes that changed since the last reconcile, against
// what the router itself last installed: one system call per changed entry and no
// dump, so a burst of a thousand new routes costs a thousand calls, not a thousand
// dumps. The full reconcile, from a dump, catches anything else.
func (r *Router) reconcileKeys() {
	for _, key := range r.rib.TakeChanged() {
		rt, _ := r.rib.Route(key)
		want, ok := r.wanted(key, rt)
		have, had := r.installed[key]
		switch {
		case ok && had && want.same(have.iifIndex, have.oifIndex):
		case ok && !r.install(key, want), !ok && had && !r.remove(key):
			r.reconcileWanted = true // a full reconcile finds out what the kernel holds
		}
	}
}

// install puts an entry in the kernel's MFC and records it as installed.
func (r *Router) install(key sgKey, d desiredEntry) bool {
	if err := r.mrt.AddMFC(d.mfc); err != nil {
		r.counters.inc("mfc_errors")
		r.log.Error("install MFC entry", "route", key.String(), "err", err)
		return false
	}
	r.counters.inc("mfc_added")
	r.installed[key] = d
	return true
}

// remove takes an entry out of the kernel's MFC; one already gone counts as removed.
func (r *Router) remove(key sgKey) bool {
	if err := r.mrt.DelMFC(key.Source, key.Group); err != nil && !errors.Is(err, unix.ENOENT) {
		r.counters.inc("mfc_errors")
		r.log.Error("remove MFC entry", "route", key.String(), "err", err)
		return false
	}
	r.counters.inc("mfc_deleted")
	delete(r.installed, key)
	delete(r.kernelByKey, key)
	return true
}

// refreshKernel reads the kernel's MFC for this table.
func (r *Router) refreshKernel() bool {
	entries, err := r.mrt.Dump()
	if err != nil {
		r.counters.inc("mfc_dump_errors")
		r.log.Error("read kernel MFC", "err", err)
		return false
	}
	clear(r.kernelByKey)
	for _, e := range entries {
		if e.Unresolved {
			continue
		}
		r.kernelByKey[sgKey{Source: e.Source, Group: e.Group}] = e
	}
	return true
}

// reconcile makes the kernel's MFC equal to the desired entries, touching only the
// entries that differ. why is "start", "change" or "periodic": outside a change,
// any difference is drift and is logged as such.
func (r *Router) reconcile(why string) {
	r.reconcileWanted = false
	if !r.refreshKernel() {
		r.reconcileWanted = true // try again on the next event or tick
		return
	}
	r.rib.TakeChanged() // the full reconcile covers them
	clear(r.installed)
	drift := why == "periodic"
	want := r.desired()
	for key, d := range want {
		k, ok := r.kernelByKey[key]
		if ok && d.same(k.IIF, k.OIFs) {
			r.installed[key] = d
			continue
		}
		if drift {
			r.counters.inc("mfc_drift")
			r.log.Warn("kernel MFC drifted; reinstalling", "route", key.String(), "present", ok)
		}
		r.install(key, d)
	}
	for key := range r.kernelByKey {
		if _, ok := want[key]; ok {
			continue
		}
		if drift {
			r.counters.inc("mfc_drift")
			r.log.Warn("kernel MFC holds an entry nobody wants; removing", "route", key.String())
		}
		r.remove(key)
	}
}
