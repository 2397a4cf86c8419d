// Package shardmap is an immutable map from strings, split into buckets
// by a hash of the key, so that a changed copy costs the buckets it
// changed rather than the whole map.
//
// A snapshot of the service table, and the index compiled from it, are
// such maps: a publication that changes k services copies at most k small
// buckets and one array of bucket pointers, whatever the table holds.
package shardmap

import (
	"hash/maphash"
	"iter"
	"maps"
)

// buckets is the number of buckets of a Map: an edit copies the array of
// their pointers (512 bytes) and each bucket it changes (1/64 of the map).
const buckets = 64

// Map is an immutable map from string to V. The nil *Map is empty.
type Map[V any] struct {
	seed maphash.Seed
	b    [buckets]map[string]V // nil when empty
	n    int
}

func (m *Map[V]) bucket(key string) int { return int(maphash.String(m.seed, key) % buckets) }

// Get returns the value of key and whether it is there.
func (m *Map[V]) Get(key string) (V, bool) {
	if m == nil || m.n == 0 {
		var zero V
		return zero, false
	}
	v, ok := m.b[m.bucket(key)][key]
	return v, ok
}

// Len is the number of keys.
func (m *Map[V]) Len() int {
	if m == nil {
		return 0
	}
	return m.n
}

// All yields every key and value, in no order.
func (m *Map[V]) All() iter.Seq2[string, V] {
	return func(yield func(string, V) bool) {
		if m == nil {
			return
		}
		for _, b := range m.b {
			for k, v := range b {
				if !yield(k, v) {
					return
				}
			}
		}
	}
}

// Edit returns a Builder of a changed copy of m (nil: of an empty map).
// m itself never changes.
func (m *Map[V]) Edit() *Builder[V] {
	next := &Map[V]{seed: maphash.MakeSeed()}
	if m != nil {
		*next = *m // the bucket pointers; a bucket is copied when first changed
	}
	return &Builder[V]{m: next}
}

// Builder makes a changed copy of a Map. It is not safe for concurrent
// use.
type Builder[V any] struct {
	m     *Map[V]
	owned [buckets]bool // the buckets copied by this builder, free to change
}

// Get returns the value of key in the copy being built.
func (b *Builder[V]) Get(key string) (V, bool) { return b.m.Get(key) }

// Len is the number of keys in the copy being built.
func (b *Builder[V]) Len() int { return b.m.n }

// own returns bucket i of the copy, copied first if it is still shared.
func (b *Builder[V]) own(i int) map[string]V {
	if !b.owned[i] {
		b.owned[i] = true
		if b.m.b[i] == nil {
			b.m.b[i] = map[string]V{}
		} else {
			b.m.b[i] = maps.Clone(b.m.b[i])
		}
	}
	return b.m.b[i]
}

// Set sets key to v.
func (b *Builder[V]) Set(key string, v V) {
	bk := b.own(b.m.bucket(key))
	if _, ok := bk[key]; !ok {
		b.m.n++
	}
	bk[key] = v
}

// Delete removes key.
func (b *Builder[V]) Delete(key string) {
	i := b.m.bucket(key)
	if _, ok := b.m.b[i][key]; !ok {
		return
	}
	bk := b.own(i)
	delete(bk, key)
	b.m.n--
	if len(bk) == 0 {
		b.m.b[i] = nil
		b.owned[i] = false
	}
}

// Map returns the copy being built. Later changes through b change it
// in place: share it only once done with b.
func (b *Builder[V]) Map() *Map[V] { return b.m }
