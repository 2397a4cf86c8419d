package cache

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const zone = "svc.internal."

func newTable(t *testing.T, sources ...string) *Table {
	t.Helper()
	tb := NewTable(slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, s := range sources {
		tb.AddSource(s, zone)
	}
	return tb
}

func inst(svc, id, addr string, port uint16) Instance {
	return Instance{Service: svc, ID: id, Address: addr, Port: port, Priority: 1, Weight: 1}
}

func labels(s *Service) []string {
	var out []string
	if s == nil {
		return nil
	}
	for _, e := range s.Endpoints {
		out = append(out, e.Label)
	}
	return out
}

func TestLabel(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"web", "web"},
		{"My_Service.v2", "my-service-v2"},
		{"10.0.0.5:8080", "10-0-0-5-8080"},
		{"--x--", "x"},
		{"___", ""},
		{"[2001:db8::1]:9000", "2001-db8--1--9000"},
		{string(make([]byte, 80)), ""},
	} {
		if got := Label(tc.in); got != tc.want {
			t.Errorf("Label(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := Label("a" + string(make([]byte, 70)) + "b")
	if len(long) > 63 {
		t.Errorf("label longer than 63: %d", len(long))
	}
	// Names that are labels already are returned as they are: the same
	// as the conversion, over random names of the characters that
	// matter, at the lengths where the bounds are.
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		chars := []string{"az09-", "az09-A_."}[rng.IntN(2)] // half of them only label characters
		b := make([]byte, rng.IntN(66))
		for i := range b {
			b[i] = chars[rng.IntN(len(chars))]
		}
		if name := string(b); Label(name) != toLabel(name) {
			t.Fatalf("Label(%q) = %q, the conversion gives %q", name, Label(name), toLabel(name))
		}
	}
}

func TestPutDeleteReplace(t *testing.T) {
	tb := newTable(t, "etcd")
	if tb.Snapshot().Ready() {
		t.Fatal("ready before the source listed")
	}
	tb.Replace("etcd", []Instance{inst("web", "a", "10.0.0.1", 80), inst("web", "b", "10.0.0.2", 80)})
	snap := tb.Snapshot()
	if !snap.Ready() || snap.Sources[0].State != StateConnected {
		t.Fatalf("after Replace: ready=%v state=%v", snap.Ready(), snap.Sources[0].State)
	}
	if got := labels(snap.Services.Get("web." + zone)); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("labels = %v", got)
	}
	tb.Put("etcd", inst("web", "c", "10.0.0.3", 80))
	tb.Delete("etcd", "web", "a")
	if got := labels(tb.Snapshot().Services.Get("web." + zone)); len(got) != 2 || got[0] != "b" || got[1] != "c" {
		t.Fatalf("after put/delete labels = %v", got)
	}
	// A re-list drops what vanished.
	tb.Replace("etcd", []Instance{inst("db", "x", "10.0.1.1", 5432)})
	snap = tb.Snapshot()
	if snap.Services.Get("web."+zone) != nil {
		t.Fatal("web survived a Replace that did not list it")
	}
	if snap.Sources[0].Services != 1 || snap.Sources[0].Instances != 1 {
		t.Fatalf("counts = %d services %d instances", snap.Sources[0].Services, snap.Sources[0].Instances)
	}
}

func TestUnchangedServiceKeepsPointer(t *testing.T) {
	tb := newTable(t, "etcd")
	tb.Replace("etcd", []Instance{inst("web", "a", "10.0.0.1", 80), inst("db", "x", "10.0.1.1", 5432)})
	before := tb.Snapshot()
	tb.Put("etcd", inst("web", "b", "10.0.0.2", 80))
	after := tb.Snapshot()
	if before.Services.Get("db."+zone) != after.Services.Get("db."+zone) {
		t.Error("unchanged service was rebuilt")
	}
	if before.Services.Get("web."+zone) == after.Services.Get("web."+zone) {
		t.Error("changed service kept its old value")
	}
	if after.Version <= before.Version {
		t.Error("version did not increase")
	}
	select {
	case <-before.Superseded():
	default:
		t.Error("old snapshot not marked superseded")
	}
	// An identical Put publishes nothing.
	tb.Put("etcd", inst("web", "b", "10.0.0.2", 80))
	if tb.Snapshot() != after {
		t.Error("identical Put published a snapshot")
	}
}

