package router

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/mrouterd/mrouterd/router/api"
)

// /metrics passes the linter `promtool check metrics` runs, and shows every series
// of the counter table from the start, at zero.
func TestMetricsLint(t *testing.T) {
	l, _, eth2, _ := threeLinks(t, withRP+staticSG)
	l.r.reconcile("start")
	l.report(eth2, "10.0.2.5", exclude(grp1))
	l.r.publishMetrics()

	w := httptest.NewRecorder()
	l.r.handler().ServeHTTP(w, httptest.NewRequest("GET", api.PathMetrics, nil))
	if w.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", w.Code, w.Body)
	}
	body := w.Body.String()
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	for _, want := range []string{
		`mrouterd_upcalls_total{type="nocache"} 0`,
		`mrouterd_igmp_refused_total{reason="off-subnet"} 0`,
		`mrouterd_pim_refused_total{reason="not_neighbor"} 0`,
		`mrouterd_pim_malformed_total{reason="register-packet"} 0`,
		`mrouterd_reloads_total 0`,
		`mrouterd_reload_failures_total 0`,
		`mrouterd_read_errors_total{socket="mrt"} 0`,
		`mrouterd_igmp_groups{interface="eth1"} 0`,
		`mrouterd_igmp_groups{interface="eth2"} 1`,
		`mrouterd_pim_neighbors{interface="eth3"} 0`,
		`mrouterd_igmp_received_total 1`,
		`mrouterd_routes 1`,
		`mrouterd_vif_packets_total{direction="out",interface="eth1"} 0`,
		`mrouterd_build_info{goversion="go`,
		"\ngo_goroutines ",
		"\nprocess_start_time_seconds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %s in\n%s", want, body)
		}
	}
	if strings.Contains(body, "mrouterd_events_total") {
		t.Error("the catch-all mrouterd_events_total is still there")
	}

	// What the collector sends agrees with what it describes.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newRouterCollector(l.r))
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

