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

		"show routes": "show routes", "s r": "show routes", "sh ro": "show routes",
		"show mfc": "show mfc", "s mf": "show mfc", "s mfc": "show mfc",
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
	}
	root := newCommandTree()
	for line, want := range cases {
		cmd, path, err := resolve(root, strings.Fields(line))
		if err != nil {
			t.Errorf("%q: %v", line, err)
			continue
		}
		if got := strings.Join(path, " "); got != want || cmd.run == nil {
			t.Errorf("%q resolved to %q, want %q", line, got, want)
		}
	}
}

// Every command, including any added later, answers to its full words.
func TestResolveEveryCommand(t *testing.T) {
	root := newCommandTree()
	var walk func(c *command, path []string)
	walk = func(c *command, path []string) {
		if c.run != nil {
			_, got, err := resolve(root, path)
			if err != nil || !slices.Equal(got, path) {
				t.Errorf("%q resolved to %q, %v", path, got, err)
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
		"show routes extra": `unexpected "extra" after "show routes"`,
		"v 1":               `unexpected "1" after "v"`,
		"s i g x":           `unexpected "x" after "s i g"`,
		"s i x":             `"s i" is ambiguous: igmp, interfaces`,
		"s m x":             `"s m" is ambiguous: metrics, mfc`,
		"show igmp foo":     `unknown command "show igmp foo" (try "mroutectl help")`,
	}
	root := newCommandTree()
	for line, want := range cases {
		_, _, err := resolve(root, strings.Fields(line))
		if err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %q", line, err, want)
		}
	}
}
