package cache

import "iter"

// smallMapMax is the most entries a smallMap keeps in its slice.
const smallMapMax = 8

// smallMap is a map that keeps its entries in a slice, searched in order,
// until it holds more than smallMapMax, and in a Go map from then on. Most
// services have a handful of instances, and a Go map's first entry costs
// a group of eight slots (hundreds of bytes for the keys of an
// endpointSet), where the slice costs the entry. The zero value is empty
// and ready to use. It is not safe for concurrent use.
type smallMap[K comparable, V any] struct {
	pairs []smallPair[K, V]
	m     map[K]V // once it outgrew pairs, which are then nil
}

type smallPair[K comparable, V any] struct {
	key K
	val V
}

// size makes an empty m ready for n entries: past smallMapMax, a Go map
// of that size, which the slice would give way to anyway.
func (m *smallMap[K, V]) size(n int) {
	if n > smallMapMax && m.m == nil && len(m.pairs) == 0 {
		m.m = make(map[K]V, n)
	}
}

// get returns the value of key and whether it is there.
func (m *smallMap[K, V]) get(key K) (V, bool) {
	if m.m != nil {
		v, ok := m.m[key]
		return v, ok
	}
	for i := range m.pairs {
		if m.pairs[i].key == key {
			return m.pairs[i].val, true
		}
	}
	var zero V
	return zero, false
}

// set sets the value of key.
func (m *smallMap[K, V]) set(key K, val V) {
	if m.m != nil {
		m.m[key] = val
		return
	}
	for i := range m.pairs {
		if m.pairs[i].key == key {
			m.pairs[i].val = val
			return
		}
	}
	if len(m.pairs) < smallMapMax {
		m.pairs = append(m.pairs, smallPair[K, V]{key, val})
		return
	}
	m.m = make(map[K]V, smallMapMax+1)
	for _, p := range m.pairs {
		m.m[p.key] = p.val
	}
	m.pairs = nil
	m.m[key] = val
}

// delete removes key, if it is there. A map that outgrew its slice stays
// a Go map.
func (m *smallMap[K, V]) delete(key K) {
	if m.m != nil {
		delete(m.m, key)
		return
	}
	for i := range m.pairs {
		if m.pairs[i].key == key {
			last := len(m.pairs) - 1
			m.pairs[i] = m.pairs[last]
			m.pairs[last] = smallPair[K, V]{}
			m.pairs = m.pairs[:last]
			return
		}
	}
}

// len returns the number of entries.
func (m *smallMap[K, V]) len() int {
	if m.m != nil {
		return len(m.m)
	}
	return len(m.pairs)
}

// all yields every entry, in no order. The map must not change meanwhile.
func (m *smallMap[K, V]) all() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		if m.m != nil {
			for k, v := range m.m {
				if !yield(k, v) {
					return
				}
			}
			return
		}
		for _, p := range m.pairs {
			if !yield(p.key, p.val) {
				return
			}
		}
	}
}
