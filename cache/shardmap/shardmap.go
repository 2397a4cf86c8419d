// Package shardmap is an immutable map from strings, split into buckets
// by a hash of the key, so that a changed copy costs the buckets it
// changed rather than the whole map.
//
// A snapshot of the service table, and the index compiled from it, are
// such maps: a publication that changes k services copies at most k small
// buckets and the few small arrays of pointers above them, whatever the
// table holds.
package shardmap

import (
	"hash/maphash"
	"iter"
	"slices"
)

// A Map's 64 buckets hang from 16 nodes of 4 buckets each, so that an
// edit copies the map's array of node pointers (128 bytes), and, for each
// node it changes, that node (4 slices, 96 bytes) and the buckets it
// changes: a publication that changes a key or two of each of many maps
// copies a few hundred bytes of each, not 512 bytes of bucket pointers
// and a Go map per bucket. A burst's publications copy about two nodes
// of each map they edit, so 16 nodes of 4 copy less than 8 nodes of 8
// (192-byte nodes) did.
const (
	numNodes = 16
	width    = 4 // buckets per node
	buckets  = numNodes * width
)

// Map is an immutable map from string to V. The nil *Map is empty.
type Map[V any] struct {
	seed  maphash.Seed
	n     int
	nodes [numNodes]*node[V] // nil until one of its buckets holds a key
}

// node holds width buckets.
type node[V any] struct {
	b [width]bucket[V]
}

// bucket holds the keys whose hash falls in it, in no order: a few, so a
// scan of their hashes finds a key faster than a Go map would, and a copy
// is one small array.
type bucket[V any] []entry[V]

type entry[V any] struct {
	hash uint64
	key  string
	val  V
}

// find returns the index of key, whose hash is h, in b, or -1.
func (b bucket[V]) find(h uint64, key string) int {
	for i := range b {
		if b[i].hash == h && b[i].key == key {
			return i
		}
	}
	return -1
}

// hash returns the hash of key, and the bucket it falls in.
func (m *Map[V]) hash(key string) (uint64, int) {
	h := maphash.String(m.seed, key)
	return h, int(h % buckets)
}

// bucket returns bucket i (nil when empty).
func (m *Map[V]) bucket(i int) bucket[V] {
	if nd := m.nodes[i/width]; nd != nil {
		return nd.b[i%width]
	}
	return nil
}

// Get returns the value of key and whether it is there.
func (m *Map[V]) Get(key string) (V, bool) {
	if m == nil || m.n == 0 {
		var zero V
		return zero, false
	}
	h, i := m.hash(key)
	b := m.bucket(i)
	if j := b.find(h, key); j >= 0 {
		return b[j].val, true
	}
	var zero V
	return zero, false
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
		for _, nd := range m.nodes {
			if nd == nil {
				continue
			}
			for _, b := range nd.b {
				for _, e := range b {
					if !yield(e.key, e.val) {
						return
					}
				}
			}
		}
	}
}

// Edit returns a Builder of a changed copy of m (nil: of an empty map).
// m itself never changes.
func (m *Map[V]) Edit() *Builder[V] {
	b := &Builder[V]{} // the copy lives in the builder: one allocation
	if m != nil {
		b.m = *m // the node pointers; a node is copied when first changed
	} else {
		b.m.seed = maphash.MakeSeed()
	}
	return b
}

// Builder makes a changed copy of a Map. It is not safe for concurrent
// use.
type Builder[V any] struct {
	m Map[V] // the copy being built
	// The nodes and buckets copied by this builder, free to change, as
	// bit masks.
	ownedNodes   uint16
	ownedBuckets uint64
}

// Get returns the value of key in the copy being built.
func (b *Builder[V]) Get(key string) (V, bool) { return b.m.Get(key) }

// Len is the number of keys in the copy being built.
func (b *Builder[V]) Len() int { return b.m.n }

// own returns bucket i of the copy, its node and itself copied first if
// they are still shared, with room for one more entry.
func (b *Builder[V]) own(i int) *bucket[V] {
	ni := i / width
	if b.ownedNodes&(1<<ni) == 0 {
		b.ownedNodes |= 1 << ni
		nd := &node[V]{}
		if old := b.m.nodes[ni]; old != nil {
			*nd = *old
		}
		b.m.nodes[ni] = nd
	}
	bk := &b.m.nodes[ni].b[i%width]
	if b.ownedBuckets&(1<<i) == 0 {
		b.ownedBuckets |= 1 << i
		*bk = slices.Grow(slices.Clip(*bk), 1) // a new array: the old one is shared
	}
	return bk
}

// Set sets key to v.
func (b *Builder[V]) Set(key string, v V) {
	h, i := b.m.hash(key)
	bk := b.own(i)
	if j := bk.find(h, key); j >= 0 {
		(*bk)[j].val = v
		return
	}
	*bk = append(*bk, entry[V]{hash: h, key: key, val: v})
	b.m.n++
}

// Delete removes key.
func (b *Builder[V]) Delete(key string) {
	h, i := b.m.hash(key)
	if b.m.n == 0 || b.m.bucket(i).find(h, key) < 0 {
		return
	}
	bk := b.own(i)
	j := bk.find(h, key)
	last := len(*bk) - 1
	(*bk)[j] = (*bk)[last]
	(*bk)[last] = entry[V]{} // let go of the key and value
	*bk = (*bk)[:last]
	b.m.n--
	if last == 0 {
		*bk = nil
	}
}

// Map returns the copy being built. Later changes through b change it
// in place: share it only once done with b.
func (b *Builder[V]) Map() *Map[V] { return &b.m }
