package test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/miekg/dns"

	"github.com/discodns/discodns/test/registries"
)

func zookeeperConfig(servers string, extra string) string {
	return fmt.Sprintf(`
[dns]
listen = ["{{DNS}}"]
zone = "svc.internal."

[http]
listen = "{{HTTP}}"

[log]
level = "debug"

[[source]]
name = "zk"
type = "zookeeper"
servers = [%q]
prefix = "/services"
format = "discox"
session_timeout = "2s"

[[source]]
name = "curator"
type = "zookeeper"
servers = [%[1]q]
prefix = "/curator"
format = "curator"

[[source]]
name = "aurora"
type = "zookeeper"
servers = [%[1]q]
prefix = "/aurora/prod"
format = "serverset"
%s
`, servers, extra)
}

// TestZooKeeperEndToEnd serves the three ZooKeeper layouts through dig,
// named ports included.
func TestZooKeeperEndToEnd(t *testing.T) {
	need(t, "dig")
	server := registries.StartZooKeeper(t)
	cli := registries.ZKClient(t, server.Addr())
	registries.ZKPut(t, cli, "/services/web/10.0.0.1:8080", `{"weight":5}`, zk.FlagEphemeral)
	registries.ZKPut(t, cli, "/curator/orders/41d7", `{"name":"orders","id":"41d7","address":"10.9.0.1","port":8080,"sslPort":8443,
		"payload":{"@class":"x","metadata":{"zone":"a"}}}`, 0)
	registries.ZKPut(t, cli, "/aurora/prod/search/member_0000000001", `{"serviceEndpoint":{"host":"10.10.0.1","port":31000},
		"additionalEndpoints":{"http":{"host":"10.10.0.1","port":31001}},"status":"ALIVE","shard":0}`, 0)
	d := startDiscodns(t, zookeeperConfig(server.Addr(), ""))

	for _, tc := range []struct{ qtype, name, want string }{
		{"SRV", "_web._tcp.svc.internal.", "1 5 8080 10-0-0-1-8080.web.svc.internal."},
		{"SRV", "_orders._tcp.svc.internal.", "8080 41d7.orders.svc.internal."},
		{"SRV", "_orders._tls.svc.internal.", "8443 41d7.orders.svc.internal."},
		{"SRV", "_tls._tcp.orders.svc.internal.", "8443 41d7.orders.svc.internal."},
		{"TXT", "41d7.orders.svc.internal.", `"zone=a"`},
		{"SRV", "_search._tcp.svc.internal.", "31000 member-0000000001.search.svc.internal."},
		{"SRV", "_http._tcp.search.svc.internal.", "31001 member-0000000001.search.svc.internal."},
	} {
		r, err := dig(t, d.dns, tc.qtype, tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != "NOERROR" || len(r.answer) != 1 || !strings.Contains(r.answer[0].String(), tc.want) {
			t.Errorf("%s %s: %s %v, want one record with %q", tc.qtype, tc.name, r.status, r.answer, tc.want)
		}
	}
	// The ephemeral node goes with its session.
	cli.Close()
	eventually(t, 10*time.Second, "web gone with its session", func() error {
		m, err := d.exchange("web.svc.internal.", dns.TypeA, "udp")
		if err != nil || m.Rcode != dns.RcodeNameError {
			return fmt.Errorf("%v %v", m, err)
		}
		return nil
	})
}

// TestZooKeeperSessionExpiryDNS keeps discodns away from a running
// ZooKeeper for longer than its session timeout while nodes change: DNS
// answers never go empty or SERVFAIL, and the table then converges to
// exactly what ZooKeeper holds.
func TestZooKeeperSessionExpiryDNS(t *testing.T) {
	server := registries.StartZooKeeper(t)
	proxy := registries.StartProxy(t, server.Addr())
	cli := registries.ZKClient(t, server.Addr())
	registries.ZKPut(t, cli, "/services/web/10.0.0.1:80", ``, 0)
	registries.ZKPut(t, cli, "/services/web/10.0.0.2:80", ``, 0)
	registries.ZKPut(t, cli, "/services/db/10.0.1.1:5432", ``, 0)
	d := startDiscodns(t, zookeeperConfig(proxy.Addr(), ""))
	d.waitInstances("web.svc.internal.", 2)

	stopQueries := d.queryLoop("web.svc.internal.", 10*time.Millisecond)

	proxy.Cut()
	eventually(t, 10*time.Second, "zk source stale", func() error {
		if v, err := d.metric(`discodns_source_state{source="zk",state="stale"}`); err != nil || v != "1" {
			return fmt.Errorf("stale metric %q %v", v, err)
		}
		return nil
	})
	registries.ZKDelete(t, cli, "/services/web/10.0.0.2:80")
	registries.ZKPut(t, cli, "/services/web/10.0.0.3:80", ``, 0)
	registries.ZKDelete(t, cli, "/services/db/10.0.1.1:5432")
	registries.ZKPut(t, cli, "/services/cache/10.0.2.1:6379", ``, 0)
	time.Sleep(5 * time.Second) // the 2 s session expires on the server
	proxy.Restore()

	want := map[string][]string{
		"web.svc.internal.":   {"10.0.0.1:80", "10.0.0.3:80"},
		"cache.svc.internal.": {"10.0.2.1:6379"},
	}
	eventually(t, 30*time.Second, "table converges to ZooKeeper", func() error {
		svcs, err := d.services()
		if err != nil {
			return err
		}
		for k := range svcs {
			slices.Sort(svcs[k])
		}
		if fmt.Sprint(svcs) != fmt.Sprint(want) {
			return fmt.Errorf("table %v, zookeeper %v", svcs, want)
		}
		return nil
	})
	if queries, failures, last := stopQueries(); failures > 0 || queries < 100 {
		t.Errorf("%d of %d queries failed while ZooKeeper was away; last: %v", failures, queries, last)
	}
	if !strings.Contains(d.logs(), "new zookeeper session") {
		t.Errorf("no new session logged")
	}
}
