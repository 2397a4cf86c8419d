package shardmap

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

// TestEditsLeaveEarlierMapsAlone edits a map step by step at random, and
// checks every 20 steps that every map built so far still holds exactly
// what it held when built: with keys drawn from 500 names (about 8 a
// bucket) and from 5,000 (about 80, and many deleted from the middle of
// their buckets).
func TestEditsLeaveEarlierMapsAlone(t *testing.T) {
	for _, names := range []int{500, 5000} {
		t.Run(fmt.Sprintf("names=%d", names), func(t *testing.T) { editAtRandom(t, names) })
	}
}

func editAtRandom(t *testing.T, names int) {
	rng := rand.New(rand.NewPCG(1, uint64(names)))
	var versions []*Map[int]
	var want []map[string]int
	var m *Map[int]
	ref := map[string]int{}
	for step := range 300 {
		b := m.Edit()
		for range rng.IntN(40) {
			k := fmt.Sprintf("svc-%d.svc.internal.", rng.IntN(names))
			if rng.IntN(3) == 0 {
				b.Delete(k)
				delete(ref, k)
			} else {
				b.Set(k, step)
				ref[k] = step
			}
			want, present := ref[k]
			if v, ok := b.Get(k); ok != present || v != want {
				t.Fatalf("step %d: builder's %s = %d, %v; want %d, %v", step, k, v, ok, want, present)
			}
		}
		if b.Len() != len(ref) {
			t.Fatalf("step %d: builder's Len %d, want %d", step, b.Len(), len(ref))
		}
		m = b.Map()
		versions = append(versions, m)
		want = append(want, maps.Clone(ref))
		if step%20 != 19 {
			continue
		}
		for i, v := range versions {
			if err := holds(v, want[i]); err != nil {
				t.Fatalf("after step %d, the map of step %d: %v", step, i, err)
			}
		}
	}
}

// holds reports how m differs from want.
func holds(m *Map[int], want map[string]int) error {
	if m.Len() != len(want) {
		return fmt.Errorf("Len %d, want %d", m.Len(), len(want))
	}
	got := maps.Collect(m.All())
	if !maps.Equal(got, want) {
		return fmt.Errorf("All yields %d keys differing from the %d wanted", len(got), len(want))
	}
	for k, v := range want {
		if g, ok := m.Get(k); !ok || g != v {
			return fmt.Errorf("Get(%s) = %d, %v; want %d", k, g, ok, v)
		}
	}
	if _, ok := m.Get("absent."); ok {
		return fmt.Errorf("Get of an absent key found it")
	}
	return nil
}

func TestNilMap(t *testing.T) {
	var m *Map[string]
	if _, ok := m.Get("a"); ok || m.Len() != 0 {
		t.Fatal("the nil map is not empty")
	}
	for range m.All() {
		t.Fatal("the nil map yields")
	}
	b := m.Edit()
	b.Set("a", "x")
	b.Delete("b")
	if got := b.Map(); got.Len() != 1 {
		t.Fatalf("Len %d after one Set", got.Len())
	}
}

// BenchmarkEditOne is one key changed in a map of n keys: the cost of a
// change does not grow with the map (compare maps.Clone of the same map).
func BenchmarkEditOne(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		var m *Map[int]
		plain := map[string]int{}
		e := m.Edit()
		for i := range n {
			k := fmt.Sprintf("svc-%d.svc.internal.", i)
			e.Set(k, i)
			plain[k] = i
		}
		m = e.Map()
		b.Run(fmt.Sprintf("n=%d/shardmap", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				e := m.Edit()
				e.Set(fmt.Sprintf("svc-%d.svc.internal.", i%n), i)
				e.Map()
			}
		})
		b.Run(fmt.Sprintf("n=%d/clone", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				c := maps.Clone(plain)
				c[fmt.Sprintf("svc-%d.svc.internal.", i%n)] = i
			}
		})
	}
}

// TestBuilderChangesItsMap: the map a Builder returns follows its later
// changes (the skydns trees edit a shard after publishing it in the copy
// being built), and the map edited stays as it was.
func TestBuilderChangesItsMap(t *testing.T) {
	b := (*Map[int])(nil).Edit()
	b.Set("a", 1)
	before := b.Map()
	e := before.Edit()
	m := e.Map()
	e.Set("b", 2)
	e.Delete("a")
	if v, ok := m.Get("b"); !ok || v != 2 {
		t.Fatalf("the map being built misses a later Set: %d, %v", v, ok)
	}
	if _, ok := m.Get("a"); ok || m.Len() != 1 {
		t.Fatalf("the map being built misses a later Delete (Len %d)", m.Len())
	}
	if v, ok := before.Get("a"); !ok || v != 1 || before.Len() != 1 {
		t.Fatalf("the map edited changed: a = %d, %v, Len %d", v, ok, before.Len())
	}
}
