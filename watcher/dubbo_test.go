package watcher_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

// demoProvider is the provider node of the issue, as Dubbo's
// ZookeeperRegistry.toUrlPath writes it (URL.encode(url.toFullString()),
// dubbo-registry/dubbo-registry-zookeeper/.../ZookeeperRegistry.java).
const demoProvider = "dubbo%3A%2F%2F172.20.3.201%3A20880%2Forg.apache.dubbo.demo.DemoService%3Fanyhost%3Dtrue%26application%3Ddubbo-demo-api-provider%26methods%3DsayHello%26side%3Dprovider%26weight%3D100"

func TestDecodeDubbo(t *testing.T) {
	enc := func(u string) string { return url.QueryEscape(u) }
	for _, tc := range []struct {
		name, node string
		want       cache.Instance // Service "svc"; the ID is checked apart
		wantErr    string         // an error substring; "removed" for watcher.ErrRemoved
	}{
		{name: "the issue's provider", node: demoProvider, want: cache.Instance{Address: "172.20.3.201", Port: 20880,
			Priority: 1, Weight: 100, Ports: map[string]uint16{"dubbo": 20880},
			Meta: map[string]string{"anyhost": "true", "application": "dubbo-demo-api-provider", "side": "provider", "weight": "100"}}},
		{name: "tri, version, group, no weight", node: enc("tri://10.0.0.5:50051/org.example.Greeter?version=1.0.0&group=blue&interface=org.example.Greeter"),
			want: cache.Instance{Address: "10.0.0.5", Port: 50051, Priority: 1, Weight: 100, Ports: map[string]uint16{"tri": 50051},
				Meta: map[string]string{"version": "1.0.0", "group": "blue", "interface": "org.example.Greeter"}}},
		{name: "ipv6 and weight 7", node: enc("dubbo://[2001:db8::1]:20880/x?weight=7"),
			want: cache.Instance{Address: "2001:db8::1", Port: 20880, Priority: 1, Weight: 7, Ports: map[string]uint16{"dubbo": 20880},
				Meta: map[string]string{"weight": "7"}}},
		{name: "host name", node: enc("dubbo://Provider-1.example:20880/x"),
			want: cache.Instance{Address: "provider-1.example", Port: 20880, Priority: 1, Weight: 100, Ports: map[string]uint16{"dubbo": 20880}}},
		{name: "disabled", node: enc("dubbo://10.0.0.5:20880/x?disabled=true"), wantErr: "removed"},
		{name: "enabled false", node: enc("dubbo://10.0.0.5:20880/x?enabled=false"), wantErr: "removed"},
		{name: "disabled false beats enabled false", node: enc("dubbo://10.0.0.5:20880/x?disabled=false&enabled=false"),
			want: cache.Instance{Address: "10.0.0.5", Port: 20880, Priority: 1, Weight: 100, Ports: map[string]uint16{"dubbo": 20880},
				Meta: map[string]string{"disabled": "false", "enabled": "false"}}},
		{name: "no port", node: enc("dubbo://172.20.3.201/org.apache.dubbo.demo.DemoService"), wantErr: "missing port"},
		{name: "port zero", node: enc("dubbo://172.20.3.201:0/x"), wantErr: "port"},
		{name: "no protocol", node: enc("172.20.3.201:20880/x"), wantErr: ""},
		{name: "not encoded", node: "dubbo%ZZ", wantErr: "invalid URL escape"},
		{name: "bad weight", node: enc("dubbo://10.0.0.5:20880/x?weight=heavy"), wantErr: "weight"},
		{name: "unspecified host", node: enc("dubbo://0.0.0.0:20880/x"), wantErr: "unspecified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := watcher.DecodeDubbo("svc", tc.node, nil)
			switch {
			case tc.wantErr == "removed":
				if !errors.Is(err, watcher.ErrRemoved) {
					t.Fatalf("err %v, want watcher.ErrRemoved", err)
				}
				return
			case tc.wantErr != "" || tc.want.Address == "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want an error with %q", in, err, tc.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			tc.want.Service, tc.want.ID = "svc", in.ID
			if !in.Equal(&tc.want) {
				t.Errorf("\n got %+v\nwant %+v", in, tc.want)
			}
		})
	}
}

// TestDubboIDs: providers on one address (a restarted provider whose old
// node lingers until its session expires) have IDs of their own, which
// label as protocol and address.
func TestDubboIDs(t *testing.T) {
	a, err := watcher.DecodeDubbo("svc", url.QueryEscape("dubbo://10.0.0.5:20880/x?timestamp=1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := watcher.DecodeDubbo("svc", url.QueryEscape("dubbo://10.0.0.5:20880/x?timestamp=2"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == b.ID {
		t.Errorf("two provider nodes share the ID %q", a.ID)
	}
	if l := cache.Label(a.ID); !strings.HasPrefix(l, "dubbo-10-0-0-5-20880-") {
		t.Errorf("label %q, want dubbo-10-0-0-5-20880-<hash>", l)
	}
}

func TestDubboEndpoints(t *testing.T) {
	ports, err := watcher.DubboEndpoints(`[{"port":20882,"protocol":"dubbo"},{"port":50051,"protocol":"tri"}]`)
	if err != nil || len(ports) != 2 || ports["dubbo"] != 20882 || ports["tri"] != 50051 {
		t.Errorf("got %v, %v", ports, err)
	}
	for _, bad := range []string{``, `[`, `[]`, `{"port":1}`, `[{"port":0,"protocol":"dubbo"}]`, `[{"port":1,"protocol":"--"}]`, `[{"port":"1","protocol":"x"}]`} {
		if ports, err := watcher.DubboEndpoints(bad); err == nil {
			t.Errorf("%q: got %v, want an error", bad, ports)
		}
	}
}
