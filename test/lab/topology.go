// Package lab runs containerlab topology files on network namespaces and veth pairs,
// without a container engine: every node is a named network namespace, every link a
// veth pair, and nodes whose image names mrouterd run the daemon.
package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Topology is a loaded and validated topology file.
type Topology struct {
	Name      string
	Dir       string // directory of the topology file; relative bind paths start here
	Path      string // absolute path of the topology file
	Nodes     map[string]*Node
	NodeOrder []string // node names in file order
	Links     []Link
}

// Node is one node with the kind and defaults sections already applied.
type Node struct {
	Name  string
	Kind  string
	Image string
	Exec  []string
	Binds []Bind
	Env   map[string]string
}

// Bind maps a host file into a node, as containerlab's "host:container[:mode]".
type Bind struct {
	Host      string // absolute
	Container string
}

// Link is a veth pair between two endpoints.
type Link struct {
	A, B Endpoint
}

// Endpoint is one end of a link: an interface of a node.
type Endpoint struct {
	Node, Iface string
}

func (e Endpoint) String() string { return e.Node + ":" + e.Iface }

// DaemonConfigPath is where a node's mrouterd configuration is bound, as in the image.
const DaemonConfigPath = "/etc/mrouterd/mrouterd.toml"

// Daemon reports whether the node runs mrouterd: its image names mrouterd.
func (n *Node) Daemon() bool { return strings.Contains(n.Image, "mrouterd") }

// DaemonConfig returns the host file bound to DaemonConfigPath, or "" when there is none.
func (n *Node) DaemonConfig() string {
	for _, b := range n.Binds {
		if b.Container == DaemonConfigPath {
			return b.Host
		}
	}
	return ""
}

// nodeSpec is a node, kind or defaults section as written in the file.
type nodeSpec struct {
	Kind  string            `yaml:"kind"`
	Image string            `yaml:"image"`
	Exec  []string          `yaml:"exec"`
	Binds []string          `yaml:"binds"`
	Env   map[string]string `yaml:"env"`
}

type fileSpec struct {
	Name     string `yaml:"name"`
	Topology struct {
		Defaults nodeSpec            `yaml:"defaults"`
		Kinds    map[string]nodeSpec `yaml:"kinds"`
		Nodes    yaml.Node           `yaml:"nodes"` // a node, to keep file order and lines
		Links    []yaml.Node         `yaml:"links"`
	} `yaml:"topology"`
}

type linkSpec struct {
	Endpoints []string `yaml:"endpoints"`
}

// nodeNamePattern keeps node names usable in namespace names and state paths.
var nodeNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// maxIfaceLen is the kernel's limit on interface names (IFNAMSIZ less the NUL).
const maxIfaceLen = 15

// Load reads and validates a topology file. Errors name the file and, where they can,
// the line.
func Load(path string) (*Topology, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, err
	}
	topo, err := parse(abs, data)
	if err != nil {
		return nil, fmt.Errorf("%s%w", path, err)
	}
	return topo, nil
}

// lineError is an error at a line of the file; Load puts the file name in front.
type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string {
	if e.line > 0 {
		return fmt.Sprintf(":%d: %s", e.line, e.msg)
	}
	return ": " + e.msg
}

func errAt(line int, format string, args ...any) error {
	return &lineError{line: line, msg: fmt.Sprintf(format, args...)}
}

