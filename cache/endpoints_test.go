package cache

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// referenceEndpoints is the rule of endpointSet computed from scratch:
// instances in key order, the first of each address and port kept, each
// given the first candidate of its chain not taken before it.
func referenceEndpoints(insts []Instance) (eps []Endpoint, clashes []string) {
	insts = slices.Clone(insts)
	slices.SortFunc(insts, func(a, b Instance) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.ID, b.ID))
	})
	seen := map[hostPort]bool{}
	used := map[string]bool{}
	for _, in := range insts {
		hp := hostPort{addr: strings.ToLower(in.Address), port: in.Port}
		if in.SkyDNS != nil {
			hp.id = in.Source + "/" + in.ID
		}
		if seen[hp] {
			continue
		}
		seen[hp] = true
		id := in.Source + "/" + in.ID
		base := Label(in.ID)
		label := base
		if used[label] || label == "" {
			label = suffixed(base, id)
			for n := 1; used[label]; n++ {
				if n == 1 {
					clashes = append(clashes, id)
				}
				label = suffixed(base, id+"#"+strconv.Itoa(n))
			}
		}
		used[label] = true
		eps = append(eps, Endpoint{Label: label, Instance: &in})
	}
	slices.SortFunc(eps, func(a, b Endpoint) int { return cmp.Compare(a.Label, b.Label) })
	slices.Sort(clashes)
	return eps, clashes
}

// TestEndpointSetFollowsRule puts and deletes instances at random, with
// IDs chosen to collide (the same label, empty labels, labels that are
// another's hash suffix) and addresses shared across sources, and checks
// after each change that the set's endpoints, kept change by change and
// published as changes, are the rule's from scratch.
func TestEndpointSetFollowsRule(t *testing.T) {
	ids := []string{"a", "A", "a_", "_a", "b", "B", "_", "__", "???", "c", "C.", "d"}
	// IDs whose label is another's first suffixed candidate.
	for _, src := range []string{"s1", "s2"} {
		for _, id := range []string{"a", "_", "b"} {
			crafted := strings.TrimPrefix(suffixed(Label(id), src+"/"+id), Label(id)+"-")
			ids = append(ids, "X-"+crafted, strings.ToUpper(Label(id))+"-"+crafted)
		}
	}
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 17))
		s := newEndpointSet(0)
		live := map[instKey]Instance{}
		for step := range 300 {
			in := Instance{
				Source:  []string{"s1", "s2"}[r.IntN(2)],
				ID:      ids[r.IntN(len(ids))],
				Address: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "HOST", "host"}[r.IntN(5)],
				Port:    uint16(80 + r.IntN(2)),
			}
			in.Weight = uint16(r.IntN(3))
			if r.IntN(4) == 0 {
				in.SkyDNS = &SkyDNS{} // told apart by name
			}
			key := instKey{in.Source, in.ID}
			if r.IntN(3) == 0 {
				_, had := live[key]
				if s.delete(key) != had {
					t.Fatalf("seed %d step %d: delete %v reported %v", seed, step, key, !had)
				}
				delete(live, key)
			} else {
				s.put(&in)
				live[key] = in
			}
			want, wantClashes := referenceEndpoints(slices.Collect(mapsValues(live)))
			got := s.all()
			slices.SortFunc(got, func(a, b Endpoint) int { return cmp.Compare(a.Label, b.Label) })
			if !equalEndpoints(got, want) {
				t.Fatalf("seed %d step %d: endpoints\n got %v\nwant %v", seed, step, show(got), show(want))
			}
			if c := s.clashIDs(); !slices.Equal(c, wantClashes) {
				t.Fatalf("seed %d step %d: clashes %v, want %v", seed, step, c, wantClashes)
			}
			if len(s.tried) > 0 {
				for label, es := range s.tried {
					if h, _ := s.byLabel.get(label); h == nil {
						t.Fatalf("seed %d step %d: %q tried but free", seed, step, label)
					} else {
						for _, e := range es {
							if e.key.compare(h.key) <= 0 {
								t.Fatalf("seed %d step %d: %v tried %q held by later %v", seed, step, e.key, label, h.key)
							}
						}
					}
				}
			}
		}
	}
}

// TestEndpointSetChanges: what takeChanges hands out, merged into the
// last published list, is the list now.
func TestEndpointSetChanges(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	s := newEndpointSet(0)
	var published []Endpoint
	live := map[instKey]Instance{}
	for step := range 2000 {
		in := Instance{Source: "s", ID: "i" + strconv.Itoa(r.IntN(200)), Address: "10.0.0." + strconv.Itoa(r.IntN(150)), Port: 80}
		key := instKey{in.Source, in.ID}
		if r.IntN(2) == 0 {
			s.delete(key)
			delete(live, key)
		} else {
			s.put(&in)
			live[key] = in
		}
		if r.IntN(5) == 0 {
			published = applyChanges(published, s.takeChanges())
			want, _ := referenceEndpoints(slices.Collect(mapsValues(live)))
			if !equalEndpoints(published, want) {
				t.Fatalf("step %d: published\n got %v\nwant %v", step, show(published), show(want))
			}
		}
	}
}

func mapsValues(m map[instKey]Instance) func(func(Instance) bool) {
	return func(yield func(Instance) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

func equalEndpoints(a, b []Endpoint) bool {
	return slices.EqualFunc(a, b, func(x, y Endpoint) bool { return x.Label == y.Label && x.Instance.Equal(y.Instance) })
}

func show(eps []Endpoint) string {
	var b strings.Builder
	for _, e := range eps {
		fmt.Fprintf(&b, "%s=%s/%s@%s:%d ", e.Label, e.Source, e.ID, e.Address, e.Port)
	}
	return b.String()
}
