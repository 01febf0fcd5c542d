// Package manifests checks the Kubernetes manifests under deploy/kubernetes: every
// document decodes strictly into its kind's type, so that a misspelled or unknown
// field is an error here rather than something the API server drops in silence,
// and the objects agree with one another and with the daemon.
package manifests

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Kustomization holds the fields of kustomization.yaml the manifests use; any
// other field fails the strict decode, as a misspelled one would.
type Kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources,omitempty"`
	Components []string `json:"components,omitempty"`
	Images     []Image  `json:"images,omitempty"`
}

// Image is one entry of a kustomization's images: a parameter of the image.
type Image struct {
	Name    string `json:"name"`
	NewName string `json:"newName,omitempty"`
	NewTag  string `json:"newTag,omitempty"`
	Digest  string `json:"digest,omitempty"`
}

// PodMonitor is the Prometheus operator's monitoring.coreos.com/v1 PodMonitor,
// cut down to the fields the manifests may use.
type PodMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              PodMonitorSpec `json:"spec"`
}

// PodMonitorSpec is a PodMonitor's spec.
type PodMonitorSpec struct {
	JobLabel            string               `json:"jobLabel,omitempty"`
	Selector            metav1.LabelSelector `json:"selector"`
	NamespaceSelector   *NamespaceSelector   `json:"namespaceSelector,omitempty"`
	PodMetricsEndpoints []PodMetricsEndpoint `json:"podMetricsEndpoints"`
}

// NamespaceSelector picks the namespaces a PodMonitor looks in.
type NamespaceSelector struct {
	Any        bool     `json:"any,omitempty"`
	MatchNames []string `json:"matchNames,omitempty"`
}

// PodMetricsEndpoint is one endpoint a PodMonitor scrapes.
type PodMetricsEndpoint struct {
	Port          string `json:"port,omitempty"`
	Path          string `json:"path,omitempty"`
	Scheme        string `json:"scheme,omitempty"`
	Interval      string `json:"interval,omitempty"`
	ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
}

// Object is one decoded document.
type Object struct {
	File  string // path relative to the manifests' root
	Index int    // position of the document in its file, from 0
	Kind  string // "apiVersion kind"
	Value any    // a pointer to the decoded type
	Name  string // metadata.name; "" for kustomizations
	NS    string // metadata.namespace
}

func (o Object) String() string {
	return fmt.Sprintf("%s#%d (%s %s)", o.File, o.Index, o.Kind, o.Name)
}

// kinds maps "apiVersion kind" to a constructor of the type it decodes into.
var kinds = map[string]func() any{
	"apps/v1 DaemonSet":                   func() any { return new(appsv1.DaemonSet) },
	"apps/v1 Deployment":                  func() any { return new(appsv1.Deployment) },
	"v1 ConfigMap":                        func() any { return new(corev1.ConfigMap) },
	"v1 Service":                          func() any { return new(corev1.Service) },
	"v1 ServiceAccount":                   func() any { return new(corev1.ServiceAccount) },
	"v1 Namespace":                        func() any { return new(corev1.Namespace) },
	"v1 Pod":                              func() any { return new(corev1.Pod) },
	"monitoring.coreos.com/v1 PodMonitor": func() any { return new(PodMonitor) },
	"kustomize.config.k8s.io/v1beta1 Kustomization": func() any { return new(Kustomization) },
	"kustomize.config.k8s.io/v1alpha1 Component":    func() any { return new(Kustomization) },
}

// docSeparator is a YAML document separator on a line of its own.
var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// SplitDocuments splits a YAML stream into its documents, leaving out those
// with nothing but comments and blank lines.
func SplitDocuments(data []byte) [][]byte {
	var docs [][]byte
	for _, doc := range docSeparator.Split(string(data), -1) {
		empty := true
		for _, line := range strings.Split(doc, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, []byte(doc))
		}
	}
	return docs
}

// Decode decodes one document strictly into the type of its apiVersion and kind:
// an unknown field, a duplicate key, a value of the wrong type or a kind with no
// type here is an error.
func Decode(doc []byte) (kind string, value any, err error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return "", nil, err
	}
	kind = tm.APIVersion + " " + tm.Kind
	newValue, ok := kinds[kind]
	if !ok {
		return kind, nil, fmt.Errorf("apiVersion %q kind %q: no type to check it against", tm.APIVersion, tm.Kind)
	}
	value = newValue()
	// Strict as the API server's field validation is: no duplicate keys, no field
	// the type does not have, at any depth, and names matched case-sensitively.
	// (encoding/json matches names regardless of case, so that with it alone
	// "readOnlyRootFileSystem" would pass for readOnlyRootFilesystem, while the
	// API server drops it.)
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return kind, nil, err
	}
	strict, err := kjson.UnmarshalStrict(j, value)
	if err != nil {
		return kind, nil, err
	}
	if err := errors.Join(strict...); err != nil {
		return kind, nil, err
	}
	return kind, value, nil
}

// LoadDir decodes every document of every .yaml and .yml file under root.
func LoadDir(root string) ([]Object, error) {
	var files []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := filepath.Ext(path); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var objs []Object
	var errs []string
	for _, path := range files {
		rel, _ := filepath.Rel(root, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		for i, doc := range SplitDocuments(data) {
			kind, value, err := Decode(doc)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s#%d: %v", rel, i, err))
				continue
			}
			o := Object{File: rel, Index: i, Kind: kind, Value: value}
			if m, ok := value.(metav1.Object); ok {
				o.Name, o.NS = m.GetName(), m.GetNamespace()
			}
			objs = append(objs, o)
		}
	}
	if len(errs) > 0 {
		return objs, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return objs, nil
}
