package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/mrouterd/mrouterd/router/api"
)

// session is what a command runs with.
type session struct {
	ctx    context.Context
	client *api.Client
	json   bool
	out    io.Writer
	query  url.Values // what the command's arguments ask the view for
}

// command is one word of the command tree. Inner words have sub; the last word of
// a command has run, and may take arguments after its words.
type command struct {
	word    string
	aliases []string // other spellings, taken like word but not listed in help
	summary string   // one line for help, on the last word only
	implied string   // the sub word taken when the user's words stop here
	sub     []*command
	args    arguments
	run     func(*session) error
}

// arguments are what a command takes after its words: between min and max of
// them, which parse turns into the control API's query parameters. The zero value
// takes none.
type arguments struct {
	usage    string // for help: "[SOURCE] [GROUP]"
	min, max int
	parse    func([]string) (url.Values, error)
}

// sourceGroup and interfaceGroup narrow a table. Their arguments may come in any
// order, each kind at most once: what they are says what they stand for.
var (
	sourceGroup    = arguments{usage: "[SOURCE] [GROUP]", max: 2, parse: byKind(api.ParamSource, api.ParamGroup)}
	interfaceGroup = arguments{usage: "[INTERFACE] [GROUP]", max: 2, parse: byKind(api.ParamInterface, api.ParamGroup)}
)

// byKind reads arguments into the query parameters they are, of those named: a
// multicast address is a group, another address a source, a word an interface.
func byKind(params ...string) func([]string) (url.Values, error) {
	return func(args []string) (url.Values, error) {
		q := url.Values{}
		for _, arg := range args {
			kind := api.ParamInterface
			if a, err := netip.ParseAddr(arg); err == nil {
				kind = api.ParamSource
				if a.IsMulticast() {
					kind = api.ParamGroup
				}
			}
			var err error
			switch kind {
			case api.ParamGroup:
				_, err = api.ParseGroup(arg)
			case api.ParamSource:
				_, err = api.ParseUnicast(arg)
			}
			switch {
			case err != nil:
			case !slices.Contains(params, kind) && kind == api.ParamInterface:
				err = fmt.Errorf("%q is not an IPv4 address", arg)
			case !slices.Contains(params, kind): // a source where only a group will do
				err = fmt.Errorf("%s is not a multicast group address", arg)
			case q.Has(kind):
				err = fmt.Errorf("two %ss: %s and %s", kind, q.Get(kind), arg)
			}
			if err != nil {
				return nil, err
			}
			q.Set(kind, arg)
		}
		return q, nil
	}
}

// oneAddress reads the one address show rpf needs.
var oneAddress = arguments{usage: "ADDRESS", min: 1, max: 1, parse: func(args []string) (url.Values, error) {
	if _, err := api.ParseUnicast(args[0]); err != nil {
		return nil, err
	}
	return url.Values{api.ParamAddress: args}, nil
}}

// newCommandTree builds mroutectl's commands. An empty command line runs root's
// implied path, show routes.
func newCommandTree() *command {
	help := &command{word: "help", summary: "this text"}
	bash := &command{word: "bash", summary: "a bash completion script for mroutectl"}
	zsh := &command{word: "zsh", summary: "a zsh completion script for mroutectl"}
	root := &command{implied: "show", sub: []*command{
		{word: "show", implied: "routes", sub: []*command{
			{word: "routes", summary: "the multicast routing table (the default command)", args: sourceGroup,
				run: fetch(http.MethodGet, api.PathRoutes, decoded(renderRoutes))},
			{word: "mfc", summary: "the kernel's multicast forwarding cache, read back from the kernel", args: sourceGroup,
				run: fetch(http.MethodGet, api.PathMFC, decoded(renderMFC))},
			{word: "rpf", summary: "the reverse path to an address: interface, neighbour, and where it comes from", args: oneAddress,
				run: fetch(http.MethodGet, api.PathRPF, decoded(renderRPF))},
			{word: "interfaces", summary: "interfaces, their VIFs, protocols and counters",
				run: fetch(http.MethodGet, api.PathInterfaces, decoded(renderInterfaces))},
			{word: "igmp", implied: "groups", sub: []*command{
				{word: "groups", summary: "group memberships learned by IGMP, per interface", args: interfaceGroup,
					run: fetch(http.MethodGet, api.PathIGMPGroups, decoded(renderIGMPGroups))},
			}},
			{word: "pim", sub: []*command{
				{word: "neighbors", aliases: []string{"neighbours"}, summary: "PIM neighbors per interface",
					run: fetch(http.MethodGet, api.PathPIMNeighbors, decoded(renderPIMNeighbors))},
				{word: "rp", summary: "group ranges, their rendezvous point and its origin",
					run: fetch(http.MethodGet, api.PathPIMRP, decoded(renderRPMappings))},
				{word: "joins", summary: "join/prune state: upstream, downstream per interface, source-side state", args: sourceGroup,
					run: fetch(http.MethodGet, api.PathPIMJoins, decoded(renderPIMJoins))},
			}},
			{word: "fabric", summary: "the node fabric: this node, its peers, what each joined and advertises",
				run: fetch(http.MethodGet, api.PathFabric, decoded(renderFabric))},
			{word: "status", summary: "version, uptime, configuration, counters and warnings",
				run: fetch(http.MethodGet, api.PathStatus, decoded(renderStatus))},
			{word: "metrics", summary: "the Prometheus metrics, as text",
				run: fetch(http.MethodGet, api.PathMetrics, writeBody)},
		}},
		{word: "reload", summary: "re-read the configuration file and apply the difference",
			run: runReload},
		{word: "restart", summary: "restart mrouterd in place: the program on disk takes over the kernel's table, which forwards throughout",
			run: runRestart},
		{word: "version", summary: "the versions of mroutectl and of the running mrouterd",
			run: runVersion},
		{word: "completion", sub: []*command{bash, zsh}},
		help,
	}}
	// help and completion walk the tree they belong to, so they can only run once the
	// tree exists.
	help.run = func(s *session) error { return writeUsage(s.out, root) }
	bash.run = func(s *session) error { return writeBashCompletion(s.out, root) }
	zsh.run = func(s *session) error { return writeZshCompletion(s.out, root) }
	return root
}