func TestMergeSourcesDedup(t *testing.T) {
	tb := newTable(t, "consul", "etcd")
	tb.Replace("etcd", []Instance{inst("web", "a", "10.0.0.1", 80), inst("web", "x", "10.0.0.9", 80)})
	tb.Replace("consul", []Instance{inst("web", "a", "10.0.0.2", 80), inst("web", "dup", "10.0.0.9", 80)})
	svc := tb.Snapshot().Services.Get("web." + zone)
	if len(svc.Endpoints) != 3 {
		t.Fatalf("endpoints = %v, want 3 (10.0.0.9:80 once)", labels(svc))
	}
	seen := map[string]bool{}
	for _, e := range svc.Endpoints {
		if seen[e.Label] {
			t.Fatalf("label %q twice", e.Label)
		}
		seen[e.Label] = true
	}
	// Removing one source leaves the other's instances.
	tb.RemoveSource("consul")
	if got := labels(tb.Snapshot().Services.Get("web." + zone)); len(got) != 2 {
		t.Fatalf("after RemoveSource: %v", got)
	}
}

func TestCollisionReported(t *testing.T) {
	tb := newTable(t, "etcd")
	tb.Replace("etcd", []Instance{inst("my_svc", "a", "10.0.0.1", 80), inst("my.svc", "b", "10.0.0.2", 80)})
	snap := tb.Snapshot()
	svc := snap.Services.Get("my-svc." + zone)
	if svc == nil || len(svc.Endpoints) != 1 || svc.Endpoints[0].ID != "b" {
		t.Fatalf("want only my.svc (first in order), got %+v", svc)
	}
	if len(snap.Collisions) != 1 || snap.Collisions[0] != "etcd/my_svc" {
		t.Fatalf("collisions = %v", snap.Collisions)
	}
	// The loser goes away: the collision is cleared.
	tb.Delete("etcd", "my_svc", "a")
	if c := tb.Snapshot().Collisions; len(c) != 0 {
		t.Fatalf("collisions after the loser left = %v", c)
	}
	// The winner goes away: the other name is served.
	tb.Put("etcd", inst("my_svc", "a", "10.0.0.1", 80))
	tb.Delete("etcd", "my.svc", "b")
	snap = tb.Snapshot()
	if svc := snap.Services.Get("my-svc." + zone); svc == nil || svc.Endpoints[0].ID != "a" || len(snap.Collisions) != 0 {
		t.Fatalf("after the winner left: %+v, collisions %v", svc, snap.Collisions)
	}
}

func TestUnusableServiceNameSkipped(t *testing.T) {
	tb := newTable(t, "etcd")
	tb.Replace("etcd", []Instance{inst("___", "a", "10.0.0.1", 80), inst("web", "b", "10.0.0.2", 80)})
	tb.Put("etcd", inst("...", "c", "10.0.0.3", 80))
	snap := tb.Snapshot()
	if snap.Services.Len() != 1 || snap.Services.Get("web."+zone) == nil {
		t.Fatalf("services = %v, want only web", snap.Services)
	}
	if st := snap.Sources[0]; st.Services != 1 || st.Instances != 1 {
		t.Fatalf("status = %+v", st)
	}
}

func TestStaleKeepsInstances(t *testing.T) {
	tb := newTable(t, "etcd")
	tb.Replace("etcd", []Instance{inst("web", "a", "10.0.0.1", 80)})
	tb.SetState("etcd", StateStale, errors.New("connection refused"))
	snap := tb.Snapshot()
	if snap.Sources[0].State != StateStale || snap.Sources[0].Err == "" {
		t.Fatalf("status = %+v", snap.Sources[0])
	}
	if len(snap.Services.Get("web."+zone).Endpoints) != 1 {
		t.Fatal("stale source lost its instances")
	}
	if !snap.Ready() {
		t.Fatal("a source that listed once stays ready while stale")
	}
}

