package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// everyWord lists each word and alias of the tree, and each full command line.
func everyWord(root *command) (words, lines []string) {
	var walk func(c *command, path []string)
	walk = func(c *command, path []string) {
		if c.run != nil {
			lines = append(lines, strings.Join(path, " "))
		}
		for _, s := range c.sub {
			words = append(words, s.word)
			words = append(words, s.aliases...)
			walk(s, append(slices.Clip(path), s.word))
		}
	}
	walk(root, nil)
	return words, lines
}

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	status, out, errOut := runCLI("completion", shell)
	if status != 0 || errOut != "" {
		t.Fatalf("completion %s: status %d, stderr %q", shell, status, errOut)
	}
	return out
}

// Every command word, alias and flag is in both scripts.
func TestCompletionMentionsEverything(t *testing.T) {
	words, _ := everyWord(newCommandTree())
	flags, err := completionFlags()
	if err != nil {
		t.Fatal(err)
	}
	for _, shell := range []string{"bash", "zsh"} {
		script := completionScript(t, shell)
		for _, w := range words {
			if !regexp.MustCompile(`[ '(]` + regexp.QuoteMeta(w) + `=` + `[a-z]`).MatchString(script) {
				t.Errorf("%s script does not offer %q", shell, w)
			}
		}
		for _, f := range flags {
			if !strings.Contains(script, f.spelling) {
				t.Errorf("%s script does not know the flag %s", shell, f.spelling)
			}
		}
	}
	if s := completionScript(t, "zsh"); !strings.HasPrefix(s, "#compdef mroutectl\n") {
		t.Errorf("zsh script does not start with #compdef: %q", s[:min(len(s), 40)])
	}
	// Abbreviated, like every command.
	if status, out, _ := runCLI("comp", "b"); status != 0 || out != completionScript(t, "bash") {
		t.Errorf(`"comp b" did not print the bash script`)
	}
}

func bashOrSkip(t *testing.T) string {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash here")
	}
	return bash
}

func TestCompletionBashSyntax(t *testing.T) {
	bash := bashOrSkip(t)
	path := filepath.Join(t.TempDir(), "mroutectl.bash")
	if err := os.WriteFile(path, []byte(completionScript(t, "bash")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bash, "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
}

// The bash script completes as mroutectl resolves: a line is typed up to the cursor,
// at the end of its last word.
func TestCompletionBash(t *testing.T) {
	bash := bashOrSkip(t)
	path := filepath.Join(t.TempDir(), "mroutectl.bash")
	if err := os.WriteFile(path, []byte(completionScript(t, "bash")), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"mroutectl ":                   "completion help reload restart show version",
		"mroutectl s":                  "show",
		"mroutectl show ":              "fabric igmp interfaces metrics mfc pim routes rpf status",
		"mroutectl s i":                "igmp interfaces",
		"mroutectl s p ":               "joins neighbors rp",
		"mroutectl -j s p n":           "neighbors",
		"mroutectl s --json p neighbo": "neighbors",
		"mroutectl s p neighbou":       "neighbours",
		"mroutectl -s /tmp/x.sock s ":  "fabric igmp interfaces metrics mfc pim routes rpf status",
		"mroutectl s r":                "routes rpf",
		"mroutectl s ig ":              "groups",
		"mroutectl show routes ":       "",
		"mroutectl s x ":               "",
		"mroutectl s m ":               "", // ambiguous: metrics, mfc
		"mroutectl completion ":        "bash zsh",
		"mroutectl --j":                "--json",
		"mroutectl show --s":           "--socket",
		// Arguments end the command words; flags still follow them.
		"mroutectl show routes 239.1.1.1 ":           "",
		"mroutectl s r 10.1.1.2 239.1.1.1 --j":       "--json",
		"mroutectl s i g eth1 -s /tmp/x.sock --js":   "--json",
		"mroutectl show rpf 10.1.1.2 ":               "",
		"mroutectl show igmp groups eth1 239.1.1.1 ": "",
	}
	for line, want := range cases {
		words := strings.Split(line, " ")
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := fmt.Sprintf(`source %s
COMP_WORDS=(%s)
COMP_CWORD=%d
_mroutectl
printf '%%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' '
`, path, strings.Join(quoted, " "), len(words)-1)
		out, err := exec.Command(bash, "--norc", "-c", prog).CombinedOutput()
		if err != nil {
			t.Errorf("%q: %v\n%s", line, err, out)
			continue
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("%q completes to %q, want %q", line, got, want)
		}
	}
}

func TestCompletionZshSyntax(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("no zsh here")
	}
	path := filepath.Join(t.TempDir(), "_mroutectl")
	if err := os.WriteFile(path, []byte(completionScript(t, "zsh")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(zsh, "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
}
