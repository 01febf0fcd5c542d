package conf

import "testing"

func TestIndexLines(t *testing.T) {
	const src = `# comment [not] = a header
top = 1
[a]
s = """
x = 1
[b]
"""
lit = '''
y = 2'''
esc = "quote \" # [c]"
"quoted.key" = 1
'lit key' = 2
d.e.f = 3 # comment
inline = { g = 1, h = { i = 2 } }
arr = [
  1,
  [2, 3],
  { j = 4 },
]

[[arr2]]
k = 1
[[arr2]]
k = 2
[arr2.sub]
l = 3
[[arr2.deep]]
m = 4
[a.after]
n = 5
`
	want := map[string]int{
		"top":               2,
		"a":                 3,
		"a.s":               4,
		"a.lit":             8,
		"a.esc":             10,
		`a."quoted.key"`:    11,
		`a."lit key"`:       12,
		"a.d":               13,
		"a.d.e.f":           13,
		"a.inline.g":        14,
		"a.inline.h.i":      14,
		"a.arr":             15,
		"a.arr[0]":          16,
		"a.arr[1]":          17,
		"a.arr[1][1]":       17,
		"a.arr[2].j":        18,
		"arr2":              21,
		"arr2[0]":           21,
		"arr2[0].k":         22,
		"arr2[1]":           23,
		"arr2[1].k":         24,
		"arr2[1].sub":       25,
		"arr2[1].sub.l":     26,
		"arr2[1].deep[0]":   27,
		"arr2[1].deep[0].m": 28,
		"a.after.n":         30,
	}
	lines := indexLines([]byte(src))
	for key, line := range want {
		if lines[key] != line {
			t.Errorf("line of %s = %d, want %d", key, lines[key], line)
		}
	}
	for _, bogus := range []string{"x", "b", "y", "c", "not", "a.x", "a.y"} {
		if l, ok := lines[bogus]; ok {
			t.Errorf("%s found at line %d inside a string or comment", bogus, l)
		}
	}
	if got := lineOf(lines, "arr2[1].sub.l.zz"); got != 26 {
		t.Errorf("lineOf falls back to %d, want 26", got)
	}
	if got := lineOf(lines, "nowhere.x"); got != 0 {
		t.Errorf("lineOf(unknown) = %d, want 0", got)
	}
}
