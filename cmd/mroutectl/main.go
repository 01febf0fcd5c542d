// Command mroutectl shows and controls a running mrouterd through its control socket.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mrouterd/mrouterd/router/api"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run is mroutectl minus the process: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "mroutectl: %v\n", err)
		return 1
	}
	root := newCommandTree()

	var socket string
	var asJSON bool
	fs := newFlagSet(&socket, &asJSON)
	// Flags may stand anywhere on the line (mroutectl show routes --json): parse up
	// to each command word, keep it, and go on after it.
	var words []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				if err := writeUsage(stdout, root); err != nil {
					return fail(err)
				}
				return 0
			}
			return fail(fmt.Errorf("%v (try \"mroutectl help\")", err))
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		words, rest = append(words, rest[0]), rest[1:]
	}

	cmd, _, query, err := resolve(root, words)
	if err != nil {
		return fail(err)
	}
	s := &session{ctx: ctx, client: api.NewClient(socket), json: asJSON, out: stdout, query: query}
	if err := cmd.run(s); err != nil {
		return fail(err)
	}
	return 0
}

// newFlagSet defines mroutectl's flags; the completion scripts are made from it too.
func newFlagSet(socket *string, asJSON *bool) *flag.FlagSet {
	fs := flag.NewFlagSet("mroutectl", flag.ContinueOnError)
	// The flag package's own report is several lines; errors here are one.
	fs.SetOutput(io.Discard)
	fs.StringVar(socket, "s", "", "control socket")
	fs.StringVar(socket, "socket", "", "control socket")
	fs.BoolVar(asJSON, "j", false, "print the control API's JSON")
	fs.BoolVar(asJSON, "json", false, "print the control API's JSON")
	return fs
}
