package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mrouterd/mrouterd/router/api"
)

// sampleView is one command's canned reply, as the daemon would serve it, and the
// table mroutectl makes of it.
type sampleView struct {
	name   string // the command, in full words
	method string
	path   string
	render func(io.Writer, []byte) error
	body   string
	table  string
}

var sampleViews = []sampleView{
	{name: "show routes", method: http.MethodGet, path: api.PathRoutes, render: decoded(renderRoutes),
		body: `{"routes":[` +
			`{"source":"*","group":"239.1.1.1","iif":"eth1","oifs":["eth2","eth3"],"protocol":"igmp","flags":["installed"],"uptime_s":3723,"expires_s":0,"packets":0,"bytes":0},` +
			`{"source":"10.1.1.2","group":"239.1.1.1","iif":"eth1","oifs":[],"protocol":"pim","flags":[],"uptime_s":12,"expires_s":198,"packets":100,"bytes":12000},` +
			`{"source":"10.0.1.2","group":"239.9.9.9","iif":"eth1","oifs":["eth2"],"protocol":"static","flags":["SPT","installed"],"uptime_s":90061,"expires_s":0,"packets":7,"bytes":840}]}` + "\n",
		table: "" +
			"Source    Group      Proto   IIF   OIFs       Flags          Uptime    Expires  Packets  Bytes\n" +
			"*         239.1.1.1  igmp    eth1  eth2,eth3  installed      1h2m3s    never    0        0\n" +
			"10.1.1.2  239.1.1.1  pim     eth1  -          -              12s       3m18s    100      12000\n" +
			"10.0.1.2  239.9.9.9  static  eth1  eth2       SPT,installed  1d1h1m1s  never    7        840\n",
	},
	{name: "show mfc", method: http.MethodGet, path: api.PathMFC, render: decoded(renderMFC),
		body: `{"mfc":[{"source":"10.1.1.2","group":"239.1.1.1","iif":"eth1","oifs":["eth2"],"packets":100,"bytes":12000,"wrong_if":3}]}` + "\n",
		table: "" +
			"Source    Group      IIF   OIFs  Packets  Bytes  Wrong IF\n" +
			"10.1.1.2  239.1.1.1  eth1  eth2  100      12000  3\n",
	},
	{name: "show interfaces", method: http.MethodGet, path: api.PathInterfaces, render: decoded(renderInterfaces),
		body: `{"interfaces":[` +
			`{"name":"lo","ifindex":1,"vif":-1,"addresses":["127.0.0.1/8"],"up":true,"igmp":false,"pim":false,"state":"disabled"},` +
			`{"name":"eth1","ifindex":2,"vif":0,"addresses":["10.1.1.1/24","10.1.9.1/24"],"up":true,"igmp":true,"pim":true,"state":"active","packets_in":120,"packets_out":0,"bytes_in":14400,"bytes_out":0},` +
			`{"name":"eth2","ifindex":3,"vif":1,"addresses":[],"up":false,"igmp":true,"pim":false,"state":"down"}]}` + "\n",
		table: "" +
			"Name  Index  VIF  Addresses                State     IGMP  PIM  Pkts in/out\n" +
			"lo    1      -    127.0.0.1/8              disabled  no    no   0/0\n" +
			"eth1  2      0    10.1.1.1/24,10.1.9.1/24  active    yes   yes  120/0\n" +
			"eth2  3      1    -                        down      yes   no   0/0\n",
	},
	{name: "show igmp groups", method: http.MethodGet, path: api.PathIGMPGroups, render: decoded(renderIGMPGroups),
		body: `{"groups":[` +
			`{"interface":"eth2","group":"239.1.1.1","mode":"include","sources":["10.1.1.2","10.1.1.3"],"version":3,"reporter":"10.3.3.2","expires_s":250},` +
			`{"interface":"eth3","group":"239.2.2.2","mode":"exclude","sources":[],"version":2,"reporter":"10.4.4.2","expires_s":61}]}` + "\n",
		table: "" +
			"Interface  Group      Mode     Sources            Version  Reporter  Expires\n" +
			"eth2       239.1.1.1  include  10.1.1.2,10.1.1.3  v3       10.3.3.2  4m10s\n" +
			"eth3       239.2.2.2  exclude  -                  v2       10.4.4.2  1m1s\n",
	},
	{name: "show pim neighbors", method: http.MethodGet, path: api.PathPIMNeighbors, render: decoded(renderPIMNeighbors),
		body: `{"neighbors":[` +
			`{"interface":"eth1","address":"10.2.2.1","uptime_s":40,"expires_s":95,"dr_priority":1,"generation_id":12345,"dr":true},` +
			`{"interface":"eth4","address":"10.5.5.9","uptime_s":7200,"expires_s":0,"dr_priority":100,"generation_id":4294967295,"dr":false}]}` + "\n",
		table: "" +
			"Interface  Address   Uptime  Expires  DR Priority  Generation ID  DR\n" +
			"eth1       10.2.2.1  40s     1m35s    1            12345          yes\n" +
			"eth4       10.5.5.9  2h      never    100          4294967295     no\n",
	},
	{name: "show pim rp", method: http.MethodGet, path: api.PathPIMRP, render: decoded(renderRPMappings),
		body: `{"rp":[{"group_range":"224.0.0.0/4","rp":"10.0.2.1","source":"static"},{"group_range":"239.1.0.0/16","rp":"10.0.3.1","source":""}]}` + "\n",
		table: "" +
			"Group Range   RP        Source\n" +
			"224.0.0.0/4   10.0.2.1  static\n" +
			"239.1.0.0/16  10.0.3.1  -\n",
	},
	{name: "show pim joins", method: http.MethodGet, path: api.PathPIMJoins, render: decoded(renderPIMJoins),
		body: `{"joins":[` +
			`{"source":"*","group":"239.1.1.1","upstream":"eth1","upstream_neighbor":"10.0.23.2","joined":true,"keepalive":false,"spt":false,"register":"",` +
			`"downstream":[{"interface":"eth2","state":"join","rpt":false,"expires_s":190}],"local":["eth3"],"uptime_s":12},` +
			`{"source":"10.0.1.2","group":"239.1.1.1","upstream":"","upstream_neighbor":"","joined":false,"keepalive":true,"spt":true,"register":"prune",` +
			`"downstream":[{"interface":"eth2","state":"prune","rpt":true,"expires_s":0}],"local":[],"uptime_s":3}]}` + "\n",
		table: "" +
			"Source    Group      Upstream        Flags                   Downstream       Local\n" +
			"*         239.1.1.1  eth1 10.0.23.2  -                       eth2:join/3m10s  eth3\n" +
			"10.0.1.2  239.1.1.1  -               SPT,KAT,register:prune  eth2:prune(rpt)  -\n",
	},
	{name: "show rpf 10.1.1.2", method: http.MethodGet, path: api.PathRPF, render: decoded(renderRPF),
		body: `{"address":"10.1.1.2","interface":"eth1","neighbor":"10.2.2.1","origin":"fib","prefix":"10.1.0.0/16",` +
			`"gateway":"10.2.2.1","protocol":"ospf","metric":20,"preference":110}` + "\n",
		table: "" +
			"Address:    10.1.1.2\n" +
			"Interface:  eth1\n" +
			"Neighbor:   10.2.2.1\n" +
			"Origin:     fib (the kernel's unicast routes)\n" +
			"Prefix:     10.1.0.0/16\n" +
			"Route:      via 10.2.2.1, proto ospf, metric 20, preference 110\n",
	},
	{name: "show status", method: http.MethodGet, path: api.PathStatus, render: decoded(renderStatus),
		body: `{"version":"0.3.0","uptime_s":3723,"config_file":"/etc/mrouterd/mrouterd.toml","table":0,"vifs":3,"max_vifs":32,"routes":5,` +
			`"counters":{"upcalls_nocache":42,"control_bad_requests":2,"mfc_adds":17},` +
			`"warnings":["eth9: no IPv4 address, no VIF","reverse path filter is strict on eth1"]}` + "\n",
		table: "" +
			"Version:       0.3.0\n" +
			"Uptime:        1h2m3s\n" +
			"Config file:   /etc/mrouterd/mrouterd.toml\n" +
			"Kernel table:  0\n" +
			"VIFs:          3 of 32\n" +
			"Interfaces:    0 watched\n" +
			"Routes:        5\n" +
			"Counters:\n" +
			"  control_bad_requests  2\n" +
			"  mfc_adds              17\n" +
			"  upcalls_nocache       42\n" +
			"Warnings:\n" +
			"  - eth9: no IPv4 address, no VIF\n" +
			"  - reverse path filter is strict on eth1\n",
	},
	{name: "reload", method: http.MethodPost, path: api.PathReload, render: decoded(renderReload),
		body: `{"changed":true,"summary":["igmp: query-interval 125s -> 60s","static: added (10.0.1.2, 239.9.9.9)"]}` + "\n",
		table: "" +
			"igmp: query-interval 125s -> 60s\n" +
			"static: added (10.0.1.2, 239.9.9.9)\n",
	},
	{name: "show metrics", method: http.MethodGet, path: api.PathMetrics, render: writeBody,
		body: "# HELP mrouterd_routes Routes installed.\n# TYPE mrouterd_routes gauge\nmrouterd_routes 5\n",
		table: "" +
			"# HELP mrouterd_routes Routes installed.\n" +
			"# TYPE mrouterd_routes gauge\n" +
			"mrouterd_routes 5\n",
	},
}

