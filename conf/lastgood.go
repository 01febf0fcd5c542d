package conf

import (
	"fmt"
	"os"
	"path/filepath"
)

// SaveLastGood writes c, a config the daemon runs, to path: the copy a start falls
// back on when the config file has gone bad. It is c.TOML(), which parses back to
// the same config whatever the file looks like now, and it replaces the old copy
// through a rename, so that a crash or a full disk never leaves half of one.
func SaveLastGood(path string, c *Config) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".last-good-*.toml")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := fmt.Fprintf(f, "# The last config mrouterd ran with, from %s. mrouterd writes this file;\n# edit %s instead.\n\n%s", c.File, c.File, c.TOML()); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
