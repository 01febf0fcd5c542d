package lab

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeTopology writes content as a topology file in a fresh directory.
func writeTopology(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.clab.yml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadStaticTopology(t *testing.T) {
	topo, err := Load("../topologies/static.clab.yml")
	if err != nil {
		t.Fatal(err)
	}
	if topo.Name != "static" {
		t.Errorf("name %q, want static", topo.Name)
	}
	if want := []string{"src", "r1", "rcv1", "rcv2"}; !reflect.DeepEqual(topo.NodeOrder, want) {
		t.Errorf("node order %v, want %v", topo.NodeOrder, want)
	}
	r1 := topo.Nodes["r1"]
	if !r1.Daemon() || topo.Nodes["src"].Daemon() {
		t.Errorf("daemon nodes wrong: r1 %v, src %v", r1.Daemon(), topo.Nodes["src"].Daemon())
	}
	if cfg := r1.DaemonConfig(); cfg != filepath.Join(topo.Dir, "static", "r1.toml") {
		t.Errorf("r1 config %q, want static/r1.toml beside the topology", cfg)
	}
	if _, err := os.Stat(r1.DaemonConfig()); err != nil {
		t.Error(err)
	}
	if len(topo.Links) != 3 {
		t.Fatalf("%d links, want 3", len(topo.Links))
	}
	if want := (Link{A: Endpoint{"src", "eth1"}, B: Endpoint{"r1", "eth1"}}); topo.Links[0] != want {
		t.Errorf("first link %v, want %v", topo.Links[0], want)
	}
}

func TestLoadInheritance(t *testing.T) {
	path := writeTopology(t, `
name: inherit
mgmt:
  network: ignored
topology:
  defaults:
    kind: linux
    exec: ["echo defaults"]
    env: {A: defaults, B: defaults}
    binds: ["/etc/hosts:/etc/hosts"]
  kinds:
    linux:
      image: mrouterd:latest
      exec: ["echo kind"]
      env: {B: kind}
      binds: ["kind.toml:/etc/mrouterd/mrouterd.toml"]
  nodes:
    r1:
      exec: ["echo node"]
      env: {C: node}
      binds: ["node.toml:/etc/mrouterd/mrouterd.toml:ro"]
      unknown-field: whatever
    h1:
      image: alpine:3
  links:
    - endpoints: ["r1:eth1", "h1:eth1"]
      mtu: 9000
`)
	topo, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r1, h1 := topo.Nodes["r1"], topo.Nodes["h1"]
	if r1.Kind != "linux" || !r1.Daemon() || h1.Daemon() {
		t.Errorf("r1 kind %q image %q, h1 image %q", r1.Kind, r1.Image, h1.Image)
	}
	if want := []string{"echo defaults", "echo kind", "echo node"}; !reflect.DeepEqual(r1.Exec, want) {
		t.Errorf("exec %q, want %q", r1.Exec, want)
	}
	if want := map[string]string{"A": "defaults", "B": "kind", "C": "node"}; !reflect.DeepEqual(r1.Env, want) {
		t.Errorf("env %v, want %v", r1.Env, want)
	}
	wantBinds := []Bind{
		{Host: filepath.Join(topo.Dir, "node.toml"), Container: DaemonConfigPath},
		{Host: "/etc/hosts", Container: "/etc/hosts"},
	}
	if !reflect.DeepEqual(r1.Binds, wantBinds) {
		t.Errorf("binds %v, want %v", r1.Binds, wantBinds)
	}
}

func TestLoadErrors(t *testing.T) {
	const nodes = `
name: bad
topology:
  nodes:
    a: {kind: linux, image: alpine}
    b: {kind: linux, image: alpine}
`
	tests := []struct {
		name, content, want string
	}{
		{"unknown node", nodes + `
  links:
    - endpoints: ["a:eth1", "c:eth1"]
`, `:9: link 1: endpoint "c:eth1": unknown node "c"`},
		{"duplicate endpoint", nodes + `
  links:
    - endpoints: ["a:eth1", "b:eth1"]
    - endpoints: ["a:eth1", "b:eth2"]
`, `:10: link 2: endpoint "a:eth1" already used by the link at line 9`},
		{"same endpoint twice in a link", nodes + `
  links:
    - endpoints: ["a:eth1", "a:eth1"]
`, `endpoint "a:eth1" already used`},
		{"long interface name", nodes + `
  links:
    - endpoints: ["a:eth1", "b:interface-name-16"]
`, `interface name "interface-name-16" is longer than 15 characters`},
		{"malformed endpoint", nodes + `
  links:
    - endpoints: ["a", "b:eth1"]
`, `endpoint "a": want "node:interface"`},
		{"three endpoints", nodes + `
  links:
    - endpoints: ["a:eth1", "b:eth1", "b:eth2"]
`, `link 1: want 2 endpoints, have 3`},
		{"other kind", `
topology:
  nodes:
    a: {kind: nokia_srlinux}
`, `:4: node "a": kind "nokia_srlinux" is not supported, only "linux"`},
		{"no kind", `
topology:
  nodes:
    a: {image: alpine}
`, `node "a" has no kind`},
		{"bad node name", `
topology:
  nodes:
    a/b: {kind: linux}
`, `node name "a/b"`},
		{"no nodes", `name: empty`, `topology has no nodes`},
		{"bad bind", `
topology:
  nodes:
    a: {kind: linux, binds: ["nocolon"]}
`, `node "a": bind "nocolon": want host:container[:mode]`},
		{"not yaml", "topology: [", "did not find expected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeTopology(t, tt.content)
			_, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded, want error containing %q", tt.want)
			}
			if !strings.HasPrefix(err.Error(), path) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to start with the file name and contain %q", err, tt.want)
			}
		})
	}
}