func TestRenderViews(t *testing.T) {
	for _, v := range sampleViews {
		var out bytes.Buffer
		if err := v.render(&out, []byte(v.body)); err != nil {
			t.Errorf("%s: %v", v.name, err)
			continue
		}
		if out.String() != v.table {
			t.Errorf("%s:\n%s\nwant:\n%s", v.name, out.String(), v.table)
		}
	}
}

func TestRenderEmpty(t *testing.T) {
	cases := []struct {
		render func(io.Writer, []byte) error
		body   string
		want   string
	}{
		{decoded(renderRoutes), `{"routes":[]}`,
			"Source  Group  Proto  IIF  OIFs  Flags  Uptime  Expires  Packets  Bytes\n(no routes)\n"},
		{decoded(renderMFC), `{"mfc":[]}`, "Source  Group  IIF  OIFs  Packets  Bytes  Wrong IF\n(no MFC entries)\n"},
		{decoded(renderInterfaces), `{"interfaces":[]}`,
			"Name  Index  VIF  Addresses  State  IGMP  PIM  Pkts in/out\n(no interfaces)\n"},
		{decoded(renderIGMPGroups), `{"groups":[]}`,
			"Interface  Group  Mode  Sources  Version  Reporter  Expires\n(no IGMP groups)\n"},
		{decoded(renderPIMNeighbors), `{"neighbors":null}`,
			"Interface  Address  Uptime  Expires  DR Priority  Generation ID  DR\n(no PIM neighbors)\n"},
		{decoded(renderRPMappings), `{}`, "Group Range  RP  Source\n(no RP mappings)\n"},
		{decoded(renderReload), `{"changed":false,"summary":[]}`, "no change\n"},
		{decoded(renderRPF), `{"address":"10.1.1.2","interface":"eth2","neighbor":"","origin":"connected","prefix":"10.1.1.0/24"}`,
			"Address:    10.1.1.2\nInterface:  eth2\nNeighbor:   none\nOrigin:     connected (a subnet of the interface)\nPrefix:     10.1.1.0/24\n"},
		{decoded(renderRPF), `{"address":"10.244.2.5","interface":"mrfabric","neighbor":"10.0.2.2","origin":"fabric","prefix":"10.244.2.0/24"}`,
			"Address:    10.244.2.5\nInterface:  mrfabric\nNeighbor:   10.0.2.2\nOrigin:     fabric (a prefix the neighbour advertises on the fabric)\nPrefix:     10.244.2.0/24\n"},
		{decoded(renderRPF), `{"address":"10.9.9.9","interface":"eth3","neighbor":"","origin":"fib","prefix":"10.9.9.0/24","protocol":"kernel","metric":0,"preference":1}`,
			"Address:    10.9.9.9\nInterface:  eth3\nNeighbor:   none\nOrigin:     fib (the kernel's unicast routes)\nPrefix:     10.9.9.0/24\nRoute:      direct, proto kernel, metric 0, preference 1\n"},
		{decoded(renderRPF), `{"address":"192.0.2.1","interface":"","neighbor":"","origin":"unreachable","prefix":""}`,
			"Address:    192.0.2.1\nInterface:  -\nNeighbor:   -\nOrigin:     unreachable (no route)\nPrefix:     -\n"},
		{decoded(renderStatus), `{"version":"","uptime_s":0,"config_file":"","table":254,"vifs":0,"max_vifs":32,"routes":0,"counters":{},"warnings":[]}`,
			"Version:       -\nUptime:        0s\nConfig file:   -\nKernel table:  254\nVIFs:          0 of 32\nInterfaces:    0 watched\nRoutes:        0\nCounters: none\nWarnings: none\n"},
	}
	for _, c := range cases {
		var out bytes.Buffer
		if err := c.render(&out, []byte(c.body)); err != nil {
			t.Errorf("%s: %v", c.body, err)
			continue
		}
		if out.String() != c.want {
			t.Errorf("%s:\n%s\nwant:\n%s", c.body, out.String(), c.want)
		}
	}
}

func TestRenderBadReply(t *testing.T) {
	err := decoded(renderRoutes)(io.Discard, []byte(`{"routes":"nope"}`))
	if err == nil || !strings.HasPrefix(err.Error(), "unexpected reply from mrouterd: ") {
		t.Errorf("got %v", err)
	}
}

func TestDuration(t *testing.T) {
	cases := map[int64]string{-5: "0s", 0: "0s", 1: "1s", 60: "1m", 61: "1m1s", 3600: "1h", 3723: "1h2m3s",
		86400: "1d", 90061: "1d1h1m1s", 30 * 86400: "30d"}
	for seconds, want := range cases {
		if got := duration(seconds); got != want {
			t.Errorf("duration(%d) = %q, want %q", seconds, got, want)
		}
	}
	if got := expiry(0); got != "never" {
		t.Errorf("expiry(0) = %q", got)
	}
}