// resolve finds the command named by args, each word any unique prefix of a word at
// its level, and returns it with its full words and the query its arguments make.
// A prefix shared by several words still resolves when the words after it fit under
// only one of them ("s i g": igmp has a g, interfaces has nothing more; "s r": only
// routes runs without an address).
func resolve(root *command, args []string) (*command, []string, url.Values, error) {
	r, err := resolveFrom(root, args, 0)
	if err != nil {
		return nil, nil, nil, err
	}
	return r.cmd, r.path, r.query, nil
}

// resolved is a command line read: the command, its full words, its query.
type resolved struct {
	cmd   *command
	path  []string
	query url.Values
}

// resolveError says why args name no command. at is the index of the word at fault:
// of several readings of a shared prefix, the one that got furthest explains best.
type resolveError struct {
	at  int
	msg string
}

func (e *resolveError) Error() string { return e.msg }

// resolveFrom resolves args[done:] under node, which args[:done] led to.
func resolveFrom(node *command, args []string, done int) (resolved, *resolveError) {
	fail := func(at int, format string, a ...any) (resolved, *resolveError) {
		return resolved{}, &resolveError{at: at, msg: fmt.Sprintf(format, a...)}
	}
	typed := strings.Join(args[:min(done+1, len(args))], " ")
	if node.run != nil {
		query, err := node.args.read(args, done)
		return resolved{cmd: node, query: query}, err
	}
	word, next := node.implied, done // an implied word consumes nothing the user typed
	if done < len(args) {
		word, next = args[done], done+1
	} else if word == "" {
		return fail(done, "%q needs one more word: %s", typed, strings.Join(words(node.sub), ", "))
	}
	candidates := node.children(word)
	if len(candidates) == 0 {
		return fail(done, "unknown command %q (try \"mroutectl help\")", typed)
	}
	var fits []*command
	var found resolved
	var furthest *resolveError
	tied := false
	for _, c := range candidates {
		r, err := resolveFrom(c, args, next)
		switch {
		case err == nil:
			fits, found = append(fits, c), r
			found.path = append([]string{c.word}, r.path...)
		case furthest == nil || err.at > furthest.at:
			furthest, tied = err, false
		case err.at == furthest.at:
			tied = true
		}
	}
	switch {
	case len(fits) == 1:
		return found, nil
	case len(fits) == 0 && !tied:
		return resolved{}, furthest
	case len(fits) == 0:
		fits = candidates
	}
	return fail(done, "%q is ambiguous: %s", typed, strings.Join(words(fits), ", "))
}

