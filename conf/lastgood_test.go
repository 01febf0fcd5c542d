package conf

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// The saved copy loads back to the config that was saved, and replaces the old one.
func TestSaveLastGood(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "last-good.toml")
	for _, text := range []string{"[igmp]\nversion = 2\n", "[pim]\nhello-interval = \"5s\"\n"} {
		c, err := Parse("/etc/mrouterd/mrouterd.toml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if err := SaveLastGood(path, c); err != nil {
			t.Fatal(err)
		}
		back, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if back.File != path {
			t.Errorf("loaded copy names %q", back.File)
		}
		back.File = c.File
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("saved %+v, loaded %+v", c, back)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil || len(entries) != 1 {
		t.Fatalf("state directory holds %v (%v), want only the copy", entries, err)
	}
}
