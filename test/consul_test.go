package test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"

	"github.com/discodns/discodns/test/registries"
)

func consulConfig(addr string, extra string) string {
	return fmt.Sprintf(`
[dns]
listen = ["{{DNS}}"]
zone = "svc.internal."
ttl = "5s"

[http]
listen = "{{HTTP}}"

[[source]]
name = "consul"
type = "consul"
address = %q
%s
`, addr, extra)
}

func consulClient(t testing.TB, c *registries.Consul) *api.Client {
	t.Helper()
	client, err := api.NewClient(&api.Config{Address: c.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// TestConsulEndToEnd registers services with a Consul agent and follows
// them through real dig: weights in SRV, tags as names, health checks.
func TestConsulEndToEnd(t *testing.T) {
	need(t, "dig")
	agent := registries.StartConsul(t)
	client := consulClient(t, agent)
	for i, w := range []int{5, 10} {
		err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: fmt.Sprintf("api-%d", i+1), Name: "api", Address: fmt.Sprintf("10.0.0.%d", i+1), Port: 7000,
			Tags: []string{"v2"}, Meta: map[string]string{"team": "core"},
			Weights: &api.AgentWeights{Passing: w, Warning: 1},
			Check:   &api.AgentServiceCheck{CheckID: fmt.Sprintf("api-%d", i+1), TTL: "10m", Status: api.HealthPassing},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	d := startDiscodns(t, consulConfig(agent.Addr(), ""))
	d.waitInstances("api.svc.internal.", 2)

	r, err := dig(t, d.dns, "SRV", "_api._tcp.svc.internal.")
	if err != nil {
		t.Fatal(err)
	}
	var weights []string
	for _, rr := range r.answer {
		srv := rr.(*dns.SRV)
		weights = append(weights, fmt.Sprintf("%d:%d", srv.Weight, srv.Port))
	}
	slices.Sort(weights)
	if r.status != "NOERROR" || !slices.Equal(weights, []string{"10:7000", "5:7000"}) || len(r.additional) < 2 {
		t.Errorf("SRV weights %v, want 5 and 10 with glue:\n%s", weights, r.raw)
	}
	if r, err := dig(t, d.dns, "A", "v2.api.svc.internal."); err != nil || len(r.answer) != 2 {
		t.Errorf("tag name v2: %v %v", r, err)
	}
	if r, err := dig(t, d.dns, "TXT", "dev-api-1.api.svc.internal."); err != nil || len(r.answer) != 1 || !strings.Contains(r.answer[0].String(), "team=core") {
		t.Errorf("TXT of dev/api-1: %v %v", r, err)
	}

	// A failing check removes the instance from answers; passing restores it.
	if err := client.Agent().UpdateTTL("api-2", "down", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "api-2 out of A answers", func() error {
		m, err := d.exchange("api.svc.internal.", dns.TypeA, "udp")
		if err != nil || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "10.0.0.1" {
			return fmt.Errorf("%v %v", m, err)
		}
		return nil
	})
	if err := client.Agent().UpdateTTL("api-2", "up", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "api-2 back", func() error {
		m, err := d.exchange("api.svc.internal.", dns.TypeA, "udp")
		if err != nil || len(m.Answer) != 2 {
			return fmt.Errorf("%v %v", m, err)
		}
		return nil
	})
}

// registerMany registers services*perService instances on perService
// catalog nodes through Consul transactions (64 operations each), every
// instance with a passing check named after it.
func registerMany(t testing.TB, client *api.Client, services, perService int) {
	t.Helper()
	for n := range perService {
		_, err := client.Catalog().Register(&api.CatalogRegistration{
			Node: fmt.Sprintf("node-%d", n), Address: fmt.Sprintf("10.8.%d.1", n),
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	var ops api.TxnOps
	flush := func() {
		if len(ops) == 0 {
			return
		}
		ok, resp, _, err := client.Txn().Txn(ops, nil)
		if err != nil || !ok {
			t.Fatalf("txn: %v %v", err, resp)
		}
		ops = ops[:0]
	}
	for s := range services {
		for n := range perService {
			node := fmt.Sprintf("node-%d", n)
			id := fmt.Sprintf("svc-%d-%d", s, n)
			ops = append(ops,
				&api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: node, Service: api.AgentService{
					ID: id, Service: fmt.Sprintf("svc-%d", s), Port: 8000 + n,
					Address: fmt.Sprintf("10.%d.%d.%d", 9+n, s/250, s%250+1),
				}}},
				&api.TxnOp{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: api.HealthCheck{
					Node: node, CheckID: "check-" + id, Name: "check", Status: api.HealthPassing, ServiceID: id,
				}}})
			if len(ops) >= 64 {
				flush()
			}
		}
	}
	flush()
}

// setCheck sets the status of the check of instance n of service s.
func setCheck(t testing.TB, client *api.Client, s, n int, status string) {
	t.Helper()
	id := fmt.Sprintf("svc-%d-%d", s, n)
	ok, resp, _, err := client.Txn().Txn(api.TxnOps{{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: api.HealthCheck{
		Node: fmt.Sprintf("node-%d", n), CheckID: "check-" + id, Name: "check", Status: status, ServiceID: id,
	}}}}, nil)
	if err != nil || !ok {
		t.Fatalf("set check %s: %v %v", id, err, resp)
	}
}

// connections counts the established TCP connections of process pid to
// 127.0.0.1:port.
func connections(pid, port int) (int, error) {
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return 0, err
	}
	remote := fmt.Sprintf("0100007F:%04X", port)
	n := 0
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
		if len(f) > 9 && f[2] == remote && f[3] == "01" && inodes[f[9]] {
			n++
		}
	}
	return n, nil
}

// watchConnections samples connections every 10 ms until stop is closed
// and returns the most seen.
func watchConnections(t testing.TB, pid, port int, stop <-chan struct{}) func() int {
	var mu sync.Mutex
	most := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if n, err := connections(pid, port); err == nil {
				mu.Lock()
				most = max(most, n)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() int {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return most
	}
}

// TestConsulScale mirrors 2,000 services of 3 instances from one agent with
// at most max_connections connections to it, and still follows a health
// change.
func TestConsulScale(t *testing.T) {
	const services, perService, maxConns = 2000, 3, 6
	agent := registries.StartConsul(t)
	client := consulClient(t, agent)
	registerMany(t, client, services, perService)
	port, _ := strconv.Atoi(agent.Addr()[strings.LastIndexByte(agent.Addr(), ':')+1:])

	d := launchDiscodns(t, consulConfig(agent.Addr(), fmt.Sprintf("max_connections = %d", maxConns)))
	stop := make(chan struct{})
	most := watchConnections(t, d.cmd.Process.Pid, port, stop)
	d.waitReady()
	svcs, err := d.services()
	if err != nil {
		t.Fatal(err)
	}
	for s := range services {
		if got := len(svcs[fmt.Sprintf("svc-%d.svc.internal.", s)]); got != perService {
			t.Fatalf("svc-%d has %d instances, want %d", s, got, perService)
		}
	}
	// Every service answers over DNS.
	for s := range services {
		m, err := d.exchange(fmt.Sprintf("svc-%d.svc.internal.", s), dns.TypeA, "udp")
		if err != nil || len(m.Answer) != perService {
			t.Fatalf("svc-%d: %v %v", s, m, err)
		}
	}
	// Health changes reach answers.
	for _, s := range []int{0, 999, 1999} {
		setCheck(t, client, s, 1, api.HealthCritical)
		eventually(t, 10*time.Second, fmt.Sprintf("svc-%d down to 2", s), func() error {
			m, err := d.exchange(fmt.Sprintf("svc-%d.svc.internal.", s), dns.TypeA, "udp")
			if err != nil || len(m.Answer) != perService-1 {
				return fmt.Errorf("%v %v", m, err)
			}
			return nil
		})
	}
	close(stop)
	if n := most(); n > maxConns || n == 0 {
		t.Errorf("up to %d connections to the agent, want 1 to %d", n, maxConns)
	} else {
		t.Logf("at most %d connections to the agent (bound %d)", n, maxConns)
	}
	if v, err := d.metric(`discodns_watcher_consul_connections{source="consul"}`); err != nil {
		t.Error(err)
	} else if n, _ := strconv.Atoi(v); n < 1 || n > maxConns {
		t.Errorf("connections gauge %s, want 1 to %d", v, maxConns)
	}
}
