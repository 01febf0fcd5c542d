package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mrouterd/mrouterd/router/api"
)

// serveUnix serves h on a unix socket in a fresh directory and returns the socket path.
func serveUnix(t *testing.T, h http.Handler) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return path
}

// cannedDaemon answers every sample view's request with its canned body.
func cannedDaemon(t *testing.T) string {
	mux := http.NewServeMux()
	for _, v := range sampleViews {
		mux.HandleFunc(v.method+" "+v.path, func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(v.body))
		})
	}
	return serveUnix(t, mux)
}

func sampleTable(t *testing.T, name string) string {
	for _, v := range sampleViews {
		if v.name == name {
			return v.table
		}
	}
	t.Fatalf("no sample view %q", name)
	return ""
}

// runCLI runs mroutectl with args and returns its exit status, stdout and stderr.
func runCLI(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	status := run(context.Background(), args, &stdout, &stderr)
	return status, stdout.String(), stderr.String()
}

func TestRunViews(t *testing.T) {
	socket := cannedDaemon(t)
	for _, v := range sampleViews {
		args := append([]string{"-s", socket}, strings.Fields(v.name)...)
		status, out, errOut := runCLI(args...)
		if status != 0 || errOut != "" || out != v.table {
			t.Errorf("%s: status %d, stderr %q, stdout:\n%s\nwant:\n%s", v.name, status, errOut, out, v.table)
		}
		// --json hands the reply over byte for byte.
		args = append([]string{"--socket", socket, "--json"}, strings.Fields(v.name)...)
		status, out, errOut = runCLI(args...)
		if status != 0 || errOut != "" || out != v.body {
			t.Errorf("%s --json: status %d, stderr %q, stdout:\n%s\nwant:\n%s", v.name, status, errOut, out, v.body)
		}
	}
}

func TestRunAbbreviatedAndDefault(t *testing.T) {
	socket := cannedDaemon(t)
	routes, status := sampleTable(t, "show routes"), sampleTable(t, "show status")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-s", socket}, routes},
		{[]string{"-s", socket, "s"}, routes},
		{[]string{"-s", socket, "s", "r"}, routes},
		{[]string{"-s", socket, "sh", "stat"}, status},
	}
	for _, c := range cases {
		if code, out, errOut := runCLI(c.args...); code != 0 || errOut != "" || out != c.want {
			t.Errorf("%q: status %d, stderr %q, stdout:\n%s", c.args, code, errOut, out)
		}
	}
}

func TestRunSocketFromEnvironment(t *testing.T) {
	t.Setenv(api.SocketEnv, cannedDaemon(t))
	if status, out, errOut := runCLI("s", "mfc"); status != 0 || out != sampleTable(t, "show mfc") {
		t.Errorf("status %d, stderr %q, stdout:\n%s", status, errOut, out)
	}
}

// A reply without a final newline gets one; nothing else about it changes.
func TestRunJSONAddsOnlyANewline(t *testing.T) {
	const body = `{ "routes" : [ ] , "added_later": {"b": 1, "a": 2} }`
	socket := serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(body))
	}))
	if status, out, _ := runCLI("-j", "-s", socket); status != 0 || out != body+"\n" {
		t.Errorf("status %d, stdout %q", status, out)
	}
}

// Flags count wherever they stand on the line.
func TestRunFlagsAnywhere(t *testing.T) {
	const body = `{"neighbors":[]}`
	socket := serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != api.PathPIMNeighbors {
			http.NotFound(w, req)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	for _, line := range [][]string{
		{"show", "pim", "neighbors", "--json", "-s", socket},
		{"show", "-s", socket, "pim", "--json", "neighbours"},
		{"-s", socket, "s", "p", "n", "-j"},
	} {
		if status, out, errOut := runCLI(line...); status != 0 || out != body+"\n" {
			t.Errorf("%q: status %d, stdout %q, stderr %q", line, status, out, errOut)
		}
	}
}

// Arguments reach the daemon as the view's query parameters; --json prints its
// answer as served. Bad arguments never reach it.
func TestRunArguments(t *testing.T) {
	const body = `{"routes":[]}`
	var asked []string
	socket := serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		asked = append(asked, req.URL.RequestURI())
		_, _ = w.Write([]byte(body))
	}))
	cases := []struct {
		line string
		uri  string
	}{
		{"show routes 239.1.1.1 --json", api.PathRoutes + "?group=239.1.1.1"},
		{"-j s r 10.1.1.2 239.1.1.1", api.PathRoutes + "?group=239.1.1.1&source=10.1.1.2"},
		{"--json show mfc 10.1.1.2", api.PathMFC + "?source=10.1.1.2"},
		{"-j s i g eth1 239.1.1.1", api.PathIGMPGroups + "?group=239.1.1.1&interface=eth1"},
		{"-j s p j 239.1.1.1", api.PathPIMJoins + "?group=239.1.1.1"},
		{"-j show rpf 10.1.1.2", api.PathRPF + "?address=10.1.1.2"},
		{"-j show routes", api.PathRoutes},
	}
	for _, c := range cases {
		asked = nil
		status, out, errOut := runCLI(append([]string{"-s", socket}, strings.Fields(c.line)...)...)
		if status != 0 || out != body+"\n" || len(asked) != 1 || asked[0] != c.uri {
			t.Errorf("%q: status %d, stdout %q, stderr %q, asked %q, want %q", c.line, status, out, errOut, asked, c.uri)
		}
	}
	asked = nil
	status, out, errOut := runCLI("-s", socket, "show", "routes", "239.1.1.300")
	if want := `mroutectl: "show routes": "239.1.1.300" is not an IPv4 address` + "\n"; status != 1 || out != "" || errOut != want || asked != nil {
		t.Errorf("bad address: status %d, stdout %q, stderr %q, asked %q", status, out, errOut, asked)
	}
}