// read takes args[done:], the words after a command's, as its arguments.
func (a arguments) read(args []string, done int) (url.Values, *resolveError) {
	fail := func(at int, format string, v ...any) (url.Values, *resolveError) {
		return nil, &resolveError{at: at, msg: fmt.Sprintf(format, v...)}
	}
	typed, rest := strings.Join(args[:done], " "), args[done:]
	switch {
	case len(rest) > a.max:
		return fail(done+a.max, "unexpected %q after %q", rest[a.max], strings.Join(args[:done+a.max], " "))
	case len(rest) < a.min:
		return fail(len(args), "%q needs %s", typed, a.usage)
	case len(rest) == 0:
		return nil, nil
	}
	q, err := a.parse(rest)
	if err != nil {
		return fail(done, "%q: %v", typed, err)
	}
	return q, nil
}

// children returns the sub command that word names exactly, else every sub command
// whose word starts with it.
func (c *command) children(word string) []*command {
	var candidates []*command
	for _, s := range c.sub {
		names := append([]string{s.word}, s.aliases...)
		if slices.Contains(names, word) {
			return []*command{s}
		}
		// A prefix of a word and of its alias ("neighbo") names one command.
		if slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, word) }) {
			candidates = append(candidates, s)
		}
	}
	return candidates
}

func words(cs []*command) []string {
	ws := make([]string, len(cs))
	for i, c := range cs {
		ws[i] = c.word
	}
	slices.Sort(ws)
	return ws
}

// fetch makes a command that requests path and prints the reply: as served with
// --json, else through render.
func fetch(method, path string, render func(io.Writer, []byte) error) func(*session) error {
	return func(s *session) error {
		target := path
		if len(s.query) > 0 {
			target += "?" + s.query.Encode()
		}
		body, err := s.client.Raw(s.ctx, method, target)
		if err != nil {
			return err
		}
		if s.json {
			return writeBody(s.out, body)
		}
		return render(s.out, body)
	}
}

// writeBody prints a reply unchanged, ending it with a newline unless it has one.
func writeBody(w io.Writer, body []byte) error {
	if len(body) > 0 && body[len(body)-1] != '\n' {
		body = append(body, '\n')
	}
	_, err := w.Write(body)
	return err
}

// decoded makes render take a reply as served, decoding its JSON first.
func decoded[T any](render func(io.Writer, T) error) func(io.Writer, []byte) error {
	return func(w io.Writer, body []byte) error {
		var v T
		if err := json.Unmarshal(body, &v); err != nil {
			return fmt.Errorf("unexpected reply from mrouterd: %w", err)
		}
		return render(w, v)
	}
}

// versionReply is what version prints with --json.
type versionReply struct {
	Client string `json:"client"`
	Daemon string `json:"daemon"`
}

func runVersion(s *session) error {
	if !s.json {
		// The client's own version is worth printing even when the daemon is down.
		fmt.Fprintf(s.out, "mroutectl %s\n", version)
	}
	var st api.Status
	if err := s.client.Get(s.ctx, api.PathStatus, &st); err != nil {
		return err
	}
	if s.json {
		return json.NewEncoder(s.out).Encode(versionReply{Client: version, Daemon: st.Version})
	}
	_, err := fmt.Fprintf(s.out, "mrouterd %s\n", dash(st.Version))
	return err
}

// writeUsage lists every command by its full words, then the flags.
func writeUsage(w io.Writer, root *command) error {
	var rows [][2]string
	var walk func(c *command, path []string)
	walk = func(c *command, path []string) {
		if c.run != nil {
			rows = append(rows, [2]string{strings.TrimSpace(strings.Join(path, " ") + " " + c.args.usage), c.summary})
		}
		for _, s := range c.sub {
			walk(s, append(slices.Clip(path), s.word))
		}
	}
	walk(root, nil)
	flags := [][2]string{
		{"-s, --socket PATH", fmt.Sprintf("control socket (default $%s, else %s)", api.SocketEnv, api.DefaultSocket)},
		{"-j, --json", "print the control API's JSON as served"},
	}
	// One width for both lists, so their descriptions line up.
	width := 0
	for _, r := range append(slices.Clip(rows), flags...) {
		width = max(width, len(r[0]))
	}
	var b strings.Builder
	b.WriteString("usage: mroutectl [-s PATH] [-j|--json] [COMMAND]\n\n")
	b.WriteString("Commands (any unique prefix of each word will do: \"s r\" is \"show routes\"):\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "  %-*s   %s\n", width, r[0], r[1])
	}
	b.WriteString("\nSOURCE, GROUP and INTERFACE narrow a table, in any order: a multicast address\n" +
		"is the GROUP, another address the SOURCE.\n")
	b.WriteString("\nFlags:\n")
	for _, r := range flags {
		fmt.Fprintf(&b, "  %-*s   %s\n", width, r[0], r[1])
	}
	_, err := io.WriteString(w, b.String())
	return err
}
