package test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discodns/discodns/test/registries"
)

// registrant is a running `discodns register`.
type registrant struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan error
	out  lockedBuffer
}

func startRegister(t *testing.T, args ...string) *registrant {
	t.Helper()
	r := &registrant{t: t, done: make(chan error, 1)}
	r.cmd = exec.Command(binary, append([]string{"register"}, args...)...)
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("register output:\n%s", r.out.String())
		}
	})
	return r
}

// stop sends sig and waits for the exit; SIGTERM must exit 0.
func (r *registrant) stop(sig syscall.Signal) {
	r.t.Helper()
	r.cmd.Process.Signal(sig)
	select {
	case err := <-r.done:
		if sig == syscall.SIGTERM && err != nil {
			r.t.Errorf("register after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		r.t.Fatal("register still running 15 s after the signal")
	}
}

// answers waits until name's A answer is exactly want ("" for NXDOMAIN).
func (d *discodns) answers(name, want string, within time.Duration) time.Duration {
	d.t.Helper()
	start := time.Now()
	eventually(d.t, within, fmt.Sprintf("%s answers %q", name, want), func() error {
		m, err := d.exchange(name, dns.TypeA, "udp")
		if err != nil {
			return err
		}
		got := ""
		if len(m.Answer) == 1 {
			got = m.Answer[0].(*dns.A).A.String()
		}
		if got != want {
			return fmt.Errorf("got %q (%s)", got, dns.RcodeToString[m.Rcode])
		}
		return nil
	})
	return time.Since(start)
}

// registry is one registry as registerLifecycle drives it: the service
// reg, instance addr:80, registered there by `discodns register`.
type registry struct {
	// source is discodns's name for the source that reads the registry.
	source string
	// addr is the instance's IPv4 address.
	addr string
	// long is the longest time the registry lets a registration outlive
	// its registrant (lease, session timeout, TTL), at least 10 s.
	long time.Duration
	// args are register's registry flags for a registration that outlives
	// its registrant by ttl.
	args func(ttl time.Duration) []string
	// holder names what keeps the live registration in the registry now
	// (the etcd lease, the ZooKeeper session, the Consul agent), or ""
	// when the registry holds no live registration.
	holder func() (string, error)
	// lose makes the registry really lose the live registration held by
	// held while register goes on running, and returns once it has.
	lose func(held string)
}

// await polls reg.holder until ok accepts it, and returns it.
func (reg *registry) await(t *testing.T, what string, within time.Duration, ok func(holder string) bool) string {
	t.Helper()
	var holder string
	eventually(t, within, what, func() error {
		h, err := reg.holder()
		if err != nil {
			return err
		}
		if holder = h; !ok(h) {
			return fmt.Errorf("held by %q", h)
		}
		return nil
	})
	return holder
}

// registerLifecycle runs `discodns register` against reg, checked both in
// the registry and through discodns d: the instance is registered and
// answers with its weight and tag; after the registry really lost the
// registration (an expired lease or session, an agent restarted empty),
// register registers it again, under a new lease, session or agent; on
// SIGTERM it deregisters at once, well before the registration's long
// TTL; after SIGKILL, a short TTL removes it.
func registerLifecycle(t *testing.T, d *discodns, reg *registry) {
	t.Helper()
	const name = "reg.svc.internal."
	args := func(ttl time.Duration) []string {
		return append(reg.args(ttl), "-service", "reg", "-addr", reg.addr+":80", "-weight", "7", "-tags", "blue")
	}
	live := func(h string) bool { return h != "" }
	gone := func(h string) bool { return h == "" }

	r := startRegister(t, args(reg.long)...)
	held := reg.await(t, "registered", 30*time.Second, live)
	t.Logf("registered, held by %s; resolvable after %v", held, d.answers(name, reg.addr, 10*time.Second))
	if m, err := d.exchange("_reg._tcp.svc.internal.", dns.TypeSRV, "udp"); err != nil || len(m.Answer) != 1 || m.Answer[0].(*dns.SRV).Weight != 7 {
		t.Errorf("SRV: %v %v, want one record of weight 7", m, err)
	}
	d.answers("blue."+name, reg.addr, 10*time.Second)

	reg.lose(held)
	again := reg.await(t, "registered again after the registration was lost", 60*time.Second,
		func(h string) bool { return h != "" && h != held })
	t.Logf("registration held by %s lost; registered again, held by %s", held, again)
	eventually(t, 30*time.Second, "discodns follows the registry", func() error {
		if v, err := d.metric(fmt.Sprintf(`discodns_source_state{source=%q,state="connected"}`, reg.source)); err != nil || v != "1" {
			return fmt.Errorf("connected = %q %v", v, err)
		}
		return nil
	})
	d.answers(name, reg.addr, 30*time.Second)

	// The registry would keep the registration for reg.long after its
	// registrant went: gone well before that, it was register that
	// removed it.
	r.stop(syscall.SIGTERM)
	within := min(reg.long/3, 10*time.Second)
	start := time.Now()
	reg.await(t, fmt.Sprintf("deregistered on SIGTERM (the registration's TTL is %v)", reg.long), within, gone)
	t.Logf("deregistered %v after register exited on SIGTERM; NXDOMAIN after %v more",
		time.Since(start), d.answers(name, "", 10*time.Second))

	r = startRegister(t, args(2*time.Second)...)
	reg.await(t, "registered with a 2 s TTL", 30*time.Second, live)
	d.answers(name, reg.addr, 10*time.Second)
	r.stop(syscall.SIGKILL)
	start = time.Now()
	reg.await(t, "gone with its 2 s TTL after SIGKILL", 30*time.Second, gone)
	t.Logf("gone %v after SIGKILL; NXDOMAIN after %v more", time.Since(start), d.answers(name, "", 30*time.Second))
}

// TestRegisterEtcd: a key under a lease that the test revokes, as when it
// expires.
func TestRegisterEtcd(t *testing.T) {
	e := startEtcd(t)
	d := startDiscodns(t, etcdConfig(e.endpoint()))
	const key = "/services/reg/10.5.0.1:80"
	get := func() (*clientv3.GetResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return e.cli.Get(ctx, key)
	}
	registerLifecycle(t, d, &registry{
		source: "etcd", addr: "10.5.0.1", long: 30 * time.Second,
		args: func(ttl time.Duration) []string {
			return []string{"-source", "etcd", "-endpoints", e.endpoint(), "-ttl", ttl.String(), "-meta", "team=core"}
		},
		holder: func() (string, error) {
			resp, err := get()
			if err != nil || len(resp.Kvs) == 0 {
				return "", err
			}
			return fmt.Sprintf("lease %x", resp.Kvs[0].Lease), nil
		},
		lose: func(held string) {
			resp, err := get()
			if err != nil || len(resp.Kvs) == 0 || fmt.Sprintf("lease %x", resp.Kvs[0].Lease) != held {
				t.Fatalf("%s before the revocation: %v %v, want it under %s", key, resp, err, held)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			// The revocation deletes the key with the lease.
			if _, err := e.cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
				t.Fatalf("revoke %s: %v", held, err)
			}
		},
	})
}

// TestRegisterZooKeeper: an ephemeral node, the address from -config;
// register reaches ZooKeeper through a proxy that the test cuts until the
// session expired and the node went with it.
func TestRegisterZooKeeper(t *testing.T) {
	server := registries.StartZooKeeper(t)
	proxy := registries.StartProxy(t, server.Addr())
	cli := registries.ZKClient(t, server.Addr())
	d := startDiscodns(t, fmt.Sprintf(`
[dns]
listen = ["{{DNS}}"]
[http]
listen = "{{HTTP}}"
[[source]]
type = "zookeeper"
servers = [%q]
session_timeout = "2s"
`, server.Addr()))
	const node = "/services/reg/10.6.0.1:80"
	registerLifecycle(t, d, &registry{
		source: "zookeeper", addr: "10.6.0.1", long: 30 * time.Second, // the test server's maxSessionTimeout
		args: func(ttl time.Duration) []string {
			path := filepath.Join(t.TempDir(), "register.toml")
			config := fmt.Sprintf("[[source]]\ntype = \"zookeeper\"\nservers = [%q]\nsession_timeout = %q\n", proxy.Addr(), ttl.String())
			if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
				t.Fatal(err)
			}
			return []string{"-config", path, "-source", "zookeeper"}
		},
		holder: func() (string, error) {
			ok, stat, err := cli.Exists(node)
			if err != nil || !ok {
				return "", err
			}
			if stat.EphemeralOwner == 0 {
				return "", fmt.Errorf("%s is not ephemeral", node)
			}
			return fmt.Sprintf("session %#x", stat.EphemeralOwner), nil
		},
		lose: func(held string) {
			proxy.Cut()
			defer proxy.Restore()
			eventually(t, 60*time.Second, fmt.Sprintf("%s expires while register is cut off", held), func() error {
				ok, stat, err := cli.Exists(node)
				if err != nil || ok {
					return fmt.Errorf("%s: %v %+v", node, err, stat)
				}
				return nil
			})
		},
	})
}

// TestRegisterConsul: an agent service with a TTL check; the (in-memory)
// agent restarts empty and register registers again.
func TestRegisterConsul(t *testing.T) {
	agent := registries.StartConsul(t)
	client := consulClient(t, agent).Agent()
	d := startDiscodns(t, consulConfig(agent.Addr(), ""))
	registerLifecycle(t, d, &registry{
		source: "consul", addr: "10.7.0.1", long: 30 * time.Second,
		args: func(ttl time.Duration) []string {
			return []string{"-source", "consul", "-address", agent.Addr(), "-ttl", ttl.String()}
		},
		holder: func() (string, error) {
			checks, err := client.ChecksWithFilter(`ServiceName == "reg"`)
			if err != nil {
				return "", err
			}
			for _, c := range checks {
				if c.Status == api.HealthPassing {
					// A -dev agent takes a new node ID at every start.
					self, err := client.Self()
					if err != nil {
						return "", err
					}
					return fmt.Sprintf("%s on agent %v", c.ServiceID, self["Config"]["NodeID"]), nil
				}
			}
			return "", nil
		},
		lose: func(string) {
			// A service of the test's own shows that the agent came back
			// without its registrations.
			marker := &api.AgentServiceRegistration{ID: "marker", Name: "marker", Address: "10.7.0.2", Port: 80}
			if err := client.ServiceRegister(marker); err != nil {
				t.Fatal(err)
			}
			agent.Stop()
			agent.Start()
			var status api.StatusError
			if _, _, err := client.Service("marker", nil); !errors.As(err, &status) || status.Code != 404 {
				t.Fatalf("the restarted agent still knows the test's service: %v", err)
			}
		},
	})
}

// TestRegisterBadFlags: bad flags exit non-zero with a clear message.
func TestRegisterBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-service", "web", "-addr", "10.0.0.1:80"}, "-source is required"},
		{[]string{"-source", "redis", "-service", "web", "-addr", "10.0.0.1:80"}, `-source "redis"`},
		{[]string{"-source", "etcd", "-addr", "10.0.0.1:80"}, "-service is required"},
		{[]string{"-source", "etcd", "-service", "web", "-addr", "10.0.0.1"}, "want host:port"},
		{[]string{"-source", "etcd", "-service", "web", "-addr", "10.0.0.1:99999"}, "port from 1 to 65535"},
		{[]string{"-source", "etcd", "-service", "web", "-addr", "10.0.0.1:80", "-meta", "novalue"}, "want key=value"},
		{[]string{"-source", "etcd", "-service", "web", "-addr", "10.0.0.1:80", "-check", "http://x/"}, "-check is for -source consul only"},
		{[]string{"-source", "etcd", "-service", "web", "-addr", "10.0.0.1:80", "-ttl", "10ms"}, "want at least 1s"},
	} {
		out, err := exec.Command(binary, append([]string{"register"}, tc.args...)...).CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: %v\n%s\nwant a non-zero exit and %q", tc.args, err, out, tc.want)
		}
	}
}