func TestRunVersion(t *testing.T) {
	socket := cannedDaemon(t)
	if status, out, _ := runCLI("-s", socket, "version"); status != 0 || out != "mroutectl dev\nmrouterd 0.3.0\n" {
		t.Errorf("status %d, stdout %q", status, out)
	}
	if status, out, _ := runCLI("-s", socket, "-j", "v"); status != 0 || out != `{"client":"dev","daemon":"0.3.0"}`+"\n" {
		t.Errorf("--json: status %d, stdout %q", status, out)
	}
	missing := filepath.Join(t.TempDir(), "none.sock")
	status, out, errOut := runCLI("-s", missing, "version")
	if status != 1 || out != "mroutectl dev\n" || errOut != "mroutectl: mrouterd is not running (no control socket at "+missing+")\n" {
		t.Errorf("daemon down: status %d, stdout %q, stderr %q", status, out, errOut)
	}
}

func TestRunDaemonErrors(t *testing.T) {
	const bad = "/etc/mrouterd/mrouterd.toml:3: igmp.version: must be 2 or 3"
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathReload, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"` + bad + `"}` + "\n"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"no such endpoint: ` + req.Method + " " + req.URL.Path + `"}` + "\n"))
	})
	socket := serveUnix(t, mux)
	cases := map[string]string{
		"reload":           bad,
		"show igmp groups": "no such endpoint: GET /v1/igmp/groups",
	}
	for command, msg := range cases {
		for _, flags := range [][]string{{"-s", socket}, {"-s", socket, "-j"}} {
			status, out, errOut := runCLI(append(flags, strings.Fields(command)...)...)
			if status != 1 || out != "" || errOut != "mroutectl: "+msg+"\n" {
				t.Errorf("%q %s: status %d, stdout %q, stderr %q", flags, command, status, out, errOut)
			}
		}
	}
}

func TestRunNotRunning(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "mrouterd.sock")
	status, out, errOut := runCLI("-s", missing, "show", "routes")
	want := "mroutectl: mrouterd is not running (no control socket at " + missing + ")\n"
	if status != 1 || out != "" || errOut != want {
		t.Errorf("status %d, stdout %q, stderr %q", status, out, errOut)
	}
}

func TestRunUsageErrors(t *testing.T) {
	cases := map[string]string{
		"foo":     `mroutectl: unknown command "foo" (try "mroutectl help")` + "\n",
		"s i":     `mroutectl: "s i" is ambiguous: igmp, interfaces` + "\n",
		"-x s r":  `mroutectl: flag provided but not defined: -x (try "mroutectl help")` + "\n",
		"s r -x":  `mroutectl: flag provided but not defined: -x (try "mroutectl help")` + "\n",
		"-s":      `mroutectl: flag needs an argument: -s (try "mroutectl help")` + "\n",
		"help me": `mroutectl: unexpected "me" after "help"` + "\n",
	}
	for line, want := range cases {
		status, out, errOut := runCLI(strings.Fields(line)...)
		if status != 1 || out != "" || errOut != want {
			t.Errorf("%q: status %d, stdout %q, stderr %q", line, status, out, errOut)
		}
	}
}

func TestRunHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"h"}, {"-h"}, {"--help"}} {
		status, out, errOut := runCLI(args...)
		if status != 0 || errOut != "" || !strings.HasPrefix(out, "usage: mroutectl ") {
			t.Errorf("%q: status %d, stderr %q, stdout %q", args, status, errOut, out)
		}
		for _, command := range []string{"show routes [SOURCE] [GROUP]", "show igmp groups [INTERFACE] [GROUP]",
			"show rpf ADDRESS", "show pim rp", "reload", "version"} {
			if !strings.Contains(out, "\n  "+command+" ") {
				t.Errorf("%q: help does not list %q", args, command)
			}
		}
	}
}
