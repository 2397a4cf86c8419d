package test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discodns/discodns/test/registries"
)

// None of these frameworks' Go modules is served here, so the tests write
// the exact nodes and keys their registration code produces, citing the
// file that produces them.

// dubboDemoProvider is the provider node of the issue: Dubbo's
// ZookeeperRegistry.toUrlPath is toCategoryPath(url) + "/" +
// URL.encode(url.toFullString())
// (apache/dubbo dubbo-registry/dubbo-registry-zookeeper/src/main/java/org/apache/dubbo/registry/zookeeper/ZookeeperRegistry.java),
// the category path /<group, default dubbo>/<interface>/providers.
const (
	dubboDemoPath     = "/dubbo/org.apache.dubbo.demo.DemoService/providers/dubbo%3A%2F%2F172.20.3.201%3A20880%2Forg.apache.dubbo.demo.DemoService%3Fanyhost%3Dtrue%26application%3Ddubbo-demo-api-provider%26methods%3DsayHello%26side%3Dprovider%26weight%3D100"
	dubboDemoService  = "org-apache-dubbo-demo-demoservice.svc.internal."
	dubboDemoCategory = "/dubbo/org.apache.dubbo.demo.DemoService/"
)

// dubboProvider is the node or key of a provider URL of the demo
// interface, encoded as java.net.URLEncoder does.
func dubboProvider(providerURL string) string {
	return dubboDemoCategory + "providers/" + url.QueryEscape(providerURL)
}

