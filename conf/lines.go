package conf

import (
	"bytes"
	"strconv"
	"strings"
)

// BurntSushi/toml keeps key positions private, so lineIndex scans the source a
// second time to learn which line defines each key path. It only runs on input
// the TOML parser has accepted, so it can skip what it does not understand
// instead of reporting it; a key it misses falls back to its table's line.

// indexLines maps key paths (see joinKey and indexKey) to the 1-based line
// where each is first defined: a header line for tables, the key's line for
// values, the element's line for array elements.
func indexLines(src []byte) map[string]int {
	s := &lineScanner{src: src, line: 1, lines: map[string]int{}, arrays: map[string]int{}}
	table := ""
	for {
		s.skipBlank()
		if s.done() {
			return s.lines
		}
		if s.src[s.pos] == '[' {
			table = s.header()
		} else {
			s.keyValue(table)
		}
		s.skipLine()
	}
}

// lineOf returns the line of key, or of its nearest ancestor that has one, or 0.
func lineOf(lines map[string]int, key string) int {
	for {
		if l, ok := lines[key]; ok {
			return l
		}
		var ok bool
		if key, ok = parentKey(key); !ok {
			return 0
		}
	}
}

type lineScanner struct {
	src    []byte
	pos    int
	line   int
	lines  map[string]int
	arrays map[string]int // array-of-tables path → elements seen so far
}

func (s *lineScanner) done() bool { return s.pos >= len(s.src) }

func (s *lineScanner) mark(key string, line int) {
	if _, ok := s.lines[key]; !ok {
		s.lines[key] = line
	}
}

func (s *lineScanner) has(prefix string) bool {
	return bytes.HasPrefix(s.src[s.pos:], []byte(prefix))
}

func (s *lineScanner) eat(c byte) bool {
	if !s.done() && s.src[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// skipSpace skips blanks within the current line.
func (s *lineScanner) skipSpace() {
	for !s.done() && (s.src[s.pos] == ' ' || s.src[s.pos] == '\t' || s.src[s.pos] == '\r') {
		s.pos++
	}
}

// skipBlank skips blanks, newlines and comments.
func (s *lineScanner) skipBlank() {
	for !s.done() {
		switch s.src[s.pos] {
		case ' ', '\t', '\r':
			s.pos++
		case '\n':
			s.pos++
			s.line++
		case '#':
			for !s.done() && s.src[s.pos] != '\n' {
				s.pos++
			}
		default:
			return
		}
	}
}

// skipLine moves past the end of the current line.
func (s *lineScanner) skipLine() {
	for !s.done() {
		s.pos++
		if s.src[s.pos-1] == '\n' {
			s.line++
			return
		}
	}
}

// header reads a [table] or [[array]] header and returns its key path, with
// each array of tables resolved to its current element.
func (s *lineScanner) header() string {
	line := s.line
	array := s.has("[[")
	if array {
		s.pos += 2
	} else {
		s.pos++
	}
	parts := s.key()
	key := ""
	for i, part := range parts {
		key = joinKey(key, part)
		if array && i == len(parts)-1 {
			n := s.arrays[key]
			s.arrays[key] = n + 1
			s.mark(key, line)
			key = indexKey(key, n)
		} else if n, ok := s.arrays[key]; ok {
			key = indexKey(key, n-1)
		}
		s.mark(key, line)
	}
	return key
}

// keyValue reads `key = value` inside table.
func (s *lineScanner) keyValue(table string) {
	line := s.line
	parts := s.key()
	if len(parts) == 0 {
		return
	}
	key := s.markKey(table, parts, line)
	s.skipSpace()
	if s.eat('=') {
		s.value(key)
	}
}

// markKey records a dotted key and each of its prefixes, which define tables.
func (s *lineScanner) markKey(table string, parts []string, line int) string {
	key := table
	for _, part := range parts {
		key = joinKey(key, part)
		s.mark(key, line)
	}
	return key
}

// key reads a possibly dotted key.
func (s *lineScanner) key() []string {
	var parts []string
	for {
		s.skipSpace()
		part, ok := s.keyPart()
		if !ok {
			return parts
		}
		parts = append(parts, part)
		s.skipSpace()
		if !s.eat('.') {
			return parts
		}
	}
}

func (s *lineScanner) keyPart() (string, bool) {
	if s.done() {
		return "", false
	}
	start := s.pos
	switch s.src[s.pos] {
	case '"':
		s.skipString()
		raw := string(s.src[start:s.pos])
		if k, err := strconv.Unquote(raw); err == nil {
			return k, true
		}
		return strings.Trim(raw, `"`), true
	case '\'':
		s.skipString()
		return strings.Trim(string(s.src[start:s.pos]), "'"), true
	}
	for !s.done() && isBareKeyChar(s.src[s.pos]) {
		s.pos++
	}
	return string(s.src[start:s.pos]), s.pos > start
}

// value skips over a value, recording the keys of inline tables and the
// elements of arrays under key.
func (s *lineScanner) value(key string) {
	s.skipSpace()
	if s.done() {
		return
	}
	switch s.src[s.pos] {
	case '{':
		s.pos++
		for {
			s.skipBlank()
			if s.done() || s.eat('}') {
				return
			}
			line := s.line
			parts := s.key()
			if len(parts) == 0 {
				return
			}
			sub := s.markKey(key, parts, line)
			s.skipSpace()
			if !s.eat('=') {
				return
			}
			s.value(sub)
			s.skipBlank()
			s.eat(',')
		}
	case '[':
		s.pos++
		for i := 0; ; i++ {
			s.skipBlank()
			if s.done() || s.eat(']') {
				return
			}
			elem := indexKey(key, i)
			s.mark(elem, s.line)
			start := s.pos
			s.value(elem)
			if s.pos == start {
				return
			}
			s.skipBlank()
			s.eat(',')
		}
	case '"', '\'':
		s.skipString()
	default:
		for !s.done() && !strings.ContainsRune(" \t\r\n,]}#", rune(s.src[s.pos])) {
			s.pos++
		}
	}
}

// skipString moves past a basic or literal string, single- or multi-line.
func (s *lineScanner) skipString() {
	q := s.src[s.pos]
	escapes := q == '"'
	if delim := strings.Repeat(string(q), 3); s.has(delim) {
		s.pos += 3
		for !s.done() {
			switch {
			case s.has(delim):
				s.pos += 3
				// A string may end in up to two quotes, seen here as quotes after the delimiter.
				if s.eat(q) {
					s.eat(q)
				}
				return
			case s.src[s.pos] == '\n':
				s.line++
			case escapes && s.src[s.pos] == '\\' && s.pos+1 < len(s.src):
				s.pos++
				if s.src[s.pos] == '\n' {
					s.line++
				}
			}
			s.pos++
		}
		return
	}
	s.pos++
	for !s.done() && s.src[s.pos] != '\n' {
		c := s.src[s.pos]
		s.pos++
		if c == q {
			return
		}
		if escapes && c == '\\' && !s.done() && s.src[s.pos] != '\n' {
			s.pos++
		}
	}
}
