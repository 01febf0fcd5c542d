package manifests

import (
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/mrouterd/mrouterd/conf"
	"github.com/mrouterd/mrouterd/router/api"
)

const root = "../../deploy/kubernetes"

// The base: the directory `kubectl apply -k deploy/kubernetes` applies.
type base struct {
	t       *testing.T
	all     []Object // every document under root
	kust    *Kustomization
	objects []Object // those the base's kustomization lists
	ds      *appsv1.DaemonSet
	svc     *corev1.Service
	cms     map[string]*corev1.ConfigMap
	sas     map[string]*corev1.ServiceAccount
}

func loadBase(t *testing.T) *base {
	t.Helper()
	all, err := LoadDir(root)
	if err != nil {
		t.Fatalf("strict decode:\n%v", err)
	}
	b := &base{t: t, all: all, cms: map[string]*corev1.ConfigMap{}, sas: map[string]*corev1.ServiceAccount{}}
	listed := map[string]bool{}
	for _, o := range all {
		if o.File == "kustomization.yaml" {
			b.kust = o.Value.(*Kustomization)
		}
	}
	if b.kust == nil || b.kust.Kind != "Kustomization" {
		t.Fatalf("%s/kustomization.yaml: no Kustomization", root)
	}
	for _, r := range b.kust.Resources {
		listed[filepath.Clean(r)] = true
	}
	for _, o := range all {
		if !listed[o.File] {
			continue
		}
		b.objects = append(b.objects, o)
		switch v := o.Value.(type) {
		case *appsv1.DaemonSet:
			if b.ds != nil {
				t.Fatalf("%v: a second DaemonSet", o)
			}
			b.ds = v
		case *corev1.Service:
			if b.svc != nil {
				t.Fatalf("%v: a second Service", o)
			}
			b.svc = v
		case *corev1.ConfigMap:
			b.cms[v.Name] = v
		case *corev1.ServiceAccount:
			b.sas[v.Name] = v
		}
	}
	if b.ds == nil || b.svc == nil {
		t.Fatal("the base needs a DaemonSet and a Service")
	}
	return b
}

func (b *base) container() *corev1.Container {
	cs := b.ds.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		b.t.Fatalf("DaemonSet %s: %d containers, want 1", b.ds.Name, len(cs))
	}
	return &cs[0]
}

// arg returns the value of --name=value or --name value in the container's args.
func (b *base) arg(name string) (string, bool) {
	args := b.container().Args
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			return args[i+1], true
		}
		if a == "--"+name {
			return "", true
		}
	}
	return "", false
}

// config is the mrouterd.toml the DaemonSet runs, parsed as `mrouterd --check`
// parses it.
func (b *base) config() *conf.Config {
	b.t.Helper()
	file, ok := b.arg("config")
	if !ok || file == "" {
		b.t.Fatal("the container does not name its --config")
	}
	dir, key := path.Split(file)
	spec := b.ds.Spec.Template.Spec
	var volume string
	for _, m := range b.container().VolumeMounts {
		if path.Clean(m.MountPath) == path.Clean(dir) {
			volume = m.Name
			if m.SubPath != "" {
				b.t.Errorf("the config volume is mounted with subPath %q: such a mount never sees the ConfigMap change", m.SubPath)
			}
		}
	}
	if volume == "" {
		b.t.Fatalf("nothing is mounted at %s, where --config=%s is", dir, file)
	}
	for _, v := range spec.Volumes {
		if v.Name != volume {
			continue
		}
		if v.ConfigMap == nil {
			b.t.Fatalf("volume %s is not a ConfigMap", v.Name)
		}
		cm := b.cms[v.ConfigMap.Name]
		if cm == nil {
			b.t.Fatalf("volume %s mounts ConfigMap %q, which the base does not have", v.Name, v.ConfigMap.Name)
		}
		toml, ok := cm.Data[key]
		if !ok {
			b.t.Fatalf("ConfigMap %s has no key %q for --config=%s", cm.Name, key, file)
		}
		cfg, err := conf.Parse("ConfigMap "+cm.Name+": "+key, []byte(toml))
		if err != nil {
			b.t.Fatalf("mrouterd --check would refuse it:\n%v", err)
		}
		return cfg
	}
	b.t.Fatalf("the pod has no volume %s", volume)
	return nil
}

