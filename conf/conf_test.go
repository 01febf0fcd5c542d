package conf

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func mustPrefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

func defaultsForTest() *Config {
	return &Config{
		Router: Router{Table: 0, IdleTimeout: 210 * time.Second, ResyncInterval: 60 * time.Second, MaxLearned: 100000},
		IGMP: IGMP{
			Version:                 3,
			Robustness:              2,
			MaxGroups:               4096,
			MaxSources:              1024,
			MaxSourcesPerInterface:  16384,
			QueryInterval:           125 * time.Second,
			QueryResponseInterval:   10 * time.Second,
			LastMemberQueryInterval: time.Second,
			AllowedGroups:           mustPrefixes("224.0.0.0/4"),
		},
		PIM: PIM{
			HelloInterval:        30 * time.Second,
			JoinPruneInterval:    60 * time.Second,
			SSMRange:             netip.MustParsePrefix("232.0.0.0/8"),
			SPTSwitchover:        "immediate",
			MaxHoldtime:          210 * time.Second,
			MaxNeighbors:         64,
			MaxJoins:             200000,
			MaxJoinsPerNeighbor:  100000,
			MaxRegisteredSources: 100000,
		},
		Fabric: Fabric{
			VNI: 7700, Port: 4799, Interface: "mrfabric",
			DNSRefresh: 30 * time.Second, Replication: "selective",
		},
		Control: Control{Socket: "/run/mrouterd/mrouterd.sock"},
	}
}

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := Parse("test.toml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestDefault(t *testing.T) {
	if got, want := Default(), defaultsForTest(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", got, want)
	}
	// Each call is a fresh copy.
	a := Default()
	a.IGMP.AllowedGroups[0] = netip.MustParsePrefix("239.0.0.0/8")
	if Default().IGMP.AllowedGroups[0] != netip.MustParsePrefix("224.0.0.0/4") {
		t.Error("modifying one Default() changed another")
	}
	// An empty file is the defaults.
	c := mustParse(t, "")
	c.File = ""
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Parse(\"\") = %+v, want the defaults", c)
	}
}

