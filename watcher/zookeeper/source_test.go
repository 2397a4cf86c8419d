package zookeeper

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/config"
	"github.com/discodns/discodns/test/registries"
	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/internal/watchertest"
)

func TestDecodeCurator(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        string // "id address port tls meta", or an error substring
		removed     bool
	}{
		{"spring cloud", `{"name":"orders","id":"41d7","address":"10.9.0.1","port":8080,"sslPort":null,
			"payload":{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance","id":"application-1","name":"orders","metadata":{"zone":"a"}},
			"registrationTimeUTC":1662110433938,"serviceType":"DYNAMIC"}`, "41d7 10.9.0.1 8080 0 map[zone:a]", false},
		{"ssl port", `{"name":"orders","id":"x","address":"db.example","port":80,"sslPort":443}`, "x db.example 80 443 map[]", false},
		{"ssl only", `{"id":"x","address":"10.0.0.1","sslPort":443}`, "x 10.0.0.1 443 443 map[]", false},
		{"no id: the node name", `{"address":"10.0.0.1","port":1}`, "node-1 10.0.0.1 1 0 map[]", false},
		{"enabled true", `{"id":"x","address":"10.0.0.1","port":1,"enabled":true}`, "x 10.0.0.1 1 0 map[]", false},
		{"disabled", `{"id":"x","address":"10.0.0.1","port":1,"enabled":false}`, "", true},
		{"no port", `{"id":"x","address":"10.0.0.1"}`, "neither port", false},
		{"port out of range", `{"id":"x","address":"10.0.0.1","port":70000}`, "out of range", false},
		{"not json", `garbage`, "not a JSON object", false},
		{"no address", `{"id":"x","port":1}`, "no address", false},
		{"ipv4-mapped", `{"id":"x","address":"::ffff:10.7.0.1","port":1}`, "x 10.7.0.1 1 0 map[]", false},
		{"bracketed ipv6", `{"id":"x","address":"[2001:DB8::1]","port":1}`, "x 2001:db8::1 1 0 map[]", false},
		{"unspecified", `{"id":"x","address":"::","port":1}`, "unspecified", false},
		{"multicast", `{"id":"x","address":"224.0.0.1","port":1}`, "multicast", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := DecodeCurator("orders", "node-1", []byte(tc.value))
			if tc.removed {
				if !errors.Is(err, watcher.ErrRemoved) {
					t.Fatalf("err %v, want watcher.ErrRemoved", err)
				}
				return
			}
			if err != nil {
				if !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err %v, want %q", err, tc.want)
				}
				return
			}
			got := strings.Join([]string{in.ID, in.Address, itoa(in.Port), itoa(in.Ports["tls"]), fmtMeta(in.Meta)}, " ")
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDecodeServerset(t *testing.T) {
	in, err := DecodeServerset("search", "member_0000000042", []byte(`{"serviceEndpoint":{"host":"10.10.0.1","port":31000},
		"additionalEndpoints":{"http":{"host":"10.10.0.1","port":31001},"Admin_Port":{"host":"10.10.0.1","port":31002}},"status":"ALIVE","shard":0}`))
	if err != nil {
		t.Fatal(err)
	}
	if in.Address != "10.10.0.1" || in.Port != 31000 || in.Ports["http"] != 31001 || in.Ports["admin-port"] != 31002 ||
		in.Meta["shard"] != "0" || in.ID != "member_0000000042" {
		t.Errorf("instance %+v", in)
	}
	for _, status := range []string{"DEAD", "STARTING", "STOPPING", "STOPPED", "WARNING"} {
		_, err := DecodeServerset("search", "member_1", []byte(`{"serviceEndpoint":{"host":"10.10.0.1","port":1},"status":"`+status+`"}`))
		if !errors.Is(err, watcher.ErrRemoved) {
			t.Errorf("status %s: %v, want watcher.ErrRemoved", status, err)
		}
	}
	mapped, err := DecodeServerset("search", "member_2", []byte(`{"serviceEndpoint":{"host":"::ffff:10.10.0.2","port":1},"status":"ALIVE"}`))
	if err != nil || mapped.Address != "10.10.0.2" {
		t.Errorf("ipv4-mapped host: %+v %v, want 10.10.0.2", mapped, err)
	}
	for _, bad := range []string{`{}`, `{"serviceEndpoint":{"host":"h","port":0},"status":"ALIVE"}`, `[1]`, ``,
		`{"serviceEndpoint":{"host":"0.0.0.0","port":1},"status":"ALIVE"}`} {
		if _, err := DecodeServerset("search", "member_1", []byte(bad)); err == nil || errors.Is(err, watcher.ErrRemoved) {
			t.Errorf("%q: %v, want a decode error", bad, err)
		}
	}
	if IsServersetMember("status") || !IsServersetMember("member_0000000001") {
		t.Error("IsServersetMember")
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

func fmtMeta(m map[string]string) string {
	if len(m) == 0 {
		return "map[]"
	}
	var parts []string
	for k, v := range m {
		parts = append(parts, k+":"+v)
	}
	return "map[" + strings.Join(parts, " ") + "]"
}

func newZooKeeperHarness(t *testing.T, cfg Config) *watchertest.Harness {
	t.Helper()
	cfg.Name = "zk"
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = config.DefaultSource(config.TypeZooKeeper).SessionTimeout
	}
	return watchertest.New(t, cfg.Name, func(m *watcher.Metrics, log *slog.Logger) (watcher.Source, error) {
		return New(cfg, m, log)
	})
}

func TestZooKeeperLayouts(t *testing.T) {
	server := registries.StartZooKeeper(t)
	cli := registries.ZKClient(t, server.Addr())

	t.Run("discox", func(t *testing.T) {
		registries.ZKPut(t, cli, "/discox/web/10.0.0.1:8080", `{"weight":5,"tags":["blue"]}`, 0)
		registries.ZKPut(t, cli, "/discox/web/10.0.0.2:8080", ``, zk.FlagEphemeral)
		registries.ZKPut(t, cli, "/discox/web/10.0.0.9:9", `{{ garbage`, 0)
		h := newZooKeeperHarness(t, Config{Servers: []string{server.Addr()}, Prefix: "/discox", Format: "discox", SessionTimeout: 4 * time.Second})
		h.Run()
		h.WaitState(cache.StateConnected)
		h.WaitEndpoints("web", "10.0.0.1:8080=10.0.0.1:8080", "10.0.0.2:8080=10.0.0.2:8080")
		if h.DecodeErrors() != 1 {
			t.Errorf("decode errors %v, want 1", h.DecodeErrors())
		}
		// A data change shows; a new service appears without restart.
		registries.ZKPut(t, cli, "/discox/web/10.0.0.1:8080", `{"weight":9}`, 0)
		h.WaitFor("weight 9", func() bool { in, _ := h.Instance("web", "10.0.0.1:8080"); return in.Weight == 9 }, func() string {
			in, _ := h.Instance("web", "10.0.0.1:8080")
			return itoa(in.Weight)
		})
		registries.ZKPut(t, cli, "/discox/db/10.0.1.1:5432", ``, 0)
		h.WaitEndpoints("db", "10.0.1.1:5432=10.0.1.1:5432")
		// The garbage value is fixed: it is served.
		registries.ZKPut(t, cli, "/discox/web/10.0.0.9:9", ``, 0)
		h.WaitEndpoints("web", "10.0.0.1:8080=10.0.0.1:8080", "10.0.0.2:8080=10.0.0.2:8080", "10.0.0.9:9=10.0.0.9:9")
		// A deleted node and an ephemeral node whose session closed vanish.
		registries.ZKDelete(t, cli, "/discox/web/10.0.0.9:9")
		other := registries.ZKClient(t, server.Addr())
		registries.ZKPut(t, other, "/discox/web/10.0.0.3:8080", ``, zk.FlagEphemeral)
		h.WaitEndpoints("web", "10.0.0.1:8080=10.0.0.1:8080", "10.0.0.2:8080=10.0.0.2:8080", "10.0.0.3:8080=10.0.0.3:8080")
		other.Close()
		h.WaitEndpoints("web", "10.0.0.1:8080=10.0.0.1:8080", "10.0.0.2:8080=10.0.0.2:8080")
		// A bad node that goes is forgotten: created again, it is counted
		// and logged again.
		const bad = "/discox/web/10.0.0.8:8"
		registries.ZKPut(t, cli, bad, `{{`, 0)
		h.WaitFor("the bad node counted", func() bool { return h.DecodeErrors() == 2 }, func() string { return fmt.Sprint(h.DecodeErrors()) })
		registries.ZKDelete(t, cli, bad)
		registries.ZKPut(t, cli, "/discox/web/10.0.0.4:8080", ``, 0)
		h.WaitEndpoints("web", "10.0.0.1:8080=10.0.0.1:8080", "10.0.0.2:8080=10.0.0.2:8080", "10.0.0.4:8080=10.0.0.4:8080")
		registries.ZKPut(t, cli, bad, `{{`, 0)
		h.WaitFor("the bad node counted again", func() bool { return h.DecodeErrors() == 3 }, func() string { return fmt.Sprint(h.DecodeErrors()) })
		if n := h.LogLines("does not decode", bad); n != 2 {
			t.Errorf("the bad node logged %d times, want 2 (once per life)", n)
		}
		// A whole service removed.
		registries.ZKDelete(t, cli, "/discox/db/10.0.1.1:5432")
		registries.ZKDelete(t, cli, "/discox/db")
		h.WaitEndpoints("db")
	})

	t.Run("curator", func(t *testing.T) {
		registries.ZKPut(t, cli, "/curator/orders/41d7", `{"name":"orders","id":"41d7","address":"10.9.0.1","port":8080,"sslPort":8443,
			"payload":{"@class":"x","metadata":{"zone":"a"}},"serviceType":"DYNAMIC"}`, 0)
		registries.ZKPut(t, cli, "/curator/orders/off", `{"name":"orders","id":"off","address":"10.9.0.2","port":8080,"enabled":false}`, 0)
		h := newZooKeeperHarness(t, Config{Servers: []string{server.Addr()}, Prefix: "/curator", Format: "curator"})
		h.Run()
		h.WaitEndpoints("orders", "41d7=10.9.0.1:8080")
		in, _ := h.Instance("orders", "41d7")
		if in.Ports["tls"] != 8443 || in.Meta["zone"] != "a" {
			t.Errorf("instance %+v, want tls port 8443 and zone meta", in)
		}
		// Enabling serves it; a port change shows.
		registries.ZKPut(t, cli, "/curator/orders/off", `{"name":"orders","id":"off","address":"10.9.0.2","port":8081}`, 0)
		h.WaitEndpoints("orders", "41d7=10.9.0.1:8080", "off=10.9.0.2:8081")
		registries.ZKPut(t, cli, "/curator/orders/off", `{"name":"orders","id":"off","address":"10.9.0.2","port":8081,"enabled":false}`, 0)
		h.WaitEndpoints("orders", "41d7=10.9.0.1:8080")
	})

	t.Run("serverset", func(t *testing.T) {
		member := func(port int, status string) string {
			return `{"serviceEndpoint":{"host":"10.10.0.1","port":` + strconv.Itoa(port) + `},
				"additionalEndpoints":{"http":{"host":"10.10.0.1","port":` + strconv.Itoa(port+1) + `}},"status":"` + status + `","shard":0}`
		}
		registries.ZKPut(t, cli, "/aurora/prod/search/member_0000000001", member(31000, "ALIVE"), 0)
		registries.ZKPut(t, cli, "/aurora/prod/search/member_0000000002", member(32000, "STARTING"), 0)
		registries.ZKPut(t, cli, "/aurora/prod/search/status", `not a member`, 0)
		h := newZooKeeperHarness(t, Config{Servers: []string{server.Addr()}, Prefix: "/aurora/prod", Format: "serverset"})
		h.Run()
		h.WaitEndpoints("search", "member_0000000001=10.10.0.1:31000")
		if in, _ := h.Instance("search", "member_0000000001"); in.Ports["http"] != 31001 {
			t.Errorf("instance %+v, want named port http 31001", in)
		}
		registries.ZKPut(t, cli, "/aurora/prod/search/member_0000000002", member(32000, "ALIVE"), 0)
		h.WaitEndpoints("search", "member_0000000001=10.10.0.1:31000", "member_0000000002=10.10.0.1:32000")
		registries.ZKPut(t, cli, "/aurora/prod/search/member_0000000001", member(31000, "STOPPING"), 0)
		h.WaitEndpoints("search", "member_0000000002=10.10.0.1:32000")
		if h.DecodeErrors() != 0 {
			t.Errorf("decode errors %v: the status node is not a member and is not read", h.DecodeErrors())
		}
	})
}

// TestZooKeeperSessionExpiry keeps the source away from a running server
// for longer than its session timeout while the tree changes: the source
// stays stale with its instances, then converges to exactly the tree.
func TestZooKeeperSessionExpiry(t *testing.T) {
	server := registries.StartZooKeeper(t)
	proxy := registries.StartProxy(t, server.Addr())
	cli := registries.ZKClient(t, server.Addr())
	registries.ZKPut(t, cli, "/services/web/10.0.0.1:80", ``, 0)
	registries.ZKPut(t, cli, "/services/web/10.0.0.2:80", ``, 0)
	registries.ZKPut(t, cli, "/services/db/10.0.1.1:5432", ``, 0)
	h := newZooKeeperHarness(t, Config{Servers: []string{proxy.Addr()}, Prefix: "/services", SessionTimeout: 2 * time.Second})
	h.Run()
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80", "10.0.0.2:80=10.0.0.2:80")

	proxy.Cut()
	h.WaitState(cache.StateStale)
	registries.ZKDelete(t, cli, "/services/web/10.0.0.2:80")
	registries.ZKPut(t, cli, "/services/web/10.0.0.3:80", ``, 0)
	registries.ZKDelete(t, cli, "/services/db/10.0.1.1:5432")
	registries.ZKPut(t, cli, "/services/cache/10.0.2.1:6379", ``, 0)
	time.Sleep(5 * time.Second) // beyond the 2 s session timeout
	if got := h.Endpoints("web"); len(got) != 2 {
		t.Fatalf("while away: web %v, want the last two instances", got)
	}
	proxy.Restore()
	h.WaitState(cache.StateConnected)
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80", "10.0.0.3:80=10.0.0.3:80")
	h.WaitEndpoints("db")
	h.WaitEndpoints("cache", "10.0.2.1:6379=10.0.2.1:6379")
	if h.Relists(reasonSession) == 0 {
		t.Errorf("no relist for the new session")
	}
	// Watches of the new session work.
	registries.ZKPut(t, cli, "/services/web/10.0.0.4:80", ``, 0)
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80", "10.0.0.3:80=10.0.0.3:80", "10.0.0.4:80=10.0.0.4:80")
}

// TestZooKeeperDigestAuth reads nodes that only a digest user may read.
func TestZooKeeperDigestAuth(t *testing.T) {
	server := registries.StartZooKeeper(t)
	cli := registries.ZKClient(t, server.Addr())
	if err := cli.AddAuth("digest", []byte("disco:s3cret")); err != nil {
		t.Fatal(err)
	}
	acl := zk.DigestACL(zk.PermAll, "disco", "s3cret")
	for _, p := range []string{"/secure", "/secure/web"} {
		if _, err := cli.Create(p, nil, 0, acl); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Create("/secure/web/10.0.0.1:80", nil, 0, acl); err != nil {
		t.Fatal(err)
	}
	h := newZooKeeperHarness(t, Config{Servers: []string{server.Addr()}, Prefix: "/secure", Auth: "disco:s3cret"})
	h.Run()
	h.WaitEndpoints("web", "10.0.0.1:80=10.0.0.1:80")
	if strings.Contains(h.Logs.String(), "s3cret") {
		t.Error("the credential was logged")
	}
}

// TestDecodeCuratorRefined: Spring Cloud Zookeeper's OUT_OF_SERVICE
// status (spring-cloud-zookeeper-discovery/.../support/StatusConstants.java)
// takes an instance out; Dubbo 3's dubbo.endpoints
// (ServiceInstanceMetadataUtils.ENDPOINTS) gives named ports, and a bad
// one fails that instance alone.
func TestDecodeCuratorRefined(t *testing.T) {
	spring := func(status string) string {
		return `{"name":"orders","id":"41d7","address":"10.9.0.1","port":8080,"payload":{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance",` +
			`"id":"orders","name":"orders","metadata":{"instance_status":"` + status + `"}}}`
	}
	if _, err := DecodeCurator("orders", "n", []byte(spring("OUT_OF_SERVICE"))); !errors.Is(err, watcher.ErrRemoved) {
		t.Errorf("OUT_OF_SERVICE: err %v, want watcher.ErrRemoved", err)
	}
	if in, err := DecodeCurator("orders", "n", []byte(spring("UP"))); err != nil || in.Meta["instance_status"] != "UP" {
		t.Errorf("UP: %+v, %v", in, err)
	}
	dubbo := func(eps string) string {
		return `{"name":"shop","id":"10.0.0.7:20882","address":"10.0.0.7","port":20882,"sslPort":null,"payload":{"@class":"org.apache.dubbo.registry.zookeeper.ZookeeperInstance",` +
			`"id":"10.0.0.7:20882","name":"shop","metadata":{"dubbo.metadata.revision":"a1","dubbo.endpoints":` + strconv.Quote(eps) + `}}}`
	}
	in, err := DecodeCurator("shop", "n", []byte(dubbo(`[{"port":20882,"protocol":"dubbo"},{"port":50051,"protocol":"tri"}]`)))
	if err != nil || in.Port != 20882 || len(in.Ports) != 2 || in.Ports["dubbo"] != 20882 || in.Ports["tri"] != 50051 {
		t.Errorf("dubbo.endpoints: %+v, %v", in, err)
	}
	if _, err := DecodeCurator("shop", "n", []byte(dubbo(`[{"port":20882,"protocol":"dubbo"`))); err == nil || !strings.Contains(err.Error(), "dubbo.endpoints") {
		t.Errorf("truncated dubbo.endpoints: err %v, want one naming dubbo.endpoints", err)
	}
}

// TestLocate places event paths for the plain, root and dubbo layouts.
func TestLocate(t *testing.T) {
	for _, tc := range []struct {
		prefix, format, path string
		want                 string // "svc node", or "-" when not placed
	}{
		{"/services", "discox", "/services", " "},
		{"/services", "discox", "/services/web", "web "},
		{"/services", "discox", "/services/web/10.0.0.1:80", "web 10.0.0.1:80"},
		{"/services", "discox", "/services2/web", "-"},
		{"/services", "discox", "/services/web/a/b", "-"},
		{"/", "discox", "/", " "},
		{"/", "discox", "/echo", "echo "},
		{"/", "discox", "/echo/10.0.0.1:8888", "echo 10.0.0.1:8888"},
		{"/", "discox", "/zookeeper/quota", "-"},
		{"/dubbo", "dubbo", "/dubbo", " "},
		{"/dubbo", "dubbo", "/dubbo/org.x.Greeter", "-"},
		{"/dubbo", "dubbo", "/dubbo/org.x.Greeter/providers", "org.x.Greeter "},
		{"/dubbo", "dubbo", "/dubbo/org.x.Greeter/providers/dubbo%3A%2F%2Fx", "org.x.Greeter dubbo%3A%2F%2Fx"},
		{"/dubbo", "dubbo", "/dubbo/org.x.Greeter/consumers/c", "-"},
	} {
		z, err := New(Config{Name: "zk", Servers: []string{"unused:2181"}, Prefix: tc.prefix, Format: tc.format, SessionTimeout: time.Second}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := "-"
		if svc, node, ok := z.locate(tc.path); ok {
			got = svc + " " + node
		}
		if got != tc.want {
			t.Errorf("%s %s: locate(%s) = %q, want %q", tc.prefix, tc.format, tc.path, got, tc.want)
		}
	}
	if _, err := New(Config{Name: "zk", Servers: []string{"unused:2181"}, Prefix: "/", Format: "dubbo", SessionTimeout: time.Second}, nil, nil); err == nil {
		t.Error("format dubbo at the root: no error")
	}
}
