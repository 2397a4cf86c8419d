package zookeeper

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/internal/watchertest"
)

// fakeZK is an in-memory tree for the list logic of run. beforeGet runs
// once per path, just before that path is read, to change the tree between
// a list of children and the reads that follow it.
type fakeZK struct {
	nodes     map[string][]byte
	beforeGet map[string]func()
}

func (f *fakeZK) ChildrenW(p string) ([]string, *zk.Stat, <-chan zk.Event, error) {
	if _, ok := f.nodes[p]; !ok {
		return nil, nil, nil, zk.ErrNoNode
	}
	var kids []string
	for n := range f.nodes {
		if path.Dir(n) == p && n != p {
			kids = append(kids, path.Base(n))
		}
	}
	slices.Sort(kids)
	return kids, &zk.Stat{}, nil, nil
}

func (f *fakeZK) ExistsW(p string) (bool, *zk.Stat, <-chan zk.Event, error) {
	_, ok := f.nodes[p]
	return ok, &zk.Stat{}, nil, nil
}

func (f *fakeZK) GetW(p string) ([]byte, *zk.Stat, <-chan zk.Event, error) {
	if hook := f.beforeGet[p]; hook != nil {
		delete(f.beforeGet, p)
		hook()
	}
	data, ok := f.nodes[p]
	if !ok {
		return nil, nil, nil, zk.ErrNoNode
	}
	return data, &zk.Stat{}, nil, nil
}

func (f *fakeZK) SessionID() int64 { return 1 }
func (f *fakeZK) State() zk.State  { return zk.StateHasSession }
func (f *fakeZK) replace(del, add string) func() {
	return func() {
		delete(f.nodes, del)
		f.nodes[add] = []byte(`{}`)
	}
}

