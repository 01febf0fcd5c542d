// Package install tests mrouterd as it gets onto a machine: the Debian package that
// `make package` builds, installed, used and removed with dpkg in a private mount
// namespace (the host's files never change), and the files `make install` writes.
package install
