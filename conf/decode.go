package conf

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// parseOnto parses data over c, which holds the values of omitted keys, and
// validates the result.
//
// The TOML is decoded into a generic tree and walked by hand rather than
// decoded into structs: that way every problem is collected instead of only the
// first, unknown keys are named with their block index, and values are checked
// with messages in the config's own terms.
func parseOnto(c *Config, name string, data []byte) (*Config, error) {
	d := &decoder{file: name, src: data}
	var root map[string]any
	if _, err := toml.Decode(string(data), &root); err != nil {
		return nil, d.syntaxError(err)
	}
	c.File = name
	d.config(root, c)
	validate(c, d.fail)
	if len(d.errs) > 0 {
		return nil, d.err()
	}
	return c, nil
}

type decoder struct {
	file  string
	src   []byte
	lines map[string]int // built on the first error
	errs  []*Error
}

func (d *decoder) syntaxError(err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: d.file, Line: pe.Position.Line, Reason: printable(pe.Message)}
	}
	return &Error{File: d.file, Reason: printable(err.Error())}
}

// fail records a problem with key. Only the first problem about a key, its
// parents and its children is kept: a later one (such as validation of a value
// that failed to decode, or of a block that is not a table) would only repeat it.
func (d *decoder) fail(key, format string, args ...any) {
	for _, e := range d.errs {
		if within(key, e.Key) || within(e.Key, key) {
			return
		}
	}
	if d.lines == nil {
		d.lines = indexLines(d.src)
	}
	reason := printable(fmt.Sprintf(format, args...))
	d.errs = append(d.errs, &Error{File: d.file, Line: lineOf(d.lines, key), Key: key, Reason: reason})
}

// within reports whether key is parent or one of its descendants.
func within(key, parent string) bool {
	return key == parent || strings.HasPrefix(key, parent+".") || strings.HasPrefix(key, parent+"[")
}

