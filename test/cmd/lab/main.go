// Command lab runs containerlab topology files on network namespaces and veth pairs.
//
//	lab up [-prefix P] [-bin DIR] [-state DIR] [-daemon-args ARGS] [-v] FILE
//	lab down [-prefix P | -all]
//	lab exec [-prefix P] NODE COMMAND [ARG...]
//	lab list
//	lab nodes [-prefix P] [-routers | -hosts]
//
// up prints the new lab's prefix. down and exec may omit -prefix while one lab runs.
// exec becomes the command, in the node's namespace, and exits with its status.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/mrouterd/mrouterd/test/lab"
)

const usage = `usage:
  lab up [-prefix P] [-bin DIR] [-state DIR] [-daemon-args ARGS] [-v] FILE
  lab down [-prefix P | -all]
  lab exec [-prefix P] NODE COMMAND [ARG...]
  lab list
  lab nodes [-prefix P] [-routers | -hosts]`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(1)
	}
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		// One line, whatever the error holds (a daemon's log tail spans several).
		fmt.Fprintln(os.Stderr, "lab: "+strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", " | "))
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	switch args[0] {
	case "up":
		return up(args[1:], stdout, stderr)
	case "down":
		return down(args[1:])
	case "exec":
		return execIn(args[1:])
	case "list":
		return list(args[1:], stdout)
	case "nodes":
		return nodes(args[1:], stdout)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q (want up, down, exec or list; lab -h shows usage)", args[0])
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("lab "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors come back from Parse and are printed once by main
	return fs
}

func up(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("up")
	var opts lab.Options
	fs.StringVar(&opts.Prefix, "prefix", "", "namespace prefix (default: random)")
	fs.StringVar(&opts.BinDir, "bin", "", "directory holding mrouterd and mroutectl")
	fs.StringVar(&opts.StateDir, "state", "", "state directory (default "+lab.RegistryDir+"/PREFIX)")
	daemonArgs := fs.String("daemon-args", "", "extra arguments for every mrouterd, space separated")
	verbose := fs.Bool("v", false, "print progress on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("lab up needs one topology file")
	}
	opts.DaemonArgs = strings.Fields(*daemonArgs)
	if *verbose {
		opts.Log = stderr
	}
	topo, err := lab.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	l, err := lab.Up(topo, opts)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, l.Prefix)
	return nil
}

func down(args []string) error {
	fs := newFlagSet("down")
	prefix := fs.String("prefix", "", "lab to tear down")
	all := fs.Bool("all", false, "tear down every lab")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("lab down takes no arguments, got %q", fs.Args())
	}
	var prefixes []string
	switch {
	case *all && *prefix != "":
		return errors.New("lab down takes -prefix or -all, not both")
	case *all:
		var err error
		if prefixes, err = lab.List(); err != nil {
			return err
		}
	default:
		p, err := resolvePrefix(*prefix)
		if err != nil {
			return err
		}
		prefixes = []string{p}
	}
	var errs []error
	for _, p := range prefixes {
		l, err := lab.Attach(p)
		if err == nil {
			err = l.Down()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

func execIn(args []string) error {
	fs := newFlagSet("exec")
	prefix := fs.String("prefix", "", "lab to run in")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		return errors.New("lab exec needs a node and a command")
	}
	l, err := attach(*prefix)
	if err != nil {
		return err
	}
	node := fs.Arg(0)
	if _, ok := l.Topo.Nodes[node]; !ok {
		return fmt.Errorf("no node %q in lab %s (nodes: %s)", node, l.Prefix, strings.Join(l.Topo.NodeOrder, ", "))
	}
	cmd := l.Command(node, fs.Args()[1:]...)
	if cmd.Err != nil {
		return cmd.Err
	}
	// Become the command, so that its exit status and the signals sent to it need no
	// relaying. It runs in the caller's directory rather than the topology's.
	return syscall.Exec(cmd.Path, cmd.Args, cmd.Env)
}

func list(args []string, stdout io.Writer) error {
	if len(args) != 0 {
		return errors.New("lab list takes no arguments")
	}
	prefixes, err := lab.List()
	if err != nil {
		return err
	}
	for _, p := range prefixes {
		l, err := lab.Attach(p)
		if err != nil {
			fmt.Fprintf(stdout, "%s\t?\t%v\n", p, err)
			continue
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\n", p, l.Topo.Name, l.Topo.Path)
	}
	return nil
}

// nodes prints a lab's node names, one a line, in file order: all of them, only the
// routers (nodes running mrouterd) or only the hosts.
func nodes(args []string, stdout io.Writer) error {
	fs := newFlagSet("nodes")
	prefix := fs.String("prefix", "", "lab to list")
	routers := fs.Bool("routers", false, "only nodes that run mrouterd")
	hosts := fs.Bool("hosts", false, "only nodes that do not run mrouterd")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || (*routers && *hosts) {
		return errors.New("lab nodes takes -prefix and one of -routers or -hosts")
	}
	l, err := attach(*prefix)
	if err != nil {
		return err
	}
	for _, name := range l.Topo.NodeOrder {
		daemon := l.Topo.Nodes[name].Daemon()
		if (*routers && !daemon) || (*hosts && daemon) {
			continue
		}
		fmt.Fprintln(stdout, name)
	}
	return nil
}

// attach opens the lab named by prefix, or the only running one when prefix is empty.
func attach(prefix string) (*lab.Lab, error) {
	p, err := resolvePrefix(prefix)
	if err != nil {
		return nil, err
	}
	return lab.Attach(p)
}

// resolvePrefix returns prefix, or the only running lab's when prefix is empty.
func resolvePrefix(prefix string) (string, error) {
	if prefix != "" {
		return prefix, nil
	}
	prefixes, err := lab.List()
	if err != nil {
		return "", err
	}
	switch len(prefixes) {
	case 0:
		return "", errors.New("no lab is running")
	case 1:
		return prefixes[0], nil
	}
	return "", fmt.Errorf("%d labs are running (%s): pick one with -prefix", len(prefixes), strings.Join(prefixes, ", "))
}
