package test

import (
	"bufio"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"

	"github.com/discodns/discodns/test/registries"
)

// TestFleetConsulClientAgents runs discodns as a fleet does, each on a
// client agent of its own joined to one server, with 300 nodes registered,
// and changes one registration. Every discodns serves it, and the server
// pays what a change costs, not what the service holds: the registration
// and about one RPC per discodns (its blocking query on the service list,
// made again), and a few hundred bytes per agent (the streamed event).
// Without the streaming backend the agents' blocking queries fetch the
// whole service, about 760 bytes per node per agent
// (BenchmarkFleetConsulAgents), about 230 KB each here.
func TestFleetConsulClientAgents(t *testing.T) {
	need(t, "ss")
	const agents, nodes = 2, 300
	f := startAgentFleet(t, agentFleetOptions{agents: agents, nodes: nodes, streaming: true})
	time.Sleep(2 * time.Second) // past the agents' syncs after they join
	before := f.cost()
	check := f.change(1)
	for _, d := range f.ds {
		eventually(t, time.Minute, "every discodns serves the change", func() error { return check(d) })
	}
	time.Sleep(time.Second) // the blocking queries made again
	after := f.cost()
	rpcs := after["server-rpcs"] - before["server-rpcs"]
	sent := after["server-bytes"] - before["server-bytes"]
	t.Logf("one change: %v RPCs and %v bytes from the server, %d agents, %d nodes", rpcs, sent, agents, nodes)
	// The agents' own RPCs (their coordinates, their syncs: a few every
	// ten seconds) may fall in the window: the bound leaves room for them,
	// and is far below a scan of the nodes (1 + nodes).
	if rpcs < 1 || rpcs > 1+2*agents+5 {
		t.Errorf("%v RPCs reached the server for one change, want the registration and about one per discodns (%d agents)", rpcs, agents)
	}
	if sent > 4096*agents {
		t.Errorf("the server sent %v bytes for one change, want a few hundred per agent (%d agents, %d nodes): the agents fetch the service rather than its change", sent, agents, nodes)
	}
	if streams := consulMetrics(t, f.server)[`consul_grpc_server_streams{server_type="internal"}`]; streams < agents {
		t.Errorf("the server holds %v streaming subscriptions, want one per watched service per agent (%d agents)", streams, agents)
	}
}

// TestFleetConsulAgentsUnwatched has more services than discodns watches
// over HTTP/1.1 (max_connections = 8 watches 5) and more than the nodes,
// on client agents: a change to an unwatched service is found by reading
// the agent's views, which costs the server nothing, and not by a node
// scan, which would cost it 1 + nodes requests per discodns (the scan
// stays for a server agent, where its requests are the server's own:
// TestFleetConsulUnwatchedChange).
func TestFleetConsulAgentsUnwatched(t *testing.T) {
	need(t, "ss")
	const agents, nodes, services = 2, 20, 60
	f := startAgentFleet(t, agentFleetOptions{agents: agents, nodes: nodes, streaming: true, services: services})
	time.Sleep(2 * time.Second) // past the agents' syncs after they join
	before := f.cost()
	check := f.changeService(7)
	for _, d := range f.ds {
		eventually(t, time.Minute, "every discodns serves the change", func() error { return check(d) })
	}
	time.Sleep(time.Second) // the sweeps and the blocking queries made again
	after := f.cost()
	rpcs := after["server-rpcs"] - before["server-rpcs"]
	t.Logf("one change to an unwatched service: %v RPCs and %v bytes from the server", rpcs, after["server-bytes"]-before["server-bytes"])
	if rpcs > 1+2*agents+5 {
		t.Errorf("%v RPCs reached the server for one change, want the registration and about one per discodns (a node scan costs 1 + %d nodes each)", rpcs, nodes)
	}
	for j, d := range f.ds {
		if v := d.gauge(`discodns_watcher_consul_services{followed="unwatched",source="fleet"}`); v < nodes+2 {
			t.Errorf("discodns %d: %v services unwatched, want more than the nodes", j, v)
		}
		metric := `discodns_watcher_consul_catalog_changes_total{lookup=%q,source="fleet"}`
		if v := d.gauge(fmt.Sprintf(metric, "node_scan")); v != 0 {
			t.Errorf("discodns %d scanned the nodes %v times from a client agent", j, v)
		}
		if v := d.gauge(fmt.Sprintf(metric, "view_sweep")); v < 1 {
			t.Errorf("discodns %d: %s = %v, want at least 1", j, fmt.Sprintf(metric, "view_sweep"), v)
		}
	}
}