// err returns all problems in file order.
func (d *decoder) err() error {
	slices.SortStableFunc(d.errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
	errs := make([]error, len(d.errs))
	for i, e := range d.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

func (d *decoder) config(root map[string]any, c *Config) {
	d.fields("", root, func(name, key string, v any) bool {
		switch name {
		case "router":
			d.router(key, v, &c.Router)
		case "interface":
			d.interfaces(key, v, &c.Interfaces)
		case "igmp":
			d.igmp(key, v, &c.IGMP)
		case "pim":
			d.pim(key, v, &c.PIM)
		case "static":
			d.statics(key, v, &c.Static)
		case "fabric":
			d.fabric(key, v, &c.Fabric)
		case "control":
			d.control(key, v, &c.Control)
		default:
			return false
		}
		return true
	})
}

func (d *decoder) fabric(key string, v any, f *Fabric) {
	d.fields(key, v, func(name, key string, v any) bool {
		switch name {
		case "peers":
			d.strs(key, v, &f.Peers)
		case "vni":
			d.int(key, v, &f.VNI)
		case "port":
			d.int(key, v, &f.Port)
		case "interface":
			d.str(key, v, &f.Interface)
		case "mtu":
			d.int(key, v, &f.MTU)
		case "underlay":
			d.str(key, v, &f.Underlay)
		case "dns-refresh":
			d.duration(key, v, &f.DNSRefresh)
		case "replication":
			d.str(key, v, &f.Replication)
		default:
			return false
		}
		return true
	})
}

func (d *decoder) router(key string, v any, r *Router) {
	d.fields(key, v, func(name, key string, v any) bool {
		switch name {
		case "table":
			d.uint32(key, v, &r.Table)
		case "idle-timeout":
			d.duration(key, v, &r.IdleTimeout)
		case "resync-interval":
			d.duration(key, v, &r.ResyncInterval)
		case "max-learned-routes":
			d.int(key, v, &r.MaxLearned)
		default:
			return false
		}
		return true
	})
}

func (d *decoder) interfaces(key string, v any, dst *[]Interface) {
	blocks, ok := d.blocks(key, v)
	if !ok {
		return
	}
	var list []Interface
	for i, b := range blocks {
		ifc := Interface{IGMP: defaultIGMP, PIM: defaultPIM, DRPriority: defaultDRPriority}
		m := d.fields(indexKey(key, i), b, func(name, key string, v any) bool {
			switch name {
			case "match":
				d.str(key, v, &ifc.Match)
			case "disabled":
				d.boolean(key, v, &ifc.Disabled)
			case "igmp":
				d.boolean(key, v, &ifc.IGMP)
			case "pim":
				d.boolean(key, v, &ifc.PIM)
			case "dr-priority":
				d.uint32(key, v, &ifc.DRPriority)
			case "allowed-neighbors":
				d.prefixes(key, v, &ifc.AllowedNeighbors)
			default:
				return false
			}
			return true
		})
		d.require(indexKey(key, i), m, "match")
		list = append(list, ifc)
	}
	*dst = list
}

func (d *decoder) igmp(key string, v any, g *IGMP) {
	d.fields(key, v, func(name, key string, v any) bool {
		switch name {
		case "version":
			d.int(key, v, &g.Version)
		case "robustness":
			d.int(key, v, &g.Robustness)
		case "max-groups":
			d.int(key, v, &g.MaxGroups)
		case "max-sources":
			d.int(key, v, &g.MaxSources)
		case "max-sources-per-interface":
			d.int(key, v, &g.MaxSourcesPerInterface)
		case "query-interval":
			d.duration(key, v, &g.QueryInterval)
		case "query-response-interval":
			d.duration(key, v, &g.QueryResponseInterval)
		case "last-member-query-interval":
			d.duration(key, v, &g.LastMemberQueryInterval)
		case "allowed-groups":
			d.prefixes(key, v, &g.AllowedGroups)
		default:
			return false
		}
		return true
	})
}

func (d *decoder) pim(key string, v any, p *PIM) {
	d.fields(key, v, func(name, key string, v any) bool {
		switch name {
		case "hello-interval":
			d.duration(key, v, &p.HelloInterval)
		case "join-prune-interval":
			d.duration(key, v, &p.JoinPruneInterval)
		case "ssm-range":
			d.prefix(key, v, &p.SSMRange)
		case "spt-switchover":
			d.str(key, v, &p.SPTSwitchover)
		case "rp":
			d.rps(key, v, &p.RPs)
		case "rpf":
			d.rpfs(key, v, &p.RPFs)
		case "register-accept":
			d.prefixes(key, v, &p.RegisterAccept)
		case "max-holdtime":
			d.duration(key, v, &p.MaxHoldtime)
		case "max-neighbors":
			d.int(key, v, &p.MaxNeighbors)
		case "max-joins":
			d.int(key, v, &p.MaxJoins)
		case "max-joins-per-neighbor":
			d.int(key, v, &p.MaxJoinsPerNeighbor)
		case "max-registered-sources":
			d.int(key, v, &p.MaxRegisteredSources)
		default:
			return false
		}
		return true
	})
}

func (d *decoder) rps(key string, v any, dst *[]RP) {
	blocks, ok := d.blocks(key, v)
	if !ok {
		return
	}
	var list []RP
	for i, b := range blocks {
		rp := RP{Groups: []netip.Prefix{multicastRange}}
		m := d.fields(indexKey(key, i), b, func(name, key string, v any) bool {
			switch name {
			case "address":
				d.addr(key, v, &rp.Address)
			case "groups":
				d.prefixes(key, v, &rp.Groups)
			default:
				return false
			}
			return true
		})
		d.require(indexKey(key, i), m, "address")
		list = append(list, rp)
	}
	*dst = list
}

func (d *decoder) rpfs(key string, v any, dst *[]RPF) {
	blocks, ok := d.blocks(key, v)
	if !ok {
		return
	}
	var list []RPF
	for i, b := range blocks {
		var r RPF
		m := d.fields(indexKey(key, i), b, func(name, key string, v any) bool {
			switch name {
			case "prefix":
				d.prefix(key, v, &r.Prefix)
			case "neighbor":
				d.addr(key, v, &r.Neighbor)
			case "interface":
				d.str(key, v, &r.Interface)
			default:
				return false
			}
			return true
		})
		d.require(indexKey(key, i), m, "prefix")
		list = append(list, r)
	}
	*dst = list
}

func (d *decoder) statics(key string, v any, dst *[]Static) {
	blocks, ok := d.blocks(key, v)
	if !ok {
		return
	}
	var list []Static
	for i, b := range blocks {
		var s Static
		m := d.fields(indexKey(key, i), b, func(name, key string, v any) bool {
			switch name {
			case "source":
				d.addr(key, v, &s.Source)
			case "group":
				d.addr(key, v, &s.Group)
			case "iif":
				d.str(key, v, &s.IIF)
			case "oifs":
				d.strs(key, v, &s.OIFs)
			default:
				return false
			}
			return true
		})
		d.require(indexKey(key, i), m, "group", "iif", "oifs")
		list = append(list, s)
	}
	*dst = list
}

func (d *decoder) control(key string, v any, c *Control) {
	d.fields(key, v, func(name, key string, v any) bool {
		switch name {
		case "socket":
			d.str(key, v, &c.Socket)
		case "metrics":
			d.str(key, v, &c.Metrics)
		default:
			return false
		}
		return true
	})
}

// fields hands each entry of the table v, named key, to set, which reports
// whether it knows the name. It returns the table, or nil when v is not one.
func (d *decoder) fields(key string, v any, set func(name, key string, v any) bool) map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		d.fail(key, "expected a table, got %s", describe(v))
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(m)) {
		sub := joinKey(key, name)
		if !set(name, sub, m[name]) {
			d.fail(sub, "unknown key")
		}
	}
	return m
}

