package test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/miekg/dns"

	"github.com/discodns/discodns/test/registries"
)

// frameworksConfig is a configuration of zone svc.internal. with sources,
// [[source]] tables.
func frameworksConfig(sources string) string {
	return `
[dns]
listen = ["{{DNS}}"]
zone = "svc.internal."

[http]
listen = "{{HTTP}}"
` + sources
}

// frameworksEtcdConfig reads one etcd through every framework layout that
// only etcd holds, each as its own source; prefixes not set are the
// frameworks' defaults.
func frameworksEtcdConfig(endpoint string) string {
	var sources string
	for _, src := range []struct{ name, format, prefix string }{
		{"gozero", "gozero", ""}, // the whole keyspace
		{"gozero-orders", "gozero", `prefix = "orders.rpc"`},
		{"kratos", "kratos", ""},
		{"gomicro", "gomicro", ""},
		{"rpcx", "rpcx", `prefix = "/rpcx"`},
		{"kitex", "kitex", ""},
	} {
		sources += fmt.Sprintf("\n[[source]]\nname = %q\ntype = \"etcd\"\nendpoints = [%q]\nformat = %q\n%s\n",
			src.name, endpoint, src.format, src.prefix)
	}
	return frameworksConfig(sources)
}

// TestFrameworksEtcd writes into etcd the exact keys and values each
// framework's registry code writes, and finds every instance through dig
// and Go's resolver, named ports as _<scheme>._tcp.<svc>. Bad values skip
// their one instance and are counted; the frameworks' other keys (rpcx's
// directory markers, other programs' keys in the keyspace go-zero reads)
// are neither served nor counted.
func TestFrameworksEtcd(t *testing.T) {
	need(t, "dig")
	e := startEtcd(t)
	// go-zero core/discov/publisher.go: Put(makeEtcdKey(Etcd.Key, lease
	// ID), listen address), makeEtcdKey in core/discov/clients.go. Two
	// publishers of one address are one instance in DNS.
	e.put("hello.rpc/7587861827262480132", "10.0.0.5:8080")
	e.put("hello.rpc/7587861827262480133", "10.0.0.5:8080")
	e.put("orders.rpc/7587861827262480140", "10.0.1.5:8081")
	e.put("orders.rpc/99", "10.0.1.9") // no port: counted by gozero-orders
	// Kratos contrib/registry/etcd/registry.go: key
	// <namespace>/<name>/<id>, value json.Marshal(registry.ServiceInstance).
	e.put("/microservices/user/f3c6a1e2-user-1",
		`{"id":"f3c6a1e2-user-1","name":"user","version":"v1.0.0","metadata":{"zone":"a"},"endpoints":["http://10.0.2.5:8000?isSecure=false","grpc://10.0.2.5:9000?isSecure=false"]}`)
	e.put("/microservices/user-admin/77e0-admin-1",
		`{"id":"77e0-admin-1","name":"user-admin","version":"v2","metadata":null,"endpoints":["grpc://10.0.2.9:9100"]}`)
	e.put("/microservices/user/bad-truncated", `{"id":"bad-truncated","name":"user","endpoints":["grpc://10.0.2.6:9`)
	e.put("/microservices/user/bad-endpoints", `{"id":"bad-endpoints","name":"user","endpoints":["grpc://10.0.2.7","http://0.0.0.0:80"]}`)
	// go-micro v4/registry/etcd/etcd.go (go-micro/plugins): key
	// nodePath(service, node id), value encode(registry.Service).
	e.put("/micro/registry/helloworld/helloworld-6c0e4b0e-2bbf-4f58-8b5b-d1a4b5c3e2a1",
		`{"name":"helloworld","version":"latest","metadata":null,"endpoints":[{"name":"Helloworld.Call","request":{"name":"CallRequest","type":"CallRequest","values":[{"name":"name","type":"string","values":null}]},"response":{"name":"CallResponse","type":"CallResponse","values":null},"metadata":{}}],"nodes":[{"id":"helloworld-6c0e4b0e-2bbf-4f58-8b5b-d1a4b5c3e2a1","address":"10.0.3.5:41677","metadata":{"protocol":"grpc","server":"grpc","transport":"grpc"}}]}`)
	e.put("/micro/registry/helloworld/helloworld-bad", `{"name":"helloworld","version":"latest","nodes":[]}`)
	// rpcx-etcd serverplugin/etcdv3.go: the markers <base> = "rpcx_path"
	// and <base>/<service> = service, then <base>/<service>/<ServiceAddress>
	// = the metadata query.
	e.put("/rpcx", "rpcx_path")
	e.put("/rpcx/Arith", "Arith")
	e.put("/rpcx/Arith/tcp@10.0.4.5:8972", "weight=10&group=test")
	e.put("/rpcx/Arith/tcp@10.0.4.6:8972", "weight=10&group=test&state=inactive")
	e.put("/rpcx/Arith/tcp@10.0.4.9", "weight=10") // no port: counted
	// kitex-contrib/registry-etcd: key serviceKey (common.go), value
	// json.Marshal(instanceInfo) (etcd_registry.go).
	e.put("kitex/registry-etcd/echo/10.0.5.5:8888", `{"network":"tcp","address":"10.0.5.5:8888","weight":10,"tags":{"k":"v"}}`)
	e.put("kitex/registry-etcd/echo/10.0.5.9:8888", `{"network":"tcp","address":"10.0.5.9:88`)
	// Another program's keys in the keyspace the gozero source reads.
	e.put("/services/web/10.0.9.1:80", "")
	e.put("/config/feature/12", `{"enabled":true}`)

	d := startDiscodns(t, frameworksEtcdConfig(e.endpoint()))
	d.waitInstances("arith.svc.internal.", 1)
	d.waitInstances("echo.svc.internal.", 1)

	for _, tc := range []struct{ qtype, name string }{
		{"A", "hello-rpc.svc.internal."},
		{"A", "orders-rpc.svc.internal."},
		{"A", "user.svc.internal."},
		{"A", "user-admin.svc.internal."},
		{"A", "helloworld.svc.internal."},
		{"A", "arith.svc.internal."},
		{"A", "echo.svc.internal."},
	} {
		want := map[string]string{
			"hello-rpc": "10.0.0.5", "orders-rpc": "10.0.1.5", "user": "10.0.2.5", "user-admin": "10.0.2.9",
			"helloworld": "10.0.3.5", "arith": "10.0.4.5", "echo": "10.0.5.5",
		}[strings.TrimSuffix(tc.name, ".svc.internal.")]
		r, err := dig(t, d.dns, tc.qtype, tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != "NOERROR" || len(r.answer) != 1 || r.answer[0].(*dns.A).A.String() != want {
			t.Errorf("%s %s: %s %v, want one A %s", tc.qtype, tc.name, r.status, r.answer, want)
		}
	}
	for _, tc := range []struct{ name, want string }{
		{"_hello-rpc._tcp.svc.internal.", "8080 7587861827262480132.hello-rpc.svc.internal."},
		{"_user._tcp.svc.internal.", "8000 f3c6a1e2-user-1.user.svc.internal."},
		{"_grpc._tcp.user.svc.internal.", "9000 f3c6a1e2-user-1.user.svc.internal."},
		{"_http._tcp.user.svc.internal.", "8000 f3c6a1e2-user-1.user.svc.internal."},
		{"_grpc._tcp.user-admin.svc.internal.", "9100 77e0-admin-1.user-admin.svc.internal."},
		{"_helloworld._tcp.svc.internal.", "41677 helloworld-6c0e4b0e-2bbf-4f58-8b5b-d1a4b5c3e2a1.helloworld.svc.internal."},
		{"_arith._tcp.svc.internal.", "1 10 8972 "},
		{"_arith._test.svc.internal.", "8972 "},
		{"_echo._tcp.svc.internal.", "1 10 8888 "},
	} {
		wantOneSRV(t, d, tc.name, tc.want)
	}
	r, err := dig(t, d.dns, "TXT", "f3c6a1e2-user-1.user.svc.internal.")
	if err != nil {
		t.Fatal(err)
	}
	if txt := fmt.Sprint(r.answer); !strings.Contains(txt, `"version=v1.0.0"`) || !strings.Contains(txt, `"zone=a"`) {
		t.Errorf("kratos TXT: %s, want version and metadata", txt)
	}

	res := registries.Resolver(d.dns)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, srvs, err := res.LookupSRV(ctx, "grpc", "tcp", "user.svc.internal")
	if err != nil || len(srvs) != 1 || srvs[0].Port != 9000 {
		t.Fatalf("Go LookupSRV _grpc._tcp.user: %v %v", srvs, err)
	}
	if addrs, err := res.LookupHost(ctx, srvs[0].Target); err != nil || fmt.Sprint(addrs) != "[10.0.2.5]" {
		t.Errorf("Go LookupHost %s: %v %v", srvs[0].Target, addrs, err)
	}
	if addrs, err := res.LookupHost(ctx, "hello-rpc.svc.internal"); err != nil || fmt.Sprint(addrs) != "[10.0.0.5]" {
		t.Errorf("Go LookupHost hello-rpc: %v %v", addrs, err)
	}

	for source, want := range map[string]string{
		"gozero": "0", "gozero-orders": "1", "kratos": "2", "gomicro": "1", "rpcx": "1", "kitex": "1",
	} {
		metric := fmt.Sprintf(`discodns_watcher_decode_errors_total{source=%q}`, source)
		if v, err := d.metric(metric); err != nil || v != want {
			t.Errorf("%s = %q (%v), want %s", metric, v, err, want)
		}
	}

	// discodns layouts finds every framework's layout in this etcd, beside
	// the other etcd layouts: one registry holding them all at once.
	e.put("/services/web/10.0.9.1:80", ``)
	e.put("/grpc/echo/10.0.9.2:50051", `{"Op":0,"Addr":"10.0.9.2:50051","Metadata":null}`)
	e.put("/skydns/internal/svc/api/a", `{"host":"10.0.9.3","port":8080}`)
	e.put(dubboProviderKey("/dubbo", "10.0.9.4"), ``)
	out, err := exec.Command(binary, "layouts", "-etcd", e.endpoint(), "-max-keys", "1000", "-timeout", "20s").CombinedOutput()
	if err != nil {
		t.Fatalf("discodns layouts: %v\n%s", err, out)
	}
	for _, want := range []string{
		`gozero +prefix - +2 services, 3 instances`, // hello.rpc twice, orders.rpc; orders.rpc/99 does not decode
		`kratos +prefix /microservices +2 services, 2 instances`,
		`gomicro +prefix /micro/registry +1 services, 1 instances`,
		`rpcx +prefix /rpcx +1 services, 1 instances`,
		`kitex +prefix kitex/registry-etcd +1 services, 1 instances`,
		`discox +prefix /services +1 services, 1 instances`,
		`grpc +prefix /grpc +1 services, 1 instances`,
		`skydns +prefix /skydns +1 services, 1 instances`,
		`dubbo +prefix /dubbo +1 services, 1 instances`,
	} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("discodns layouts: no %q in\n%s", want, out)
		}
	}

	// A change follows the watch: rpcx's instance turns inactive, go-zero's
	// lease key goes.
	e.put("/rpcx/Arith/tcp@10.0.4.5:8972", "weight=10&group=test&state=inactive")
	e.del("hello.rpc/7587861827262480132")
	e.del("hello.rpc/7587861827262480133")
	eventually(t, 30*time.Second, "inactive rpcx and deleted go-zero instances gone", func() error {
		for _, name := range []string{"arith.svc.internal.", "hello-rpc.svc.internal."} {
			m, err := d.exchange(name, dns.TypeA, "udp")
			if err != nil || m.Rcode != dns.RcodeNameError {
				return fmt.Errorf("%s: %v %v", name, m, err)
			}
		}
		return nil
	})
}

