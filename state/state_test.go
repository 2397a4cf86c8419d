package state

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/discodns/discodns/cache"
)

func testFile() *File {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &File{Written: t0, Sources: map[string]Source{
		"etcd": {AsOf: t0, Instances: []cache.Instance{
			{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80, Weight: 10, Tags: []string{"x"}, Meta: map[string]string{"k": "v"}},
		}},
		"zk": {AsOf: t0.Add(-time.Hour), Instances: []cache.Instance{}},
	}}
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	want := testFile()
	if err := Write(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read %+v, wrote %+v", got, want)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("the directory holds %d files, want only the state file", len(ents))
	}
}

func TestDecodeRefuses(t *testing.T) {
	good, err := Encode(testFile())
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)-5] ^= 0x20
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "no header"},
		{"garbage", []byte("hello\nworld"), "not a discodns state header"},
		{"header only", good[:bytes.IndexByte(good, '\n')], "no header"},
		{"truncated", good[:len(good)-10], "truncated"},
		{"appended", append(bytes.Clone(good), "x"...), "appended"},
		{"corrupted", flipped, "checksum"},
		{"other version", []byte(strings.Replace(string(good), "discodns-state 1 ", "discodns-state 2 ", 1)), "version 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Decode(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode = %v, %v; want an error with %q", f, err, tt.want)
			}
			if f != nil {
				t.Errorf("a refused file gave %+v", f)
			}
		})
	}
}

func TestSeed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	if err := Write(path, testFile()); err != nil {
		t.Fatal(err)
	}
	table := cache.NewTable(slog.Default())
	table.AddSource("etcd", "svc.internal.")
	table.AddSource("zk", "svc.internal.")
	table.AddSource("consul", "svc.internal.")
	table.Replace("zk", []cache.Instance{{Service: "db", ID: "1", Address: "10.0.0.9", Port: 5432}})

	seeded := Seed(Load(path, slog.Default()), table, slog.Default())
	if !reflect.DeepEqual(seeded, []string{"etcd"}) {
		t.Fatalf("seeded %v, want [etcd] (zk listed, consul not in the file)", seeded)
	}
	snap := table.Snapshot()
	if snap.Services.Get("web.svc.internal.") == nil || snap.Services.Get("db.svc.internal.") == nil {
		t.Fatal("seeded and listed services are not both served")
	}
	for _, st := range snap.Sources {
		if st.Name == "etcd" && (st.State != cache.StateStale || st.Seeded.IsZero()) {
			t.Errorf("seeded source: %+v", st)
		}
	}
	// The file round-trips what the table serves.
	f := FromSnapshot(snap, time.Now())
	if n := len(f.Sources["etcd"].Instances); n != 1 || !f.Sources["etcd"].AsOf.Equal(testFile().Written) {
		t.Errorf("etcd in the next file: %+v", f.Sources["etcd"])
	}
	if _, ok := f.Sources["consul"]; ok {
		t.Error("a source that has not listed is written")
	}

	// The first live list replaces the seed exactly.
	table.Replace("etcd", []cache.Instance{{Service: "api", ID: "b", Address: "10.0.0.2", Port: 81}})
	snap = table.Snapshot()
	if snap.Services.Get("web.svc.internal.") != nil || snap.Services.Get("api.svc.internal.") == nil {
		t.Error("the live list did not replace the seeded instances")
	}
	for _, st := range snap.Sources {
		if st.Name == "etcd" && (st.State != cache.StateConnected || !st.Seeded.IsZero()) {
			t.Errorf("listed source still marked seeded: %+v", st)
		}
	}
	if again := Seed(Load(path, slog.Default()), table, slog.Default()); len(again) != 0 {
		t.Errorf("a listed source was seeded again: %v", again)
	}
}

func TestSeedIgnoresBadFile(t *testing.T) {
	for _, data := range []string{"", "discodns-state 1 sha256:00 3\nabc", "\x00\x01garbage", "missing"} {
		path := filepath.Join(t.TempDir(), "state")
		if data != "missing" {
			os.WriteFile(path, []byte(data), 0o600)
		}
		table := cache.NewTable(slog.Default())
		table.AddSource("etcd", "svc.internal.")
		if seeded := Seed(Load(path, slog.Default()), table, slog.Default()); len(seeded) != 0 || table.Snapshot().Ready() {
			t.Errorf("file %q seeded %v", data, seeded)
		}
	}
}

// TestWriter: the writer writes at start, after a change, and once more at
// the end when the table changed since its last write.
func TestWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	table := cache.NewTable(slog.Default())
	table.AddSource("etcd", "svc.internal.")
	w := NewWriter(path, table, prometheus.NewRegistry(), slog.Default())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	instances := func() int {
		f, err := Read(path)
		if err != nil {
			return -1
		}
		return len(f.Sources["etcd"].Instances)
	}
	table.Replace("etcd", []cache.Instance{{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80}})
	for deadline := time.Now().Add(10 * time.Second); instances() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the change is not written: %d instances", instances())
		}
	}
	// A change and the end at once: the end writes it.
	table.Replace("etcd", []cache.Instance{{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80}, {Service: "web", ID: "b", Address: "10.0.0.2", Port: 80}})
	cancel()
	<-done
	if n := instances(); n != 2 {
		t.Errorf("after the end: %d instances in the file, want 2", n)
	}
}

// TestWriterChangeDuringWrite: a change published, and the end, while the
// writer writes the snapshot before it are written before Run returns.
func TestWriterChangeDuringWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	table := cache.NewTable(slog.Default())
	table.AddSource("etcd", "svc.internal.")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The writer's second snapshot is the one it takes after the first
	// change; the second change and the end come as it takes it.
	snaps := &onSnapshot{Snapshots: table, at: 2, hook: func() {
		table.Replace("etcd", []cache.Instance{{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80}, {Service: "web", ID: "b", Address: "10.0.0.2", Port: 80}})
		cancel()
	}}
	w := NewWriter(path, snaps, prometheus.NewRegistry(), slog.Default())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	// The first change after the writer's first snapshot, which it
	// writes at once.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := Read(path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer wrote nothing at start")
		}
	}
	table.Replace("etcd", []cache.Instance{{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80}})
	<-done
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.Sources["etcd"].Instances); n != 2 {
		t.Errorf("after the end: %d instances in the file, want 2", n)
	}
}

// onSnapshot calls hook after taking the at-th snapshot, before returning
// it. Only one goroutine may take snapshots through it.
type onSnapshot struct {
	cache.Snapshots
	at, n int
	hook  func()
}

func (o *onSnapshot) Snapshot() *cache.Snapshot {
	s := o.Snapshots.Snapshot()
	if o.n++; o.n == o.at {
		o.hook()
	}
	return s
}
