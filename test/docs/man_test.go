package docs

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

const root = "../.."

// manText reads a man page and undoes the roff escapes that hide words from a
// plain search: "\-" is "-", font changes and "\&" are nothing.
func manText(t *testing.T, page string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "deploy/man", page))
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReplacer(`\-`, "-", `\fB`, "", `\fI`, "", `\fR`, "", `\fP`, "", `\&`, "", `\e`, `\`).Replace(string(data))
}

// flagMethods maps the flag package's defining methods to the index of their
// name argument.
var flagMethods = map[string]int{
	"StringVar": 1, "BoolVar": 1, "IntVar": 1, "Int64Var": 1, "UintVar": 1, "Uint64Var": 1,
	"Float64Var": 1, "DurationVar": 1, "TextVar": 1, "Var": 1,
	"String": 0, "Bool": 0, "Int": 0, "Int64": 0, "Uint": 0, "Uint64": 0,
	"Float64": 0, "Duration": 0, "Func": 0, "BoolFunc": 0,
}

// definedFlags finds the flags a command's source defines: the name argument of
// every flag-defining call, a string literal or a variable ranging over a list of
// them (for _, name := range []string{"c", "config"} { fs.StringVar(&v, name, ...) }).
func definedFlags(t *testing.T, dir string) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var visit func(n ast.Node, bound map[string][]string)
	visit = func(n ast.Node, bound map[string][]string) {
		ast.Inspect(n, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.RangeStmt:
				v, ok := n.Value.(*ast.Ident)
				lit, isLit := n.X.(*ast.CompositeLit)
				if !ok || !isLit {
					return true
				}
				inner := map[string][]string{}
				for k, s := range bound {
					inner[k] = s
				}
				inner[v.Name] = nil
				for _, e := range lit.Elts {
					if s, ok := stringLit(e); ok {
						inner[v.Name] = append(inner[v.Name], s)
					}
				}
				visit(n.Body, inner)
				return false
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				i, ok := flagMethods[sel.Sel.Name]
				if !ok || len(n.Args) < 3 || i >= len(n.Args) {
					return true
				}
				switch a := n.Args[i].(type) {
				case *ast.BasicLit:
					if s, ok := stringLit(a); ok {
						names = append(names, s)
					}
				case *ast.Ident:
					names = append(names, bound[a.Name]...)
				}
			}
			return true
		})
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		visit(file, nil)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) == 0 {
		t.Fatalf("no flags found in %s", dir)
	}
	return names
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// spelled is a flag as the man pages write it: -c, --config.
func spelled(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

func mentions(text, word string) bool {
	return regexp.MustCompile(`(^|[^-\w])` + regexp.QuoteMeta(word) + `($|[^-\w])`).MatchString(text)
}

func TestManPagesDescribeEveryFlag(t *testing.T) {
	for _, c := range []struct{ dir, page string }{
		{"cmd/mrouterd", "mrouterd.8"},
		{"cmd/mroutectl", "mroutectl.8"},
	} {
		text := manText(t, c.page)
		for _, name := range definedFlags(t, c.dir) {
			if !mentions(text, spelled(name)) {
				t.Errorf("%s does not describe %s, a flag of %s", c.page, spelled(name), c.dir)
			}
		}
	}
}

// The flags found in the source are those mrouterd lists in its usage: the
// search above misses none.
func TestDefinedFlagsAreTheBinarysFlags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "mrouterd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/mrouterd/mrouterd/cmd/mrouterd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-h")
	cmd.Stderr = &stderr
	_ = cmd.Run() // -h exits 1
	var listed []string
	for _, m := range regexp.MustCompile(`(?m)^  -(\S+)`).FindAllStringSubmatch(stderr.String(), -1) {
		listed = append(listed, m[1])
	}
	slices.Sort(listed)
	if found := definedFlags(t, "cmd/mrouterd"); !slices.Equal(found, listed) {
		t.Errorf("flags found in the source %q, mrouterd -h lists %q", found, listed)
	}
}

// mroutectl's commands: every word of the tree, spelled out in full as its help
// lists them, with their arguments (help's SOURCE is the page's italic source),
// and every alias.
func TestManPageDescribesEveryCommand(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "mroutectl")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/mrouterd/mrouterd/cmd/mroutectl").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "help").Output()
	if err != nil {
		t.Fatalf("mroutectl help: %v", err)
	}
	_, commands, ok := strings.Cut(string(out), "Commands")
	commands, _, _ = strings.Cut(commands, "\n\n")
	if !ok {
		t.Fatalf("mroutectl help lists no commands:\n%s", out)
	}
	text := manText(t, "mroutectl.8")
	lines := strings.Split(commands, "\n")[1:]
	for _, l := range lines {
		command, _, _ := strings.Cut(strings.TrimSpace(l), "   ")
		command = regexp.MustCompile(`[A-Z]+`).ReplaceAllStringFunc(command, strings.ToLower)
		if !strings.Contains(text, "\n.B "+command+"\n") {
			t.Errorf("mroutectl.8 has no entry \".B %s\"", command)
		}
	}
	if len(lines) < 10 {
		t.Errorf("only %d commands in mroutectl help:\n%s", len(lines), out)
	}
	// Aliases are not in help; they are in the command table's source.
	src, err := os.ReadFile(filepath.Join(root, "cmd/mroutectl/commands.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`aliases: \[\]string\{([^}]*)\}`).FindAllStringSubmatch(string(src), -1) {
		for _, a := range strings.Split(m[1], ",") {
			a, _ = strconv.Unquote(strings.TrimSpace(a))
			if !mentions(text, a) {
				t.Errorf("mroutectl.8 does not mention the alias %q", a)
			}
		}
	}
}

// configKeys lists a TOML document's keys by table: "router" → table, ...; arrays of
// tables are named "[[interface]]", "[[pim.rp]]", other tables "[router]".
func configKeys(t *testing.T, data []byte) map[string][]string {
	t.Helper()
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	var walk func(table string, m map[string]any)
	walk = func(table string, m map[string]any) {
		for k, v := range m {
			name := strings.TrimPrefix(strings.Trim(table, "[]")+"."+k, ".")
			switch v := v.(type) {
			case map[string]any:
				walk("["+name+"]", v)
			case []map[string]any:
				for _, e := range v {
					walk("[["+name+"]]", e)
				}
			default:
				if table == "" {
					t.Errorf("key %q outside any table", k)
				}
				keys[table] = append(keys[table], k)
			}
		}
	}
	walk("", doc)
	return keys
}

// manSections splits a page at its .SS headings: heading → text under it.
func manSections(text string) map[string]string {
	sections := map[string]string{}
	parts := strings.Split(text, "\n.SS ")
	for _, p := range parts[1:] {
		heading, body, _ := strings.Cut(p, "\n")
		body, _, _ = strings.Cut(body, "\n.SH ")
		sections[strings.Trim(heading, `"`)] = body
	}
	return sections
}

