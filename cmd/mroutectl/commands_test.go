package main

import (
	"slices"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	cases := map[string]string{
		// The empty command line and words that stop early take the implied path.
		"":     "show routes",
		"show": "show routes",
		"s":    "show routes",
		"s ig": "show igmp groups",

		// "s r" is also the start of show rpf, which cannot run without an address.
		"show routes": "show routes", "s r": "show routes", "sh ro": "show routes",
		"show mfc": "show mfc", "s mf": "show mfc", "s mfc": "show mfc",
		"show rpf 10.1.1.2": "show rpf?address=10.1.1.2", "s rp 10.1.1.2": "show rpf?address=10.1.1.2",
		"show interfaces": "show interfaces", "sh int": "show interfaces", "s in": "show interfaces",
		"show igmp groups": "show igmp groups", "s i g": "show igmp groups", "s ig gr": "show igmp groups",
		"show pim neighbors": "show pim neighbors", "s p n": "show pim neighbors", "sh pim nei": "show pim neighbors",
		"show pim rp": "show pim rp", "s p r": "show pim rp", "s pim rp": "show pim rp",
		"show pim joins": "show pim joins", "s p j": "show pim joins",
		"show status": "show status", "s s": "show status", "s st": "show status",
		"show metrics": "show metrics", "s me": "show metrics", "s met": "show metrics",
		"reload": "reload", "rel": "reload", "restart": "restart", "res": "restart",
		"version": "version", "v": "version", "ver": "version",
		"help": "help", "h": "help",

		// Arguments, in any order: a multicast address is a group, another address
		// a source, a word an interface.
		"show routes 239.1.1.1":          "show routes?group=239.1.1.1",
		"s r 239.1.1.1":                  "show routes?group=239.1.1.1", // not an address show rpf takes
		"show routes 10.1.1.2":           "show routes?source=10.1.1.2",
		"show routes 10.1.1.2 239.1.1.1": "show routes?group=239.1.1.1&source=10.1.1.2",
		"s r 10.1.1.2 239.1.1.1":         "show routes?group=239.1.1.1&source=10.1.1.2",
		"s r 239.1.1.1 10.1.1.2":         "show routes?group=239.1.1.1&source=10.1.1.2",
		"s mf 10.1.1.2 239.1.1.1":        "show mfc?group=239.1.1.1&source=10.1.1.2",
		"show mfc 239.1.1.1":             "show mfc?group=239.1.1.1",
		"s p j 239.1.1.1":                "show pim joins?group=239.1.1.1",
		"s p j 10.1.1.2 232.1.1.1":       "show pim joins?group=232.1.1.1&source=10.1.1.2",
		"show igmp groups eth1":          "show igmp groups?interface=eth1",
		"s i g 239.1.1.1":                "show igmp groups?group=239.1.1.1",
		"s i g 239.1.1.1 cali1a2b":       "show igmp groups?group=239.1.1.1&interface=cali1a2b",
		"s i g x":                        "show igmp groups?interface=x",
	}
	root := newCommandTree()
	for line, want := range cases {
		cmd, path, query, err := resolve(root, strings.Fields(line))
		if err != nil {
			t.Errorf("%q: %v", line, err)
			continue
		}
		got := strings.Join(path, " ")
		if len(query) > 0 {
			got += "?" + query.Encode()
		}
		if got != want || cmd.run == nil {
			t.Errorf("%q resolved to %q, want %q", line, got, want)
		}
	}
}

// Every command, including any added later, answers to its full words.
func TestResolveEveryCommand(t *testing.T) {
	// What a command that needs arguments is given.
	samples := map[string][]string{"ADDRESS": {"192.0.2.1"}}
	root := newCommandTree()
	var walk func(c *command, path []string)
	walk = func(c *command, path []string) {
		if c.run != nil {
			line := path
			if c.args.min > 0 {
				line = append(slices.Clip(path), samples[c.args.usage]...)
			}
			_, got, _, err := resolve(root, line)
			if err != nil || !slices.Equal(got, path) {
				t.Errorf("%q resolved to %q, %v", line, got, err)
			}
			if c.summary == "" {
				t.Errorf("%q has no summary for help", path)
			}
			return
		}
		if len(c.sub) == 0 {
			t.Errorf("%q neither runs nor has sub commands", path)
		}
		for _, s := range c.sub {
			walk(s, append(slices.Clip(path), s.word))
		}
	}
	walk(root, nil)
}

func TestResolveErrors(t *testing.T) {
	cases := map[string]string{
		"foo":               `unknown command "foo" (try "mroutectl help")`,
		"show foo":          `unknown command "show foo" (try "mroutectl help")`,
		"s p x":             `unknown command "s p x" (try "mroutectl help")`,
		"s i":               `"s i" is ambiguous: igmp, interfaces`,
		"s m":               `"s m" is ambiguous: metrics, mfc`,
		"s p":               `"s p" needs one more word: joins, neighbors, rp`,
		"show pim":          `"show pim" needs one more word: joins, neighbors, rp`,
		"show routes extra": `"show routes": "extra" is not an IPv4 address`,
		"v 1":               `unexpected "1" after "v"`,
		"s i x":             `"s i" is ambiguous: igmp, interfaces`,
		"s m x":             `"s m" is ambiguous: metrics, mfc`,
		"show igmp foo":     `unknown command "show igmp foo" (try "mroutectl help")`,
		"show status 1":     `unexpected "1" after "show status"`,

		// Arguments.
		"s r 10.1.1.2":                    `"s r" is ambiguous: routes, rpf`, // a source, or the address of show rpf
		"s r foo":                         `"s r" is ambiguous: routes, rpf`,
		"show routes 10.1.1.2 10.1.1.3":   `"show routes": two sources: 10.1.1.2 and 10.1.1.3`,
		"show routes 239.1.1.1 239.2.2.2": `"show routes": two groups: 239.1.1.1 and 239.2.2.2`,
		"show routes 0.0.0.0":             `"show routes": 0.0.0.0 is not a source's or a router's address`,
		"show routes ff02::1":             `"show routes": "ff02::1" is not an IPv4 address`,
		"show routes eth1":                `"show routes": "eth1" is not an IPv4 address`,
		"s mf 10.1.1.2 239.1.1.1 x":       `unexpected "x" after "s mf 10.1.1.2 239.1.1.1"`,
		"show rpf":                        `"show rpf" needs ADDRESS`,
		"s rp":                            `"s rp" needs ADDRESS`,
		"show rpf 239.1.1.1":              `"show rpf": 239.1.1.1 is a multicast group address, not a source's or a router's`,
		"show rpf 10.1.1.2 10.1.1.3":      `unexpected "10.1.1.3" after "show rpf 10.1.1.2"`,
		"show rpf host.example":           `"show rpf": "host.example" is not an IPv4 address`,
		"s i g eth1 eth2":                 `"s i g": two interfaces: eth1 and eth2`,
		"s i g 239.1.1.1 239.2.2.2":       `"s i g": two groups: 239.1.1.1 and 239.2.2.2`,
		"s i g 10.1.1.2":                  `"s i g": 10.1.1.2 is not a multicast group address`,
		"s i g eth1 239.1.1.1 x":          `unexpected "x" after "s i g eth1 239.1.1.1"`,
	}
	root := newCommandTree()
	for line, want := range cases {
		_, _, _, err := resolve(root, strings.Fields(line))
		if err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %q", line, err, want)
		}
	}
}