// TestFleetConsulAgentsRestart keeps the guarantees of the Consul source
// when discodns reads a client agent that the servers feed: while the
// server is down, every discodns keeps its last answers; once it is back,
// a change converges exactly on each; and a restarted client agent, fed
// again from the server, brings its discodns the changes it missed.
func TestFleetConsulAgentsRestart(t *testing.T) {
	const agents, nodes = 2, 20
	f := startAgentFleet(t, agentFleetOptions{agents: agents, nodes: nodes, streaming: true})
	exactly := func(i int) func(*discodns) error {
		check := f.change(i)
		return func(d *discodns) error {
			if err := servesWeb(nodes)(d); err != nil {
				return err
			}
			return check(d)
		}
	}
	converge := func(what string, check func(*discodns) error) {
		t.Helper()
		for j, d := range f.ds {
			eventually(t, time.Minute, fmt.Sprintf("discodns %d: %s", j, what), func() error { return check(d) })
		}
	}
	converge("a change before any restart", exactly(1))

	f.server.Stop()
	time.Sleep(3 * time.Second) // the agents' subscriptions and queries fail
	for j, d := range f.ds {
		if err := servesWeb(nodes)(d); err != nil {
			t.Errorf("discodns %d with the server down: %v", j, err)
		}
	}
	f.server.Start() // the same data directory: the catalog survives
	converge("a change after the server's restart", exactly(2))

	c := f.clients[1]
	c.Stop()
	check := exactly(3) // registered through the other agent while this one is down
	c.Start()
	converge("a change made while its agent was down", check)
}

// BenchmarkFleetConsulAgents runs Consul as a fleet runs it: one server
// and a client agent per host (3, then 6), each with its own discodns,
// and 100, then 500, nodes registered through the catalog API. Each
// iteration changes one registration (through the first client agent, as
// a host registers) and waits until every discodns serves it. What the
// server spent on the change is counted on its side:
//
//   - server-rpcs: the RPCs the server handled (consul.rpc.request): the
//     registration, and the blocking queries made again when they
//     returned (consul.rpc.query counts those alone, as server-queries);
//   - server-bytes: what the server sent on its RPC port, where the
//     client agents' RPCs and their streaming subscriptions both go
//     (the sockets' bytes_sent, read with ss);
//   - streams/agent: the streaming subscriptions the server holds, per
//     client agent.
//
// The first change after discodns starts is made before the measured
// ones, and reported alone (first-change-*/agent): over HTTP/1.1 it is
// the first sweep of the unwatched services, whose reads make the agent
// subscribe to each (about 370 bytes from the server per service per
// agent), a cost once per discodns start that later changes do not pay.
// The agents make RPCs of their own now and then (their coordinates, the
// anti-entropy sync): their rate, measured for ten seconds before the
// measured changes, is taken off each count. With streaming=false the agents
// use blocking queries instead of the streaming backend
// (use_streaming_backend = false), as Consul before 1.10 did. With
// services=150, 150 services more are registered and each change is to
// one of them; discodns reads its agent over HTTP/1.1 (api=http, where
// max_connections = 8 watches 5 services and finds changes to the others
// by a read of the agent's views) or over HTTP/2 (api=https,
// where it watches all). Run:
//
//	go test -run XXX -bench BenchmarkFleetConsulAgents -benchtime 5x -timeout 60m ./test/
func BenchmarkFleetConsulAgents(b *testing.B) {
	need(b, "ss")
	for _, streaming := range []bool{true, false} {
		for _, agents := range []int{3, 6} {
			for _, nodes := range []int{100, 500} {
				if !streaming && agents > 3 {
					continue
				}
				b.Run(fmt.Sprintf("streaming=%v/nodes=%d/agents=%d", streaming, nodes, agents), func(b *testing.B) {
					benchFleetConsulAgents(b, agentFleetOptions{agents: agents, nodes: nodes, streaming: streaming}, (*agentFleet).change)
				})
			}
		}
	}
	// 150 services more than web and db, of which max_connections = 8
	// watches 5 over HTTP/1.1 and all over HTTP/2; each change is to one
	// of them.
	for _, api := range []string{"http", "https"} {
		b.Run(fmt.Sprintf("services=150/api=%s/nodes=100/agents=3", api), func(b *testing.B) {
			benchFleetConsulAgents(b, agentFleetOptions{agents: 3, nodes: 100, streaming: true, services: 150, https: api == "https"}, (*agentFleet).changeService)
		})
	}
}

