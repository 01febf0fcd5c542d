// Package docs holds tests that keep the man pages in deploy/man true to the code:
// every flag the binaries define and every configuration key is described, and the
// README's command examples do what it says.
package docs
