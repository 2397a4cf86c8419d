package test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

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

// registerLifecycle runs `discodns register` with args against the
// registry of source: the instance at addr answers; survives restart of
// the registry; after SIGTERM it goes at once, after SIGKILL with its
// lease, session or TTL check.
func registerLifecycle(t *testing.T, d *discodns, source, addr string, restart func(), args ...string) {
	t.Helper()
	r := startRegister(t, args...)
	t.Logf("resolvable after %v", d.answers("reg.svc.internal.", addr, 10*time.Second))
	restart()
	eventually(t, 30*time.Second, "discodns follows the registry again", func() error {
		if v, err := d.metric(fmt.Sprintf(`discodns_source_state{source=%q,state="connected"}`, source)); err != nil || v != "1" {
			return fmt.Errorf("connected = %q %v", v, err)
		}
		return nil
	})
	d.answers("reg.svc.internal.", addr, 30*time.Second)
	r.stop(syscall.SIGTERM)
	d.answers("reg.svc.internal.", "", 10*time.Second)

	r = startRegister(t, args...)
	d.answers("reg.svc.internal.", addr, 10*time.Second)
	r.stop(syscall.SIGTERM)
	t.Logf("gone after SIGTERM in %v", d.answers("reg.svc.internal.", "", 10*time.Second))
	r = startRegister(t, args...)
	d.answers("reg.svc.internal.", addr, 10*time.Second)
	r.stop(syscall.SIGKILL)
	t.Logf("gone after SIGKILL in %v", d.answers("reg.svc.internal.", "", 20*time.Second))
}

// TestRegisterEtcd: a key under a 2 s lease; etcd stopped past the lease.
func TestRegisterEtcd(t *testing.T) {
	e := startEtcd(t)
	d := startDiscodns(t, etcdConfig(e.endpoint()))
	args := []string{"-source", "etcd", "-endpoints", e.endpoint(), "-service", "reg", "-addr", "10.5.0.1:80",
		"-ttl", "2s", "-weight", "7", "-tags", "blue", "-meta", "team=core"}
	registerLifecycle(t, d, "etcd", "10.5.0.1", func() {
		m, err := d.exchange("_reg._tcp.svc.internal.", dns.TypeSRV, "udp")
		if err != nil || len(m.Answer) != 1 || m.Answer[0].(*dns.SRV).Weight != 7 {
			t.Errorf("SRV: %v %v", m, err)
		}
		if m, err := d.exchange("blue.reg.svc.internal.", dns.TypeA, "udp"); err != nil || len(m.Answer) != 1 {
			t.Errorf("tag: %v %v", m, err)
		}
		e.stop()
		time.Sleep(3 * time.Second) // past the lease
		e.start()
	}, args...)
}

// TestRegisterZooKeeper: an ephemeral node in a 2 s session, addresses from
// -config; ZooKeeper killed and restarted.
func TestRegisterZooKeeper(t *testing.T) {
	server := registries.StartZooKeeper(t)
	config := fmt.Sprintf(`
[dns]
listen = ["{{DNS}}"]
[http]
listen = "{{HTTP}}"
[[source]]
type = "zookeeper"
servers = [%q]
session_timeout = "2s"
`, server.Addr())
	d := startDiscodns(t, config)
	path := filepath.Join(t.TempDir(), "register.toml")
	os.WriteFile(path, []byte(strings.NewReplacer("{{DNS}}", "127.0.0.1:1", "{{HTTP}}", "").Replace(config)), 0o600)
	registerLifecycle(t, d, "zookeeper", "10.6.0.1", func() { server.Stop(); server.Start() },
		"-config", path, "-source", "zookeeper", "-service", "reg", "-addr", "10.6.0.1:80")
}

// TestRegisterConsul: an agent service with a 2 s TTL check; the
// (in-memory) agent restarts empty and register registers again.
func TestRegisterConsul(t *testing.T) {
	agent := registries.StartConsul(t)
	d := startDiscodns(t, consulConfig(agent.Addr(), ""))
	registerLifecycle(t, d, "consul", "10.7.0.1", func() { agent.Stop(); agent.Start() },
		"-source", "consul", "-address", agent.Addr(), "-service", "reg", "-addr", "10.7.0.1:80", "-ttl", "2s")
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