// require reports the names missing from table m; a nil m was already reported.
func (d *decoder) require(key string, m map[string]any, names ...string) {
	if m == nil {
		return
	}
	for _, name := range names {
		if _, ok := m[name]; !ok {
			d.fail(joinKey(key, name), "missing")
		}
	}
}

// blocks returns the elements of an array of tables: [[key]] blocks, or an
// array of inline tables.
func (d *decoder) blocks(key string, v any) ([]any, bool) {
	switch v := v.(type) {
	case []map[string]any:
		out := make([]any, len(v))
		for i := range v {
			out[i] = v[i]
		}
		return out, true
	case []any:
		return v, true
	case map[string]any:
		d.fail(key, "expected an array of tables: write [[%s]], not [%s]", key, key)
	default:
		d.fail(key, "expected an array of tables, got %s", describe(v))
	}
	return nil, false
}

// The value decoders below leave *dst untouched when v is unusable, so that
// validation sees the default rather than a zero value it would complain about.

func (d *decoder) str(key string, v any, dst *string) {
	s, ok := v.(string)
	if !ok {
		d.fail(key, "expected a string, got %s", describe(v))
		return
	}
	*dst = s
}

func (d *decoder) strs(key string, v any, dst *[]string) {
	elems, ok := d.array(key, v)
	if !ok {
		return
	}
	var list []string
	for i, e := range elems {
		s, ok := e.(string)
		if !ok {
			d.fail(indexKey(key, i), "expected a string, got %s", describe(e))
			return
		}
		list = append(list, s)
	}
	*dst = list
}

func (d *decoder) boolean(key string, v any, dst *bool) {
	b, ok := v.(bool)
	if !ok {
		d.fail(key, "expected true or false, got %s", describe(v))
		return
	}
	*dst = b
}

func (d *decoder) integer(key string, v any, lo, hi int64) (int64, bool) {
	n, ok := v.(int64)
	if !ok {
		d.fail(key, "expected an integer, got %s", describe(v))
		return 0, false
	}
	if n < lo || n > hi {
		d.fail(key, "%d is out of range %d..%d", n, lo, hi)
		return 0, false
	}
	return n, true
}

func (d *decoder) int(key string, v any, dst *int) {
	if n, ok := d.integer(key, v, math.MinInt, math.MaxInt); ok {
		*dst = int(n)
	}
}

func (d *decoder) uint32(key string, v any, dst *uint32) {
	if n, ok := d.integer(key, v, 0, math.MaxUint32); ok {
		*dst = uint32(n)
	}
}

func (d *decoder) duration(key string, v any, dst *time.Duration) {
	s, ok := v.(string)
	if !ok {
		d.fail(key, `expected a duration string such as "125s", got %s`, describe(v))
		return
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		d.fail(key, "invalid duration %q", s)
		return
	}
	*dst = dur
}

func (d *decoder) addr(key string, v any, dst *netip.Addr) {
	s, ok := v.(string)
	if !ok {
		d.fail(key, "expected an IPv4 address string, got %s", describe(v))
		return
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		d.fail(key, "invalid address %q", s)
		return
	}
	if !a.Is4() {
		d.fail(key, "%s is not an IPv4 address", s)
		return
	}
	*dst = a
}

func (d *decoder) prefix(key string, v any, dst *netip.Prefix) {
	s, ok := v.(string)
	if !ok {
		d.fail(key, `expected a prefix string such as "239.0.0.0/8", got %s`, describe(v))
		return
	}
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
			d.fail(key, "invalid prefix %q: write address/length, such as %q", s, s+"/32")
		} else {
			d.fail(key, "invalid prefix %q", s)
		}
	case !p.Addr().Is4():
		d.fail(key, "%s is not an IPv4 prefix", s)
	case p != p.Masked():
		d.fail(key, "%s has host bits set; did you mean %s?", s, p.Masked())
	default:
		*dst = p
	}
}

func (d *decoder) prefixes(key string, v any, dst *[]netip.Prefix) {
	elems, ok := d.array(key, v)
	if !ok {
		return
	}
	var list []netip.Prefix
	for i, e := range elems {
		var p netip.Prefix
		d.prefix(indexKey(key, i), e, &p)
		if !p.IsValid() {
			return
		}
		list = append(list, p)
	}
	*dst = list
}

func (d *decoder) array(key string, v any) ([]any, bool) {
	elems, ok := v.([]any)
	if !ok {
		d.fail(key, "expected an array, got %s", describe(v))
	}
	return elems, ok
}

// describe names a decoded TOML value for error messages.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return "string " + quote(v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %t", v)
	case time.Time:
		return "a date/time"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}
