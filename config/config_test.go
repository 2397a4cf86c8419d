package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// write puts content in a temporary config file and returns its path.
func write(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "discodns.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadMinimalAppliesDefaults(t *testing.T) {
	c, err := Load(write(t, "[[source]]\ntype = \"etcd\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Sources = []Source{{
		Name:           "etcd",
		Type:           "etcd",
		Zone:           "svc.internal.",
		Format:         "discox",
		Endpoints:      []string{"127.0.0.1:2379"},
		Prefix:         "/services",
		DialTimeout:    5 * time.Second,
		ResyncInterval: 5 * time.Minute,
		ZoneKeys:       []string{"zone", "topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone"},
		RegionKeys:     []string{"region", "topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region"},
	}}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	// Spot-check the documented defaults, not only Default().
	if c.DNS.Listen[0] != "127.0.0.1:8053" || c.DNS.Zone != "svc.internal." ||
		c.DNS.TTL != 5*time.Second || c.DNS.NegativeTTL != 5*time.Second ||
		c.DNS.TCPIdleTimeout != 10*time.Second || c.DNS.MaxTCPConnections != 1000 || c.DNS.MaxTCPConnectionsPerClient != 32 || c.DNS.UDPSize != 1232 ||
		len(c.Forward.Upstreams) != 0 || len(c.Forward.Allow) != 2 || c.Forward.Timeout != 2*time.Second ||
		c.HTTP.Listen != "127.0.0.1:9153" || c.Log.Level != "info" || c.Log.Format != "text" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestLoadSourceDefaultsPerType(t *testing.T) {
	c, err := Load(write(t, `
[[source]]
type = "consul"
[[source]]
type = "zookeeper"
`))
	if err != nil {
		t.Fatal(err)
	}
	consul, zk := c.Sources[0], c.Sources[1]
	if consul.Name != "consul" || consul.Address != "127.0.0.1:8500" || !consul.IncludeWarning ||
		consul.Format != "native" || consul.Zone != "svc.internal." {
		t.Errorf("consul defaults: %+v", consul)
	}
	if zk.Name != "zookeeper" || !slices.Equal(zk.Servers, []string{"127.0.0.1:2181"}) ||
		zk.Prefix != "/services" || zk.Format != "discox" || zk.SessionTimeout != 10*time.Second {
		t.Errorf("zookeeper defaults: %+v", zk)
	}
}

// TestServesNothing: a configuration with no source and no forwarding
// serves nothing and is refused, naming the file: an empty file above all
// (valid TOML, and what a half-written file looks like).
func TestServesNothing(t *testing.T) {
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(rc, []byte("nameserver 192.0.2.1\n"), 0o600)
	for _, tc := range []struct {
		name, toml string
		ok         bool
	}{
		{"empty file", "", false},
		{"comments only", "# discodns\n", false},
		{"tables only", "[dns]\nzone = \"svc.internal.\"\n[forward]\nupstreams = []\n", false},
		{"empty source array", "source = []\n", false},
		{"a source", "[[source]]\ntype = \"etcd\"\n", true},
		{"forward only", "[forward]\nupstreams = [\"192.0.2.1:53\"]\n", true},
		{"forward only through resolv.conf", fmt.Sprintf("[forward]\nresolv_conf = %q\n", rc), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write(t, tc.toml)
			_, err := Load(path)
			if tc.ok {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), "config "+path+": serves nothing: no [[source]] and no forwarding") {
				t.Errorf("error %v, want the file and why", err)
			}
		})
	}
	if err := Default().Validate(); err == nil || !strings.Contains(err.Error(), "serves nothing") {
		t.Errorf("Default() alone: %v, want serves nothing", err)
	}
}

// TestLoadWith: the change applies before the checks, which see it.
func TestLoadWith(t *testing.T) {
	path := write(t, "[dns]\nlisten = [\"127.0.0.1:53\"]\n[forward]\nupstreams = [\"127.0.0.2:53\"]\n")
	if _, err := LoadWith(path, func(c *Config) { c.DNS.Listen = []string{"127.0.0.2:53"} }); err == nil || !strings.Contains(err.Error(), "loop") {
		t.Errorf("an overridden listen that loops: %v", err)
	}
	c, err := LoadWith(write(t, ""), func(c *Config) { c.Sources = []Source{DefaultSource(TypeEtcd)} })
	if err != nil || c.Sources[0].Name != "etcd" {
		t.Errorf("an empty file given a source: %v %+v", err, c)
	}
}

func TestLoadNormalises(t *testing.T) {
	c, err := Load(write(t, `
[dns]
listen = ["127.0.0.1:53", "[0:0::1]:53"]
zone = "Svc.Example"
ttl = "0s"
[forward]
upstreams = ["192.0.2.1:53"]
allow = ["10.1.2.3/8"]
[http]
listen = ""
[[source]]
name = "a"
type = "etcd"
zone = "A.Example."
prefix = "/svc/"
endpoints = ["https://etcd-1:2379", "etcd-2:2379"]
format = "skydns"
[[source]]
name = "b"
type = "zookeeper"
prefix = "/base/x//"
format = "serverset"
auth = "u:p"
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.DNS.Zone != "svc.example." || c.DNS.TTL != 0 || !slices.Equal(c.DNS.Listen, []string{"127.0.0.1:53", "[::1]:53"}) {
		t.Errorf("dns: %+v", c.DNS)
	}
	if c.Forward.Allow[0] != netip.MustParsePrefix("10.0.0.0/8") || c.Forward.Upstreams[0] != "192.0.2.1:53" {
		t.Errorf("forward: %+v", c.Forward)
	}
	if c.HTTP.Listen != "" {
		t.Errorf("http: %+v", c.HTTP)
	}
	if s := c.Sources[0]; s.Zone != "a.example." || s.Prefix != "/svc" || s.Format != "skydns" {
		t.Errorf("source a: %+v", s)
	}
	if s := c.Sources[1]; s.Zone != "svc.example." || s.Prefix != "/base/x" || string(s.Auth) != "u:p" {
		t.Errorf("source b: %+v", s)
	}
}

func TestLoadInlineSourceArray(t *testing.T) {
	c, err := Load(write(t, `source = [{type = "etcd"}, {type = "consul", tags = ["web"]}]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Sources) != 2 || c.Sources[1].Tags[0] != "web" {
		t.Fatalf("got %+v", c.Sources)
	}
}

func TestExampleLoads(t *testing.T) {
	c, err := Load("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Sources) != 1 || c.Sources[0].Type != TypeEtcd {
		t.Fatalf("sources: %+v", c.Sources)
	}
	// The example shows the defaults.
	c.Sources = nil
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("example differs from the defaults:\n%+v\n%+v", c, Default())
	}
}

