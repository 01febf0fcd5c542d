package router

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mrouterd/mrouterd/conf"
	"github.com/mrouterd/mrouterd/mroute"
)

// newTestRouter builds a router with no kernel socket, for the parts that only keep
// state: route bookkeeping, upcall handling, desired-entry computation.
func newTestRouter(t *testing.T, cfgText string) *Router {
	t.Helper()
	cfg, err := conf.Parse("test.toml", []byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	return newState(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// addIface registers an interface with a VIF, as if netlink had reported it.
func (r *Router) addTestIface(name string, index int) *iface {
	vif, _ := r.vifs.Alloc(name)
	ifc := &iface{name: name, index: index, vif: int(vif), flags: net.FlagUp | net.FlagRunning | net.FlagMulticast}
	r.ifaces[name] = ifc
	r.indexes[index] = ifc
	return ifc
}

// staticSG is a static (S,G); templateTo adds a (*,G) template with the given
// outgoing interface, and twoRoutes is both.
const staticSG = `
[[static]]
source = "10.0.1.2"
group = "239.1.1.1"
iif = "eth1"
oifs = ["eth2", "eth3"]
`

func templateTo(oif string) string {
	return staticSG + `
[[static]]
group = "239.2.2.2"
iif = "eth1"
oifs = ["` + oif + `"]
`
}

var twoRoutes = templateTo("eth2")

var (
	src  = netip.MustParseAddr("10.0.1.2")
	grp1 = netip.MustParseAddr("239.1.1.1")
	grp2 = netip.MustParseAddr("239.2.2.2")
)

func TestDesiredEntries(t *testing.T) {
	r := newTestRouter(t, twoRoutes)
	if got := r.desired(); len(got) != 0 {
		t.Fatalf("no interfaces yet, desired %v", got)
	}
	r.addTestIface("eth1", 11)
	r.addTestIface("eth2", 12)
	got := r.desired()
	e, ok := got[sgKey{Source: src, Group: grp1}]
	if len(got) != 1 || !ok {
		t.Fatalf("desired %v: want only (S,G), the template is never installed", got)
	}
	if e.iifIndex != 11 || !slices.Equal(e.oifIndex, []int{12}) || e.mfc.IIF != 0 || !slices.Equal(e.mfc.OIFs, []uint16{1}) {
		t.Fatalf("entry %+v: eth3 has no VIF so only eth2 forwards", e)
	}
	r.addTestIface("eth3", 13)
	if e := r.desired()[sgKey{Source: src, Group: grp1}]; !slices.Equal(e.oifIndex, []int{12, 13}) {
		t.Fatalf("after eth3 appeared: %+v", e)
	}
}

func TestTemplateLearnsFromUpcall(t *testing.T) {
	r := newTestRouter(t, twoRoutes)
	r.addTestIface("eth1", 11)
	r.addTestIface("eth2", 12)

	r.handleUpcall(mroute.Upcall{Type: mroute.NoCache, VIF: 1, Source: src, Group: grp2})
	if _, ok := r.rib.Route(sgKey{Source: src, Group: grp2}); ok {
		t.Fatal("learned from an upcall on an interface the template does not name")
	}
	r.handleUpcall(mroute.Upcall{Type: mroute.NoCache, VIF: 0, Source: src, Group: grp2})
	rt, ok := r.rib.Route(sgKey{Source: src, Group: grp2})
	if !ok || !rt.Learned || rt.From == nil || !slices.Equal(rt.OIFs, []string{"eth2"}) {
		t.Fatalf("learned route %+v", rt)
	}
	if _, ok := r.desired()[sgKey{Source: src, Group: grp2}]; !ok {
		t.Fatal("learned route not desired")
	}
	r.handleUpcall(mroute.Upcall{Type: mroute.NoCache, VIF: 0, Source: src, Group: netip.MustParseAddr("239.9.9.9")})
	if r.counters["upcall_unrouted"] != 2 || r.counters["routes_learned"] != 1 {
		t.Fatalf("counters %v", r.counters)
	}
}

func TestLearnedRouteExpiresWhenIdle(t *testing.T) {
	r := newTestRouter(t, twoRoutes)
	r.addTestIface("eth1", 11)
	r.handleUpcall(mroute.Upcall{Type: mroute.NoCache, VIF: 0, Source: src, Group: grp2})
	key := sgKey{Source: src, Group: grp2}
	rt, _ := r.rib.Route(key)
	start := rt.LastActive
	idle := r.cfg.Router.IdleTimeout

	r.kernelByKey[key] = mroute.KernelEntry{Source: src, Group: grp2, Packets: 10}
	r.expireLearned(start.Add(idle - time.Second))
	r.kernelByKey[key] = mroute.KernelEntry{Source: src, Group: grp2, Packets: 10}
	r.expireLearned(start.Add(2*idle - 2*time.Second))
	if _, ok := r.rib.Route(key); !ok {
		t.Fatal("expired although packets arrived within the idle timeout")
	}
	r.expireLearned(start.Add(2*idle - time.Second))
	if _, ok := r.rib.Route(key); ok {
		t.Fatal("not expired after a full idle timeout without packets")
	}
	if _, ok := r.rib.Route(sgKey{Source: src, Group: grp1}); !ok {
		t.Fatal("static route expired")
	}
}

func TestReloadKeepsUnchangedRoutes(t *testing.T) {
	r := newTestRouter(t, twoRoutes)
	r.addTestIface("eth1", 11)
	r.handleUpcall(mroute.Upcall{Type: mroute.NoCache, VIF: 0, Source: src, Group: grp2})
	kept, _ := r.rib.Route(sgKey{Source: src, Group: grp1})

	next, err := conf.Parse("test.toml", []byte(templateTo("eth3")))
	if err != nil {
		t.Fatal(err)
	}
	summary, err := r.apply(next)
	if err != nil || len(summary) == 0 {
		t.Fatalf("apply: %v %v", summary, err)
	}
	if rt, _ := r.rib.Route(sgKey{Source: src, Group: grp1}); rt != kept {
		t.Error("unchanged route was replaced")
	}
	if _, ok := r.rib.Route(sgKey{Source: src, Group: grp2}); ok {
		t.Error("instance of a changed template survived")
	}
	if tmpl, _ := r.rib.Route(sgKey{Group: grp2}); tmpl == nil || !slices.Equal(tmpl.OIFs, []string{"eth3"}) {
		t.Errorf("template after reload: %+v", tmpl)
	}
	other := *next
	other.Router.Table = 7
	if _, err := r.apply(&other); err == nil {
		t.Error("table change accepted on reload")
	}
}