// TestFrameworksKratosZooKeeper: Kratos's ZooKeeper registry
// (contrib/registry/zookeeper/register.go) makes a persistent node per
// service and an ephemeral one per instance holding the same JSON as on
// etcd; format kratos reads it there too.
func TestFrameworksKratosZooKeeper(t *testing.T) {
	need(t, "dig")
	server := registries.StartZooKeeper(t)
	cli := registries.ZKClient(t, server.Addr())
	registries.ZKPut(t, cli, "/microservices/user/f3c6a1e2-user-1",
		`{"id":"f3c6a1e2-user-1","name":"user","version":"v1.0.0","metadata":{"zone":"a"},"endpoints":["grpc://10.0.2.5:9000","http://10.0.2.5:8000"]}`, zk.FlagEphemeral)
	registries.ZKPut(t, cli, "/microservices/user/bad", `{"id":"bad","name":"user","endpoints":[]}`, zk.FlagEphemeral)
	d := startDiscodns(t, frameworksConfig(fmt.Sprintf(`
[[source]]
name = "kratos-zk"
type = "zookeeper"
servers = [%q]
format = "kratos"
`, server.Addr())))
	d.waitInstances("user.svc.internal.", 1)
	for _, tc := range []struct{ name, want string }{
		{"_user._tcp.svc.internal.", "9000 f3c6a1e2-user-1.user.svc.internal."},
		{"_grpc._tcp.user.svc.internal.", "9000 f3c6a1e2-user-1.user.svc.internal."},
		{"_http._tcp.user.svc.internal.", "8000 f3c6a1e2-user-1.user.svc.internal."},
	} {
		wantOneSRV(t, d, tc.name, tc.want)
	}
	metric := `discodns_watcher_decode_errors_total{source="kratos-zk"}`
	if v, err := d.metric(metric); err != nil || v != "1" {
		t.Errorf("%s = %q (%v), want 1", metric, v, err)
	}
}

// wantOneSRV asks dig for name's SRV records and wants exactly one, whose
// text contains want.
func wantOneSRV(t *testing.T, d *discodns, name, want string) {
	t.Helper()
	r, err := dig(t, d.dns, "SRV", name)
	if err != nil {
		t.Fatal(err)
	}
	if r.status != "NOERROR" || len(r.answer) != 1 || !strings.Contains(r.answer[0].String(), want) {
		t.Errorf("SRV %s: %s %v, want one record with %q", name, r.status, r.answer, want)
	}
}