// commentedSetting matches a commented-out setting: "#" with no space.
var commentedSetting = regexp.MustCompile(`(?m)^#(\S)`)

func TestExampleWithEverythingUncommentedLoads(t *testing.T) {
	data, err := os.ReadFile("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(write(t, commentedSetting.ReplaceAllString(string(data), "$1")))
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, s := range c.Sources {
		types = append(types, s.Type)
	}
	if !slices.Equal(types, []string{"etcd", "consul", "zookeeper"}) {
		t.Fatalf("source types %v", types)
	}
}

// TestExampleDocumentsEveryKey keeps config.example.toml in step with the
// schema: every key appears in its table (commented or not), and every key
// the example shows exists.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	header := regexp.MustCompile(`^\[\[?([a-z_]+)\]\]?\s*$`)
	setting := regexp.MustCompile(`^([a-z_]+)\s*=`)
	shown := map[string]bool{}
	table := ""
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "# ") || line == "#" {
			continue // prose
		}
		line = strings.TrimPrefix(line, "#")
		if m := header.FindStringSubmatch(line); m != nil {
			table = m[1]
		} else if m := setting.FindStringSubmatch(line); m != nil {
			shown[strings.TrimPrefix(table+"."+m[1], ".")] = true
		}
	}
	known := knownKeys()
	if len(known) < 30 {
		t.Fatalf("knownKeys found only %d keys: %v", len(known), known)
	}
	for _, k := range known {
		if !shown[k] {
			t.Errorf("config.example.toml does not show %s", k)
		}
		delete(shown, k)
	}
	for k := range shown {
		t.Errorf("config.example.toml shows %s, which the schema does not know", k)
	}
}

