package test

import (
	"context"
	"fmt"
	"hash/fnv"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// digAnswers asks dig for qtype at name and returns the answer records'
// data (addresses, SRV "port target"), sorted.
func digAnswers(t *testing.T, d *discodns, qtype, name string) ([]string, error) {
	t.Helper()
	r, err := dig(t, d.dns, qtype, name)
	if err != nil {
		return nil, err
	}
	if r.status != "NOERROR" {
		return nil, fmt.Errorf("%s %s: %s", qtype, name, r.status)
	}
	var out []string
	for _, rr := range r.answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		case *dns.SRV:
			out = append(out, fmt.Sprintf("%d %s", rr.Port, rr.Target))
		}
	}
	slices.Sort(out)
	return out, nil
}

// waitAnswers waits until dig answers qtype at name with exactly want
// (sorted), and fails with the last answer otherwise.
func waitAnswers(t *testing.T, d *discodns, qtype, name string, want ...string) {
	t.Helper()
	slices.Sort(want)
	eventually(t, 30*time.Second, fmt.Sprintf("%s %s answers %v", qtype, name, want), func() error {
		got, err := digAnswers(t, d, qtype, name)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("answered %v", got)
		}
		return nil
	})
}

// waitMetric waits until the sample line of metric reads want.
func waitMetric(t *testing.T, d *discodns, metric, want string) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%s = %s", metric, want), func() error {
		v, err := d.metric(metric)
		if err != nil {
			return err
		}
		if v != want {
			return fmt.Errorf("%s = %s", metric, v)
		}
		return nil
	})
}

// loggedOnce checks that each of keys was logged as a bad entry once.
func loggedOnce(t *testing.T, d *discodns, when string, keys ...string) {
	t.Helper()
	logs := d.logs()
	for _, k := range keys {
		if n := strings.Count(logs, "key="+k+" "); n != 1 {
			t.Errorf("%s: %s logged %d times, want once", when, k, n)
		}
	}
}

// goResolver returns Go's own resolver asking d.
func (d *discodns) goResolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dialer net.Dialer
		return dialer.DialContext(ctx, network, d.dns)
	}}
}

// TestHostileNameTakeover: a registry name that only maps to a service's
// label ("-web-", "Web", "web_") never takes the service over, whether it
// comes before the real name or after it, and from whichever source; it
// is reported as a collision. The same exact name in two sources is one
// service, their union.
func TestHostileNameTakeover(t *testing.T) {
	need(t, "dig")
	e := startEtcd(t)
	e.put("/services/-web-/10.6.6.6:80", ``) // before the real name
	e.put("/services/web/10.0.0.1:80", ``)
	e.put("/grpc/web/a", `{"Addr":"10.0.0.2:80"}`) // the real name in another source
	e.put("/grpc/Web/b", `{"Addr":"10.6.6.7:80"}`) // an impostor in another source
	d := startDiscodns(t, etcdConfig(e.endpoint()))
	e.put("/services/web_/10.6.6.8:80", ``) // after it, live
	waitAnswers(t, d, "A", "web.svc.internal.", "10.0.0.1", "10.0.0.2")
	waitMetric(t, d, "discodns_cache_label_collisions", "3")
	waitAnswers(t, d, "A", "web.svc.internal.", "10.0.0.1", "10.0.0.2")
	for _, name := range []string{"-web-", "Web", "web_"} {
		n := 0
		for line := range strings.Lines(d.logs()) {
			if strings.Contains(line, "collides with another") && strings.Contains(line, " service="+name+" ") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("collision of %s logged %d times, want once", name, n)
		}
	}
}

// TestHostileInstanceIDs: IDs crafted so that one ID's label is another's
// hash-suffixed label (B, b and B-<fnv32a("grpc/b")> in the grpc layout of
// the source named grpc) still give each instance a name of its own: every
// SRV target's address is the address registered with that SRV's port.
func TestHostileInstanceIDs(t *testing.T) {
	e := startEtcd(t)
	h := fnv.New32a()
	h.Write([]byte("grpc/b")) // the table's suffix hashes source/id
	crafted := fmt.Sprintf("B-%08x", h.Sum32())
	registered := map[uint16]string{1001: "10.0.0.1", 1002: "10.0.0.2", 1003: "10.0.0.3"}
	for id, port := range map[string]uint16{"B": 1001, "b": 1002, crafted: 1003} {
		e.put("/grpc/pay/"+id, fmt.Sprintf(`{"Addr":"%s:%d"}`, registered[port], port))
	}
	d := startDiscodns(t, etcdConfig(e.endpoint()))
	d.waitInstances("pay.svc.internal.", 3)

	res := d.goResolver()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, srvs, err := res.LookupSRV(ctx, "pay", "tcp", "svc.internal")
	if err != nil || len(srvs) != 3 {
		t.Fatalf("LookupSRV: %v %v, want 3 records", srvs, err)
	}
	targets := map[string]bool{}
	for _, srv := range srvs {
		targets[srv.Target] = true
		addrs, err := res.LookupHost(ctx, srv.Target)
		if err != nil {
			t.Fatalf("LookupHost %s: %v", srv.Target, err)
		}
		if want := registered[srv.Port]; len(addrs) != 1 || addrs[0] != want {
			t.Errorf("SRV port %d target %s has addresses %v, want [%s] (registered with that port)", srv.Port, srv.Target, addrs, want)
		}
	}
	if len(targets) != 3 {
		t.Errorf("SRV targets %v: want three different names", targets)
	}
	if v, err := d.metric("discodns_cache_instance_label_collisions"); err != nil || v != "1" {
		t.Errorf("discodns_cache_instance_label_collisions = %q (%v), want 1", v, err)
	}
}