// Every document under deploy/kubernetes decodes strictly into its kind's type.
func TestStrictDecode(t *testing.T) {
	all, err := LoadDir(root)
	if err != nil {
		t.Fatalf("strict decode:\n%v", err)
	}
	kinds := map[string]int{}
	for _, o := range all {
		kinds[o.Kind]++
	}
	for _, want := range []string{"apps/v1 DaemonSet", "v1 ConfigMap", "v1 Service", "v1 ServiceAccount",
		"monitoring.coreos.com/v1 PodMonitor", "kustomize.config.k8s.io/v1beta1 Kustomization"} {
		if kinds[want] == 0 {
			t.Errorf("no %s under %s", want, root)
		}
	}
}

// The strict decode is what catches a misspelled field, at any depth and in every
// kind of document; a kind without a type is refused too.
func TestStrictDecodeRefuses(t *testing.T) {
	ds, err := os.ReadFile(filepath.Join(root, "daemonset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Decode(ds); err != nil {
		t.Fatalf("the shipped DaemonSet: %v", err)
	}
	misspell := func(doc []byte, from, to string) []byte {
		t.Helper()
		if !strings.Contains(string(doc), from) {
			t.Fatalf("%q is not in the document", from)
		}
		return []byte(strings.Replace(string(doc), from, to, 1))
	}
	for name, doc := range map[string][]byte{
		"only the case wrong, deep in the pod spec": misspell(ds, "readOnlyRootFilesystem:", "readOnlyRootFileSystem:"),
		"in the DaemonSet spec":                     misspell(ds, "updateStrategy:", "updateStrategie:"),
		"in a probe":                                misspell(ds, "timeoutSeconds:", "timeoutSecond:"),
		"a duplicate key":                           misspell(ds, "  hostNetwork: true\n", "  hostNetwork: true\n      hostNetwork: true\n"),
		"a wrong type":                              misspell(ds, "hostNetwork: true", "hostNetwork: yes please"),
		"kustomization": []byte("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n" +
			"resource:\n  - daemonset.yaml\n"),
		"PodMonitor": []byte("apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata: {name: x}\n" +
			"spec:\n  selector: {}\n  podMetricEndpoints: [{port: metrics}]\n"),
		"an unknown kind": []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n"),
	} {
		if _, _, err := Decode(doc); err == nil {
			t.Errorf("%s: decoded without an error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestSplitDocuments(t *testing.T) {
	docs := SplitDocuments([]byte("# only a comment\n---\na: 1\n--- # next\n\n---\nb: |\n  ---x\n"))
	if len(docs) != 2 || !strings.Contains(string(docs[0]), "a: 1") || !strings.Contains(string(docs[1]), "---x") {
		t.Fatalf("%q", docs)
	}
}

// Every kustomization's resources and components exist, every manifest beside the
// base's kustomization is listed in it, and every object is in its namespace.
func TestKustomizations(t *testing.T) {
	b := loadBase(t)
	for _, o := range b.all {
		k, ok := o.Value.(*Kustomization)
		if !ok {
			continue
		}
		dir := filepath.Join(root, filepath.Dir(o.File))
		for _, r := range slices.Concat(k.Resources, k.Components) {
			st, err := os.Stat(filepath.Join(dir, r))
			if err != nil {
				t.Errorf("%v lists %s: %v", o, r, err)
				continue
			}
			if st.IsDir() {
				if _, err := os.Stat(filepath.Join(dir, r, "kustomization.yaml")); err != nil {
					t.Errorf("%v lists directory %s, which has no kustomization.yaml", o, r)
				}
			}
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); !e.IsDir() && n != "kustomization.yaml" && strings.HasSuffix(n, ".yaml") &&
			!slices.Contains(b.kust.Resources, n) {
			t.Errorf("%s is not in kustomization.yaml's resources", n)
		}
	}
	if b.kust.Namespace == "" {
		t.Fatal("the base sets no namespace")
	}
	for _, o := range b.all {
		if o.Name != "" && !strings.HasPrefix(o.File, "examples"+string(filepath.Separator)) && o.NS != b.kust.Namespace {
			t.Errorf("%v: namespace %q, the base's is %q", o, o.NS, b.kust.Namespace)
		}
	}
}

// The image is a parameter of the kustomization, with a pinned tag, and the
// manifest names the same image and tag, so that it is right without kustomize too.
func TestImage(t *testing.T) {
	b := loadBase(t)
	images := map[string]Image{}
	for _, im := range b.kust.Images {
		images[im.Name] = im
		if im.NewTag == "" && im.Digest == "" {
			t.Errorf("image %s: neither newTag nor digest", im.Name)
		}
		if im.NewTag == "latest" {
			t.Errorf("image %s: tag latest", im.Name)
		}
	}
	for _, c := range b.ds.Spec.Template.Spec.Containers {
		name, tag, ok := strings.Cut(c.Image, ":")
		if !ok || tag == "" || tag == "latest" || strings.Contains(tag, "/") {
			t.Errorf("container %s: image %q has no pinned tag", c.Name, c.Image)
			continue
		}
		im, ok := images[name]
		if !ok {
			t.Errorf("container %s: image %s is no parameter in kustomization.yaml's images", c.Name, name)
		} else if im.NewTag != tag {
			t.Errorf("container %s: tag %s, kustomization.yaml sets %s", c.Name, tag, im.NewTag)
		}
	}
}

func TestDaemonSet(t *testing.T) {
	b := loadBase(t)
	spec := b.ds.Spec.Template.Spec
	labels := b.ds.Spec.Template.Labels
	if !selects(b.ds.Spec.Selector.MatchLabels, labels) || len(b.ds.Spec.Selector.MatchExpressions) > 0 {
		t.Errorf("the DaemonSet's selector %v does not select its pods %v", b.ds.Spec.Selector, labels)
	}
	if !spec.HostNetwork || spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("hostNetwork %v, dnsPolicy %q: want the node's network and the cluster's DNS", spec.HostNetwork, spec.DNSPolicy)
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", spec.PriorityClassName)
	}
	if !slices.ContainsFunc(spec.Tolerations, func(t corev1.Toleration) bool {
		return t.Operator == corev1.TolerationOpExists && t.Key == ""
	}) {
		t.Error("the pods do not tolerate every taint: tainted nodes would route no multicast")
	}
	if b.sas[spec.ServiceAccountName] == nil {
		t.Errorf("serviceAccountName %q: no such ServiceAccount in the base", spec.ServiceAccountName)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the pod mounts an API token it never uses")
	}

	c := b.container()
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("no capabilities set")
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities drop %v, want [ALL]", sc.Capabilities.Drop)
	}
	add := slices.Clone(sc.Capabilities.Add)
	slices.Sort(add)
	if !slices.Equal(add, []corev1.Capability{"NET_ADMIN", "NET_RAW"}) {
		t.Errorf("capabilities add %v, want exactly NET_ADMIN and NET_RAW", sc.Capabilities.Add)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("privileged")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("the root filesystem is writable")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want CPU and memory requests and a memory limit", c.Resources)
	}
	if _, ok := b.arg("watch-config"); !ok {
		t.Error("mrouterd runs without --watch-config: a ConfigMap change would not be reloaded")
	}

	// The control socket is on the host, where the config puts it.
	cfg := b.config()
	sockDir := path.Dir(cfg.Control.Socket)
	var mounted bool
	for _, m := range c.VolumeMounts {
		if path.Clean(m.MountPath) != sockDir {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.HostPath != nil && path.Clean(v.HostPath.Path) == sockDir {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("the host's %s is not mounted for the control socket %s", sockDir, cfg.Control.Socket)
	}
	if lg, ok := b.arg("last-good"); ok && path.Dir(lg) != sockDir {
		t.Errorf("--last-good=%s is not on the host path %s, so a new container could not read it", lg, sockDir)
	}
}

// The probes run mroutectl, and give it longer than it gives the daemon: a
// daemon that is slow to answer fails the probe by mroutectl's own error.
func TestProbes(t *testing.T) {
	b := loadBase(t)
	c := b.container()
	limit := int32(api.DefaultTimeout / time.Second)
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.Exec == nil {
			t.Errorf("%s probe: none, or not a command", name)
			continue
		}
		if cmd := p.Exec.Command; len(cmd) < 3 || path.Base(cmd[0]) != "mroutectl" || cmd[1] != "show" || cmd[2] != "status" {
			t.Errorf("%s probe runs %q, want mroutectl show status", name, cmd)
		}
		if p.TimeoutSeconds <= limit {
			t.Errorf("%s probe: timeoutSeconds %d, not above mroutectl's %d", name, p.TimeoutSeconds, limit)
		}
		if p.PeriodSeconds != 0 && p.PeriodSeconds < p.TimeoutSeconds {
			t.Errorf("%s probe: periodSeconds %d below its timeout %d", name, p.PeriodSeconds, p.TimeoutSeconds)
		}
	}
}

// The headless Service lists every mrouterd pod, and the ConfigMap's fabric
// peers are its name.
func TestFabricPeers(t *testing.T) {
	b := loadBase(t)
	s := b.svc.Spec
	if s.ClusterIP != corev1.ClusterIPNone || !s.PublishNotReadyAddresses {
		t.Errorf("Service %s: clusterIP %q, publishNotReadyAddresses %v: want a headless Service listing pods not ready yet",
			b.svc.Name, s.ClusterIP, s.PublishNotReadyAddresses)
	}
	if len(s.Selector) == 0 || !selects(s.Selector, b.ds.Spec.Template.Labels) {
		t.Errorf("Service selector %v does not select the DaemonSet's pods %v", s.Selector, b.ds.Spec.Template.Labels)
	}
	ports := b.containerPorts()
	for _, p := range s.Ports {
		if p.TargetPort.StrVal != "" && ports[p.TargetPort.StrVal] == nil {
			t.Errorf("Service port %s targets %q, which the container does not have", p.Name, p.TargetPort.StrVal)
		}
	}
	cfg := b.config()
	want := "dns:" + b.svc.Name + "." + b.kust.Namespace + ".svc.cluster.local"
	if !cfg.Fabric.Enabled() || !slices.Contains(cfg.Fabric.Peers, want) {
		t.Errorf("fabric peers %q: want %q", cfg.Fabric.Peers, want)
	}
	if fp := ports["fabric"]; fp == nil || int(fp.ContainerPort) != cfg.Fabric.Port || fp.Protocol != corev1.ProtocolUDP {
		t.Errorf("the container's fabric port %+v is not the config's UDP %d", fp, cfg.Fabric.Port)
	}
}

// The pods route on their pods' interfaces and not on the CNI's tunnels.
func TestInterfaces(t *testing.T) {
	cfg := loadBase(t).config()
	for _, name := range []string{"eth0", "ens5", "cni0", "cbr0", "veth1a2b3c", "cali0123456789a", "lxc12345", "azv1234"} {
		if _, ok := cfg.InterfaceFor(name); !ok {
			t.Errorf("%s is not used", name)
		}
	}
	for _, name := range []string{"flannel.1", "flannel-v6.1", "cilium_vxlan", "cilium_host", "vxlan.calico",
		"vxlan-v6.calico", "tunl0", "wireguard.cali", "antrea-tun0", "genev_sys_6081", "kube-ipvs0", "nodelocaldns"} {
		if _, ok := cfg.InterfaceFor(name); ok {
			t.Errorf("%s, a CNI tunnel or a device of service addresses, is used", name)
		}
	}
}

// Metrics are served on TCP on the port the pod declares, the annotations name,
// and the PodMonitor scrapes.
func TestMetrics(t *testing.T) {
	b := loadBase(t)
	cfg := b.config()
	_, port, err := net.SplitHostPort(cfg.Control.Metrics)
	if err != nil {
		t.Fatalf("control.metrics %q: %v", cfg.Control.Metrics, err)
	}
	mp := b.containerPorts()["metrics"]
	if mp == nil || strconv.Itoa(int(mp.ContainerPort)) != port {
		t.Errorf("container port metrics %+v, config serves on %s", mp, port)
	}
	ann := b.ds.Spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != port || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("prometheus.io annotations %v, want scrape on port %s at /metrics", ann, port)
	}
	var monitors int
	for _, o := range b.all {
		pm, ok := o.Value.(*PodMonitor)
		if !ok {
			continue
		}
		monitors++
		if !selects(pm.Spec.Selector.MatchLabels, b.ds.Spec.Template.Labels) {
			t.Errorf("%v: selector %v does not select the DaemonSet's pods", o, pm.Spec.Selector)
		}
		for _, e := range pm.Spec.PodMetricsEndpoints {
			if e.Port != "metrics" || (e.Path != "" && e.Path != "/metrics") {
				t.Errorf("%v: endpoint %+v, want port metrics, path /metrics", o, e)
			}
		}
		if len(pm.Spec.PodMetricsEndpoints) == 0 {
			t.Errorf("%v: no endpoints", o)
		}
	}
	if monitors == 0 {
		t.Error("no PodMonitor")
	}
}

// The example's sender sets a TTL that can be routed.
func TestExampleSender(t *testing.T) {
	for _, o := range loadBase(t).all {
		pod, ok := o.Value.(*corev1.Pod)
		if !ok {
			continue
		}
		for _, c := range pod.Spec.Containers {
			script := strings.Join(c.Command, " ")
			if strings.Contains(script, "sendto") && !strings.Contains(script, "IP_MULTICAST_TTL, 16") {
				t.Errorf("%v: a sender that leaves IP_MULTICAST_TTL at 1 is never routed", o)
			}
		}
	}
}

func (b *base) containerPorts() map[string]*corev1.ContainerPort {
	ports := map[string]*corev1.ContainerPort{}
	for i, p := range b.container().Ports {
		ports[p.Name] = &b.container().Ports[i]
	}
	return ports
}

// selects reports whether a selector of match labels selects labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