func benchFleetConsulAgents(b *testing.B, o agentFleetOptions, change func(*agentFleet, int) func(*discodns) error) {
	f := startAgentFleet(b, o)
	agents := o.agents
	time.Sleep(2 * time.Second)
	first := f.cost()
	check := change(f, 1<<10) // an index no measured change uses
	for _, d := range f.ds {
		eventually(b, 2*time.Minute, "every discodns serves the first change", func() error { return check(d) })
	}
	time.Sleep(time.Second)
	for k, v := range f.cost() {
		first[k] = v - first[k]
	}
	// The agents' own RPCs, per second, taken off every count.
	t0, base := time.Now(), f.cost()
	time.Sleep(10 * time.Second)
	rate := map[string]float64{}
	for k, v := range f.cost() {
		rate[k] = (v - base[k]) / time.Since(t0).Seconds()
	}
	counters := func() map[string]float64 {
		m := f.cost()
		for k := range m {
			m[k] -= rate[k] * time.Since(t0).Seconds()
		}
		return m
	}
	runFleet(b, f.ds, counters, func() { time.Sleep(time.Second) }, func(i int) func(*discodns) error { return change(f, i) })
	b.ReportMetric(consulMetrics(b, f.server)[`consul_grpc_server_streams{server_type="internal"}`]/float64(agents), "streams/agent")
	for k, r := range rate { // after runFleet, whose timer reset clears the metrics
		b.ReportMetric(r/float64(agents), k+"-idle/s/agent")
		b.ReportMetric(first[k]/float64(agents), "first-change-"+k+"/agent")
	}
}

// agentFleet is a Consul datacenter of one server and a client agent per
// host, each host with its discodns.
type agentFleet struct {
	t         testing.TB
	server    *registries.Consul
	clients   []*registries.Consul
	registrar *api.Client // the first client agent's
	nodes     int
	ds        []*discodns
}

// agentFleetOptions shape an agentFleet.
type agentFleetOptions struct {
	agents, nodes int
	streaming     bool // the agents' streaming backend
	// services more (registerMany, one instance each) beside web and db;
	// https has discodns read its agent's HTTPS API (HTTP/2).
	services int
	https    bool
}

// startAgentFleet starts a server and client agents, registers nodes
// through the catalog API (see registerNodes) and the services more, and
// starts a discodns on each client agent (max_connections = 8), returning
// once each serves every node's web and the last of the services more.
func startAgentFleet(t testing.TB, o agentFleetOptions) *agentFleet {
	t.Helper()
	hcl := []string{`telemetry { prometheus_retention_time = "1h" disable_hostname = true }`}
	if !o.streaming {
		hcl = append(hcl, `use_streaming_backend = false`)
	}
	start := registries.StartConsulCluster
	if o.https {
		start = registries.StartConsulClusterTLS
	}
	server, clients := start(t, o.agents, hcl...)
	registerNodes(t, consulClient(t, server), o.nodes)
	if o.services > 0 {
		registerMany(t, consulClient(t, server), o.services, 1)
	}
	f := &agentFleet{t: t, server: server, clients: clients, registrar: consulClient(t, clients[0]), nodes: o.nodes}
	for _, c := range clients {
		source := fmt.Sprintf("type = \"consul\"\naddress = %q\nmax_connections = 8\n", c.Addr())
		if o.https {
			source = fmt.Sprintf("type = \"consul\"\naddress = %q\nca_file = %q\nmax_connections = 8\n", "https://"+c.HTTPSAddr(), c.CAFile())
		}
		f.ds = append(f.ds, launchDiscodns(t, fleetConfig(source)))
	}
	for _, d := range f.ds {
		eventually(t, 2*time.Minute, "web on every node", func() error { return servesWeb(o.nodes)(d) })
		if o.services > 0 {
			eventually(t, 2*time.Minute, "the services more", func() error {
				_, err := srvWithPort(d, fmt.Sprintf("svc-%d.svc.internal.", o.services-1), 8000)
				return err
			})
		}
	}
	return f
}

