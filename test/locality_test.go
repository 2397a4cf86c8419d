package test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	grpcdns "google.golang.org/grpc/resolver/dns"

	"github.com/discodns/discodns/test/registries"
)

// digSet asks name with dig and returns the status and the answer, sorted:
// A records as their address, SRV records as "priority:address" (the
// target's address from the glue; the target itself without glue).
func digSet(t *testing.T, d *discodns, qtype, name string) (string, []string, error) {
	t.Helper()
	r, err := dig(t, d.dns, qtype, name)
	if err != nil {
		return "", nil, err
	}
	addrs := map[string]string{}
	for _, rr := range r.additional {
		if a, ok := rr.(*dns.A); ok {
			addrs[a.Hdr.Name] = a.A.String()
		}
	}
	var out []string
	for _, rr := range r.answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.SRV:
			target := rr.Target
			if a, ok := addrs[target]; ok {
				target = a
			}
			out = append(out, fmt.Sprintf("%d:%s", rr.Priority, target))
		}
	}
	slices.Sort(out)
	return r.status, out, nil
}

// expectSet waits until name answers want (digSet's form) with status.
func expectSet(t *testing.T, d *discodns, qtype, name, status string, want ...string) {
	t.Helper()
	eventually(t, 20*time.Second, fmt.Sprintf("%s %s", qtype, name), func() error {
		got, recs, err := digSet(t, d, qtype, name)
		if err != nil {
			return err
		}
		if got != status || !slices.Equal(recs, want) {
			return fmt.Errorf("%s %v, want %s %v", got, recs, status, want)
		}
		return nil
	})
}

// localAnswers returns discodns_dns_locality_answers_total{result}.
func localAnswers(d *discodns, result string) float64 {
	return d.gauge(`discodns_dns_locality_answers_total{result="` + result + `"}`)
}

