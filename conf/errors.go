package conf

import (
	"fmt"
	"strconv"
	"strings"
)

// Error is one problem found in a config file. Parse returns all of them joined
// (errors.Join), so errors.As finds the first and the message lists each on its
// own line.
type Error struct {
	File   string
	Line   int    // 1-based; 0 when unknown
	Key    string // e.g. "static[1].group"; "" for TOML syntax errors
	Reason string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Key paths name a setting the way error messages show it: "igmp.query-interval",
// "interface[0].match", "static[1].oifs[0]". The line index and the decoder both
// build them with these two functions so that they agree.

func joinKey(parent, name string) string {
	if parent == "" {
		return keyName(name)
	}
	return parent + "." + keyName(name)
}

func indexKey(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// parentKey strips the last component of a key path; ok is false at the top.
// Quoted components containing '.' or '[' are cut in the wrong place, which
// only costs a lookup that misses.
func parentKey(key string) (string, bool) {
	i := strings.LastIndexAny(key, ".[")
	if i < 0 {
		return "", false
	}
	return key[:i], true
}

func keyName(name string) string {
	if name == "" {
		return `""`
	}
	for i := 0; i < len(name); i++ {
		if !isBareKeyChar(name[i]) {
			return quote(name)
		}
	}
	return name
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// printable escapes control characters, so that a message stays on one line
// whatever the input held.
func printable(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			fmt.Fprintf(&b, `\x%02x`, r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// quote renders s as a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case isControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