func TestLoadErrors(t *testing.T) {
	const etcd = "[[source]]\ntype = \"etcd\"\n"
	tests := []struct {
		name string
		toml string
		want []string // substrings of the message besides the file
		line int      // expected line; 0: not checked
	}{
		{"unknown top-level key", "bogus = 1\n", []string{"unknown key bogus"}, 1},
		{"relative state file", "state_file = \"state\"\n", []string{"state_file", "not an absolute path"}, 1},
		{"state file a directory", "state_file = \"/tmp\"\n", []string{"state_file", "is a directory"}, 1},
		{"state file not a string", "state_file = 1\n", []string{"state_file"}, 1},
		{"unknown key in dns", "[dns]\nlsten = [\"127.0.0.1:53\"]\n", []string{"unknown key dns.lsten", "did you mean dns.listen?"}, 2},
		{"unknown table", "[dnss]\n", []string{"unknown key dnss", "did you mean dns?"}, 1},
		{"unknown key in source", etcd + "endpoint = [\"a:1\"]\n", []string{`unknown key source[0] ("etcd").endpoint`, "did you mean"}, 3},
		{"key of another source type", etcd + "servers = [\"a:1\"]\n", []string{`source[0] ("etcd").servers: key not valid for type etcd`}, 3},
		{"consul key on zookeeper", "[[source]]\ntype = \"zookeeper\"\ntoken = \"x\"\n", []string{`source[0] ("zookeeper").token: key not valid for type zookeeper`}, 3},
		{"listen is a string", "[dns]\nlisten = \"x\"\n", []string{"dns.listen: want an array of strings, got a string"}, 2},
		{"listen has a number", "[dns]\nlisten = [\"127.0.0.1:53\", 53]\n", []string{"dns.listen: want an array of strings, got an integer at index 1"}, 2},
		{"ttl is an integer", "[dns]\nttl = 5\n", []string{`dns.ttl: want a duration string such as "5s", got an integer`}, 2},
		{"udp_size is a string", "[dns]\nudp_size = \"1232\"\n", []string{"dns.udp_size: want an integer, got a string"}, 2},
		{"include_warning is a string", "[[source]]\ntype = \"consul\"\ninclude_warning = \"yes\"\n", []string{`source[0] ("consul").include_warning: want a boolean`}, 3},
		{"dns is not a table", "dns = 1\n", []string{"dns: want a table, got an integer"}, 1},
		{"source is not an array", "source = 1\n", []string{"source: want an array of tables"}, 1},
		{"bad duration", "[dns]\nttl = \"5x\"\n", []string{`dns.ttl: invalid duration "5x": time: unknown unit "x" in duration "5x"`}, 2},
		{"negative ttl", "[dns]\nttl = \"-1s\"\n", []string{"dns.ttl: must be 0s to 24h, got -1s"}, 2},
		{"negative negative_ttl", "[dns]\nnegative_ttl = \"-5s\"\n", []string{"dns.negative_ttl: must be 0s to 24h, got -5s"}, 2},
		{"ttl over a day", "[dns]\nttl = \"25h\"\n", []string{"dns.ttl: must be 0s to 24h, got 25h"}, 2},
		{"ttl fraction", "[dns]\nttl = \"1500ms\"\n", []string{"dns.ttl: must be whole seconds"}, 2},
		{"zero tcp idle timeout", "[dns]\ntcp_idle_timeout = \"0s\"\n", []string{"dns.tcp_idle_timeout: must be 1s to 1h, got 0s"}, 2},
		{"negative forward timeout", "[forward]\ntimeout = \"-1s\"\n", []string{"forward.timeout: must be 10ms to 10s, got -1s"}, 2},
		{"zero resync", etcd + "resync_interval = \"0s\"\n", []string{`source[0] ("etcd").resync_interval: must be 1s to 24h, got 0s`}, 3},
		{"no tcp connections", "[dns]\nmax_tcp_connections = 0\n", []string{"dns.max_tcp_connections: must be 1 to 100000, got 0"}, 2},
		{"udp size small", "[dns]\nudp_size = 511\n", []string{"dns.udp_size: must be 512 to 4096, got 511"}, 2},
		{"udp size big", "[dns]\nudp_size = 4097\n", []string{"dns.udp_size: must be 512 to 4096"}, 2},
		{"rate limit table empty", "[dns]\nclient_rate_limit_clients = 0\n", []string{"dns.client_rate_limit_clients: must be 1 to 10000000, got 0"}, 2},
		{"rate limit table huge", "[dns]\nclient_rate_limit_clients = 10000001\n", []string{"dns.client_rate_limit_clients: must be 1 to 10000000"}, 2},
		{"listen hostname", "[dns]\nlisten = [\"localhost:53\"]\n", []string{"dns.listen:", "not an IP address", "host name"}, 2},
		{"listen missing port", "[dns]\nlisten = [\"127.0.0.1\"]\n", []string{"dns.listen:", "missing port"}, 2},
		{"listen port 0", "[dns]\nlisten = [\"127.0.0.1:0\"]\n", []string{"dns.listen:", "must be 1-65535"}, 2},
		{"listen port 70000", "[dns]\nlisten = [\"127.0.0.1:70000\"]\n", []string{"dns.listen:", "70000", "must be 1-65535"}, 2},
		{"listen 0.0.0.0", "[dns]\nlisten = [\"0.0.0.0:53\"]\n", []string{`dns.listen: "0.0.0.0:53": unspecified address`, "wrong source address"}, 2},
		{"listen [::]", "[dns]\nlisten = [\"[::]:53\"]\n", []string{`dns.listen: "[::]:53": unspecified address`, "wrong source address"}, 2},
		{"listen duplicate", "[dns]\nlisten = [\"127.0.0.1:53\", \"127.0.0.1:53\"]\n", []string{`dns.listen: "127.0.0.1:53": listed twice`}, 2},
		{"listen duplicate spelt differently", "[dns]\nlisten = [\"[::1]:53\", \"[0::1]:53\"]\n", []string{`dns.listen: "[0::1]:53": listed twice (also as "[::1]:53")`}, 2},
		{"listen empty", "[dns]\nlisten = []\n", []string{"dns.listen: must list at least one address"}, 2},
		{"bad cidr", "[forward]\nallow = [\"10.0.0.0/33\"]\n", []string{"forward.allow: invalid network", "10.0.0.0/33"}, 2},
		{"bare ip in allow", "[forward]\nallow = [\"10.0.0.1\"]\n", []string{"forward.allow: invalid network"}, 2},
		{"upstream hostname", "[forward]\nupstreams = [\"dns.google:53\"]\n", []string{"forward.upstreams:", "dns.google", "not an IP address"}, 2},
		{"upstream no port", "[forward]\nupstreams = [\"192.0.2.1\"]\n", []string{"forward.upstreams:", "missing port"}, 2},
		{"upstream unspecified", "[forward]\nupstreams = [\"0.0.0.0:53\"]\n", []string{`forward.upstreams: "0.0.0.0:53": unspecified`}, 2},
		{"zone empty label", "[dns]\nzone = \"bad..zone\"\n", []string{`dns.zone: "bad..zone" has an empty label`}, 2},
		{"zone long label", "[dns]\nzone = \"" + strings.Repeat("a", 64) + ".internal\"\n", []string{"dns.zone:", "label of 64 characters", "limit of 63"}, 2},
		{"zone bad char", "[dns]\nzone = \"svc internal\"\n", []string{"dns.zone:", "' '"}, 2},
		{"zone empty", "[dns]\nzone = \"\"\n", []string{"dns.zone: must not be empty"}, 2},
		{"zone root", "[dns]\nzone = \".\"\n", []string{"dns.zone: must not be the root"}, 2},
		{"source zone", etcd + "zone = \"a..b\"\n", []string{`source[0] ("etcd").zone:`, "empty label"}, 3},
		{"http listen no port", "[http]\nlisten = \"localhost\"\n", []string{"http.listen:", "missing port"}, 2},
		{"log level", "[log]\nlevel = \"verbose\"\n", []string{`log.level: unknown level "verbose"`}, 2},
		{"log format", "[log]\nformat = \"xml\"\n", []string{`log.format: unknown format "xml"`}, 2},
		{"unknown source type", "[[source]]\ntype = \"eureka\"\n", []string{`source[0].type: unknown type "eureka" (want etcd, consul or zookeeper)`}, 2},
		{"missing type", "[[source]]\nname = \"x\"\n", []string{`source[0] ("x").type: missing (want etcd, consul or zookeeper)`}, 1},
		{"missing type no name", "[dns]\n\n[[source]]\nprefix = \"/x\"\n", []string{`source[0].type: missing`}, 3},
		{"type not a string", "[[source]]\ntype = 1\n", []string{`source[0].type: want a string, got an integer`}, 2},
		{"etcd format", etcd + "format = \"curator\"\n", []string{`source[0] ("etcd").format: unknown format "curator" for type etcd (want discox, grpc, skydns, `}, 3},
		{"consul format", "[[source]]\ntype = \"etcd\"\n[[source]]\nname = \"consul\"\ntype = \"consul\"\nformat = \"foo\"\n", []string{`source[1] ("consul").format: unknown format "foo" for type consul (want native)`}, 6},
		{"zookeeper format", "[[source]]\ntype = \"zookeeper\"\nformat = \"grpc\"\n", []string{`source[0] ("zookeeper").format: unknown format "grpc" for type zookeeper (want discox, curator, serverset`}, 3},
		{"duplicate names", etcd + "[[source]]\nname = \"etcd\"\ntype = \"consul\"\n", []string{`source[1] ("etcd").name: duplicate name "etcd", also used by source[0]`}, 4},
		{"duplicate defaulted names", etcd + etcd, []string{`source[1] ("etcd").name: duplicate name "etcd", also used by source[0]`}, 3},
		{"cert without key", "[[source]]\ntype = \"consul\"\ncert_file = \"c.pem\"\n", []string{`source[0] ("consul").cert_file: set without key_file`}, 3},
		{"key without cert", "[[source]]\ntype = \"consul\"\nkey_file = \"k.pem\"\n", []string{`source[0] ("consul").key_file: set without cert_file`}, 3},
		{"auth without colon", "[[source]]\ntype = \"zookeeper\"\nauth = \"secret\"\n", []string{`source[0] ("zookeeper").auth: must be a digest credential "user:password"`}, 3},
		{"password without username", etcd + "password = \"p\"\n", []string{`source[0] ("etcd").password: set without username`}, 3},
		{"root prefix", etcd + "prefix = \"/\"\n", []string{`source[0] ("etcd").prefix:`, "root"}, 3},
		{"dubbo root prefix", "[[source]]\ntype = \"zookeeper\"\nformat = \"dubbo\"\nprefix = \"/\"\n", []string{`source[0] ("zookeeper").prefix: "/": the root is allowed only for a zookeeper source of format discox, curator or serverset`, `"/dubbo" for format dubbo`}, 4},
		{"relative prefix", "[[source]]\ntype = \"zookeeper\"\nprefix = \"services\"\n", []string{`source[0] ("zookeeper").prefix: "services" must start with "/"`}, 3},
		{"relative etcd prefix", etcd + "prefix = \"services\"\n", []string{`source[0] ("etcd").prefix: "services" must start with "/" (only formats gozero, rpcx or kitex read keys without it)`}, 3},
		{"empty rpcx prefix", etcd + "format = \"rpcx\"\nprefix = \"\"\n", []string{`source[0] ("etcd").prefix: empty; format rpcx needs the key prefix`}, 4},
		{"empty kratos prefix", etcd + "format = \"kratos\"\nprefix = \"\"\n", []string{`source[0] ("etcd").prefix: "" must start with "/"`}, 4},
		{"kitex prefix empty segment", etcd + "format = \"kitex\"\nprefix = \"kitex//registry-etcd\"\n", []string{`source[0] ("etcd").prefix: key prefix "kitex//registry-etcd":`, "empty path segment"}, 4},
		{"bad endpoint", etcd + "endpoints = [\"ftp://x:1\"]\n", []string{`source[0] ("etcd").endpoints:`, "http or https"}, 3},
		{"endpoint without port", etcd + "endpoints = [\"etcd-1\"]\n", []string{`source[0] ("etcd").endpoints:`, "missing port"}, 3},
		{"no endpoints", etcd + "endpoints = []\n", []string{`source[0] ("etcd").endpoints: must list at least one`}, 3},
		{"server with scheme", "[[source]]\ntype = \"zookeeper\"\nservers = [\"http://zk:2181\"]\n", []string{`source[0] ("zookeeper").servers:`}, 3},
		{"syntax error", "[dns]\nttl = \"5s\"\nzone = = 1\n", []string{"syntax error"}, 3},
		{"duplicate key", "[dns]\nttl = \"5s\"\nttl = \"6s\"\n", []string{"syntax error", "ttl"}, 3},
		// Lines of keys in an earlier [[source]] whose key a later one repeats.
		{"line of earlier source", "[[source]]\nname = \"a\"\ntype = \"etcd\"\nformat = \"x\"\n\n[[source]]\nname = \"b\"\ntype = \"etcd\"\nformat = \"grpc\"\n", []string{`source[0] ("a").format: unknown format "x"`}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := write(t, tt.toml)
			_, err := Load(path)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, "config "+path+": ") {
				t.Errorf("%q does not start with the file", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not contain %q", msg, w)
				}
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%T is not *Error", err)
			}
			if tt.line != 0 && e.Line != tt.line {
				t.Errorf("line %d, want %d (%s)", e.Line, tt.line, msg)
			}
			if e.Line != 0 && !strings.HasSuffix(msg, fmt.Sprintf("(line %d)", e.Line)) {
				t.Errorf("%q does not name line %d", msg, e.Line)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), "config "+path+": ") || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
}

