package cache

import (
	"maps"
	"math/rand/v2"
	"testing"
)

// TestSmallMapAsMap applies random sets and deletes to a smallMap and to
// a Go map, over few keys and over many, and checks after each step that
// they hold the same entries, and that the slice gives way to a Go map
// only past smallMapMax (sized ahead or not).
func TestSmallMapAsMap(t *testing.T) {
	for _, keys := range []int{3, smallMapMax, smallMapMax + 1, 40} {
		for seed := range uint64(20) {
			r := rand.New(rand.NewPCG(seed, uint64(keys)))
			var m smallMap[int, int]
			if seed%2 == 1 {
				m.size(keys) // as a set built from a known number of instances
			}
			want := map[int]int{}
			for step := range 200 {
				k := r.IntN(keys)
				if r.IntN(3) == 0 {
					m.delete(k)
					delete(want, k)
				} else {
					m.set(k, step)
					want[k] = step
				}
				if m.len() != len(want) {
					t.Fatalf("keys %d seed %d step %d: len %d, want %d", keys, seed, step, m.len(), len(want))
				}
				if got := maps.Collect(m.all()); !maps.Equal(got, want) {
					t.Fatalf("keys %d seed %d step %d: all() = %v, want %v", keys, seed, step, got, want)
				}
				for k := range keys {
					v, ok := m.get(k)
					if w, wok := want[k]; v != w || ok != wok {
						t.Fatalf("keys %d seed %d step %d: get(%d) = %d, %v, want %d, %v", keys, seed, step, k, v, ok, w, wok)
					}
				}
				if m.m == nil && len(m.pairs) > smallMapMax {
					t.Fatalf("keys %d seed %d step %d: %d pairs in the slice", keys, seed, step, len(m.pairs))
				}
				if keys <= smallMapMax && m.m != nil {
					t.Fatalf("keys %d seed %d step %d: a Go map for at most %d keys", keys, seed, step, keys)
				}
			}
		}
	}
}

// TestSmallMapAllStops checks that all stops when its yield says so.
func TestSmallMapAllStops(t *testing.T) {
	for _, n := range []int{smallMapMax, 3 * smallMapMax} {
		var m smallMap[int, bool]
		for k := range n {
			m.set(k, true)
		}
		seen := 0
		for range m.all() {
			seen++
			if seen == 2 {
				break
			}
		}
		if seen != 2 {
			t.Fatalf("%d entries: ranged over %d after break at 2", n, seen)
		}
	}
}
