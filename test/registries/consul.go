// Package registries starts real service registries (a Consul agent, a
// ZooKeeper server) on free loopback ports for integration and end-to-end
// tests. A registry that is not installed fails the test: ./test/run.sh
// installs them all.
package registries

import (
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ConsulBinary finds the consul binary: $PATH first, then the cache that
// test/tools/build-consul.sh fills.
func ConsulBinary() (string, error) {
	return cachedBinary("consul", "./test/run.sh builds it")
}

// cachedBinary finds name in $PATH or in $DISCODNS_CACHE/bin (by default
// ~/.cache/discodns/bin).
func cachedBinary(name, hint string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	cache := os.Getenv("DISCODNS_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache", "discodns")
	}
	p := filepath.Join(cache, "bin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not in $PATH nor in %s (%s): %w", name, p, hint, err)
	}
	return p, nil
}

// Consul is a `consul agent -dev` process, which keeps its state in memory:
// a restart starts it empty.
type Consul struct {
	Process
	t     testing.TB
	bin   string
	ports map[string]int
	// node is the agent's node name ("dev" when empty); join, for a client
	// agent, the server's LAN gossip address; hcl, more configuration.
	node string
	join string
	hcl  []string
	dir  string // a server's or client agent's data directory; "" for a dev agent
	// tlsDir holds the agent's certificates (StartConsulTLS); "" without
	// TLS.
	tlsDir string
}

// StartConsul starts a dev agent on free loopback ports and stops it when
// the test ends.
func StartConsul(t testing.TB) *Consul {
	t.Helper()
	return startConsul(t, false, false)
}

// StartConsulWithDNS is StartConsul with Consul's own DNS interface on a
// free port (see DNSAddr).
func StartConsulWithDNS(t testing.TB) *Consul {
	t.Helper()
	return startConsul(t, false, true)
}

// StartConsulServer starts a single-server datacenter that keeps its state
// in a data directory, so that a restart finds its services again, as a
// real agent's would.
func StartConsulServer(t testing.TB) *Consul {
	t.Helper()
	return startConsul(t, true, false)
}

func startConsul(t testing.TB, persistent, dns bool) *Consul {
	t.Helper()
	bin, err := ConsulBinary()
	if err != nil {
		t.Fatal(err)
	}
	c := &Consul{Process: Process{name: "consul"}, t: t, bin: bin, ports: map[string]int{}}
	for _, name := range []string{"http", "serf-lan", "serf-wan", "server"} {
		c.ports[name] = FreePort(t)
	}
	if persistent {
		c.dir = t.TempDir()
	}
	if dns {
		c.ports["dns"] = FreePort(t)
	}
	c.Start()
	c.cleanup(t)
	return c
}

// StartConsulCluster starts a datacenter of one server (as
// StartConsulServer) and agents client agents joined to it, each with hcl
// added to its configuration, and stops them when the test ends. Each
// client agent is a host of a fleet: its own HTTP port and view of the
// catalog, fed by the server.
func StartConsulCluster(t testing.TB, agents int, hcl ...string) (server *Consul, clients []*Consul) {
	t.Helper()
	return startConsulCluster(t, agents, false, hcl)
}

// StartConsulClusterTLS is StartConsulCluster with each client agent's
// HTTPS API on a free port too (HTTPSAddr, CAFile), where it serves
// HTTP/2.
func StartConsulClusterTLS(t testing.TB, agents int, hcl ...string) (server *Consul, clients []*Consul) {
	t.Helper()
	return startConsulCluster(t, agents, true, hcl)
}

func startConsulCluster(t testing.TB, agents int, tls bool, hcl []string) (server *Consul, clients []*Consul) {
	t.Helper()
	bin, err := ConsulBinary()
	if err != nil {
		t.Fatal(err)
	}
	server = &Consul{Process: Process{name: "consul server"}, t: t, bin: bin, dir: t.TempDir(), node: "server", hcl: hcl, ports: map[string]int{}}
	for _, name := range []string{"http", "serf-lan", "serf-wan", "server"} {
		server.ports[name] = FreePort(t)
	}
	server.Start()
	server.cleanup(t)
	var tlsDir string
	if tls {
		tlsDir = t.TempDir()
		if err := writeTestCerts(tlsDir); err != nil {
			t.Fatal(err)
		}
	}
	for i := range agents {
		c := &Consul{
			Process: Process{name: fmt.Sprintf("consul client %d", i)},
			t:       t, bin: bin, dir: t.TempDir(), node: fmt.Sprintf("client-%d", i), hcl: hcl, tlsDir: tlsDir,
			join:  fmt.Sprintf("127.0.0.1:%d", server.ports["serf-lan"]),
			ports: map[string]int{"http": FreePort(t), "serf-lan": FreePort(t)},
		}
		if tls {
			c.ports["https"] = FreePort(t)
		}
		c.Start()
		c.cleanup(t)
		clients = append(clients, c)
	}
	return server, clients
}