func TestValidateInMemory(t *testing.T) {
	c := Default()
	s := DefaultSource(TypeEtcd)
	s.Endpoints = []string{"127.0.0.1:23790"}
	c.Sources = append(c.Sources, s)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Sources[0].Name != "etcd" || c.Sources[0].Zone != "svc.internal." {
		t.Errorf("not defaulted: %+v", c.Sources[0])
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("second Validate: %v", err)
	}

	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no listen", func(c *Config) { c.DNS.Listen = nil }, "config: dns.listen: must list at least one address"},
		{"empty addr", func(c *Config) { c.DNS.Listen = []string{""} }, `config: dns.listen: "": want IP:port`},
		{"flag hostname", func(c *Config) { c.DNS.Listen = []string{"localhost:53"} }, `config: dns.listen: "localhost:53": "localhost" is not an IP address`},
		{"port 0", func(c *Config) { c.DNS.Listen = []string{"127.0.0.1:0"} }, `config: dns.listen: "127.0.0.1:0": port "0" must be 1-65535`},
		{"wildcard", func(c *Config) { c.DNS.Listen = []string{"0.0.0.0:53"} }, "unspecified address"},
		{"upstream", func(c *Config) { c.Forward.Upstreams = []string{"192.0.2.1"} }, `config: forward.upstreams: "192.0.2.1": want IP:port`},
		{"zero prefix", func(c *Config) { c.Forward.Allow = []netip.Prefix{{}} }, "config: forward.allow: invalid network"},
		{"source without defaults", func(c *Config) { c.Sources = []Source{{Type: TypeEtcd, Format: FormatDiscox}} }, `config: source[0] ("etcd").endpoints: must list at least one endpoint`},
		{"source without type", func(c *Config) { c.Sources = []Source{{Name: "x"}} }, `config: source[0] ("x").type: missing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

const (
	etcdPassword = "hunter2-etcd-password"
	consulToken  = "hunter2-consul-token"
	zkAuth       = "zkuser:hunter2-zk-auth"
)

func TestSecretsNeverShown(t *testing.T) {
	c, err := Load(write(t, fmt.Sprintf(`
[[source]]
type = "etcd"
username = "root"
password = %q
[[source]]
type = "consul"
token = %q
[[source]]
type = "zookeeper"
auth = %q
`, etcdPassword, consulToken, zkAuth)))
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Sources[0].Password) != etcdPassword || string(c.Sources[1].Token) != consulToken || string(c.Sources[2].Auth) != zkAuth {
		t.Fatal("secrets not loaded")
	}

	var outputs []string
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c, "source", c.Sources[0])
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "config", *c, "password", c.Sources[0].Password)
	outputs = append(outputs, buf.String())
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		outputs = append(outputs, fmt.Sprintf(verb, c), fmt.Sprintf(verb, *c), fmt.Sprintf(verb, c.Sources))
	}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, string(j))
	for _, out := range outputs {
		if strings.Contains(out, "hunter2") || strings.Contains(out, "68756e74657232") { // hex of "hunter2"
			t.Errorf("secret shown: %s", out)
		}
	}
	if !strings.Contains(buf.String(), `"password":"[redacted]"`) {
		t.Errorf("password not shown as redacted: %s", buf.String())
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	for _, in := range []string{
		"[[source]]\ntype = \"consul\"\npassword = \"hunter2\"\n",
		"[[source]]\ntype = \"etcd\"\ntoken = \"hunter2\"\n",
		"[[source]]\ntype = \"etcd\"\nauth = \"hunter2\"\n",
		"[[source]]\ntype = \"etcd\"\npassword = \"hunter2\"\n",
		"[[source]]\ntype = \"etcd\"\npassword = [\"hunter2\"]\n",
		"[[source]]\ntype = \"consul\"\ntoken = [\"hunter2\"]\n",
		"[[source]]\ntype = \"zookeeper\"\nauth = \"hunter2\"\n",
		"[[source]]\ntype = \"zookeeper\"\nauth = \":hunter2\"\n",
		"[[source]]\ntype = \"etcd\"\nendpoints = [\"http://root:hunter2@etcd:2379\"]\n",
		"[[source]]\ntype = \"consul\"\naddress = \"http://root:hunter2@consul:8500\"\n",
		"[[source]]\ntype = \"zookeeper\"\nservers = [\"user:hunter2@zk:2181\"]\n",
		"[[source]]\ntype = \"etcd\"\npassword = \"hunter2\"\nbogus = 1\n",
		"[[source]]\ntype = \"etcd\"\npassword = \"hunter2\"\nformat = \"x\"\n",
		"[[source]]\ntype = \"etcd\"\npassword = \"hunter2\nusername = 1\n",
	} {
		_, err := Load(write(t, in))
		if err == nil {
			t.Errorf("no error for %q", in)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("secret in error: %v", err)
		}
	}
}

func TestForwardUpstreams(t *testing.T) {
	dir := t.TempDir()
	rc := filepath.Join(dir, "resolv.conf")
	os.WriteFile(rc, []byte("# systemd-resolved\nnameserver 192.0.2.1\nnameserver 2001:db8::53\nnameserver 192.0.2.1\nsearch example\noptions edns0\n"), 0o600)
	c, err := Load(write(t, fmt.Sprintf("[forward]\nresolv_conf = %q\n", rc)))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"192.0.2.1:53", "[2001:db8::53]:53"}; !slices.Equal(c.Forward.Upstreams, want) {
		t.Errorf("upstreams %v, want %v", c.Forward.Upstreams, want)
	}
	// main validates again after its flags; the upstreams read from the
	// file are not "set together" with it.
	if err := c.Validate(); err != nil || len(c.Forward.Upstreams) != 2 {
		t.Errorf("validated again: %v, upstreams %v", err, c.Forward.Upstreams)
	}
	if c.Forward.CacheSize != 10000 || c.Forward.MaxStale != 24*time.Hour || c.Forward.MaxInFlight != 1000 {
		t.Errorf("defaults: cache %d, max stale %s, max in flight %d", c.Forward.CacheSize, c.Forward.MaxStale, c.Forward.MaxInFlight)
	}

	loop := filepath.Join(dir, "loop.conf")
	os.WriteFile(loop, []byte("nameserver 127.0.0.153\n"), 0o600)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.conf")
	os.WriteFile(huge, bytes.Repeat([]byte("# padding\n"), 7000), 0o600)
	empty := filepath.Join(dir, "empty.conf")
	os.WriteFile(empty, []byte("search example\n"), 0o600)
	for _, tc := range []struct{ name, toml, want string }{
		{"loop in upstreams", "[dns]\nlisten = [\"127.0.0.153:53\"]\n[forward]\nupstreams = [\"127.0.0.153:53\"]\n",
			"forward.upstreams: 127.0.0.153:53 is one of dns.listen"},
		{"loop through resolv.conf", fmt.Sprintf("[dns]\nlisten = [\"127.0.0.153:53\"]\n[forward]\nresolv_conf = %q\n", loop),
			"forward.resolv_conf: 127.0.0.153:53 is one of dns.listen"},
		{"both", fmt.Sprintf("[forward]\nupstreams = [\"192.0.2.1:53\"]\nresolv_conf = %q\n", rc), "forward.resolv_conf: set together with forward.upstreams"},
		{"no nameserver", fmt.Sprintf("[forward]\nresolv_conf = %q\n", empty), "lists no nameserver"},
		{"missing file", "[forward]\nresolv_conf = \"/nonexistent/resolv.conf\"\n", "forward.resolv_conf: stat /nonexistent/resolv.conf: no such file"},
		{"a named pipe", fmt.Sprintf("[forward]\nresolv_conf = %q\n", fifo), "is not a regular file"},
		{"a device", "[forward]\nresolv_conf = \"/dev/zero\"\n", "forward.resolv_conf: /dev/zero is not a regular file"},
		{"a huge file", fmt.Sprintf("[forward]\nresolv_conf = %q\n", huge), "is larger than 65536 bytes"},
		{"negative cache", "[forward]\ncache_size = -1\n", "forward.cache_size"},
		{"no query in flight", "[forward]\nmax_in_flight = 0\n", "forward.max_in_flight: must be 1 to 20000, got 0"},
		{"more in flight than ports", "[forward]\nmax_in_flight = 20001\n", "forward.max_in_flight: must be 1 to 20000, got 20001"},
		{"loop through an IPv4-mapped upstream", "[dns]\nlisten = [\"127.0.0.1:5353\"]\n[forward]\nupstreams = [\"[::ffff:127.0.0.1]:5353\"]\n",
			"forward.upstreams: 127.0.0.1:5353 is one of dns.listen: discodns would forward to itself (a loop)"},
		{"loop through an IPv4-mapped listener", "[dns]\nlisten = [\"[::ffff:7f00:1]:5353\"]\n[forward]\nupstreams = [\"127.0.0.1:5353\"]\n",
			"forward.upstreams: 127.0.0.1:5353 is one of dns.listen"},
		{"loop through a long IPv6 spelling", "[dns]\nlisten = [\"[::1]:5353\"]\n[forward]\nupstreams = [\"[0000:0000::0001]:5353\"]\n",
			"forward.upstreams: [::1]:5353 is one of dns.listen"},
		{"loop through a zone", "[dns]\nlisten = [\"[fe80::1%lo]:5353\"]\n[forward]\nupstreams = [\"[fe80::1]:5353\"]\n",
			"forward.upstreams: [fe80::1]:5353 is one of dns.listen"},
		{"loop through resolv.conf, hinted", fmt.Sprintf("[dns]\nlisten = [\"127.0.0.153:53\"]\n[forward]\nresolv_conf = %q\n", loop),
			"/run/systemd/resolve/resolv.conf"},
		{"mapped listener twice", "[dns]\nlisten = [\"127.0.0.1:53\", \"[::ffff:127.0.0.1]:53\"]\n",
			`dns.listen: "[::ffff:127.0.0.1]:53": listed twice (also as "127.0.0.1:53")`},
		{"upstream named", "[forward]\nupstreams = [\"localhost:5353\"]\n", `forward.upstreams: "localhost:5353": "localhost" is not an IP address (want a literal IP, not a host name`},
		{"upstream zero-padded", "[forward]\nupstreams = [\"127.0.0.01:53\"]\n", `"127.0.0.01" is not a valid IP address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(write(t, tc.toml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestRanges: every duration and number key has a range, stated in its
// error, whose ends are accepted; the values the tests and the example use
// are inside it.
func TestRanges(t *testing.T) {
	const etcd, consul, zk = "[[source]]\ntype = \"etcd\"\n", "[[source]]\ntype = \"consul\"\n", "[[source]]\ntype = \"zookeeper\"\n"
	for _, tc := range []struct {
		table, key   string
		lo, hi       string // the ends of the range, as written in the file
		below, above string // just outside it
		want         string // the range in the error
	}{
		{"[dns]\n", "ttl", `"0s"`, `"24h"`, `"-1s"`, `"25h"`, "must be 0s to 24h"},
		{"[dns]\n", "negative_ttl", `"0s"`, `"24h"`, `"-1s"`, `"48h"`, "must be 0s to 24h"},
		{"[dns]\n", "tcp_idle_timeout", `"1s"`, `"1h"`, `"1ns"`, `"2h"`, "must be 1s to 1h"},
		{"[dns]\n", "max_tcp_connections", "1", "100000", "0", "100001", "must be 1 to 100000"},
		{"[dns]\n", "max_tcp_connections_per_client", "1", "100000", "0", "100001", "must be 1 to 100000"},
		{"[dns]\n", "sockets", "0", "256", "-1", "257", "must be 0 to 256"},
		{"[dns]\n", "udp_size", "512", "4096", "511", "4097", "must be 512 to 4096"},
		{"[dns]\n", "startup_wait", `"0s"`, `"1h"`, `"-1ns"`, `"2h"`, "must be 0s to 1h"},
		{"[dns]\n", "client_rate_limit", "0", "1000000", "-5", "1000001", "must be 0 to 1000000"},
		{"[dns]\n", "client_rate_limit_clients", "1", "10000000", "0", "10000001", "must be 1 to 10000000"},
		{"[forward]\n", "max_in_flight", "1", "20000", "0", "20001", "must be 1 to 20000"},
		{"[forward]\n", "timeout", `"10ms"`, `"10s"`, `"1ms"`, `"1m"`, "must be 10ms to 10s"},
		{"[forward]\n", "cache_size", "0", "1000000", "-1", "1000001", "must be 0 to 1000000"},
		{"[forward]\n", "max_stale", `"0s"`, `"168h"`, `"-1s"`, `"169h"`, "must be 0s to 168h"},
		{etcd, "dial_timeout", `"100ms"`, `"1m"`, `"1ns"`, `"1h"`, "must be 100ms to 1m"},
		{etcd, "resync_interval", `"1s"`, `"24h"`, `"1ms"`, `"25h"`, "must be 1s to 24h"},
		{consul, "resync_interval", `"1s"`, `"24h"`, `"0s"`, `"48h"`, "must be 1s to 24h"},
		{consul, "max_connections", "3", "1000", "2", "1001", "must be 3 to 1000"},
		{consul, "rate_limit", "1", "100000", "0", "100001", "must be 1 to 100000"},
		{zk, "session_timeout", `"1s"`, `"10m"`, `"1ms"`, `"11m"`, "must be 1s to 10m"},
	} {
		// A [[source]] goes last, so that the table key is not its key.
		file := func(v string) string {
			if strings.HasPrefix(tc.table, "[[") {
				return tc.table + tc.key + " = " + v + "\n"
			}
			return tc.table + tc.key + " = " + v + "\n" + etcd
		}
		for _, v := range []string{tc.lo, tc.hi} {
			if _, err := Load(write(t, file(v))); err != nil {
				t.Errorf("%s = %s refused: %v", tc.key, v, err)
			}
		}
		for _, v := range []string{tc.below, tc.above} {
			_, err := Load(write(t, file(v)))
			if err == nil || !strings.Contains(err.Error(), tc.key+": "+tc.want) || !strings.Contains(err.Error(), "got "+strings.Trim(v, `"`)) {
				t.Errorf("%s = %s: error %v, want %q and the value", tc.key, v, err, tc.want)
			}
		}
	}
}

// TestZones: zones that would shadow public names, and zones inside one
// another, are refused naming the key (both keys for nesting) and why;
// private, testing and sibling zones are fine.
func TestZones(t *testing.T) {
	const etcd = "[[source]]\ntype = \"etcd\"\n"
	for _, tc := range []struct{ name, toml, want string }{
		{"private", "[dns]\nzone = \"internal.\"\n" + etcd, ""},
		{"test", "[dns]\nzone = \"test.\"\n" + etcd, ""},
		{"example", "[dns]\nzone = \"Example\"\n" + etcd, ""},
		{"under a public domain", "[dns]\nzone = \"svc.example.com.\"\n" + etcd, ""},
		{"home.arpa", "[dns]\nzone = \"home.arpa.\"\n" + etcd, ""},
		{"under home.arpa", "[dns]\nzone = \"svc.home.arpa.\"\n" + etcd, ""},
		{"siblings", "[dns]\nzone = \"svc.internal.\"\n" + etcd + "zone = \"consul.internal.\"\n", ""},
		{"equal zones", etcd + "zone = \"svc.internal.\"\n[[source]]\ntype = \"consul\"\n", ""},
		{"sibling of a suffix", "[dns]\nzone = \"svc.internal.\"\n" + etcd + "zone = \"xsvc.internal.\"\n", ""},
		{"private single label", "[dns]\nzone = \"consul.\"\n" + etcd, ""},
		{"another private single label", "[dns]\nzone = \"corp.\"\n" + etcd, ""},
		{"tld", "[dns]\nzone = \"com.\"\n" + etcd, `dns.zone: "com." is a public suffix`},
		{"tld without dot", "[dns]\nzone = \"COM\"\n" + etcd, `dns.zone: "com." is a public suffix`},
		{"source tld", etcd + "zone = \"io\"\n", `source[0] ("etcd").zone: "io." is a public suffix`},
		{"second-level suffix", "[dns]\nzone = \"co.uk.\"\n" + etcd, `dns.zone: "co.uk." is a public suffix`},
		{"private suffix", "[dns]\nzone = \"github.io.\"\n" + etcd, `dns.zone: "github.io." is a public suffix`},
		{"arpa", "[dns]\nzone = \"arpa.\"\n" + etcd, `dns.zone: "arpa." is at or under arpa.`},
		{"in-addr.arpa", "[dns]\nzone = \"in-addr.arpa.\"\n" + etcd, "reverse lookups"},
		{"under ip6.arpa", "[dns]\nzone = \"8.b.d.0.1.0.0.2.ip6.arpa.\"\n" + etcd, "reverse lookups"},
		{"home.arpa lookalike", "[dns]\nzone = \"xhome.arpa.\"\n" + etcd, "reverse lookups"},
		{"localhost", "[dns]\nzone = \"localhost.\"\n" + etcd, "loopback"},
		{"under local", "[dns]\nzone = \"svc.local.\"\n" + etcd, "multicast DNS"},
		{"onion", etcd + "zone = \"x.onion.\"\n", "Tor"},
		{"source inside dns.zone", "[dns]\nzone = \"svc.internal.\"\n" + etcd + "zone = \"etcd.svc.internal.\"\n",
			`source[0] ("etcd").zone: zone "etcd.svc.internal." (source[0] ("etcd").zone) is inside zone "svc.internal." (dns.zone)`},
		{"dns.zone inside a source's", "[dns]\nzone = \"svc.internal.\"\n" + etcd + "zone = \"internal.\"\n",
			`zone "svc.internal." (dns.zone) is inside zone "internal." (source[0] ("etcd").zone)`},
		{"sources nested", etcd + "zone = \"a.internal.\"\n[[source]]\ntype = \"consul\"\nzone = \"b.a.internal.\"\n",
			`source[1] ("consul").zone: zone "b.a.internal." (source[1] ("consul").zone) is inside zone "a.internal." (source[0] ("etcd").zone)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(write(t, tc.toml))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want %q", err, tc.want)
			case err == nil:
				if err := c.Validate(); err != nil {
					t.Errorf("validated again: %v", err)
				}
			}
		})
	}
}

// TestRateLimit: without client_rate_limit, a server listening beyond
// loopback limits each client to DefaultClientRateLimit; a set value,
// 0 included, is kept; a negative one in a file is refused.
func TestRateLimit(t *testing.T) {
	const etcd = "[[source]]\ntype = \"etcd\"\n"
	for _, tc := range []struct {
		name, dns string
		limit     int
		defaulted bool
	}{
		{"loopback", `listen = ["127.0.0.1:53", "[::1]:53"]`, 0, true},
		{"IPv4-mapped loopback", `listen = ["[::ffff:127.0.0.2]:53"]`, 0, true},
		{"beyond loopback", `listen = ["127.0.0.1:53", "192.0.2.2:53"]`, DefaultClientRateLimit, true},
		{"IPv6 beyond loopback", `listen = ["[2001:db8::1]:53"]`, DefaultClientRateLimit, true},
		{"set off", "listen = [\"192.0.2.2:53\"]\nclient_rate_limit = 0", 0, false},
		{"set", "listen = [\"192.0.2.2:53\"]\nclient_rate_limit = 50", 50, false},
		{"set on loopback", "client_rate_limit = 50", 50, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(write(t, "[dns]\n"+tc.dns+"\n"+etcd))
			if err != nil {
				t.Fatal(err)
			}
			if limit, defaulted := c.DNS.RateLimit(); limit != tc.limit || defaulted != tc.defaulted {
				t.Errorf("RateLimit() = %d, %v; want %d, %v", limit, defaulted, tc.limit, tc.defaulted)
			}
		})
	}
	if _, err := Load(write(t, "[dns]\nclient_rate_limit = -1\n"+etcd)); err == nil || !strings.Contains(err.Error(), "dns.client_rate_limit: must be 0 to 1000000, got -1") {
		t.Errorf("client_rate_limit = -1 in a file: %v", err)
	}
	c := Default()
	c.Sources = []Source{DefaultSource(TypeEtcd)}
	if err := c.Validate(); err != nil || c.DNS.ClientRateLimit != ClientRateLimitUnset {
		t.Errorf("in memory, unset: %v, %d", err, c.DNS.ClientRateLimit)
	}
}

func TestHTTPBeyondLoopback(t *testing.T) {
	for listen, want := range map[string]bool{
		"": false, "127.0.0.1:9153": false, "[::1]:9153": false, "localhost:9153": false, "127.0.0.2:9153": false,
		":9153": true, "0.0.0.0:9153": true, "[::]:9153": true, "192.0.2.2:9153": true, "admin.example:9153": true,
	} {
		if got := (&HTTP{Listen: listen}).BeyondLoopback(); got != want {
			t.Errorf("%q: BeyondLoopback() = %v, want %v", listen, got, want)
		}
	}
}

// TestFrameworkPrefixes: a framework's format reads where the framework
// writes unless the file sets a prefix, and go-zero, rpcx and Kitex take
// keys without a leading "/".
func TestFrameworkPrefixes(t *testing.T) {
	tests := []struct{ typ, format, prefixLine, want string }{
		{"etcd", "gozero", "", ""},
		{"etcd", "gozero", `prefix = ""`, ""},
		{"etcd", "gozero", `prefix = "hello.rpc/"`, "hello.rpc"},
		{"etcd", "gozero", `prefix = "/rpc/hello"`, "/rpc/hello"},
		{"etcd", "kratos", "", "/microservices"},
		{"zookeeper", "kratos", "", "/microservices"},
		{"etcd", "gomicro", "", "/micro/registry"},
		{"etcd", "kitex", "", "kitex/registry-etcd"},
		{"etcd", "kitex", `prefix = "kitex/registry-etcd/"`, "kitex/registry-etcd"},
		{"etcd", "rpcx", `prefix = "/rpcx_test"`, "/rpcx_test"},
		{"etcd", "rpcx", `prefix = "rpcx"`, "rpcx"},
		{"etcd", "discox", "", "/services"},
	}
	for _, tt := range tests {
		t.Run(tt.typ+" "+tt.format+" "+tt.prefixLine, func(t *testing.T) {
			c, err := Load(write(t, fmt.Sprintf("[[source]]\ntype = %q\nformat = %q\n%s\n", tt.typ, tt.format, tt.prefixLine)))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Sources[0].Prefix; got != tt.want {
				t.Errorf("prefix %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRootPrefix: a ZooKeeper source of every format but dubbo may read the
// root, as Kitex registers /<service>/<host:port>; it stays "/".
func TestRootPrefix(t *testing.T) {
	for _, format := range []string{FormatDiscox, FormatCurator, FormatServerset} {
		cfg, err := Load(write(t, "[[source]]\ntype = \"zookeeper\"\nprefix = \"//\"\nformat = \""+format+"\"\n"))
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if got := cfg.Sources[0].Prefix; got != "/" {
			t.Errorf("%s: prefix %q, want /", format, got)
		}
	}
}
