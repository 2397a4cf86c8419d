package test

import (
	"context"
	"errors"
	"fmt"
	"net"
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

// systemResolverAddr is the loopback address discodns serves port 53 on in
// TestSystemResolver, as the README suggests.
const systemResolverAddr = "127.0.0.153"

// inNamespace runs argv in a private mount namespace in which
// /etc/resolv.conf is resolvConf: what every stock resolver of the command
// reads.
func inNamespace(t *testing.T, resolvConf string, env []string, argv ...string) (string, error) {
	t.Helper()
	script := `mount --bind "$0" /etc/resolv.conf && exec "$@"`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, need(t, "unshare"), append([]string{"--mount", "sh", "-c", script, resolvConf}, argv...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestSystemResolver puts discodns on port 53 of a loopback address as the
// only nameserver of a resolv.conf, with dnsmasq as its upstream, and looks
// names up the way programs do: glibc (getent), Go's resolver, dig.
func TestSystemResolver(t *testing.T) {
	if syscall.Geteuid() != 0 {
		t.Fatal("this test binds port 53 and mounts over /etc/resolv.conf in a private namespace: run it as root (CI does)")
	}
	need(t, "getent")
	need(t, "dig")
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:8080", ``)
	e.put("/services/web/10.0.0.2:8080", ``)
	upstream := registries.StartDnsmasq(t, map[string]string{"www.example.test": "192.0.2.10", "api.example.test": "192.0.2.20"}, 1)
	d := startDiscodns(t, fmt.Sprintf(`
[dns]
listen = ["%s:53"]
zone = "svc.internal."

[forward]
upstreams = [%q]
allow = ["127.0.0.1/32", "127.0.0.153/32"]
timeout = "500ms"

[http]
listen = "{{HTTP}}"

[log]
level = "debug"

[[source]]
type = "etcd"
endpoints = [%q]
`, systemResolverAddr, upstream.Addr(), e.endpoint()))
	d.waitInstances("web.svc.internal.", 2)

	resolvConf := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(resolvConf, []byte("nameserver "+systemResolverAddr+"\nsearch svc.internal\noptions edns0 timeout:2 attempts:1\n"), 0o644)
	getent := func(name string) string {
		out, err := inNamespace(t, resolvConf, nil, "getent", "ahosts", name)
		if err != nil {
			t.Errorf("getent ahosts %s: %v\n%s", name, err, out)
		}
		return out
	}
	digAt := func(args ...string) *digResult {
		r, err := dig(t, systemResolverAddr+":53", args...)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	t.Run("glibc", func(t *testing.T) {
		if out := getent("web.svc.internal"); !strings.Contains(out, "10.0.0.1") || !strings.Contains(out, "10.0.0.2") {
			t.Errorf("service: %s", out)
		}
		if out := getent("www.example.test"); !strings.Contains(out, "192.0.2.10") {
			t.Errorf("upstream name: %s", out)
		}
		if out := getent("web"); !strings.Contains(out, "10.0.0.1") {
			t.Errorf("short name through search: %s", out)
		}
		if out, err := inNamespace(t, resolvConf, nil, "getent", "ahosts", "nope.example.test"); err == nil {
			t.Errorf("an unknown name resolved: %s", out)
		}
	})

	t.Run("Go resolver", func(t *testing.T) {
		helper, argv := helperArgv("lookup-srv")
		out, err := inNamespace(t, resolvConf, []string{helper, "DISCODNS_LOOKUP_SRV=web"}, argv...)
		if err != nil || !strings.Contains(out, "SRV 8080 10-0-0-1-8080.web.svc.internal.") || !strings.Contains(out, "SRV 8080 10-0-0-2-8080.web.svc.internal.") {
			t.Errorf("Go LookupSRV: %v\n%s", err, out)
		}
	})

	t.Run("dig", func(t *testing.T) {
		if r := digAt("A", "web.svc.internal."); r.status != "NOERROR" || len(r.answer) != 2 || !r.flags["aa"] || !r.flags["ra"] {
			t.Errorf("in zone: %s", r.raw)
		}
		if r := digAt("A", "api.example.test."); r.status != "NOERROR" || len(r.answer) != 1 || r.flags["aa"] || !r.flags["ra"] {
			t.Errorf("forwarded: %s", r.raw)
		}
		if r := digAt("A", "localhost."); len(r.answer) != 1 || !strings.Contains(r.answer[0].String(), "127.0.0.1") {
			t.Errorf("localhost answered locally: %s", r.raw)
		}
	})

	t.Run("a client outside allow is refused", func(t *testing.T) {
		r := digAt("-b", "127.0.0.2", "A", "www.example.test.")
		if r.status != "REFUSED" {
			t.Errorf("from 127.0.0.2: %s", r.raw)
		}
		if r := digAt("-b", "127.0.0.2", "A", "web.svc.internal."); r.status != "NOERROR" || len(r.answer) != 2 {
			t.Errorf("the zone itself answers everyone: %s", r.raw)
		}
	})

	t.Run("upstream down: stale, SERVFAIL, zone unaffected; back: fresh", func(t *testing.T) {
		digAt("A", "www.example.test.") // cached, TTL 1 s
		upstream.Stop()
		time.Sleep(1500 * time.Millisecond) // the cached answer expires
		r := digAt("A", "www.example.test.")
		if r.status != "NOERROR" || len(r.answer) != 1 || r.answer[0].Header().Ttl != 30 {
			t.Errorf("stale answer: %s", r.raw)
		}
		if r := digAt("A", "never-asked.example.test."); r.status != "SERVFAIL" {
			t.Errorf("new name with the upstream down: %s", r.raw)
		}
		if r := digAt("A", "web.svc.internal."); r.status != "NOERROR" || len(r.answer) != 2 {
			t.Errorf("zone with the upstream down: %s", r.raw)
		}
		if out := getent("www.example.test"); !strings.Contains(out, "192.0.2.10") {
			t.Errorf("glibc with the upstream down (stale): %s", out)
		}
		if v, err := d.metric("discodns_forward_stale_answers_total"); err != nil || v == "0" {
			t.Errorf("stale answers counted %q (%v)", v, err)
		}

		upstream.SetHost("www.example.test", "192.0.2.11")
		upstream.Start()
		eventually(t, 20*time.Second, "fresh answer after the upstream returns", func() error {
			r := digAt("A", "www.example.test.")
			if len(r.answer) != 1 || !strings.Contains(r.answer[0].String(), "192.0.2.11") {
				return errors.New(r.raw)
			}
			return nil
		})
	})
}

// lookupSRV is run by TestSystemResolver inside its namespace: Go's own
// resolver reading the namespace's /etc/resolv.conf looks up the SRV
// records of DISCODNS_LOOKUP_SRV and prints them.
func lookupSRV() error {
	r := &net.Resolver{PreferGo: true}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, srvs, err := r.LookupSRV(ctx, os.Getenv("DISCODNS_LOOKUP_SRV"), "tcp", "svc.internal")
	if err != nil {
		return err
	}
	for _, s := range srvs {
		fmt.Printf("SRV %d %s\n", s.Port, s.Target)
	}
	return nil
}

// TestForwardLoopRefused: an upstream that is discodns itself stops it at
// start with a clear error.
func TestForwardLoopRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loop.toml")
	os.WriteFile(path, []byte("[dns]\nlisten = [\"127.0.0.153:53\"]\n[forward]\nupstreams = [\"127.0.0.153:53\"]\n"), 0o600)
	out, err := exec.Command(binary, "-config", path).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "forward.upstreams") ||
		!strings.Contains(string(out), "loop") {
		t.Errorf("exit %v, output %s", err, out)
	}
}

// TestForwardMaxStaleZero: forward.max_stale = "0s" means what the example
// configuration says, never serve stale: once the upstream is gone and the
// cached answer expired, the name gets SERVFAIL, and the same set-up with
// max_stale = "1h" answers it stale (TTL 30).
func TestForwardMaxStaleZero(t *testing.T) {
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:8080", ``)
	for _, tc := range []struct {
		maxStale string
		rcode    int
	}{{"0s", dns.RcodeServerFailure}, {"1h", dns.RcodeSuccess}} {
		t.Run("max_stale "+tc.maxStale, func(t *testing.T) {
			upstream := registries.StartDnsmasq(t, map[string]string{"www.example.test": "192.0.2.10"}, 1)
			d := startDiscodns(t, fmt.Sprintf(`
[dns]
listen = ["{{DNS}}"]

[forward]
upstreams = [%q]
timeout = "500ms"
max_stale = %q

[http]
listen = "{{HTTP}}"

[[source]]
type = "etcd"
endpoints = [%q]
`, upstream.Addr(), tc.maxStale, e.endpoint()))
			if m, err := d.exchange("www.example.test.", dns.TypeA, "udp"); err != nil || len(m.Answer) != 1 {
				t.Fatalf("forwarded answer: %v %v", m, err)
			}
			upstream.Stop()
			time.Sleep(1500 * time.Millisecond) // the cached answer (TTL 1 s) expires
			m, err := d.exchange("www.example.test.", dns.TypeA, "udp")
			if err != nil || m.Rcode != tc.rcode {
				t.Fatalf("after expiry with the upstream down: %v %v, want %s", m, err, dns.RcodeToString[tc.rcode])
			}
			if tc.rcode == dns.RcodeSuccess && (len(m.Answer) != 1 || m.Answer[0].Header().Ttl != 30) {
				t.Errorf("stale answer %v, want one record with TTL 30", m)
			}
		})
	}
}
