package conf

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary input to Parse: it must never panic, every error
// must name the file, and every accepted config must survive TOML() unchanged.
func FuzzParse(f *testing.F) {
	f.Add(readDeployConfig(f))
	f.Add(defaultsTOML)
	for _, seed := range []string{
		"",
		"[router]\ntable = 1\n[[interface]]\nmatch = \"eth*\"\n[[interface]]\nmatch = \"lo\"\ndisabled = true\n",
		"[[static]]\nsource = \"10.0.1.2\"\ngroup = \"239.1.1.1\"\niif = \"eth1\"\noifs = [\"eth2\", \"eth3\"]\n",
		"[pim]\nrp = [{address = \"10.0.0.1\", groups = [\"239.0.0.0/8\"]}]\nregister-accept = [\"10.0.0.0/8\"]\n",
		"igmp.query-interval = \"1m30s\"\nigmp.allowed-groups = [\n  \"239.0.0.0/8\", # comment\n]\n",
		"[[interface]]\nmatch = '''\nx'''\n[control]\nsocket = \"\"\"/run/a\n\"\"\"\n",
		"[control]\nsocket = \"/run/\\u00e9\"\nmetrics = \"h:1\"\n[[static]]\ngroup = \"239.1.1.1\"\niif = \"\\u0001\"\noifs = [\"\\\"\"]\n",
		"[igmp]\nversion = 2\nquery-response-interval = \"25.5s\"\n[static.x]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.toml") {
					t.Fatalf("error line %q does not name the file", line)
				}
			}
			return
		}
		out := c.TOML()
		back, err := Parse("fuzz.toml", []byte(out))
		if err != nil {
			t.Fatalf("Parse(TOML()) of an accepted config: %v\ninput:\n%s\nTOML():\n%s", err, data, out)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed the config:\ninput:\n%s\nTOML():\n%s\nagain:\n%s", data, out, back.TOML())
		}
	})
}