// TestZooKeeperServiceNeverLooksEmpty replaces a service's only instance
// while the source is between a list of children and a read, or has an
// event for the old node before the one for the new node, as a busy
// registry does. The service always has an instance in ZooKeeper, so it
// must never be served empty.
func TestZooKeeperServiceNeverLooksEmpty(t *testing.T) {
	z, err := New(Config{Name: "zk", Servers: []string{"unused:2181"}, Prefix: "/services", SessionTimeout: time.Second}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const svc = "/services/web"
	inst := func(n int) string { return fmt.Sprintf("%s/10.0.0.%d:80", svc, n) }
	f := &fakeZK{
		nodes:     map[string][]byte{"/services": nil, svc: nil, inst(1): []byte(`{}`)},
		beforeGet: map[string]func(){},
	}
	sink := watchertest.NewEmptyWatch()
	r := z.newRun(sink)
	r.conn = f

	// expect checks what web holds after step, and that it was never
	// served empty on the way.
	expect := func(step, want string) {
		t.Helper()
		if got := sink.Instances("web"); got != want {
			t.Fatalf("after %s, web = %q, want %q", step, got, want)
		}
		if len(sink.Emptied) > 0 {
			t.Fatalf("after %s: web was served with no instance although ZooKeeper always had one", step)
		}
	}

	// The full list: instance 1 is replaced by 2 after the children are
	// listed and before 1 is read.
	f.beforeGet[inst(1)] = f.replace(inst(1), inst(2))
	r.list(watcher.ReasonInitial)
	expect("the list", "10.0.0.2:80")

	// A children event: 2 is replaced by 3, whose read races with its
	// replacement by 4.
	f.replace(inst(2), inst(3))()
	f.beforeGet[inst(3)] = f.replace(inst(3), inst(4))
	if err := r.syncService("web"); err != nil {
		t.Fatal(err)
	}
	expect("the children event", "10.0.0.4:80")

	// A data event for the only known instance, which meanwhile was
	// deleted after a new one was created (whose children event would
	// come next): the new one is served before the old one goes.
	f.replace(inst(4), inst(5))()
	r.handle(zk.Event{Type: zk.EventNodeDataChanged, Path: inst(4)})
	expect("the data event", "10.0.0.5:80")

	// The same for a deletion event, as a reconnect in the same session
	// delivers it: before the children event that announces the new node.
	f.replace(inst(5), inst(6))()
	r.handle(zk.Event{Type: zk.EventNodeDeleted, Path: inst(5)})
	expect("the deletion event", "10.0.0.6:80")

	// A service that really loses its last instance is emptied.
	delete(f.nodes, inst(6))
	r.handle(zk.Event{Type: zk.EventNodeDeleted, Path: inst(6)})
	if got := sink.Instances("web"); got != "" {
		t.Errorf("web = %q after its last node went, want nothing", got)
	}
}

// TestZooKeeperDubboAndRootWalks: the dubbo layout reads the children of
// <svc>/providers only, and follows a providers node that comes and goes;
// a root prefix skips /zookeeper.
func TestZooKeeperDubboAndRootWalks(t *testing.T) {
	newRun := func(prefix, format string, nodes map[string][]byte) (*run, *fakeZK, *watchertest.EmptyWatch) {
		z, err := New(Config{Name: "zk", Servers: []string{"unused:2181"}, Prefix: prefix, Format: format, SessionTimeout: time.Second}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		f := &fakeZK{nodes: nodes, beforeGet: map[string]func(){}}
		sink := watchertest.NewEmptyWatch()
		r := z.newRun(sink)
		r.conn = f
		r.list(watcher.ReasonInitial)
		r.session = f.SessionID()
		return r, f, sink
	}

	const svc = "org.x.Greeter"
	p := "/dubbo/" + svc + "/providers/dubbo%3A%2F%2F10.0.0.1%3A20880%2Forg.x.Greeter"
	r, f, sink := newRun("/dubbo", "dubbo", map[string][]byte{
		"/dubbo": nil, "/dubbo/" + svc: nil, "/dubbo/" + svc + "/providers": nil, p: nil,
		"/dubbo/" + svc + "/consumers": nil, "/dubbo/" + svc + "/consumers/consumer%3A%2F%2F10.0.0.9%2Fx": nil,
		"/dubbo/config": nil, "/dubbo/config/dubbo": nil,
	})
	if got := sink.Instances(svc); !strings.HasPrefix(got, "dubbo-10.0.0.1:20880-") || strings.Contains(got, ",") {
		t.Fatalf("after the list, %s = %q, want the one provider", svc, got)
	}
	if got := sink.Instances("config"); got != "" {
		t.Errorf("/dubbo/config served %q", got)
	}
	// The providers node goes, then comes back with a provider.
	delete(f.nodes, p)
	delete(f.nodes, "/dubbo/"+svc+"/providers")
	r.handle(zk.Event{Type: zk.EventNodeDeleted, Path: "/dubbo/" + svc + "/providers"})
	if got := sink.Instances(svc); got != "" {
		t.Fatalf("after providers went, %s = %q", svc, got)
	}
	f.nodes["/dubbo/"+svc+"/providers"] = nil
	f.nodes[strings.Replace(p, "10.0.0.1", "10.0.0.2", 1)] = nil
	r.handle(zk.Event{Type: zk.EventNodeCreated, Path: "/dubbo/" + svc + "/providers"})
	if got := sink.Instances(svc); !strings.HasPrefix(got, "dubbo-10.0.0.2:20880-") {
		t.Fatalf("after providers came back, %s = %q", svc, got)
	}

	_, _, sink = newRun("/", "discox", map[string][]byte{
		"/": nil, "/zookeeper": nil, "/zookeeper/quota": nil, "/echo": nil, "/echo/10.0.0.3:8888": []byte(`{"Weight":10,"Tags":{}}`),
	})
	if got := sink.Instances("echo"); got != "10.0.0.3:8888" {
		t.Errorf("root prefix: echo = %q", got)
	}
	if got := sink.Instances("zookeeper"); got != "" {
		t.Errorf("root prefix: /zookeeper served %q", got)
	}
}