// The README's tables name every metric /metrics serves, and they and the Grafana
// dashboard name no other.
func TestMetricsDocumented(t *testing.T) {
	l, _, _, _ := threeLinks(t, withRP+staticSG)
	l.r.reconcile("start") // VIFs, for their series
	l.r.publishMetrics()
	w := httptest.NewRecorder()
	l.r.handler().ServeHTTP(w, httptest.NewRequest("GET", api.PathMetrics, nil))
	served := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (mrouterd_\w+) `).FindAllStringSubmatch(w.Body.String(), -1) {
		served[m[1]] = true
	}
	if len(served) == 0 {
		t.Fatalf("no mrouterd metric served:\n%s", w.Body)
	}
	named := regexp.MustCompile(`\bmrouterd_[a-z0-9_]+`)
	for _, doc := range []string{"../README.md", "../deploy/grafana/mrouterd.json"} {
		text, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range named.FindAllString(string(text), -1) {
			if !served[name] && name != "mrouterd_events_total" { // the old catch-all, which the README maps
				t.Errorf("%s names %s, which /metrics does not serve", doc, name)
			}
		}
		if doc == "../README.md" {
			for name := range served {
				if !strings.Contains(string(text), "`"+name+"`") {
					t.Errorf("%s does not name %s", doc, name)
				}
			}
		}
	}
}

// TestCounterFamiliesComplete finds in counterFamilies every counter that the code
// names, literally or as a literal prefix and a reason, every reason the protocol
// packages give, and every counter show status adds: one left out would be missing
// from /metrics without a word.
func TestCounterFamiliesComplete(t *testing.T) {
	mapped := map[string]bool{}
	for _, f := range counterFamilies {
		for _, s := range f.series {
			if mapped[s.counter] {
				t.Errorf("%s is in two series", s.counter)
			}
			mapped[s.counter] = true
		}
	}
	hasPrefix := func(prefix string) bool {
		for c := range mapped {
			if strings.HasPrefix(c, prefix) {
				return true
			}
		}
		return false
	}
	// The sums of the reasons, in show status only.
	sums := []string{"igmp_malformed", "igmp_refused", "pim_malformed", "pim_refused"}
	need := func(pos token.Position, counters ...string) {
		for _, c := range counters {
			if mapped[c] || slices.Contains(sums, c) {
				return
			}
		}
		t.Errorf("%s: counter %s is in no family of counterFamilies", pos, strings.Join(counters, " or "))
	}

	// Where the router counts: inc, Count and countOutsideLoop name the counter, and
	// sendPIM and send take it last; stop takes a Register-Stop's reason.
	inspect(t, func(pos token.Position, n ast.Node) {
		switch n := n.(type) {
		case *ast.CallExpr:
			if len(n.Args) == 0 {
				return
			}
			switch callee(n) {
			case "inc", "Count", "countOutsideLoop", "sendPIM", "send":
				name := n.Args[len(n.Args)-1]
				if s, ok := stringLit(name); ok {
					need(pos, s)
				} else if prefix, ok := leftmostLit(name); ok && !hasPrefix(prefix) {
					t.Errorf("%s: no counter of counterFamilies starts with %s", pos, prefix)
				}
			case "stop":
				if s, ok := stringLit(n.Args[0]); ok {
					need(pos, "register_stop_"+s)
				}
			}
		case *ast.ValueSpec:
			for i, id := range n.Names {
				if v, ok := constString(n, i); ok && strings.HasPrefix(id.Name, "pimRefused") {
					need(pos, "pim_refused_"+v)
				}
			}
		}
	}, ".", "mrib")
	inspect(t, func(pos token.Position, n ast.Node) {
		if n, ok := n.(*ast.ValueSpec); ok {
			for i, id := range n.Names {
				if v, ok := constString(n, i); ok && strings.HasPrefix(id.Name, "Reason") {
					need(pos, "igmp_malformed_"+v, "igmp_refused_"+v)
				}
			}
		}
	}, "../igmp")
	inspect(t, func(pos token.Position, n ast.Node) {
		switch n := n.(type) {
		case *ast.ValueSpec:
			for i, id := range n.Names {
				if v, ok := constString(n, i); ok && strings.HasPrefix(id.Name, "Reason") {
					need(pos, "pim_malformed_"+v)
				}
			}
		case *ast.CompositeLit:
			typ, _ := n.Type.(*ast.Ident)
			for _, e := range n.Elts {
				kv, ok := e.(*ast.KeyValueExpr)
				if !ok || typ == nil {
					continue
				}
				if key, _ := kv.Key.(*ast.Ident); key == nil || key.Name != "Reason" {
					continue
				}
				v, _ := stringLit(kv.Value)
				switch typ.Name {
				case "JoinPruneIgnored":
					need(pos, "pim_joinprune_ignored_"+v)
				case "Refused":
					need(pos, "pim_"+v+"_refused")
				}
			}
		}
	}, "../pim")

	// What show status adds of its own.
	l, _, _, _ := threeLinks(t, withRP)
	for c := range l.r.statusView().Counters {
		need(token.Position{Filename: "statusView"}, c)
	}
}

// inspect walks the code of the packages in dirs, tests left out.
func inspect(t *testing.T, visit func(token.Position, ast.Node), dirs ...string) {
	t.Helper()
	fset := token.NewFileSet()
	for _, dir := range dirs {
		paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(paths) == 0 {
			t.Fatalf("no Go files in %s (%v)", dir, err)
		}
		for _, path := range paths {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(file, func(n ast.Node) bool {
				if n != nil {
					visit(fset.Position(n.Pos()), n)
				}
				return true
			})
		}
	}
}

// callee is the name of the function or method a call calls.
func callee(c *ast.CallExpr) string {
	switch f := c.Fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		return f.Sel.Name
	}
	return ""
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// leftmostLit is the string literal a concatenation starts with.
func leftmostLit(e ast.Expr) (string, bool) {
	for {
		b, ok := e.(*ast.BinaryExpr)
		if !ok || b.Op != token.ADD {
			return stringLit(e)
		}
		e = b.X
	}
}

// constString is the i-th name's value in a declaration, when a string literal.
func constString(spec *ast.ValueSpec, i int) (string, bool) {
	if i >= len(spec.Values) {
		return "", false
	}
	return stringLit(spec.Values[i])
}