func TestRecentChanges(t *testing.T) {
	tb := newTable(t, "etcd")
	tb.Replace("etcd", []Instance{inst("web", "a", "10.0.0.1", 80)})
	tb.Put("etcd", inst("web", "b", "10.0.0.2", 80))
	tb.Delete("etcd", "web", "a")
	tb.Delete("etcd", "web", "b")
	got := tb.Snapshot().Changes
	want := [][2]int{{1, 0}, {2, 1}, {1, 2}, {0, 1}} // before, after; newest first
	if len(got) != len(want) {
		t.Fatalf("changes %+v", got)
	}
	for i, c := range got {
		if w := want[i]; c.FQDN != "web."+zone || c.Before != w[0] || c.Instances != w[1] {
			t.Errorf("change %d = %+v, want before %d after %d", i, c, w[0], w[1])
		}
	}
	for range maxRecentChanges + 5 {
		tb.Put("etcd", inst("db", "x", "10.0.1.1", 5432))
		tb.Delete("etcd", "db", "x")
	}
	if n := len(tb.Snapshot().Changes); n != maxRecentChanges {
		t.Errorf("%d changes kept, want %d", n, maxRecentChanges)
	}
	// One publication of more changes than are kept: the list is that
	// publication's alone.
	var many []Instance
	for i := range maxRecentChanges + 50 {
		many = append(many, inst(fmt.Sprint("bulk-", i), "a", "10.0.2.1", 80))
	}
	tb.Replace("etcd", many)
	got = tb.Snapshot().Changes
	if len(got) != maxRecentChanges {
		t.Fatalf("%d changes kept after a publication of %d, want %d", len(got), len(many), maxRecentChanges)
	}
	for _, c := range got {
		if !strings.HasPrefix(c.FQDN, "bulk-") || c.Instances != 1 || c.Before != 0 {
			t.Errorf("change %+v, want a new bulk- service", c)
		}
	}
}

// TestExactNameWins: of the registry names that map to one label, the
// name that is the label itself is served whatever the order of arrival
// and whichever source holds it; the others are reported; the same exact
// name from two sources is their union.
func TestExactNameWins(t *testing.T) {
	impostors := []string{"-web-", "Web", "WEB", "web_", "web.", "_web"}
	for _, order := range []string{"impostors first", "web first"} {
		t.Run(order, func(t *testing.T) {
			tb := newTable(t, "a", "b")
			putImpostors := func() {
				for i, name := range impostors {
					tb.Put("b", inst(name, "x", "10.6.6."+strconv.Itoa(i+1), 80))
				}
			}
			if order == "impostors first" {
				putImpostors()
			}
			tb.Put("a", inst("web", "1", "10.0.0.1", 80))
			tb.Put("b", inst("web", "2", "10.0.0.2", 80))
			if order == "web first" {
				putImpostors()
			}
			snap := tb.Snapshot()
			svc := snap.Services.Get("web." + zone)
			if svc == nil || len(svc.Endpoints) != 2 || svc.Endpoints[0].Address != "10.0.0.1" || svc.Endpoints[1].Address != "10.0.0.2" {
				t.Fatalf("web = %+v, want the two instances of the name web", svc)
			}
			if len(snap.Collisions) != len(impostors) {
				t.Fatalf("collisions = %v, want every impostor", snap.Collisions)
			}
			// Without the exact name, the first name in order is served.
			tb.Delete("a", "web", "1")
			tb.Delete("b", "web", "2")
			snap = tb.Snapshot()
			if svc := snap.Services.Get("web." + zone); svc == nil || svc.Endpoints[0].Service != "-web-" || len(snap.Collisions) != len(impostors)-1 {
				t.Fatalf("without web: %+v, collisions %v; want -web- served", svc, snap.Collisions)
			}
		})
	}
}

