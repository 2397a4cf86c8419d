package test

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestReload swaps a source, changes DNS settings, adds and removes sources
// with SIGHUP while queries run; none fails. A bad configuration is
// rejected, counted, and the running one stays.
func TestReload(t *testing.T) {
	e := startEtcd(t)
	e.put("/a/web/10.0.0.1:80", ``)
	e.put("/b/web/10.0.0.2:80", ``)
	e.put("/b/db/10.0.1.1:5432", ``)
	e.put("/grpc/greeter/10.0.0.7:50051", `{"Op":0,"Addr":"10.0.0.7:50051"}`)
	config := func(ttl, prefix, extra string) string {
		return fmt.Sprintf(`
[dns]
listen = ["{{DNS}}"]
ttl = %q
[http]
listen = "{{HTTP}}"
[[source]]
name = "etcd"
type = "etcd"
endpoints = [%q]
prefix = %q
%s`, ttl, e.endpoint(), prefix, extra)
	}
	d := startDiscodns(t, config("5s", "/a", ""))
	d.waitInstances("web.svc.internal.", 1)
	write := func(cfg string) {
		t.Helper()
		cfg = strings.NewReplacer("{{DNS}}", d.dns, "{{HTTP}}", strings.TrimPrefix(d.http, "http://")).Replace(cfg)
		if err := os.WriteFile(d.config, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		d.cmd.Process.Signal(syscall.SIGHUP)
	}
	answer := func(name string) (string, uint32) {
		m, err := d.exchange(name, dns.TypeA, "udp")
		if err != nil || len(m.Answer) == 0 {
			return "", 0
		}
		return m.Answer[0].(*dns.A).A.String(), m.Answer[0].Header().Ttl
	}

	stopQueries := d.queryLoop("web.svc.internal.", 5*time.Millisecond)

	// Swap the source's prefix and change the TTL.
	write(config("9s", "/b", ""))
	eventually(t, 10*time.Second, "the swapped source answers with the new TTL", func() error {
		if ip, ttl := answer("web.svc.internal."); ip != "10.0.0.2" || ttl != 9 {
			return fmt.Errorf("web = %s TTL %d", ip, ttl)
		}
		if ip, _ := answer("db.svc.internal."); ip != "10.0.1.1" {
			return fmt.Errorf("db = %q", ip)
		}
		return nil
	})
	// A bad configuration: rejected, counted, nothing changes.
	write(config("9s", "/b", "bogus = 1\n"))
	eventually(t, 10*time.Second, "the bad configuration is counted", func() error {
		if v, err := d.metric(`discodns_config_reloads_total{result="error"}`); err != nil || v != "1" {
			return fmt.Errorf("errors = %q %v", v, err)
		}
		return nil
	})
	if ip, ttl := answer("web.svc.internal."); ip != "10.0.0.2" || ttl != 9 {
		t.Errorf("after a rejected reload: web = %s TTL %d", ip, ttl)
	}
	if !strings.Contains(d.logs(), "configuration reload rejected") || !strings.Contains(d.logs(), "bogus") {
		t.Errorf("the rejection is not logged with its reason")
	}
	// Add a source, then remove it.
	grpc := fmt.Sprintf("[[source]]\nname = \"grpc\"\ntype = \"etcd\"\nendpoints = [%q]\nprefix = \"/grpc\"\nformat = \"grpc\"\n", e.endpoint())
	write(config("9s", "/b", grpc))
	d.waitInstances("greeter.svc.internal.", 1)
	write(config("9s", "/b", ""))
	d.waitInstances("greeter.svc.internal.", 0)

	if queries, failures, last := stopQueries(); failures > 0 || queries < 10 {
		t.Errorf("%d of %d queries failed across the reloads; last: %v", failures, queries, last)
	}
	if v, err := d.metric(`discodns_config_reloads_total{result="ok"}`); err != nil || v != "3" {
		t.Errorf("ok reloads = %q %v, want 3", v, err)
	}
}
