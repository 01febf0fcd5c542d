package conf

import (
	"slices"
	"testing"
)

func TestDiff(t *testing.T) {
	const base = `
[[interface]]
match = "eth*"
[[interface]]
match = "lo"
disabled = true
[igmp]
allowed-groups = ["239.0.0.0/8", "224.1.0.0/16"]
[[pim.rp]]
address = "10.0.2.1"
[[static]]
source = "10.0.1.2"
group = "239.1.1.1"
iif = "eth1"
oifs = ["eth2", "eth3"]
[[static]]
group = "239.2.2.2"
iif = "eth1"
oifs = ["eth2"]
`
	tests := []struct {
		name     string
		old, new string
		want     []string
	}{
		{"equal", base, base, nil},
		{"list order within a set is ignored", base, `
[[interface]]
match = "eth*"
[[interface]]
match = "lo"
disabled = true
[igmp]
allowed-groups = ["224.1.0.0/16", "239.0.0.0/8"]
[[pim.rp]]
address = "10.0.2.1"
[[static]]
group = "239.2.2.2"
iif = "eth1"
oifs = ["eth2"]
[[static]]
source = "10.0.1.2"
group = "239.1.1.1"
iif = "eth1"
oifs = ["eth3", "eth2"]
`, nil},
		{"scalars", "", `
[router]
table = 5
idle-timeout = "300s"
[igmp]
query-interval = "60s"
version = 2
[pim]
ssm-range = "232.1.0.0/16"
spt-switchover = "never"
register-accept = ["10.0.0.0/8"]
max-holdtime = "300s"
[control]
metrics = "127.0.0.1:9591"
`, []string{
			"router.table: 0 -> 5",
			"router.idle-timeout: 210s -> 300s",
			"igmp.version: 3 -> 2",
			"igmp.query-interval: 125s -> 60s",
			"pim.ssm-range: 232.0.0.0/8 -> 232.1.0.0/16",
			"pim.spt-switchover: immediate -> never",
			"pim.register-accept: [] -> [10.0.0.0/8]",
			"pim.max-holdtime: 210s -> 300s",
			`control.metrics: "" -> 127.0.0.1:9591`,
		}},
		{"blocks", base, `
[[interface]]
match = "lo"
disabled = false
[[interface]]
match = "eth*"
pim = false
dr-priority = 3
allowed-neighbors = ["10.0.0.0/24"]
[[interface]]
match = "wg0"
[igmp]
allowed-groups = ["239.0.0.0/8"]
[[pim.rp]]
address = "10.0.2.1"
groups = ["239.0.0.0/8"]
[[pim.rp]]
address = "10.0.2.9"
[[static]]
source = "10.0.1.2"
group = "239.1.1.1"
iif = "eth4"
oifs = ["eth2"]
[[static]]
group = "239.3.3.3"
iif = "eth1"
oifs = ["eth2"]
`, []string{
			"interface eth*: pim true -> false",
			"interface eth*: dr-priority 1 -> 3",
			"interface eth*: allowed-neighbors [] -> [10.0.0.0/24]",
			"interface lo: disabled true -> false",
			"interface wg0: added",
			"interface order: [eth*, lo] -> [lo, eth*]",
			"igmp.allowed-groups: [239.0.0.0/8, 224.1.0.0/16] -> [239.0.0.0/8]",
			"pim.rp 10.0.2.1: groups [224.0.0.0/4] -> [239.0.0.0/8]",
			"pim.rp 10.0.2.9: added",
			"static 10.0.1.2,239.1.1.1: iif eth1 -> eth4",
			"static 10.0.1.2,239.1.1.1: oifs [eth2, eth3] -> [eth2]",
			"static *,239.2.2.2: removed",
			"static *,239.3.3.3: added",
		}},
		{"removals", base, "", []string{
			"interface eth*: removed",
			"interface lo: removed",
			"igmp.allowed-groups: [239.0.0.0/8, 224.1.0.0/16] -> [224.0.0.0/4]",
			"pim.rp 10.0.2.1: removed",
			"static 10.0.1.2,239.1.1.1: removed",
			"static *,239.2.2.2: removed",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(mustParse(t, tt.old), mustParse(t, tt.new))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Diff =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}

	if got, want := Diff(Default(), mustParse(t, "")), []string{"file: (embedded defaults) -> test.toml"}; !slices.Equal(got, want) {
		t.Errorf("Diff(defaults, file) = %q, want %q", got, want)
	}
}
