package docs

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The README's "`mroutectl A` is `mroutectl B`" examples hold: A asks the daemon
// what B asks and prints what B prints.
func TestReadmeCommandExamples(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`\s+`).ReplaceAllString(string(data), " ")
	examples := regexp.MustCompile("`(mroutectl [^`]+)` is `(mroutectl [^`]+)`").FindAllStringSubmatch(text, -1)
	if len(examples) < 4 {
		t.Fatalf("only %d examples found in README.md", len(examples))
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "mroutectl")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/mrouterd/mrouterd/cmd/mroutectl").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	socket := filepath.Join(dir, "ctl.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var asked []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		asked = append(asked, req.Method+" "+req.URL.RequestURI())
		mu.Unlock()
		_, _ = w.Write([]byte("{}\n"))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	// run returns what a command line asked the daemon and printed.
	run := func(line string) ([]string, string) {
		mu.Lock()
		asked = nil
		mu.Unlock()
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, append([]string{"-s", socket}, strings.Fields(line)[1:]...)...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Errorf("%s: %v: %s", line, err, stderr.String())
		}
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(asked), stdout.String()
	}
	for _, e := range examples {
		askedA, outA := run(e[1])
		askedB, outB := run(e[2])
		if len(askedB) == 0 || !slices.Equal(askedA, askedB) || outA != outB {
			t.Errorf("README: `%s` asks %q, `%s` asks %q (printing the same: %v)", e[1], askedA, e[2], askedB, outA == outB)
		}
	}
}
