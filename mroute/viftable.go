package mroute

import "fmt"

// VIFTable hands out VIF indexes. It is bookkeeping only: it makes no system
// calls and is not safe for concurrent use, since one goroutine owns routing state.
type VIFTable struct {
	owners [MaxVIFs]string
	used   [MaxVIFs]bool
	count  int
}

// NewVIFTable returns a table with every VIF free.
func NewVIFTable() *VIFTable { return &VIFTable{} }

// Alloc reserves the lowest free VIF for owner (an interface name, or "pimreg").
func (t *VIFTable) Alloc(owner string) (uint16, error) {
	for i, used := range t.used {
		if !used {
			t.used[i] = true
			t.owners[i] = owner
			t.count++
			return uint16(i), nil
		}
	}
	return 0, fmt.Errorf("VIF for %q: %w", owner, ErrVIFsExhausted)
}

// Free releases vif; freeing a free or out-of-range VIF does nothing.
func (t *VIFTable) Free(vif uint16) {
	if vif >= MaxVIFs || !t.used[vif] {
		return
	}
	t.used[vif] = false
	t.owners[vif] = ""
	t.count--
}

// Owner returns who holds vif, and whether it is in use.
func (t *VIFTable) Owner(vif uint16) (string, bool) {
	if vif >= MaxVIFs || !t.used[vif] {
		return "", false
	}
	return t.owners[vif], true
}

// Used returns the number of VIFs in use.
func (t *VIFTable) Used() int { return t.count }

// Reserve marks vif as held by owner: a VIF the kernel already has, adopted from
// the process before this one.
func (t *VIFTable) Reserve(vif uint16, owner string) error {
	if vif >= MaxVIFs {
		return fmt.Errorf("VIF %d for %q: out of range", vif, owner)
	}
	if t.used[vif] {
		return fmt.Errorf("VIF %d for %q: held by %q", vif, owner, t.owners[vif])
	}
	t.used[vif] = true
	t.owners[vif] = owner
	t.count++
	return nil
}