func parse(path string, data []byte) (*Topology, error) {
	var spec fileSpec
	if err := yaml.Unmarshal(data, &spec); err != nil {
		return nil, errAt(0, "%v", err)
	}
	topo := &Topology{
		Name:  spec.Name,
		Dir:   filepath.Dir(path),
		Path:  path,
		Nodes: map[string]*Node{},
	}
	if topo.Name == "" {
		topo.Name = strings.SplitN(filepath.Base(path), ".", 2)[0]
	}

	nodes := &spec.Topology.Nodes
	if nodes.Kind == 0 || len(nodes.Content) == 0 {
		return nil, errAt(0, "topology has no nodes")
	}
	if nodes.Kind != yaml.MappingNode {
		return nil, errAt(nodes.Line, "topology.nodes must be a mapping of node names")
	}
	for i := 0; i+1 < len(nodes.Content); i += 2 {
		key, value := nodes.Content[i], nodes.Content[i+1]
		var ns nodeSpec
		if err := value.Decode(&ns); err != nil {
			return nil, errAt(value.Line, "node %q: %v", key.Value, err)
		}
		node, err := resolveNode(topo.Dir, key.Value, ns, spec.Topology.Defaults, spec.Topology.Kinds)
		if err != nil {
			return nil, errAt(key.Line, "%v", err)
		}
		if _, dup := topo.Nodes[node.Name]; dup {
			return nil, errAt(key.Line, "node %q defined twice", node.Name)
		}
		topo.Nodes[node.Name] = node
		topo.NodeOrder = append(topo.NodeOrder, node.Name)
	}

	used := map[Endpoint]int{} // endpoint -> line of its first use
	for i, ln := range spec.Topology.Links {
		var ls linkSpec
		if err := ln.Decode(&ls); err != nil {
			return nil, errAt(ln.Line, "link %d: endpoints must be \"node:interface\" strings: %v", i+1, err)
		}
		if len(ls.Endpoints) != 2 {
			return nil, errAt(ln.Line, "link %d: want 2 endpoints, have %d", i+1, len(ls.Endpoints))
		}
		var ends [2]Endpoint
		for j, s := range ls.Endpoints {
			ep, err := parseEndpoint(s)
			if err != nil {
				return nil, errAt(ln.Line, "link %d: %v", i+1, err)
			}
			if _, ok := topo.Nodes[ep.Node]; !ok {
				return nil, errAt(ln.Line, "link %d: endpoint %q: unknown node %q", i+1, s, ep.Node)
			}
			if first, dup := used[ep]; dup {
				return nil, errAt(ln.Line, "link %d: endpoint %q already used by the link at line %d", i+1, s, first)
			}
			used[ep] = ln.Line
			ends[j] = ep
		}
		topo.Links = append(topo.Links, Link{A: ends[0], B: ends[1]})
	}
	return topo, nil
}

// resolveNode applies containerlab's inheritance: kind and image come from the node,
// else its kind's section, else defaults; exec lists are concatenated (defaults, kind,
// node); binds are merged with the node's winning per container path; env maps are
// merged with the node's winning.
func resolveNode(dir, name string, ns, defaults nodeSpec, kinds map[string]nodeSpec) (*Node, error) {
	if !nodeNamePattern.MatchString(name) {
		return nil, fmt.Errorf("node name %q: use letters, digits, '_', '.', '-'", name)
	}
	kind := firstNonEmpty(ns.Kind, defaults.Kind)
	switch kind {
	case "linux":
	case "":
		return nil, fmt.Errorf("node %q has no kind (set kind: linux)", name)
	default:
		return nil, fmt.Errorf("node %q: kind %q is not supported, only \"linux\"", name, kind)
	}
	ks := kinds[kind]
	node := &Node{
		Name:  name,
		Kind:  kind,
		Image: firstNonEmpty(ns.Image, ks.Image, defaults.Image),
		Env:   map[string]string{},
	}
	node.Exec = append(node.Exec, defaults.Exec...)
	node.Exec = append(node.Exec, ks.Exec...)
	node.Exec = append(node.Exec, ns.Exec...)
	for _, env := range []map[string]string{defaults.Env, ks.Env, ns.Env} {
		for k, v := range env {
			node.Env[k] = v
		}
	}
	seen := map[string]bool{}
	for _, list := range [][]string{ns.Binds, ks.Binds, defaults.Binds} {
		for _, s := range list {
			b, err := parseBind(dir, s)
			if err != nil {
				return nil, fmt.Errorf("node %q: %v", name, err)
			}
			if seen[b.Container] {
				continue
			}
			seen[b.Container] = true
			node.Binds = append(node.Binds, b)
		}
	}
	return node, nil
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

func parseBind(dir, s string) (Bind, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return Bind{}, fmt.Errorf("bind %q: want host:container[:mode]", s)
	}
	host := parts[0]
	if strings.HasPrefix(host, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return Bind{}, fmt.Errorf("bind %q: %v", s, err)
		}
		host = filepath.Join(home, host[2:])
	}
	if !filepath.IsAbs(host) {
		host = filepath.Join(dir, host)
	}
	return Bind{Host: filepath.Clean(host), Container: parts[1]}, nil
}

func parseEndpoint(s string) (Endpoint, error) {
	node, iface, ok := strings.Cut(s, ":")
	if !ok || node == "" || iface == "" {
		return Endpoint{}, fmt.Errorf("endpoint %q: want \"node:interface\"", s)
	}
	if err := checkIfaceName(iface); err != nil {
		return Endpoint{}, fmt.Errorf("endpoint %q: %v", s, err)
	}
	return Endpoint{Node: node, Iface: iface}, nil
}

func checkIfaceName(name string) error {
	if len(name) > maxIfaceLen {
		return fmt.Errorf("interface name %q is longer than %d characters", name, maxIfaceLen)
	}
	if name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n") {
		return fmt.Errorf("interface name %q is not valid", name)
	}
	return nil
}