func readDeployConfig(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile("../deploy/mrouterd.toml")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// commentedSetting is a "#key = value" or "#[table]" line of the packaged config;
// prose comments have a space after the '#'.
var commentedSetting = regexp.MustCompile(`^#([a-z\[])`)

func TestDeployConfig(t *testing.T) {
	data := readDeployConfig(t)
	c, err := Parse("mrouterd.toml", data)
	if err != nil {
		t.Fatal(err)
	}
	c.File = ""
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("packaged config differs from the defaults:\n%s", c.TOML())
	}

	// With every setting uncommented, it must still parse and the values shown
	// must be the defaults, plus the example blocks.
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		lines[i] = commentedSetting.ReplaceAllString(l, "$1")
	}
	uncommented := strings.Join(lines, "\n")
	c, err = Parse("uncommented.toml", []byte(uncommented))
	if err != nil {
		t.Fatalf("uncommented packaged config: %v", err)
	}
	want := defaultsForTest()
	want.File = "uncommented.toml"
	want.Interfaces = []Interface{{Match: "eth*", IGMP: true, PIM: true, DRPriority: 1}}
	want.PIM.RPs = []RP{{Address: netip.MustParseAddr("10.0.2.1"), Groups: mustPrefixes("224.0.0.0/4")}}
	want.PIM.RPFs = []RPF{{
		Prefix:    netip.MustParsePrefix("10.0.3.0/24"),
		Neighbor:  netip.MustParseAddr("10.0.1.1"),
		Interface: "eth1",
	}}
	want.Static = []Static{{
		Source: netip.MustParseAddr("10.0.1.2"),
		Group:  netip.MustParseAddr("239.9.9.9"),
		IIF:    "eth1",
		OIFs:   []string{"eth2", "eth3"},
	}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("uncommented packaged config =\n%s\nwant\n%s", c.TOML(), want.TOML())
	}

	// Every key of the schema is documented.
	for _, l := range strings.Split(c.TOML(), "\n") {
		key, _, ok := strings.Cut(l, " = ")
		if ok && !strings.Contains(string(data), "\n#"+key+" = ") {
			t.Errorf("packaged config does not show %q", key)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "absent.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) error = %v, want os.ErrNotExist", err)
	}

	file := filepath.Join(dir, "r1.toml")
	if err := os.WriteFile(file, []byte("[router]\ntable = 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if c.File != file || c.Router.Table != 7 {
		t.Errorf("Load = File %q table %d, want %q and 7", c.File, c.Router.Table, file)
	}

	if err := os.WriteFile(file, []byte("[router]\ntable = -7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(file)
	if want := file + ":2: router.table: -7 is out of range 0..4294967295"; err == nil || err.Error() != want {
		t.Errorf("Load(bad) error = %v, want %s", err, want)
	}
}

func TestParseValues(t *testing.T) {
	const src = `
[router]
table = 10
idle-timeout = "5m"
resync-interval = "1m30s"
max-learned-routes = 30

[[interface]]
match = "eth*"
dr-priority = 200
allowed-neighbors = ["10.0.0.0/24"]
[[interface]]
match = "lo"
disabled = true
[[interface]]
match = "wg0"
igmp = false

[igmp]
version = 2
query-interval = "60s"
query-response-interval = "5s"
last-member-query-interval = "500ms"
robustness = 3
allowed-groups = [
  "239.0.0.0/8",  # site-local
  "224.1.0.0/16",
]
max-groups = 10
max-sources = 20
max-sources-per-interface = 30

[pim]
hello-interval = "10s"
join-prune-interval = "30s"
ssm-range = "232.1.0.0/16"
spt-switchover = "never"
register-accept = ["10.0.0.0/8"]
max-holdtime = "5m"
max-neighbors = 8
max-joins = 500
max-joins-per-neighbor = 50
max-registered-sources = 40
rp = [{ address = "10.0.2.1", groups = ["239.0.0.0/8"] }]
rpf = [{ prefix = "10.0.3.0/24", neighbor = "10.0.1.1" }, { prefix = "10.0.4.0/24", interface = "eth1" }]

[fabric]
peers = ["10.0.0.1", "dns:mrouterd.kube-system.svc.cluster.local"]
vni = 100
port = 4800
interface = "fab0"
mtu = 1400
underlay = "eth0"
dns-refresh = "10s"
replication = "all"

[[static]]
group = "239.1.1.1"
iif = "eth1"
oifs = ["eth2"]

[[static]]
source = "10.0.1.2"
group = "239.1.1.1"
iif = "eth1"
oifs = ["eth2", "eth3"]

[control]
socket = "/tmp/m.sock"
metrics = "127.0.0.1:9591"
`
	want := &Config{
		File:   "test.toml",
		Router: Router{Table: 10, IdleTimeout: 5 * time.Minute, ResyncInterval: 90 * time.Second, MaxLearned: 30},
		Interfaces: []Interface{
			{Match: "eth*", IGMP: true, PIM: true, DRPriority: 200, AllowedNeighbors: mustPrefixes("10.0.0.0/24")},
			{Match: "lo", Disabled: true, IGMP: true, PIM: true, DRPriority: 1},
			{Match: "wg0", IGMP: false, PIM: true, DRPriority: 1},
		},
		IGMP: IGMP{
			Version:                 2,
			Robustness:              3,
			MaxGroups:               10,
			MaxSources:              20,
			MaxSourcesPerInterface:  30,
			QueryInterval:           60 * time.Second,
			QueryResponseInterval:   5 * time.Second,
			LastMemberQueryInterval: 500 * time.Millisecond,
			AllowedGroups:           mustPrefixes("239.0.0.0/8", "224.1.0.0/16"),
		},
		PIM: PIM{
			HelloInterval:     10 * time.Second,
			JoinPruneInterval: 30 * time.Second,
			SSMRange:          netip.MustParsePrefix("232.1.0.0/16"),
			SPTSwitchover:     "never",
			RPs:               []RP{{Address: netip.MustParseAddr("10.0.2.1"), Groups: mustPrefixes("239.0.0.0/8")}},
			RPFs: []RPF{
				{Prefix: netip.MustParsePrefix("10.0.3.0/24"), Neighbor: netip.MustParseAddr("10.0.1.1")},
				{Prefix: netip.MustParsePrefix("10.0.4.0/24"), Interface: "eth1"},
			},
			RegisterAccept:       mustPrefixes("10.0.0.0/8"),
			MaxHoldtime:          5 * time.Minute,
			MaxNeighbors:         8,
			MaxJoins:             500,
			MaxJoinsPerNeighbor:  50,
			MaxRegisteredSources: 40,
		},
		Static: []Static{
			{Group: netip.MustParseAddr("239.1.1.1"), IIF: "eth1", OIFs: []string{"eth2"}},
			{Source: netip.MustParseAddr("10.0.1.2"), Group: netip.MustParseAddr("239.1.1.1"), IIF: "eth1", OIFs: []string{"eth2", "eth3"}},
		},
		Fabric: Fabric{
			Peers: []string{"10.0.0.1", "dns:mrouterd.kube-system.svc.cluster.local"},
			VNI:   100, Port: 4800, Interface: "fab0", MTU: 1400, Underlay: "eth0",
			DNSRefresh: 10 * time.Second, Replication: "all",
		},
		Control: Control{Socket: "/tmp/m.sock", Metrics: "127.0.0.1:9591"},
	}
	got := mustParse(t, src)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse =\n%s\nwant\n%s", got.TOML(), want.TOML())
	}
	if k := got.Static[0].Key(); k != "*,239.1.1.1" {
		t.Errorf("Key() = %q, want *,239.1.1.1", k)
	}
	if k := got.Static[1].Key(); k != "10.0.1.2,239.1.1.1" {
		t.Errorf("Key() = %q, want 10.0.1.2,239.1.1.1", k)
	}
}

func TestParseOmittedBlockKeys(t *testing.T) {
	c := mustParse(t, "[[interface]]\nmatch = \"eth0\"\n[[pim.rp]]\naddress = \"10.0.0.1\"\n")
	if want := []Interface{{Match: "eth0", IGMP: true, PIM: true, DRPriority: 1}}; !reflect.DeepEqual(c.Interfaces, want) {
		t.Errorf("interfaces = %+v, want %+v", c.Interfaces, want)
	}
	if want := mustPrefixes("224.0.0.0/4"); !reflect.DeepEqual(c.PIM.RPs[0].Groups, want) {
		t.Errorf("rp groups = %v, want %v", c.PIM.RPs[0].Groups, want)
	}
	// An explicitly empty list of blocks is no blocks.
	c = mustParse(t, "interface = []\nstatic = []\n")
	if c.Interfaces != nil || c.Static != nil {
		t.Errorf("empty arrays: interfaces %v static %v, want none", c.Interfaces, c.Static)
	}
}

// TestErrors checks each validation rule and the exact file:line: key: reason
// of its message.
func TestErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		// TOML syntax: the parser's own line.
		{"syntax", "[router]\ntable = = 1\n", "r1.toml:2: expected value but found '=' instead"},
		{"syntax unterminated string", "[igmp]\n\nquery-interval = \"12s\n", "r1.toml:3: strings cannot contain newlines"},
		{"duplicate key", "[router]\ntable = 1\ntable = 2\n", "r1.toml:3: Key 'router.table' has already been defined."},

		// Unknown keys.
		{"unknown top-level key", "foo = 1\n", "r1.toml:1: foo: unknown key"},
		{"unknown top-level table", "\n[routing]\ntable = 1\n", "r1.toml:2: routing: unknown key"},
		{"crlf", "[router]\r\ntable = 1\r\n\r\ntabel = 2\r\n", "r1.toml:4: router.tabel: unknown key"},
		{"unknown key in table", "[router]\ntable = 1\n\ntabel = 2\n", "r1.toml:4: router.tabel: unknown key"},
		{"unknown key in interface", "[[interface]]\nmatch = \"a\"\n[[interface]]\nmatch = \"b\"\nigmpp = false\n", "r1.toml:5: interface[1].igmpp: unknown key"},
		{"unknown key in rp", "[pim]\n[[pim.rp]]\naddress = \"10.0.0.1\"\n[[pim.rp]]\naddress = \"10.0.0.2\"\ngroup = [\"239.0.0.0/8\"]\n", "r1.toml:6: pim.rp[1].group: unknown key"},
		{"unknown key in inline rp", "[pim]\nrp = [\n  {address = \"10.0.0.1\"},\n  {address = \"10.0.0.2\", x = 1},\n]\n", "r1.toml:4: pim.rp[1].x: unknown key"},
		{"unknown dotted key", "[igmp]\nversion = 3\nfoo.bar = 1\n", "r1.toml:3: igmp.foo: unknown key"},
		{"unknown quoted key", "[control]\n\"my key\" = 1\n", `r1.toml:2: control."my key": unknown key`},
		{"unknown key in static subtable", "[[static]]\ngroup = \"239.1.1.1\"\niif = \"a\"\noifs = [\"b\"]\n[static.x]\ny = 1\n", "r1.toml:5: static[0].x: unknown key"},

		// Types.
		{"table expected", "router = 1\n", "r1.toml:1: router: expected a table, got integer 1"},
		{"interface as table", "[interface]\nmatch = \"a\"\n", "r1.toml:1: interface: expected an array of tables: write [[interface]], not [interface]"},
		{"rp as table", "[pim.rp]\naddress = \"10.0.0.1\"\n", "r1.toml:1: pim.rp: expected an array of tables: write [[pim.rp]], not [pim.rp]"},
		{"integer expected", "[igmp]\nversion = \"3\"\n", `r1.toml:2: igmp.version: expected an integer, got string "3"`},
		{"float for integer", "[igmp]\nversion = 3.0\n", "r1.toml:2: igmp.version: expected an integer, got float 3"},
		{"bool expected", "[[interface]]\nmatch = \"a\"\npim = \"yes\"\n", `r1.toml:3: interface[0].pim: expected true or false, got string "yes"`},
		{"string expected", "[control]\nsocket = 5\n", "r1.toml:2: control.socket: expected a string, got integer 5"},
		{"array expected", "[[static]]\ngroup = \"239.1.1.1\"\niif = \"a\"\noifs = \"b\"\n", `r1.toml:4: static[0].oifs: expected an array, got string "b"`},
		{"string element expected", "[[static]]\ngroup = \"239.1.1.1\"\niif = \"a\"\noifs = [\n  \"b\",\n  2,\n]\n", "r1.toml:6: static[0].oifs[1]: expected a string, got integer 2"},
		{"block not a table", "interface = [1]\n", "r1.toml:1: interface[0]: expected a table, got integer 1"},
		{"date", "[router]\nidle-timeout = 2024-01-01\n", `r1.toml:2: router.idle-timeout: expected a duration string such as "125s", got a date/time`},

		// Durations.
		{"bad duration", "[igmp]\n\n\n\n\n\nquery-interval = \"12x\"\n", `r1.toml:7: igmp.query-interval: invalid duration "12x"`},
		{"duration as integer", "[router]\nidle-timeout = 210\n", `r1.toml:2: router.idle-timeout: expected a duration string such as "125s", got integer 210`},
		{"zero duration", "[router]\nresync-interval = \"0s\"\n", "r1.toml:2: router.resync-interval: must be greater than zero, got 0s"},
		{"negative duration", "[router]\nidle-timeout = \"-1m\"\n", "r1.toml:2: router.idle-timeout: must be greater than zero, got -60s"},
		{"dotted duration", "igmp.query-interval = \"1x\"\n", `r1.toml:1: igmp.query-interval: invalid duration "1x"`},

		// [router]
		{"table negative", "[router]\ntable = -1\n", "r1.toml:2: router.table: -1 is out of range 0..4294967295"},
		{"table too big", "[router]\ntable = 4294967296\n", "r1.toml:2: router.table: 4294967296 is out of range 0..4294967295"},

		// [[interface]]
		{"match missing", "[[interface]]\nigmp = true\n", "r1.toml:1: interface[0].match: missing"},
		{"match empty", "\n\n\n\n[[interface]]\nmatch = \"\"\n", "r1.toml:6: interface[0].match: empty"},
		{"match bad glob", "[[interface]]\nmatch = \"eth[\"\n", `r1.toml:2: interface[0].match: "eth[" is not a valid glob`},
		{"match repeated", "[[interface]]\nmatch = \"eth*\"\n[[interface]]\nmatch = \"eth*\"\n", `r1.toml:4: interface[1].match: "eth*" repeats interface[0], which always matches first`},
		{"dr-priority negative", "[[interface]]\nmatch = \"a\"\ndr-priority = -1\n", "r1.toml:3: interface[0].dr-priority: -1 is out of range 0..4294967295"},
		{"dr-priority too big", "[[interface]]\nmatch = \"a\"\ndr-priority = 4294967296\n", "r1.toml:3: interface[0].dr-priority: 4294967296 is out of range 0..4294967295"},

		// [fabric] and [[pim.rpf]]
		{"fabric peer", "[fabric]\npeers = [\"10.0.0.1\", \"node-2\"]\n", `r1.toml:2: fabric.peers[1]: "node-2" is neither an IPv4 unicast address nor "dns:NAME"`},
		{"fabric dns peer", "[fabric]\npeers = [\"dns:a..b\"]\n", `r1.toml:2: fabric.peers[0]: "a..b" is not a valid DNS name`},
		{"fabric vni", "[fabric]\nvni = 16777216\n", "r1.toml:2: fabric.vni: 16777216 is out of range 1..16777215, the 24 bits of a VXLAN network identifier"},
		{"fabric port", "[fabric]\nport = 0\n", "r1.toml:2: fabric.port: 0 is not a UDP port"},
		{"fabric mtu", "[fabric]\nmtu = 40\n", "r1.toml:2: fabric.mtu: 40 is outside 68..65535; 0 chooses it from the underlay"},
		{"fabric replication", "[fabric]\nreplication = \"some\"\n", `r1.toml:2: fabric.replication: must be "selective" or "all", got "some"`},
		{"rpf without path", "[[pim.rpf]]\nprefix = \"10.0.0.0/8\"\n", "r1.toml:1: pim.rpf[0]: give a neighbor, an interface, or both"},
		{"rpf repeated", "[[pim.rpf]]\nprefix = \"10.0.0.0/8\"\ninterface = \"a\"\n[[pim.rpf]]\nprefix = \"10.0.0.0/8\"\ninterface = \"b\"\n", "r1.toml:5: pim.rpf[1].prefix: 10.0.0.0/8 repeats pim.rpf[0]"},

		// [igmp]
		{"version", "[igmp]\nversion = 1\n", "r1.toml:2: igmp.version: 1 is not supported; use 2 or 3"},
		{"robustness zero", "[igmp]\nrobustness = 0\n", "r1.toml:2: igmp.robustness: 0 is out of range 1..7"},
		{"robustness too big", "[igmp]\nrobustness = 8\n", "r1.toml:2: igmp.robustness: 8 is out of range 1..7"},
		{"max-groups", "[igmp]\nmax-groups = 0\n", "r1.toml:2: igmp.max-groups: must be at least 1, got 0"},
		{"max-sources", "[igmp]\nmax-sources = 0\n", "r1.toml:2: igmp.max-sources: must be at least 1, got 0"},
		{"max-sources-per-interface", "[igmp]\nmax-sources-per-interface = 0\n", "r1.toml:2: igmp.max-sources-per-interface: must be at least 1, got 0"},
		{"max-neighbors", "[pim]\nmax-neighbors = 0\n", "r1.toml:2: pim.max-neighbors: must be at least 1, got 0"},
		{"max-joins", "[pim]\nmax-joins = -1\n", "r1.toml:2: pim.max-joins: must be at least 1, got -1"},
		{"max-joins-per-neighbor", "[pim]\nmax-joins-per-neighbor = 0\n", "r1.toml:2: pim.max-joins-per-neighbor: must be at least 1, got 0"},
		{"max-registered-sources", "[pim]\nmax-registered-sources = 0\n", "r1.toml:2: pim.max-registered-sources: must be at least 1, got 0"},
		{"max-learned-routes", "[router]\nmax-learned-routes = 0\n", "r1.toml:2: router.max-learned-routes: must be at least 1, got 0"},
		{"response not below query", "[igmp]\nquery-interval = \"10s\"\nquery-response-interval = \"10s\"\n", "r1.toml:3: igmp.query-response-interval: 10s must be less than igmp.query-interval (10s)"},
		{"response vs default query", "[igmp]\nquery-response-interval = \"200s\"\n", "r1.toml:2: igmp.query-response-interval: 200s must be less than igmp.query-interval (125s)"},
		{"response vs query set alone", "[igmp]\nquery-interval = \"5s\"\n", "r1.toml:1: igmp.query-response-interval: 10s must be less than igmp.query-interval (5s)"},
		{"response too long for v2", "[igmp]\nversion = 2\nquery-response-interval = \"30s\"\n", "r1.toml:3: igmp.query-response-interval: 30s is outside 100ms..25.5s, the longest an IGMPv2 query can carry"},
		{"last member too short", "[igmp]\nlast-member-query-interval = \"10ms\"\n", "r1.toml:2: igmp.last-member-query-interval: 10ms is outside 100ms..3174.4s, the longest an IGMPv3 query can carry"},
		{"query interval too long", "[igmp]\nquery-interval = \"10h\"\n", "r1.toml:2: igmp.query-interval: 36000s is outside 1s..31744s, the range an IGMPv3 query can carry"},
		{"allowed-groups empty", "[igmp]\nallowed-groups = []\n", `r1.toml:2: igmp.allowed-groups: empty, so every join would be ignored; allow all with ["224.0.0.0/4"]`},
		{"allowed-groups unicast", "[igmp]\nallowed-groups = [\"239.0.0.0/8\", \"10.0.0.0/8\"]\n", "r1.toml:2: igmp.allowed-groups[1]: 10.0.0.0/8 is not inside 224.0.0.0/4"},
		{"allowed-groups too wide", "[igmp]\nallowed-groups = [\"0.0.0.0/0\"]\n", "r1.toml:2: igmp.allowed-groups[0]: 0.0.0.0/0 is not inside 224.0.0.0/4"},
		{"allowed-groups host bits", "[igmp]\nallowed-groups = [\n\"239.1.1.1/8\"]\n", "r1.toml:3: igmp.allowed-groups[0]: 239.1.1.1/8 has host bits set; did you mean 239.0.0.0/8?"},

		// [pim]
		{"hello too short", "[pim]\nhello-interval = \"500ms\"\n", "r1.toml:2: pim.hello-interval: 500ms is outside 1s..18724s, so that the 3.5 times longer holdtime fits PIM's 16-bit seconds"},
		{"join-prune too long", "[pim]\njoin-prune-interval = \"6h\"\n", "r1.toml:2: pim.join-prune-interval: 21600s is outside 1s..18724s, so that the 3.5 times longer holdtime fits PIM's 16-bit seconds"},
		{"max-holdtime forever", "[pim]\nmax-holdtime = \"65535s\"\n", "r1.toml:2: pim.max-holdtime: 65535s is outside 1s..65534s, the finite holdtimes a Hello can advertise"},
		{"max-holdtime zero", "[pim]\nmax-holdtime = \"0s\"\n", "r1.toml:2: pim.max-holdtime: must be greater than zero, got 0s"},
		{"ssm-range outside", "[pim]\nssm-range = \"10.0.0.0/8\"\n", "r1.toml:2: pim.ssm-range: 10.0.0.0/8 is not inside 224.0.0.0/4"},
		{"ssm-range host bits", "[pim]\nssm-range = \"232.1.2.3/8\"\n", "r1.toml:2: pim.ssm-range: 232.1.2.3/8 has host bits set; did you mean 232.0.0.0/8?"},
		{"ssm-range no length", "[pim]\nssm-range = \"232.1.2.3\"\n", `r1.toml:2: pim.ssm-range: invalid prefix "232.1.2.3": write address/length, such as "232.1.2.3/32"`},
		{"ssm-range garbage", "[pim]\nssm-range = \"232/8\"\n", `r1.toml:2: pim.ssm-range: invalid prefix "232/8"`},
		{"ssm-range ipv6", "[pim]\nssm-range = \"ff3e::/32\"\n", "r1.toml:2: pim.ssm-range: ff3e::/32 is not an IPv4 prefix"},
		{"spt-switchover", "[pim]\nspt-switchover = \"sometimes\"\n", `r1.toml:2: pim.spt-switchover: must be "immediate" or "never", got "sometimes"`},
		{"register-accept host bits", "[pim]\nregister-accept = [\"10.1.0.0/8\"]\n", "r1.toml:2: pim.register-accept[0]: 10.1.0.0/8 has host bits set; did you mean 10.0.0.0/8?"},

		// [[pim.rp]]
		{"rp address missing", "[[pim.rp]]\ngroups = [\"239.0.0.0/8\"]\n", "r1.toml:1: pim.rp[0].address: missing"},
		{"rp address invalid", "[[pim.rp]]\naddress = \"10.0.0.300\"\n", `r1.toml:2: pim.rp[0].address: invalid address "10.0.0.300"`},
		{"rp address ipv6", "[[pim.rp]]\naddress = \"2001:db8::1\"\n", "r1.toml:2: pim.rp[0].address: 2001:db8::1 is not an IPv4 address"},
		{"rp address mapped", "[[pim.rp]]\naddress = \"::ffff:10.0.0.1\"\n", "r1.toml:2: pim.rp[0].address: ::ffff:10.0.0.1 is not an IPv4 address"},
		{"rp address multicast", "[[pim.rp]]\naddress = \"239.1.1.1\"\n", "r1.toml:2: pim.rp[0].address: 239.1.1.1 is not a unicast address"},
		{"rp address unspecified", "[[pim.rp]]\naddress = \"0.0.0.0\"\n", "r1.toml:2: pim.rp[0].address: 0.0.0.0 is not a unicast address"},
		{"rp address repeated", "[[pim.rp]]\naddress = \"10.0.0.1\"\n[[pim.rp]]\naddress = \"10.0.0.1\"\n", "r1.toml:4: pim.rp[1].address: 10.0.0.1 repeats pim.rp[0]; list all its groups there"},
		{"rp groups empty", "[[pim.rp]]\naddress = \"10.0.0.1\"\ngroups = []\n", "r1.toml:3: pim.rp[0].groups: empty; omit it to serve all groups"},
		{"rp groups unicast", "[[pim.rp]]\naddress = \"10.0.0.1\"\ngroups = [\"10.0.0.0/8\"]\n", "r1.toml:3: pim.rp[0].groups[0]: 10.0.0.0/8 is not inside 224.0.0.0/4"},

		// [[static]]
		{"group missing", "[[static]]\niif = \"a\"\noifs = [\"b\"]\n", "r1.toml:1: static[0].group: missing"},
		{"group unicast", "[[static]]\niif = \"a\"\noifs = [\"b\"]\n[[static]]\ngroup = \"10.1.1.1\"\niif = \"a\"\noifs = [\"b\"]\n", "r1.toml:1: static[0].group: missing\nr1.toml:5: static[1].group: 10.1.1.1 is not a multicast address"},
		{"group link-local", "[[static]]\ngroup = \"224.0.0.5\"\niif = \"a\"\noifs = [\"b\"]\n", "r1.toml:2: static[0].group: 224.0.0.5 is link-local (224.0.0.0/24), which is never routed"},
		{"group invalid", "[[static]]\ngroup = \"239.1.1\"\niif = \"a\"\noifs = [\"b\"]\n", `r1.toml:2: static[0].group: invalid address "239.1.1"`},
		{"source multicast", "[[static]]\nsource = \"239.2.2.2\"\ngroup = \"239.1.1.1\"\niif = \"a\"\noifs = [\"b\"]\n", "r1.toml:2: static[0].source: 239.2.2.2 is not a unicast address"},
		{"source loopback", "[[static]]\nsource = \"127.0.0.1\"\ngroup = \"239.1.1.1\"\niif = \"a\"\noifs = [\"b\"]\n", "r1.toml:2: static[0].source: 127.0.0.1 is not a unicast address"},
		{"source broadcast", "[[static]]\nsource = \"255.255.255.255\"\ngroup = \"239.1.1.1\"\niif = \"a\"\noifs = [\"b\"]\n", "r1.toml:2: static[0].source: 255.255.255.255 is not a unicast address"},
		{"source empty", "[[static]]\nsource = \"\"\ngroup = \"239.1.1.1\"\niif = \"a\"\noifs = [\"b\"]\n", `r1.toml:2: static[0].source: invalid address ""`},
		{"iif missing", "[[static]]\ngroup = \"239.1.1.1\"\noifs = [\"b\"]\n", "r1.toml:1: static[0].iif: missing"},
		{"iif empty", "[[static]]\ngroup = \"239.1.1.1\"\niif = \"\"\noifs = [\"b\"]\n", "r1.toml:3: static[0].iif: empty"},
		{"iif too long", "[[static]]\ngroup = \"239.1.1.1\"\niif = \"abcdefghijklmnop\"\noifs = [\"b\"]\n", `r1.toml:3: static[0].iif: "abcdefghijklmnop" is longer than 15 bytes, the kernel's limit for interface names`},
		{"iif with slash", "[[static]]\ngroup = \"239.1.1.1\"\niif = \"a/b\"\noifs = [\"b\"]\n", `r1.toml:3: static[0].iif: "a/b" is not a valid interface name`},
		{"oifs missing", "[[static]]\ngroup = \"239.1.1.1\"\niif = \"a\"\n", "r1.toml:1: static[0].oifs: missing"},
		{"oifs empty", "[[static]]\ngroup = \"239.1.1.1\"\niif = \"a\"\noifs = []\n", "r1.toml:4: static[0].oifs: empty"},
		{"oif empty name", "[[static]]\ngroup = \"239.1.1.1\"\niif = \"a\"\noifs = [\"b\", \"\"]\n", "r1.toml:4: static[0].oifs[1]: empty"},
		{"iif among oifs", "[[static]]\ngroup = \"239.1.1.1\"\niif = \"eth1\"\noifs = [\n  \"eth2\",\n  \"eth1\",\n]\n", `r1.toml:6: static[0].oifs[1]: "eth1" is also the iif`},
		{"oif twice", "[[static]]\ngroup = \"239.1.1.1\"\niif = \"eth1\"\noifs = [\"eth2\", \"eth3\", \"eth2\"]\n", `r1.toml:4: static[0].oifs[2]: "eth2" is listed twice`},
		{"route repeated", "[[static]]\nsource = \"10.0.1.2\"\ngroup = \"239.1.1.1\"\niif = \"a\"\noifs = [\"b\"]\n\n[[static]]\nsource = \"10.0.1.2\"\ngroup = \"239.1.1.1\"\niif = \"c\"\noifs = [\"d\"]\n", "r1.toml:7: static[1]: repeats static[0] (10.0.1.2,239.1.1.1)"},
		{"(*,G) repeated", "[[static]]\ngroup = \"239.1.1.1\"\niif = \"a\"\noifs = [\"b\"]\n[[static]]\ngroup = \"239.1.1.1\"\niif = \"a\"\noifs = [\"c\"]\n", "r1.toml:5: static[1]: repeats static[0] (*,239.1.1.1)"},

		// [control]
		{"socket empty", "[control]\nsocket = \"\"\n", "r1.toml:2: control.socket: empty"},
		{"socket relative", "[control]\nsocket = \"run/m.sock\"\n", `r1.toml:2: control.socket: "run/m.sock" is not an absolute path`},
		{"socket too long", "[control]\nsocket = \"/" + strings.Repeat("x", 107) + "\"\n", `r1.toml:2: control.socket: "/` + strings.Repeat("x", 107) + `" is longer than 107 bytes, the limit for a unix socket path`},
		{"metrics no port", "[control]\nmetrics = \"127.0.0.1\"\n", `r1.toml:2: control.metrics: "127.0.0.1" is not host:port, such as "127.0.0.1:9591"`},
		{"metrics bad port", "[control]\nmetrics = \"127.0.0.1:http\"\n", `r1.toml:2: control.metrics: "127.0.0.1:http": the port must be a number from 1 to 65535`},
		{"metrics port zero", "[control]\nmetrics = \":0\"\n", `r1.toml:2: control.metrics: ":0": the port must be a number from 1 to 65535`},
		{"metrics bad host", "[control]\nmetrics = \"a b:80\"\n", `r1.toml:2: control.metrics: "a b:80": "a b" is neither an IP address nor a host name`},

		// Several errors: all reported, in file order, one problem per key.
		{"several", "[igmp]\nversion = 4\nquery-interval = \"x\"\n[[static]]\ngroup = \"1.2.3.4\"\niif = \"a\"\noifs = [\"a\"]\n[router]\ntabel = 1\n",
			"r1.toml:2: igmp.version: 4 is not supported; use 2 or 3\n" +
				"r1.toml:3: igmp.query-interval: invalid duration \"x\"\n" +
				"r1.toml:5: static[0].group: 1.2.3.4 is not a multicast address\n" +
				"r1.toml:7: static[0].oifs[0]: \"a\" is also the iif\n" +
				"r1.toml:9: router.tabel: unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("r1.toml", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse accepted it:\n%s", c.TOML())
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != "r1.toml" {
				t.Errorf("error %v is not a *conf.Error for r1.toml", err)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{File: "r1.toml", Line: 3, Key: "a.b", Reason: "bad"}, "r1.toml:3: a.b: bad"},
		{Error{File: "r1.toml", Key: "a.b", Reason: "bad"}, "r1.toml: a.b: bad"},
		{Error{File: "r1.toml", Line: 3, Reason: "bad"}, "r1.toml:3: bad"},
		{Error{Line: 3, Key: "a.b", Reason: "bad"}, "line 3: a.b: bad"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	// Control characters from the input never break a message across lines.
	_, err := Parse("r1.toml", []byte("[[static]]\ngroup = \"239.1.1.1\"\niif = \"a\\nb\"\noifs = [\"c\"]\n"))
	if want := `r1.toml:3: static[0].iif: "a\nb" is not a valid interface name`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestValidEdgeValues(t *testing.T) {
	for _, src := range []string{
		"[router]\ntable = 4294967295\n",
		"[[interface]]\nmatch = \"eth[0-3]\"\ndr-priority = 4294967295\n",
		"[[interface]]\nmatch = \"eth0\"\n[[interface]]\nmatch = \"eth*\"\n",
		"[igmp]\nversion = 2\nquery-response-interval = \"25.5s\"\nrobustness = 7\n",
		"[igmp]\nquery-interval = \"31744s\"\nquery-response-interval = \"3174.4s\"\nlast-member-query-interval = \"100ms\"\n",
		"[pim]\nhello-interval = \"1s\"\njoin-prune-interval = \"18724s\"\nregister-accept = [\"0.0.0.0/0\"]\n",
		"[[static]]\ngroup = \"224.0.1.1\"\niif = \"eth1\"\noifs = [\"eth2\"]\n",
		"[[static]]\nsource = \"169.254.1.1\"\ngroup = \"239.255.255.255\"\niif = \"vethabcdef01234\"\noifs = [\"eth2\"]\n",
		"[[static]]\nsource = \"10.0.0.1\"\ngroup = \"239.1.1.1\"\niif = \"a\"\noifs = [\"b\"]\n[[static]]\ngroup = \"239.1.1.1\"\niif = \"a\"\noifs = [\"b\"]\n",
		"[control]\nmetrics = \":9591\"\n",
		"[control]\nmetrics = \"[::1]:9591\"\n",
		"[control]\nmetrics = \"localhost:9591\"\n",
	} {
		if _, err := Parse("ok.toml", []byte(src)); err != nil {
			t.Errorf("Parse(%q): %v", src, err)
		}
	}
}

func TestInterfaceFor(t *testing.T) {
	none := Default()
	if ifc, ok := none.InterfaceFor("eth0"); !ok || !ifc.IGMP || !ifc.PIM || ifc.DRPriority != 1 {
		t.Errorf("no blocks: InterfaceFor(eth0) = %+v, %v; want IGMP and PIM on", ifc, ok)
	}

	c := mustParse(t, `
[[interface]]
match = "eth0"
pim = false
[[interface]]
match = "eth*"
dr-priority = 9
[[interface]]
match = "eth1"
igmp = false
[[interface]]
match = "veth?"
disabled = true
[[interface]]
match = "v*"
[[interface]]
match = "br[0-9]"
`)
	tests := []struct {
		name  string
		match string // "" when ok is false
		ok    bool
	}{
		{"eth0", "eth0", true},
		{"eth1", "eth*", true}, // eth* comes first
		{"eth10", "eth*", true},
		{"veth1", "veth?", false}, // disabled
		{"veth12", "v*", true},    // too long for veth?
		{"br3", "br[0-9]", true},  // character class
		{"br", "", false},         // no match
		{"lo", "", false},         // no match
		{"ETH0", "", false},       // case matters
		{"eth0/1", "", false},     // '*' does not cross '/'
		{"[eth0]", "", false},     // not a glob match
		{"v*", "v*", true},        // exact name
		{"", "", false},           // empty name
		{"ethernet0", "eth*", true},
	}
	for _, tt := range tests {
		ifc, ok := c.InterfaceFor(tt.name)
		if ok != tt.ok || (ok && ifc.Match != tt.match) {
			t.Errorf("InterfaceFor(%q) = %q, %v; want %q, %v", tt.name, ifc.Match, ok, tt.match, tt.ok)
		}
	}
	if ifc, _ := c.InterfaceFor("eth0"); ifc.PIM || !ifc.IGMP {
		t.Errorf("eth0 settings = %+v, want IGMP only", ifc)
	}
	if ifc, _ := c.InterfaceFor("eth7"); ifc.DRPriority != 9 {
		t.Errorf("eth7 dr-priority = %d, want 9", ifc.DRPriority)
	}
}

func TestTOMLRoundTrip(t *testing.T) {
	configs := map[string]string{
		"defaults": "",
		"full": `
[router]
table = 4294967295
idle-timeout = "1h0m0.5s"
[[interface]]
match = "eth\"*\\*"
dr-priority = 0
[[interface]]
match = "lo"
disabled = true
igmp = false
pim = false
[igmp]
version = 2
query-response-interval = "1.5s"
allowed-groups = ["239.0.0.0/8", "224.0.1.0/24"]
[pim]
spt-switchover = "never"
register-accept = ["10.0.0.0/8", "192.168.0.0/16"]
[[pim.rp]]
address = "10.0.2.1"
[[pim.rp]]
address = "10.0.2.2"
groups = ["239.1.0.0/16", "239.2.0.0/16"]
[[pim.rpf]]
prefix = "10.9.0.0/16"
neighbor = "10.0.0.9"
interface = "eth9"
[fabric]
peers = ["10.1.1.1", "dns:peers.example"]
mtu = 9000
[[static]]
group = "239.1.1.1"
iif = "e\u00e9\u0001"
oifs = ["b", "c"]
[[static]]
source = "10.0.0.1"
group = "239.1.1.1"
iif = "a"
oifs = ["b"]
[control]
socket = "/run/x y.sock"
metrics = "[::1]:1"
`,
	}
	for name, src := range configs {
		t.Run(name, func(t *testing.T) {
			c := mustParse(t, src)
			out := c.TOML()
			back, err := Parse("test.toml", []byte(out))
			if err != nil {
				t.Fatalf("Parse(TOML()): %v\n%s", err, out)
			}
			if !reflect.DeepEqual(back, c) {
				t.Errorf("round trip changed the config:\n%s\nbecame\n%s", out, back.TOML())
			}
		})
	}
}

func TestTOMLOutput(t *testing.T) {
	const want = `[router]
table = 0
idle-timeout = "210s"
resync-interval = "60s"
max-learned-routes = 100000

# No [[interface]] blocks: every multicast-capable interface except loopback runs IGMP and PIM.

[igmp]
version = 3
query-interval = "125s"
query-response-interval = "10s"
last-member-query-interval = "1s"
robustness = 2
allowed-groups = ["224.0.0.0/4"]
max-groups = 4096
max-sources = 1024
max-sources-per-interface = 16384

[pim]
hello-interval = "30s"
join-prune-interval = "60s"
ssm-range = "232.0.0.0/8"
spt-switchover = "immediate"
register-accept = []
max-holdtime = "210s"
max-neighbors = 64
max-joins = 200000
max-joins-per-neighbor = 100000
max-registered-sources = 100000

[fabric]
peers = []
vni = 7700
port = 4799
interface = "mrfabric"
mtu = 0
underlay = ""
dns-refresh = "30s"
replication = "selective"

[control]
socket = "/run/mrouterd/mrouterd.sock"
metrics = ""
`
	if got := Default().TOML(); got != want {
		t.Errorf("Default().TOML() =\n%s\nwant\n%s", got, want)
	}
}
