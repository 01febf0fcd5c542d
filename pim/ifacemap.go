package pim

import "slices"

// ifaceMap maps interface names to per-interface state, as a slice. An entry has
// state on one interface or a few, where a Go map would cost ten times the memory;
// over a hundred thousand entries that is the difference that matters.
type ifaceMap[V any] []ifaceItem[V]

type ifaceItem[V any] struct {
	name string
	val  V
}

// at returns the state of an interface, or V's zero value.
func (m ifaceMap[V]) at(name string) V {
	for _, it := range m {
		if it.name == name {
			return it.val
		}
	}
	var zero V
	return zero
}

func (m ifaceMap[V]) has(name string) bool {
	return slices.ContainsFunc(m, func(it ifaceItem[V]) bool { return it.name == name })
}

func (m *ifaceMap[V]) set(name string, v V) {
	for i := range *m {
		if (*m)[i].name == name {
			(*m)[i].val = v
			return
		}
	}
	*m = append(*m, ifaceItem[V]{name: name, val: v})
}

func (m *ifaceMap[V]) del(name string) {
	m.deleteFunc(func(n string, _ V) bool { return n == name })
}

// deleteFunc removes the interfaces for which drop says so, calling it once for
// each in order; the last one gone releases the slice.
func (m *ifaceMap[V]) deleteFunc(drop func(name string, v V) bool) {
	*m = slices.DeleteFunc(*m, func(it ifaceItem[V]) bool { return drop(it.name, it.val) })
	if len(*m) == 0 {
		*m = nil
	}
}