// dubboSRV asks d through Go's resolver for _<service>._tcp.<name> and
// returns "target port weight" per record, sorted.
func dubboSRV(d *discodns, service, name string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, srvs, err := d.goResolver().LookupSRV(ctx, service, "tcp", name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range srvs {
		out = append(out, fmt.Sprintf("%s %d %d", s.Target, s.Port, s.Weight))
	}
	slices.Sort(out)
	return out, nil
}

// dubboHosts asks d through Go's resolver for name's addresses, sorted.
func dubboHosts(d *discodns, name string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := d.goResolver().LookupHost(ctx, name)
	slices.Sort(addrs)
	return addrs, err
}

// dubboExpectDNS waits until check, run with Go's resolver, returns want.
func dubboExpectDNS(t *testing.T, what string, want string, check func() ([]string, error)) {
	t.Helper()
	eventually(t, 20*time.Second, what, func() error {
		got, err := check()
		if err != nil {
			return err
		}
		if s := strings.Join(got, ", "); s != want {
			return fmt.Errorf("got %q, want %q", s, want)
		}
		return nil
	})
}

// dubboExpectMetric waits until the metric reads want.
func dubboExpectMetric(t *testing.T, d *discodns, metric, want string) {
	t.Helper()
	eventually(t, 20*time.Second, metric+" = "+want, func() error {
		if v, err := d.metric(metric); err != nil || v != want {
			return fmt.Errorf("%s = %q (%v)", metric, v, err)
		}
		return nil
	})
}

// dubboTXT returns the TXT strings of name, through dig.
func dubboTXT(t *testing.T, d *discodns, name string) string {
	t.Helper()
	r, err := dig(t, d.dns, "TXT", name)
	if err != nil {
		t.Fatal(err)
	}
	var txt []string
	for _, rr := range r.answer {
		txt = append(txt, rr.String())
	}
	return strings.Join(txt, "\n")
}

// dubboConfig is a configuration with a source of type typ, reading the
// registry at addr, per "name prefix format" in sources.
func dubboConfig(typ, addr string, sources ...string) string {
	key := "servers"
	if typ == "etcd" {
		key = "endpoints"
	}
	var b strings.Builder
	b.WriteString("[dns]\nlisten = [\"{{DNS}}\"]\nzone = \"svc.internal.\"\n\n[http]\nlisten = \"{{HTTP}}\"\n\n[log]\nlevel = \"debug\"\n")
	for _, src := range sources {
		f := strings.Fields(src)
		fmt.Fprintf(&b, "\n[[source]]\nname = %q\ntype = %q\n%s = [%q]\nprefix = %q\nformat = %q\n", f[0], typ, key, addr, f[1], f[2])
	}
	return b.String()
}

// TestFrameworksDubboZooKeeper: Dubbo Java's interface-level providers on
// ZooKeeper (the literal provider URL), and the Curator layout as
// Spring Cloud Zookeeper and Dubbo 3's application level refine it.
func TestFrameworksDubboZooKeeper(t *testing.T) {
	need(t, "dig")
	server := registries.StartZooKeeper(t)
	cli := registries.ZKClient(t, server.Addr())
	// Dubbo creates the provider node ephemeral through Curator, whose
	// default data is the local address.
	registries.ZKPut(t, cli, dubboDemoPath, "172.20.3.201", zk.FlagEphemeral)
	registries.ZKPut(t, cli, dubboProvider("tri://172.20.3.202:50051/org.apache.dubbo.demo.DemoService?application=dubbo-demo-api-provider&version=1.0.0&weight=50&methods=sayHello,sayHelloAsync"), "", zk.FlagEphemeral)
	registries.ZKPut(t, cli, dubboProvider("dubbo://172.20.3.204:20880/org.apache.dubbo.demo.DemoService?application=dubbo-demo-api-provider&disabled=true"), "", zk.FlagEphemeral)
	// Not instances, and no bad input either.
	registries.ZKPut(t, cli, dubboDemoCategory+"consumers/"+url.QueryEscape("consumer://172.20.3.9/org.apache.dubbo.demo.DemoService?category=consumers&side=consumer"), "", zk.FlagEphemeral)
	registries.ZKPut(t, cli, dubboDemoCategory+"configurators", "", 0)
	registries.ZKPut(t, cli, dubboDemoCategory+"routers", "", 0)
	// A provider URL without a port: skipped alone, counted.
	registries.ZKPut(t, cli, dubboProvider("dubbo://172.20.3.203/org.apache.dubbo.demo.DemoService?application=dubbo-demo-api-provider"), "", zk.FlagEphemeral)

	// Spring Cloud Zookeeper: ZookeeperServiceRegistry.setStatus puts
	// instance_status (support/StatusConstants.java) in the payload's
	// metadata; OUT_OF_SERVICE is out.
	spring := func(id, addr, status string) string {
		return `{"name":"orders","id":"` + id + `","address":"` + addr + `","port":8080,"sslPort":null,` +
			`"payload":{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance","id":"orders-1","name":"orders",` +
			`"metadata":{"instance_status":"` + status + `"}},"registrationTimeUTC":1662110433938,"serviceType":"DYNAMIC",` +
			`"uriSpec":{"parts":[{"value":"scheme","variable":true},{"value":"://","variable":false},{"value":"address","variable":true}]}}`
	}
	registries.ZKPut(t, cli, "/services/orders/41d739e4", spring("41d739e4", "10.9.0.1", "UP"), zk.FlagEphemeral)
	registries.ZKPut(t, cli, "/services/orders/9a2c11f0", spring("9a2c11f0", "10.9.0.2", "OUT_OF_SERVICE"), zk.FlagEphemeral)
	// Dubbo 3 application level: ZookeeperServiceDiscovery registers a
	// Curator instance whose payload metadata carries dubbo.endpoints
	// (dubbo-registry-zookeeper/.../util/CuratorFrameworkUtils.java,
	// ServiceInstanceMetadataUtils.ENDPOINTS).
	dubbo3 := func(addr, endpoints string) string {
		return `{"name":"shop","id":"` + addr + `:20882","address":"` + addr + `","port":20882,"sslPort":null,` +
			`"payload":{"@class":"org.apache.dubbo.registry.zookeeper.ZookeeperInstance","id":"` + addr + `:20882","name":"shop",` +
			`"metadata":{"dubbo.metadata.revision":"3a8ef2b1","dubbo.metadata.storage-type":"local","dubbo.endpoints":` + fmt.Sprintf("%q", endpoints) + `}},` +
			`"registrationTimeUTC":1662110433938,"serviceType":"DYNAMIC","uriSpec":null}`
	}
	registries.ZKPut(t, cli, "/services/shop/10.0.0.7:20882", dubbo3("10.0.0.7", `[{"port":20882,"protocol":"dubbo"},{"port":50051,"protocol":"tri"}]`), zk.FlagEphemeral)
	registries.ZKPut(t, cli, "/services/shop/10.0.0.8:20882", dubbo3("10.0.0.8", `[{"port":20882,"protocol":"dubbo"`), zk.FlagEphemeral)

	d := startDiscodns(t, dubboConfig("zookeeper", server.Addr(), "dubbo /dubbo dubbo", "curator /services curator"))

	// The interface answers, with each provider's protocol as a named
	// port and its weight as the SRV weight; the disabled one and the
	// one without a port are absent.
	dubboExpectDNS(t, "dubbo A", "172.20.3.201, 172.20.3.202", func() ([]string, error) { return dubboHosts(d, dubboDemoService) })
	srvs, err := dubboSRV(d, "org-apache-dubbo-demo-demoservice", "svc.internal.")
	if err != nil || len(srvs) != 2 || !strings.HasSuffix(srvs[0], " 20880 100") || !strings.HasSuffix(srvs[1], " 50051 50") {
		t.Errorf("dubbo SRV: %v %v, want 20880 weight 100 and 50051 weight 50", srvs, err)
	}
	for proto, port := range map[string]string{"dubbo": " 20880 100", "tri": " 50051 50"} {
		got, err := dubboSRV(d, proto, dubboDemoService)
		if err != nil || len(got) != 1 || !strings.HasSuffix(got[0], port) {
			t.Errorf("_%s._tcp.%s: %v %v, want one record%s", proto, dubboDemoService, got, err, port)
		}
	}
	if len(srvs) > 0 {
		target := strings.Fields(srvs[0])[0]
		txt := dubboTXT(t, d, target)
		if !strings.Contains(txt, `"application=dubbo-demo-api-provider"`) || !strings.Contains(txt, `"side=provider"`) || strings.Contains(txt, "methods") {
			t.Errorf("TXT %s:\n%s\nwant application and side, without methods", target, txt)
		}
	}
	dubboExpectMetric(t, d, `discodns_watcher_decode_errors_total{source="dubbo"}`, "1")

	// Spring's OUT_OF_SERVICE instance is absent; Dubbo 3's endpoints are
	// named ports, and its instance with a truncated dubbo.endpoints is
	// skipped alone.
	dubboExpectDNS(t, "spring A", "10.9.0.1", func() ([]string, error) { return dubboHosts(d, "orders.svc.internal.") })
	dubboExpectDNS(t, "dubbo 3 A", "10.0.0.7", func() ([]string, error) { return dubboHosts(d, "shop.svc.internal.") })
	for proto, port := range map[string]uint16{"dubbo": 20882, "tri": 50051} {
		got, err := dubboSRV(d, proto, "shop.svc.internal.")
		if err != nil || len(got) != 1 || strings.Fields(got[0])[1] != fmt.Sprint(port) {
			t.Errorf("_%s._tcp.shop: %v %v, want port %d", proto, got, err, port)
		}
	}
	dubboExpectMetric(t, d, `discodns_watcher_decode_errors_total{source="curator"}`, "1")

	// A provider that goes is gone from DNS.
	registries.ZKDelete(t, cli, dubboDemoPath)
	dubboExpectDNS(t, "dubbo A after a provider went", "172.20.3.202", func() ([]string, error) { return dubboHosts(d, dubboDemoService) })
}

// TestFrameworksKitexZooKeeperRoot: Kitex's registry-zookeeper writes
// /<service>/<ip:port> at the root with {"Weight":10,"Tags":{...}}
// (kitex-contrib/registry-zookeeper registry/registry.go buildPath,
// entity/entity.go RegistryEntity). A discox source with prefix "/" reads
// it, case-insensitively, tags as key=value, and skips /zookeeper.
func TestFrameworksKitexZooKeeperRoot(t *testing.T) {
	need(t, "dig")
	server := registries.StartZooKeeper(t)
	cli := registries.ZKClient(t, server.Addr())
	registries.ZKPut(t, cli, "/echo/10.0.0.3:8888", `{"Weight":10,"Tags":{"cluster":"a","env":"prod"}}`, zk.FlagEphemeral)
	registries.ZKPut(t, cli, "/echo/10.0.0.4:8888", `{"Weight":20,"Tags":null}`, zk.FlagEphemeral)
	registries.ZKPut(t, cli, "/echo/10.0.0.5:8888", `{"Weight":10,"Tags":{"cluster"`, zk.FlagEphemeral)

	d := startDiscodns(t, dubboConfig("zookeeper", server.Addr(), "kitex / discox"))

	dubboExpectDNS(t, "kitex SRV", "10-0-0-3-8888.echo.svc.internal. 8888 10, 10-0-0-4-8888.echo.svc.internal. 8888 20",
		func() ([]string, error) { return dubboSRV(d, "echo", "svc.internal.") })
	dubboExpectDNS(t, "kitex tag", "10.0.0.3", func() ([]string, error) { return dubboHosts(d, "cluster-a.echo.svc.internal.") })
	dubboExpectMetric(t, d, `discodns_watcher_decode_errors_total{source="kitex"}`, "1")
	// ZooKeeper's own node is no service.
	r, err := dig(t, d.dns, "A", "zookeeper.svc.internal.")
	if err != nil || r.status != "NXDOMAIN" {
		t.Errorf("zookeeper.svc.internal.: %v %v, want NXDOMAIN", r, err)
	}
	// A service that comes later at the root is followed.
	registries.ZKPut(t, cli, "/hello/10.0.0.6:8888", `{"Weight":10,"Tags":{}}`, zk.FlagEphemeral)
	dubboExpectDNS(t, "kitex new service", "10.0.0.6", func() ([]string, error) { return dubboHosts(d, "hello.svc.internal.") })
}

// TestFrameworksDubboEtcd: Dubbo's interface level on etcd (the issue's
// literal provider URL as a key with an empty value on a lease; dubbo-go's
// registry/etcdv3 and Dubbo Java's etcd3 registry use the ZooKeeper
// registry's paths), and dubbo-go's application level, which puts a
// DefaultServiceInstance as Go-named JSON at /services/<app>/<host>:<port>
// (dubbo-go registry/etcdv3/service_discovery.go, toPath; registry/
// servicediscovery DefaultServiceInstance): Enable or Healthy false is
// out.
func TestFrameworksDubboEtcd(t *testing.T) {
	need(t, "dig")
	e := startEtcd(t)
	lease, err := e.cli.Grant(context.Background(), 30)
	if err != nil {
		t.Fatal(err)
	}
	e.put(dubboDemoPath, "", clientv3.WithLease(lease.ID))
	e.put(dubboProvider("tri://172.20.3.202:50051/org.apache.dubbo.demo.DemoService?application=dubbo-demo-api-provider&weight=50"), "", clientv3.WithLease(lease.ID))
	// dubbo-go's directory keys and a consumer: not instances, no error.
	e.put("/dubbo/org.apache.dubbo.demo.DemoService", "")
	e.put("/dubbo/org.apache.dubbo.demo.DemoService/providers", "")
	e.put(dubboDemoCategory+"consumers/"+url.QueryEscape("consumer://172.20.3.9/org.apache.dubbo.demo.DemoService?side=consumer"), "")
	// Without a port: skipped alone, counted.
	e.put(dubboProvider("dubbo://172.20.3.203/org.apache.dubbo.demo.DemoService"), "", clientv3.WithLease(lease.ID))

	instance := func(host string, enable, healthy bool) string {
		return fmt.Sprintf(`{"ID":"%[1]s:20000","ServiceName":"greeter","Host":"%[1]s","Port":20000,"Enable":%[2]t,"Healthy":%[3]t,`+
			`"Metadata":{"dubbo.metadata.revision":"9e1f","dubbo.metadata.storage-type":"local",`+
			`"dubbo.endpoints":"[{\"port\":20000,\"protocol\":\"dubbo\"},{\"port\":50051,\"protocol\":\"tri\"}]"},`+
			`"ServiceMetadata":null,"Address":"%[1]s:20000","GroupName":"","Tag":""}`, host, enable, healthy)
	}
	e.put("/services/greeter/10.0.0.6:20000", instance("10.0.0.6", true, true), clientv3.WithLease(lease.ID))
	e.put("/services/greeter/10.0.0.7:20000", instance("10.0.0.7", false, true), clientv3.WithLease(lease.ID))
	e.put("/services/greeter/10.0.0.9:20000", instance("10.0.0.9", true, false), clientv3.WithLease(lease.ID))
	e.put("/services/greeter/10.0.0.8:20000", `{"ID":"10.0.0.8:20000","ServiceName":"gree`, clientv3.WithLease(lease.ID))

	d := startDiscodns(t, dubboConfig("etcd", e.endpoint(), "dubbo /dubbo dubbo", "dubbogo /services discox"))

	dubboExpectDNS(t, "dubbo A", "172.20.3.201, 172.20.3.202", func() ([]string, error) { return dubboHosts(d, dubboDemoService) })
	got, err := dubboSRV(d, "tri", dubboDemoService)
	if err != nil || len(got) != 1 || !strings.HasSuffix(got[0], " 50051 50") {
		t.Errorf("_tri._tcp.%s: %v %v", dubboDemoService, got, err)
	}
	dubboExpectMetric(t, d, `discodns_watcher_decode_errors_total{source="dubbo"}`, "1")

	dubboExpectDNS(t, "dubbo-go A", "10.0.0.6", func() ([]string, error) { return dubboHosts(d, "greeter.svc.internal.") })
	got, err = dubboSRV(d, "tri", "greeter.svc.internal.")
	if err != nil || len(got) != 1 || !strings.HasSuffix(got[0], " 50051 1") {
		t.Errorf("_tri._tcp.greeter: %v %v", got, err)
	}
	dubboExpectMetric(t, d, `discodns_watcher_decode_errors_total{source="dubbogo"}`, "1")

	// Disabled through a watch event: gone.
	e.put("/services/greeter/10.0.0.6:20000", instance("10.0.0.6", false, true), clientv3.WithLease(lease.ID))
	eventually(t, 20*time.Second, "greeter gone when disabled", func() error {
		addrs, err := dubboHosts(d, "greeter.svc.internal.")
		var dnsErr *net.DNSError
		if err == nil || !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			return fmt.Errorf("%v %v", addrs, err)
		}
		return nil
	})
}