func TestManPageDescribesEveryConfigKey(t *testing.T) {
	sections := manSections(manText(t, "mrouterd.toml.5"))
	defaults, err := os.ReadFile(filepath.Join(root, "conf/defaults.toml"))
	if err != nil {
		t.Fatal(err)
	}
	// The packaged config shows every key, block keys included, as "#key = value"
	// and "#[table]" lines; uncommented, it is a config with every key.
	packaged, err := os.ReadFile(filepath.Join(root, "deploy/mrouterd.toml"))
	if err != nil {
		t.Fatal(err)
	}
	packaged = regexp.MustCompile(`(?m)^#([a-z\[])`).ReplaceAll(packaged, []byte("$1"))
	total := 0
	for file, data := range map[string][]byte{"conf/defaults.toml": defaults, "deploy/mrouterd.toml": packaged} {
		for table, keys := range configKeys(t, data) {
			body, ok := sections[table]
			if !ok {
				t.Errorf("mrouterd.toml.5 has no section %s (from %s)", table, file)
				continue
			}
			for _, k := range keys {
				total++
				if !strings.Contains(body, "\n.B "+k+"\n") {
					t.Errorf("mrouterd.toml.5 has no entry \".B %s\" under %s (from %s)", k, table, file)
				}
			}
		}
	}
	if total < 40 {
		t.Errorf("only %d keys found; the search is broken", total)
	}
}

// groff renders every page without a warning, when it is installed.
func TestManPagesRender(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("no groff here")
	}
	pages, err := filepath.Glob(filepath.Join(root, "deploy/man/*.[1-8]"))
	if err != nil || len(pages) != 3 {
		t.Fatalf("man pages %q, %v", pages, err)
	}
	for _, p := range pages {
		var stderr bytes.Buffer
		cmd := exec.Command(groff, "-t", "-man", "-Tutf8", "-ww", "-z", p)
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("groff %s: %v\n%s", filepath.Base(p), err, stderr.String())
		}
	}
}