// cost returns the server's counts so far: server-rpcs, the RPCs it
// handled (consul.rpc.request); server-queries, the blocking ones among
// them (consul.rpc.query); server-bytes, what it sent on its RPC port,
// where the client agents' RPCs and streaming subscriptions both go.
func (f *agentFleet) cost() map[string]float64 {
	m := consulMetrics(f.t, f.server)
	return map[string]float64{
		"server-rpcs":    m["consul_rpc_request"],
		"server-queries": m["consul_rpc_query"],
		"server-bytes":   float64(bytesSent(f.t, f.server.ServerPort())),
	}
}

// change registers web on host i%nodes again with port 10000+i, through
// the first client agent, and returns the check that a discodns serves it.
func (f *agentFleet) change(i int) func(*discodns) error {
	host, port := fmt.Sprintf("host-%d", i%f.nodes), 10000+i
	_, err := f.registrar.Catalog().Register(&api.CatalogRegistration{
		Node: host, Address: fmt.Sprintf("10.20.%d.%d", (i%f.nodes)/250, (i%f.nodes)%250+1),
		Service: &api.AgentService{ID: "web", Service: "web", Port: port},
	}, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return func(d *discodns) error {
		if p, err := srvPort(d, "web.svc.internal.", host+"-web."); err != nil || int(p) != port {
			return fmt.Errorf("%s port %d, want %d (%v)", host, p, port, err)
		}
		return nil
	}
}

// changeService gives svc-(i%150)'s instance (see registerMany) port
// 20000+i, through the first client agent, and returns the check that a
// discodns serves it.
func (f *agentFleet) changeService(i int) func(*discodns) error {
	s, port := i%150, 20000+i
	_, err := f.registrar.Catalog().Register(&api.CatalogRegistration{
		Node: "node-0", Address: "10.8.0.1",
		Service: &api.AgentService{ID: fmt.Sprintf("svc-%d-0", s), Service: fmt.Sprintf("svc-%d", s), Port: port,
			Address: fmt.Sprintf("10.9.%d.%d", s/250, s%250+1)},
	}, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return func(d *discodns) error {
		_, err := srvWithPort(d, fmt.Sprintf("svc-%d.svc.internal.", s), uint16(port))
		return err
	}
}

// srvWithPort returns the SRV record of name with port, or an error when
// there is none.
func srvWithPort(d *discodns, name string, port uint16) (*dns.SRV, error) {
	m, err := d.exchange(name, dns.TypeSRV, "tcp")
	if err != nil {
		return nil, err
	}
	for _, rr := range m.Answer {
		if srv, ok := rr.(*dns.SRV); ok && srv.Port == port {
			return srv, nil
		}
	}
	return nil, fmt.Errorf("%s: no SRV record with port %d in %v", name, port, m.Answer)
}

// consulMetrics returns the samples of an agent's Prometheus
// metrics (telemetry.prometheus_retention_time set), by name with labels.
func consulMetrics(t testing.TB, c *registries.Consul) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + c.Addr() + "/v1/agent/metrics?format=prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

var bytesSentField = regexp.MustCompile(`bytes_sent:(\d+)`)

// bytesSent returns the bytes sent so far on the established TCP
// connections from local port (the kernel's count, through ss).
func bytesSent(t testing.TB, port int) int64 {
	t.Helper()
	out, err := exec.Command("ss", "-tinH", "state", "established", fmt.Sprintf("( sport = :%d )", port)).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	var n int64
	for _, m := range bytesSentField.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseInt(string(m[1]), 10, 64)
		n += v
	}
	return n
}