// TestInstanceLabelsUnique: IDs crafted so that an ID's label is another
// ID's suffixed label still give every instance its own label, the same
// in every snapshot, and the clash is counted until it goes.
func TestInstanceLabelsUnique(t *testing.T) {
	tb := newTable(t, "grpc")
	crafted := "B-" + strings.TrimPrefix(suffixed("b", "grpc/b"), "b-")
	tb.Replace("grpc", []Instance{
		inst("svc", "B", "10.0.0.1", 1),
		inst("svc", "b", "10.0.0.2", 2),
		inst("svc", crafted, "10.0.0.3", 3),
	})
	snap := tb.Snapshot()
	first := labels(snap.Services.Get("svc." + zone))
	if len(first) != 3 || first[0] == first[1] || first[1] == first[2] {
		t.Fatalf("labels %v, want three different ones", first)
	}
	if snap.InstanceLabelCollisions != 1 {
		t.Fatalf("instance label collisions = %d, want 1", snap.InstanceLabelCollisions)
	}
	tb.Put("grpc", inst("svc", "c", "10.0.0.4", 4))
	tb.Delete("grpc", "svc", "c")
	if again := labels(tb.Snapshot().Services.Get("svc." + zone)); !slices.Equal(again, first) {
		t.Fatalf("labels changed from %v to %v", first, again)
	}
	tb.Delete("grpc", "svc", crafted)
	if n := tb.Snapshot().InstanceLabelCollisions; n != 0 {
		t.Fatalf("instance label collisions after the crafted ID left = %d, want 0", n)
	}
}

// TestUnusableNamesForgotten: a name with no usable label counts while it
// has instances, through puts, deletes and lists alike.
func TestUnusableNamesForgotten(t *testing.T) {
	tb := newTable(t, "etcd")
	invalid := func() int { return tb.Snapshot().Sources[0].InvalidNames }
	tb.Put("etcd", inst("___", "a", "10.0.0.1", 80))
	tb.Put("etcd", inst("___", "b", "10.0.0.2", 80))
	tb.Put("etcd", inst("...", "c", "10.0.0.3", 80))
	if n := invalid(); n != 2 {
		t.Fatalf("invalid names = %d, want 2", n)
	}
	tb.Delete("etcd", "___", "a")
	tb.ReplaceService("etcd", "...", nil)
	if n := invalid(); n != 1 {
		t.Fatalf("invalid names = %d, want 1", n)
	}
	tb.Replace("etcd", []Instance{inst("web", "a", "10.0.0.1", 80)})
	if n := invalid(); n != 0 {
		t.Fatalf("invalid names after a list without them = %d, want 0", n)
	}
}

func TestSnapshotChangedSince(t *testing.T) {
	tb := newTable(t, "etcd")
	put := func(svc string) {
		tb.Put("etcd", Instance{Service: svc, ID: "a", Address: "10.0.0.1", Port: uint16(len(svc))})
	}
	first := tb.Snapshot()
	put("web")
	put("api")
	tb.Delete("etcd", "web", "a")
	last := tb.Snapshot()
	got, ok := last.ChangedSince(first)
	slices.Sort(got)
	if !ok || !slices.Equal(slices.Compact(got), []string{"api." + zone, "web." + zone}) {
		t.Errorf("ChangedSince = %v, %v; want api and web", got, ok)
	}
	if got, ok := last.ChangedSince(last); !ok || len(got) != 0 {
		t.Errorf("ChangedSince itself = %v, %v; want none, true", got, ok)
	}
	if _, ok := first.ChangedSince(last); ok {
		t.Error("ChangedSince a later snapshot: want false")
	}
	if _, ok := last.ChangedSince(newTable(t).Snapshot()); ok {
		t.Error("ChangedSince another table's snapshot: want false")
	}
	for i := range maxChangeLog + 1 {
		put(fmt.Sprint("s", i))
	}
	if _, ok := tb.Snapshot().ChangedSince(last); ok {
		t.Errorf("ChangedSince %d publications ago: want false", maxChangeLog+1)
	}
	// A publication that changed more services than a log lists tells
	// nothing.
	before := tb.Snapshot()
	many := make([]Instance, maxLoggedChanges+1)
	for i := range many {
		many[i] = Instance{Service: fmt.Sprint("m", i), ID: "a", Address: "10.0.0.1", Port: 1}
	}
	tb.Replace("etcd", many)
	if _, ok := tb.Snapshot().ChangedSince(before); ok {
		t.Errorf("ChangedSince a publication of %d changes: want false", len(many))
	}
	put("after")
	if got, ok := tb.Snapshot().ChangedSince(tb.Snapshot()); !ok || len(got) != 0 {
		t.Errorf("ChangedSince itself after many: %v, %v", got, ok)
	}
}