// writeFile writes content to a file in a temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLocalityEtcd: instances in zones a, b and c of region r and s, and
// discodns in zone a of region r (from a file) with min_local = 2: SRV in
// tiers, A of zone a alone, spilling over to everyone when zone a drops
// to one instance and back when it has two again; a service without
// zones as before; _all.<svc> bypasses locality; a reload reads the zone
// file again.
func TestLocalityEtcd(t *testing.T) {
	need(t, "dig")
	e := startEtcd(t)
	a2 := `{"meta":{"zone":"a","region":"r"}}`
	e.put("/services/api/10.0.0.1:80", `{"meta":{"zone":"a","region":"r"}}`)
	e.put("/services/api/10.0.0.2:80", a2)
	e.put("/services/api/10.0.0.3:80", `{"meta":{"topology.kubernetes.io/zone":"b","topology.kubernetes.io/region":"r"}}`)
	e.put("/services/api/10.0.0.4:80", `{"meta":{"zone":"c","region":"s"}}`)
	e.put("/services/plain/10.0.1.1:80", `{"priority":3}`)
	e.put("/services/plain/10.0.1.2:80", `{"priority":3}`)
	zone := writeFile(t, "zone", "a\n")
	d := startDiscodns(t, etcdConfig(e.endpoint())+fmt.Sprintf(`
[locality]
zone_file = %q
region = "r"
min_local = 2
`, zone))
	d.waitInstances("api.svc.internal.", 4)
	d.waitInstances("plain.svc.internal.", 2)

	expectSet(t, d, "SRV", "_api._tcp.svc.internal.", "NOERROR", "0:10.0.0.1", "0:10.0.0.2", "1:10.0.0.3", "2:10.0.0.4")
	expectSet(t, d, "A", "api.svc.internal.", "NOERROR", "10.0.0.1", "10.0.0.2")
	expectSet(t, d, "A", "_all.api.svc.internal.", "NOERROR", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4")
	expectSet(t, d, "SRV", "_all.api.svc.internal.", "NOERROR", "1:10.0.0.1", "1:10.0.0.2", "1:10.0.0.3", "1:10.0.0.4")
	expectSet(t, d, "A", "plain.svc.internal.", "NOERROR", "10.0.1.1", "10.0.1.2")
	expectSet(t, d, "SRV", "_plain._tcp.svc.internal.", "NOERROR", "3:10.0.1.1", "3:10.0.1.2")
	// Go's resolver, as a Go client asks.
	addrs, err := registries.Resolver(d.dns).LookupHost(context.Background(), "api.svc.internal.")
	if slices.Sort(addrs); err != nil || !slices.Equal(addrs, []string{"10.0.0.1", "10.0.0.2"}) {
		t.Errorf("Go resolver: %v %v, want the zone-a instances", addrs, err)
	}
	if local := localAnswers(d, "local"); local < 3 {
		t.Errorf("locality answers local = %v, want at least 3", local)
	}

	// Zone a drops under min_local: every instance, zone a in region r's tier.
	e.del("/services/api/10.0.0.2:80")
	expectSet(t, d, "A", "api.svc.internal.", "NOERROR", "10.0.0.1", "10.0.0.3", "10.0.0.4")
	expectSet(t, d, "SRV", "_api._tcp.svc.internal.", "NOERROR", "0:10.0.0.1", "0:10.0.0.3", "1:10.0.0.4")
	if spilled := localAnswers(d, "spilled"); spilled < 2 {
		t.Errorf("locality answers spilled = %v, want at least 2", spilled)
	}
	// And back.
	e.put("/services/api/10.0.0.2:80", a2)
	expectSet(t, d, "A", "api.svc.internal.", "NOERROR", "10.0.0.1", "10.0.0.2")
	expectSet(t, d, "SRV", "_api._tcp.svc.internal.", "NOERROR", "0:10.0.0.1", "0:10.0.0.2", "1:10.0.0.3", "2:10.0.0.4")

	// The host moves to zone b, which a reload reads from the file: one
	// instance there, under min_local, so everyone; region r first.
	if err := os.WriteFile(zone, []byte("b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	expectSet(t, d, "SRV", "_api._tcp.svc.internal.", "NOERROR", "0:10.0.0.1", "0:10.0.0.2", "0:10.0.0.3", "1:10.0.0.4")
	expectSet(t, d, "A", "api.svc.internal.", "NOERROR", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4")
}

// TestTagIntersectionsEndToEnd asks for the instances that carry two and
// three tags at once, through dig and Go's resolver, and gets NXDOMAIN
// for an intersection no instance is in and NODATA for a type none has.
func TestTagIntersectionsEndToEnd(t *testing.T) {
	need(t, "dig")
	e := startEtcd(t)
	e.put("/services/api/10.0.0.1:80", `{"tags":["v2","eu","canary"]}`)
	e.put("/services/api/10.0.0.2:80", `{"tags":["v2","eu"]}`)
	e.put("/services/api/10.0.0.3:80", `{"tags":["v2"]}`)
	e.put("/services/api/10.0.0.4:80", `{"tags":["eu","blue"]}`)
	d := startDiscodns(t, etcdConfig(e.endpoint()))
	d.waitInstances("api.svc.internal.", 4)

	tests := []struct {
		qtype, name, status string
		want                []string
	}{
		{"A", "v2_eu.api.svc.internal.", "NOERROR", []string{"10.0.0.1", "10.0.0.2"}},
		{"A", "eu_v2.api.svc.internal.", "NOERROR", []string{"10.0.0.1", "10.0.0.2"}},
		{"A", "v2_eu_canary.api.svc.internal.", "NOERROR", []string{"10.0.0.1"}},
		{"SRV", "canary_eu_v2.api.svc.internal.", "NOERROR", []string{"1:10.0.0.1"}},
		{"SRV", "_api._v2_eu.svc.internal.", "NOERROR", []string{"1:10.0.0.1", "1:10.0.0.2"}},
		{"AAAA", "v2_eu.api.svc.internal.", "NOERROR", nil},     // instances, none with IPv6
		{"A", "canary_blue.api.svc.internal.", "NXDOMAIN", nil}, // no instance carries both
		{"A", "v2_red.api.svc.internal.", "NXDOMAIN", nil},      // no such tag
		{"A", "v2.api.svc.internal.", "NOERROR", []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}},
	}
	for _, tt := range tests {
		status, recs, err := digSet(t, d, tt.qtype, tt.name)
		if err != nil || status != tt.status || !slices.Equal(recs, tt.want) {
			t.Errorf("%s %s: %s %v %v, want %s %v", tt.qtype, tt.name, status, recs, err, tt.status, tt.want)
		}
	}
	if r, err := dig(t, d.dns, "AAAA", "v2_eu.api.svc.internal."); err != nil || len(r.authority) != 1 {
		t.Errorf("NODATA without the SOA: %v %v", r, err)
	}
	addrs, err := registries.Resolver(d.dns).LookupHost(context.Background(), "v2_eu_canary.api.svc.internal.")
	if err != nil || !slices.Equal(addrs, []string{"10.0.0.1"}) {
		t.Errorf("Go resolver: %v %v, want 10.0.0.1", addrs, err)
	}
}

// TestLocalityConsul: Consul instances whose zone is in their service
// meta (as Spring Cloud Consul writes it) or their node's meta, discodns
// in zone a (from an environment variable) with min_local = 1.
func TestLocalityConsul(t *testing.T) {
	need(t, "dig")
	agent := registries.StartConsul(t)
	client := consulClient(t, agent)
	register := func(id, addr string, meta map[string]string) {
		t.Helper()
		err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: id, Name: "api", Address: addr, Port: 7000, Meta: meta,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	register("api-a1", "10.0.0.1", map[string]string{"zone": "a"})
	register("api-b1", "10.0.0.3", map[string]string{"zone": "b"})
	for _, n := range []struct{ node, addr, zone string }{{"node-a", "10.0.0.2", "a"}, {"node-b", "10.0.0.4", "b"}} {
		_, err := client.Catalog().Register(&api.CatalogRegistration{
			Node: n.node, Address: n.addr, NodeMeta: map[string]string{"zone": n.zone},
			Service: &api.AgentService{ID: "api-" + n.node, Service: "api", Port: 7000},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("DISCODNS_TEST_ZONE", "a")
	d := startDiscodns(t, consulConfig(agent.Addr(), "")+`
[locality]
zone_env = "DISCODNS_TEST_ZONE"
min_local = 1
`)
	d.waitInstances("api.svc.internal.", 4)
	expectSet(t, d, "A", "api.svc.internal.", "NOERROR", "10.0.0.1", "10.0.0.2")
	expectSet(t, d, "SRV", "_api._tcp.svc.internal.", "NOERROR", "0:10.0.0.1", "0:10.0.0.2", "1:10.0.0.3", "1:10.0.0.4")

	// Zone a empties: everyone, alike.
	if err := client.Agent().ServiceDeregister("api-a1"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Catalog().Deregister(&api.CatalogDeregistration{Node: "node-a"}, nil); err != nil {
		t.Fatal(err)
	}
	expectSet(t, d, "A", "api.svc.internal.", "NOERROR", "10.0.0.3", "10.0.0.4")
	expectSet(t, d, "SRV", "_api._tcp.svc.internal.", "NOERROR", "0:10.0.0.3", "0:10.0.0.4")
	// And back.
	register("api-a1", "10.0.0.1", map[string]string{"zone": "a"})
	expectSet(t, d, "A", "api.svc.internal.", "NOERROR", "10.0.0.1")
	expectSet(t, d, "SRV", "_api._tcp.svc.internal.", "NOERROR", "0:10.0.0.1", "1:10.0.0.3", "1:10.0.0.4")
}

// healthBackend is a gRPC health server on a loopback address.
type healthBackend struct {
	addr string
	srv  *grpc.Server
}

// startBackends starts a gRPC health server on each of ips, all on one
// port, and returns them with the port.
func startBackends(t *testing.T, ips []string) ([]*healthBackend, int) {
	t.Helper()
	for range 20 {
		port := registries.FreePort(t)
		var lns []net.Listener
		for _, ip := range ips {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) < len(ips) {
			for _, ln := range lns {
				ln.Close()
			}
			continue
		}
		var out []*healthBackend
		for i, ln := range lns {
			b := &healthBackend{addr: ips[i], srv: grpc.NewServer()}
			healthpb.RegisterHealthServer(b.srv, health.NewServer())
			go b.srv.Serve(ln)
			t.Cleanup(b.srv.Stop)
			out = append(out, b)
		}
		return out, port
	}
	t.Fatalf("no port free on every one of %v", ips)
	return nil, 0
}

// reached calls Check n times on conn and returns the backends that
// answered, sorted.
func reached(conn *grpc.ClientConn, n int) ([]string, error) {
	seen := map[string]bool{}
	hc := healthpb.NewHealthClient(conn)
	for range n {
		var p peer.Peer
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(true))
		cancel()
		if err != nil {
			return nil, err
		}
		host, _, _ := net.SplitHostPort(p.Addr.String())
		seen[host] = true
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// TestLocalityGRPC: a stock gRPC client with round_robin over dns:///
// reaches only the zone-a backends; when zone a drops under min_local (a
// backend gone, which makes gRPC resolve again) it reaches every one left.
func TestLocalityGRPC(t *testing.T) {
	e := startEtcd(t)
	ips := []string{"127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"}
	backends, port := startBackends(t, ips)
	zones := []string{"a", "a", "b", "b"}
	key := func(i int) string { return fmt.Sprintf("/services/api/%s:%d", ips[i], port) }
	for i := range ips {
		e.put(key(i), fmt.Sprintf(`{"meta":{"zone":%q}}`, zones[i]))
	}
	d := startDiscodns(t, etcdConfig(e.endpoint())+`
[locality]
zone = "a"
min_local = 2
`)
	d.waitInstances("api.svc.internal.", 4)

	grpcdns.SetMinResolutionInterval(100 * time.Millisecond)
	conn, err := grpc.NewClient(fmt.Sprintf("dns://%s/api.svc.internal:%d", d.dns, port),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDisableServiceConfig(),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	eventually(t, 30*time.Second, "gRPC reaches the zone-a backends alone", func() error {
		got, err := reached(conn, 20)
		if err != nil || !slices.Equal(got, ips[:2]) {
			return fmt.Errorf("reached %v (%v), want %v", got, err, ips[:2])
		}
		return nil
	})

	// Zone a down to one backend, under min_local: everyone left.
	e.del(key(1))
	backends[1].srv.Stop()
	want := []string{ips[0], ips[2], ips[3]}
	eventually(t, 60*time.Second, "gRPC spills over to every backend", func() error {
		got, err := reached(conn, 30)
		if err != nil || !slices.Equal(got, want) {
			return fmt.Errorf("reached %v (%v), want %v", got, err, want)
		}
		return nil
	})
}

// TestLocalityOffAnswersAsBefore: with no zone configured, a service whose
// instances carry zones answers every instance at its own priority.
func TestLocalityOffAnswersAsBefore(t *testing.T) {
	need(t, "dig")
	e := startEtcd(t)
	e.put("/services/api/10.0.0.1:80", `{"meta":{"zone":"a"}}`)
	e.put("/services/api/10.0.0.2:80", `{"meta":{"zone":"b"}}`)
	d := startDiscodns(t, etcdConfig(e.endpoint()))
	d.waitInstances("api.svc.internal.", 2)
	expectSet(t, d, "A", "api.svc.internal.", "NOERROR", "10.0.0.1", "10.0.0.2")
	expectSet(t, d, "SRV", "_api._tcp.svc.internal.", "NOERROR", "1:10.0.0.1", "1:10.0.0.2")
}

// TestLocalityGlibc looks the locality names up through glibc
// (getaddrinfo, as getent ahosts does), which checks the names of the
// records it gets.
func TestLocalityGlibc(t *testing.T) {
	if syscall.Geteuid() != 0 {
		t.Fatal("this test binds port 53 and mounts over /etc/resolv.conf in a private namespace: run it as root (CI does)")
	}
	need(t, "getent")
	e := startEtcd(t)
	e.put("/services/api/10.0.0.1:80", `{"tags":["v2","eu"],"meta":{"zone":"a"}}`)
	e.put("/services/api/10.0.0.2:80", `{"tags":["v2"],"meta":{"zone":"b"}}`)
	const addr = "127.0.0.154"
	d := startDiscodns(t, strings.Replace(etcdConfig(e.endpoint()), "{{DNS}}", addr+":53", 1)+`
[locality]
zone = "a"
min_local = 1
`)
	d.waitInstances("api.svc.internal.", 2)
	resolvConf := writeFile(t, "resolv.conf", "nameserver "+addr+"\noptions timeout:2 attempts:1\n")
	for _, tt := range []struct{ name, want string }{
		{"api.svc.internal", "10.0.0.1"},
		{"_all.api.svc.internal", "10.0.0.1 10.0.0.2"},
		{"v2_eu.api.svc.internal", "10.0.0.1"},
	} {
		out, err := inNamespace(t, resolvConf, nil, "getent", "ahostsv4", tt.name)
		var got []string
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[1] == "STREAM" {
				got = append(got, f[0])
			}
		}
		slices.Sort(got)
		if err != nil || strings.Join(got, " ") != tt.want {
			t.Errorf("getent ahostsv4 %s: %v %v, want %s\n%s", tt.name, got, err, tt.want, out)
		}
	}
}