// ServerPort is the port of the server's RPC, which client agents connect
// to (their RPCs and their streaming subscriptions).
func (c *Consul) ServerPort() int { return c.ports["server"] }

// DNSAddr is the address of Consul's DNS interface (StartConsulWithDNS).
func (c *Consul) DNSAddr() string { return fmt.Sprintf("127.0.0.1:%d", c.ports["dns"]) }

// Addr is the agent's HTTP address, host:port.
func (c *Consul) Addr() string { return fmt.Sprintf("127.0.0.1:%d", c.ports["http"]) }

// Start starts the agent (again, empty) and waits until it has a leader.
func (c *Consul) Start() {
	c.t.Helper()
	argv := []string{c.bin, "agent", "-dev"}
	switch {
	case c.join != "":
		argv = []string{c.bin, "agent", "-data-dir", c.dir, "-retry-join", c.join}
	case c.dir != "":
		argv = []string{c.bin, "agent", "-server", "-bootstrap-expect", "1", "-data-dir", c.dir,
			"-hcl", "performance { raft_multiplier = 1 }"}
	}
	node := c.node
	if node == "" {
		node = "dev"
	}
	argv = append(argv, "-bind", "127.0.0.1", "-client", "127.0.0.1", "-node", node, "-log-level", "warn",
		"-grpc-port", "-1", "-grpc-tls-port", "-1")
	for _, hcl := range c.hcl {
		argv = append(argv, "-hcl", hcl)
	}
	if _, ok := c.ports["dns"]; !ok {
		argv = append(argv, "-dns-port", "-1")
	}
	if hcl := c.tlsConfig(); hcl != "" {
		argv = append(argv, "-hcl", hcl)
	}
	for _, name := range slices.Sorted(maps.Keys(c.ports)) {
		argv = append(argv, fmt.Sprintf("-%s-port", name), fmt.Sprint(c.ports[name]))
	}
	c.start(c.t, time.Minute, c.hasLeader, argv...)
}

func (c *Consul) hasLeader() bool {
	resp, err := http.Get("http://" + c.Addr() + "/v1/status/leader")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == 200 && len(body) > 2 && string(body) != `""`
}

// portTurn is where FreePort takes its next port in the block.
var portTurn struct {
	once sync.Once
	next atomic.Int64
}

// FreePort returns a loopback port free for both UDP and TCP, below the
// ephemeral range (32768 and up on Linux). A server restarted on it cannot
// find it taken by a client that kept connecting while it was down: on
// loopback such a client can connect to itself when the kernel gives it the
// server's port as its own.
func FreePort(t testing.TB) int {
	t.Helper()
	// go test runs the test binaries of several packages at once. Each
	// takes its ports from a block of its own, chosen by the binary's name
	// (etcd.test, zookeeper.test, test.test...), so that no binary takes a
	// port another one freed for a moment: a registry it kills and starts
	// again on the same port.
	name := fnv.New32a()
	name.Write([]byte(filepath.Base(os.Args[0])))
	block := 20000 + int(name.Sum32()%12)*1000
	// Within the block, ports go round in turn from a random start: a port
	// handed out and not bound yet (a configuration being written) is not
	// handed out again until the round comes back to it.
	portTurn.once.Do(func() { portTurn.next.Store(int64(rand.IntN(1000))) })
	for range 200 {
		port := block + int(portTurn.next.Add(1)%1000)
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		pc.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatalf("no free port in %d-%d", block, block+999)
	return 0
}

// CoreDNSBinary finds the coredns binary: $PATH first, then the cache that
// ./test/run.sh fills (go install github.com/coredns/coredns@v1.15.0).
func CoreDNSBinary() (string, error) {
	return cachedBinary("coredns", "./test/run.sh builds it")
}