// TestHostileAddresses: one address spelt two ways (IPv4 and IPv4-mapped
// IPv6, two IPv6 spellings), in one source or two, is answered once; an
// address no client can use (unspecified, broadcast, multicast, IPv6
// link-local) is skipped as bad input, counted and logged once, and the
// rest of the service is served.
func TestHostileAddresses(t *testing.T) {
	need(t, "dig")
	e := startEtcd(t)
	e.put("/services/dup/10.7.0.1:80", ``)
	e.put("/services/dup/[::ffff:10.7.0.1]:80", ``)
	e.put("/grpc/dup/x", `{"Addr":"[::ffff:10.7.0.1]:80"}`)
	e.put("/services/dup/[2001:db8:0:0::1]:80", ``)
	e.put("/services/dup/[2001:DB8::1]:80", ``)
	unusable := []string{"0.0.0.0:80", "[::]:80", "255.255.255.255:80", "224.0.0.1:80", "[ff02::1]:80", "[fe80::1]:80"}
	for _, addr := range unusable {
		e.put("/services/dup/"+addr, ``)
	}
	d := startDiscodns(t, etcdConfig(e.endpoint()))
	waitAnswers(t, d, "A", "dup.svc.internal.", "10.7.0.1")
	waitAnswers(t, d, "AAAA", "dup.svc.internal.", "2001:db8::1")
	got, err := digAnswers(t, d, "SRV", "_dup._tcp.svc.internal.")
	if err != nil || len(got) != 2 {
		t.Errorf("SRV _dup._tcp: %v %v, want 2 records", got, err)
	}
	if v, err := d.metric(`discodns_watcher_decode_errors_total{source="etcd"}`); err != nil || v != strconv.Itoa(len(unusable)) {
		t.Errorf("decode errors = %q (%v), want %d", v, err, len(unusable))
	}
	keys := make([]string, len(unusable))
	for i, addr := range unusable {
		keys[i] = "/services/dup/" + addr
	}
	loggedOnce(t, d, "after the list", keys...)
}

// TestHostileRegistryKeys: keys with an empty service segment or no ID
// are counted as bad entries and logged once.
func TestHostileRegistryKeys(t *testing.T) {
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", ``)
	bad := []string{"/services//10.0.0.1:80", "/services/web", "/services/web/"}
	for _, k := range bad {
		e.put(k, ``)
	}
	d := startDiscodns(t, etcdConfig(e.endpoint()))
	d.waitInstances("web.svc.internal.", 1)
	waitMetric(t, d, `discodns_watcher_decode_errors_total{source="etcd"}`, "3")
	loggedOnce(t, d, "after the list", bad...)
}

// TestHostileRelist: a re-list (etcd restarted) counts no bad entry again
// and logs none again; a bad key deleted and written again is a new bad
// entry, counted again.
func TestHostileRelist(t *testing.T) {
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", ``)
	const bad = "/services/web/10.0.0.3:80"
	e.put(bad, `not json`)
	d := startDiscodns(t, etcdConfig(e.endpoint()))
	d.waitInstances("web.svc.internal.", 1)
	const errorsMetric = `discodns_watcher_decode_errors_total{source="etcd"}`
	waitMetric(t, d, errorsMetric, "1")

	// etcd goes and comes back: the source lists everything again.
	lastList := func() float64 { return d.gauge(`discodns_source_last_list_timestamp_seconds{source="etcd"}`) }
	before := lastList()
	e.stop()
	e.start()
	eventually(t, 60*time.Second, "the source listed again", func() error {
		if got := lastList(); got <= before {
			return fmt.Errorf("last list %v, not after %v", got, before)
		}
		return nil
	})
	if v, err := d.metric(`discodns_watcher_relists_total{reason="reconnect",source="etcd"}`); err != nil || v == "0" {
		t.Fatalf("reconnect re-lists = %q (%v), want at least 1", v, err)
	}
	if v, err := d.metric(errorsMetric); err != nil || v != "1" {
		t.Errorf("after a re-list: %s = %q (%v), want still 1", errorsMetric, v, err)
	}
	loggedOnce(t, d, "after a re-list", bad)

	// Deleted, the key is forgotten: written again, it is a new bad entry.
	e.del(bad)
	e.put(bad, `not json`)
	waitMetric(t, d, errorsMetric, "2")
	if v, err := d.metric(`discodns_watcher_decode_untracked_total{source="etcd"}`); err != nil || v != "0" {
		t.Errorf("untracked = %q (%v), want 0", v, err)
	}
}
