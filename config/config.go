// Package config holds the discodns configuration: the TOML schema, its
// defaults and its validation.
//
// Load reads a file, rejects unknown keys, keys of another source type,
// values of the wrong TOML type and invalid values, and returns a Config
// whose values are defaulted and normalised. Every error is an *Error that
// names the file, the key, the reason and, when known, the line.
//
// The package never reaches the network.
package config

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Source types: the values of Source.Type.
const (
	TypeEtcd      = "etcd"
	TypeConsul    = "consul"
	TypeZooKeeper = "zookeeper"
)

// Data layouts: the values of Source.Format.
const (
	FormatDiscox    = "discox"    // etcd, zookeeper: <prefix>/<service>/<host:port>
	FormatGRPC      = "grpc"      // etcd: go.etcd.io/etcd/client/v3/naming/endpoints
	FormatSkyDNS    = "skydns"    // etcd: CoreDNS etcd plugin records
	FormatNative    = "native"    // consul: the catalog and health API
	FormatCurator   = "curator"   // zookeeper: Apache Curator ServiceInstance JSON
	FormatServerset = "serverset" // zookeeper: Finagle serverset member_* nodes
	FormatDubbo     = "dubbo"     // etcd, zookeeper: <group>/<interface>/providers/<provider URL>
	FormatGoZero    = "gozero"    // etcd: go-zero core/discov, <Etcd.Key>/<lease ID> = host:port
	FormatKratos    = "kratos"    // etcd, zookeeper: Kratos <namespace>/<name>/<id>, ServiceInstance JSON
	FormatGoMicro   = "gomicro"   // etcd: go-micro /micro/registry/<service>/<node>, registry.Service JSON
	FormatRPCX      = "rpcx"      // etcd: rpcx-etcd <base>/<service>/<network>@<host:port>
	FormatKitex     = "kitex"     // etcd: kitex-contrib registry-etcd kitex/registry-etcd/<service>/<host:port>
)

// formatPrefixes is the prefix of each framework's format when the file
// sets none: where the framework writes by default. "" is the whole
// keyspace. rpcx has no default base path.
var formatPrefixes = map[string]string{
	FormatGoZero:  "",
	FormatKratos:  "/microservices",
	FormatGoMicro: "/micro/registry",
	FormatKitex:   "kitex/registry-etcd",
}

// keyPrefixFormats read etcd keys that need not start with "/", since
// their frameworks write them where told (go-zero, Kitex and rpcx-etcd
// put the key they are given as it is).
var keyPrefixFormats = []string{FormatGoZero, FormatRPCX, FormatKitex}

// formats lists the formats each source type accepts; the first is its
// default.
var formats = map[string][]string{
	TypeEtcd: {FormatDiscox, FormatGRPC, FormatSkyDNS, FormatDubbo,
		FormatGoZero, FormatKratos, FormatGoMicro, FormatRPCX, FormatKitex},
	TypeConsul:    {FormatNative},
	TypeZooKeeper: {FormatDiscox, FormatCurator, FormatServerset, FormatDubbo, FormatKratos},
}

// Upper bounds of numeric keys whose range is not given by a protocol.
const (
	maxTCPConnections  = 100000  // dns.max_tcp_connections: one socket and goroutine each
	maxClientRateLimit = 1000000 // dns.client_rate_limit: more than one server answers
	maxCacheSize       = 1000000 // forward.cache_size: about 0.5 GB of responses
)

// sourceTypes lists the source types in the order error messages name them.
var sourceTypes = []string{TypeEtcd, TypeConsul, TypeZooKeeper}

// SourceTypes returns the source types a configuration may name.
func SourceTypes() []string { return slices.Clone(sourceTypes) }

// Config is the whole discodns configuration.
type Config struct {
	// StateFile is where the table is kept on disk, so that a restart
	// while a registry is down serves its last known instances; "" (the
	// default) keeps none. An absolute path whose directory exists.
	StateFile string `toml:"state_file"`
	// DNS is the [dns] table: listeners, zone and answer tuning.
	DNS DNS `toml:"dns"`
	// Forward is the [forward] table: recursion to upstream resolvers.
	Forward Forward `toml:"forward"`
	// HTTP is the [http] table: the admin endpoint.
	HTTP HTTP `toml:"http"`
	// Log is the [log] table.
	Log Log `toml:"log"`
	// Locality is the [locality] table: where this host is.
	Locality Locality `toml:"locality"`
	// Sources are the [[source]] tables, one per registry to mirror, in
	// file order.
	Sources []Source `toml:"source"`
}

// DNS configures the DNS server.
type DNS struct {
	// Listen lists the addresses served over both UDP and TCP, as "IP:port"
	// ("[IPv6]:port"): a literal, specified IP and a port 1-65535; at least
	// one, no duplicates. Validate rewrites each in netip.AddrPort's
	// canonical form, so netip.ParseAddrPort always accepts it afterwards.
	Listen []string `toml:"listen"`
	// Zone is the zone answered from the registries, lowercase and fully
	// qualified (with the trailing dot).
	Zone string `toml:"zone"`
	// TTL is the TTL of positive answers: whole seconds, 0s to 24h.
	TTL time.Duration `toml:"ttl"`
	// NegativeTTL is the SOA minimum, the TTL of NXDOMAIN and NODATA
	// answers: whole seconds, 0s to 24h.
	NegativeTTL time.Duration `toml:"negative_ttl"`
	// TCPIdleTimeout closes TCP connections idle this long (RFC 7766); 1s
	// to 1h.
	TCPIdleTimeout time.Duration `toml:"tcp_idle_timeout"`
	// MaxTCPConnections caps concurrent TCP connections; 1 to 100000.
	MaxTCPConnections int `toml:"max_tcp_connections"`
	// MaxTCPConnectionsPerClient caps the concurrent TCP connections of
	// one client address (IPv6 by /64); 1 to 100000.
	MaxTCPConnectionsPerClient int `toml:"max_tcp_connections_per_client"`
	// Sockets is the number of UDP sockets bound to each listen address
	// (SO_REUSEPORT), each read by a fixed pool of workers; 0 to 256, 0
	// meaning one per core (GOMAXPROCS).
	Sockets int `toml:"sockets"`
	// UDPSize is the largest UDP answer, advertised and accepted with EDNS;
	// 512 to 4096.
	UDPSize int `toml:"udp_size"`
	// ClientRateLimit bounds the queries per second of each client address
	// (IPv6 by /64); 0 means no limit, else up to 1000000.
	// ClientRateLimitUnset, the default, leaves the choice to RateLimit.
	ClientRateLimit int `toml:"client_rate_limit"`
	// ClientRateLimitClients bounds the clients the rate limiter tracks,
	// about 100 bytes each: past it, a new client takes the place of the
	// one heard from least recently. 1 to 10,000,000.
	ClientRateLimitClients int `toml:"client_rate_limit_clients"`
	// StartupWait is how long to wait at start for every source to list
	// before answering (an answer from an empty table would be NXDOMAIN
	// for services that exist); 0s to 1h.
	StartupWait time.Duration `toml:"startup_wait"`
}

// ClientRateLimitUnset is DNS.ClientRateLimit when no value is set.
const ClientRateLimitUnset = -1

// DefaultClientRateLimit is the per-client rate limit, in queries per
// second, of a server that listens beyond loopback and sets none. A busy
// host's resolver stays well under it (a stub asks a few names per
// connection it opens, and caches or retries in seconds), while the bytes
// a spoofed source can make discodns send a victim are bounded: at most
// this many answers a second, half of them empty (see dnsserver's slip).
const DefaultClientRateLimit = 1000

// RateLimit returns the per-client rate limit in force, 0 for none, and
// whether it is a default rather than set: ClientRateLimit when set; else
// DefaultClientRateLimit when a listen address is not loopback (anyone
// could spoof a victim's address to it), and no limit otherwise.
func (d *DNS) RateLimit() (limit int, defaulted bool) {
	switch {
	case d.ClientRateLimit != ClientRateLimitUnset:
		return d.ClientRateLimit, false
	case d.BeyondLoopback():
		return DefaultClientRateLimit, true
	}
	return 0, true
}

// BeyondLoopback reports whether a listen address is not loopback.
func (d *DNS) BeyondLoopback() bool {
	return slices.ContainsFunc(d.Listen, func(l string) bool { return !loopback(l) })
}

// BeyondLoopback reports whether the admin endpoint listens on more than
// loopback (an empty or wildcard host is every address).
func (h *HTTP) BeyondLoopback() bool { return h.Listen != "" && !loopback(h.Listen) }

// loopback reports whether host:port names a loopback address (or
// "localhost").
func loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// Forward configures forwarding of names outside the zones.
type Forward struct {
	// Upstreams are the resolvers to forward to, in the same "IP:port" form
	// as DNS.Listen, canonical after Validate; empty turns forwarding off.
	Upstreams []string `toml:"upstreams"`
	// ResolvConf is a resolv.conf file whose nameserver lines (port 53)
	// become the upstreams, such as /run/systemd/resolve/resolv.conf; a
	// file may not set both. Validate reads it and sets Upstreams, again
	// at each call.
	ResolvConf string `toml:"resolv_conf"`
	// Allow lists the client networks allowed to use forwarding, masked
	// (host bits cleared).
	Allow []netip.Prefix `toml:"allow"`
	// Timeout bounds each attempt at one upstream; 10ms to 10s.
	Timeout time.Duration `toml:"timeout"`
	// CacheSize is the number of responses cached, up to 1000000; 0 turns
	// the cache off.
	CacheSize int `toml:"cache_size"`
	// MaxStale is how long past its expiry a cached response may still be
	// served when every upstream fails (RFC 8767), up to 7 days; 0 never
	// serves stale.
	MaxStale time.Duration `toml:"max_stale"`
	// MaxInFlight caps the forwarded queries waiting on upstreams at once,
	// and so the goroutines and sockets they hold; a query over it is
	// answered stale, or SERVFAIL at once. 1 to MaxForwardInFlight.
	MaxInFlight int `toml:"max_in_flight"`
}

// MaxForwardInFlight is the largest forward.max_in_flight: every query in
// flight may hold a UDP socket, and the ephemeral port range (32768-60999
// on Linux) holds about 28,000.
const MaxForwardInFlight = 20000

// HTTP configures the admin HTTP endpoint (metrics, health, status).
type HTTP struct {
	// Listen is the host:port to serve on; "" disables the endpoint.
	Listen string `toml:"listen"`
}

// Log configures logging.
type Log struct {
	// Level is "debug", "info", "warn" or "error".
	Level string `toml:"level"`
	// Format is "text" or "json".
	Format string `toml:"format"`
}

// NewLogger returns a logger writing to w at this level and format.
func (l Log) NewLogger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: l.SlogLevel()}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// SlogLevel returns Level as a slog.Level (info when Level is not one of
// the four names).
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Source configures one registry to mirror. Which keys apply depends on
// Type; the `source` struct tag lists the types a key belongs to (none:
// every type), and a key of another type is an error in a file.
type Source struct {
	// Name identifies the source in logs, metrics and answers; unique.
	// Validate defaults it to Type.
	Name string `toml:"name"`
	// Type is TypeEtcd, TypeConsul or TypeZooKeeper.
	Type string `toml:"type"`
	// Zone is the zone this source's services appear in, normalised like
	// DNS.Zone. Validate defaults it to DNS.Zone.
	Zone string `toml:"zone"`
	// Format is the data layout to decode; see the Format constants.
	Format string `toml:"format"`

	// Endpoints are the etcd members: host:port or http(s)://host:port.
	Endpoints []string `toml:"endpoints" source:"etcd"`
	// Prefix is the key (etcd) or znode (zookeeper) under which services
	// are registered; it starts with "/" and has no trailing "/". The root
	// "/" itself is allowed only for a zookeeper source of a format other
	// than dubbo (Kitex writes /<service>/<host:port>). etcd formats
	// gozero, rpcx and kitex take a key prefix without the leading "/"
	// too, and gozero "" for the whole keyspace. Unset, a framework's
	// format reads where the framework writes (formatPrefixes).
	Prefix string `toml:"prefix" source:"etcd,zookeeper"`
	// Username and Password authenticate to etcd; both or neither.
	Username string `toml:"username" source:"etcd"`
	// Password is the etcd password.
	Password Secret `toml:"password" source:"etcd"`
	// DialTimeout bounds connecting to etcd; 100ms to 1m.
	DialTimeout time.Duration `toml:"dial_timeout" source:"etcd"`
	// ResyncInterval is the period of the full re-list that repairs lost
	// watch events; 1s to 24h.
	ResyncInterval time.Duration `toml:"resync_interval" source:"etcd,consul"`

	// Address is the Consul agent: host:port or http(s)://host:port.
	Address string `toml:"address" source:"consul"`
	// Datacenter is the Consul datacenter; "" means the agent's.
	Datacenter string `toml:"datacenter" source:"consul"`
	// Token is the Consul ACL token.
	Token Secret `toml:"token" source:"consul"`
	// CAFile is a PEM file of CAs to verify the Consul agent with.
	CAFile string `toml:"ca_file" source:"consul"`
	// CertFile and KeyFile are the client certificate; both or neither.
	CertFile string `toml:"cert_file" source:"consul"`
	// KeyFile is the client certificate's private key.
	KeyFile string `toml:"key_file" source:"consul"`
	// IncludeWarning keeps instances whose health is warning (critical and
	// maintenance instances are always left out).
	IncludeWarning bool `toml:"include_warning" source:"consul"`
	// Tags, when not empty, keeps only instances carrying one of them.
	Tags []string `toml:"tags" source:"consul"`
	// MaxConnections bounds the HTTP connections to the Consul agent (two
	// long-lived blocking queries, one per watched service up to
	// MaxConnections-3, and the workers that fetch changed services); 3 to
	// 1000. An agent allows 200 per client address by default, shared by
	// every local client. What a change costs the servers does not grow
	// with the nodes while it is at least the services + 3. Over HTTPS
	// (HTTP/2) a connection carries up to 100 blocking queries, so
	// (MaxConnections-3) × 100 services are watched.
	MaxConnections int `toml:"max_connections" source:"consul"`
	// RateLimit bounds the requests per second to the Consul agent; 1 to
	// 100000.
	RateLimit int `toml:"rate_limit" source:"consul"`

	// Servers are the ZooKeeper servers, host:port.
	Servers []string `toml:"servers" source:"zookeeper"`
	// SessionTimeout is the ZooKeeper session timeout; 1s to 10m (the
	// server narrows it to its own bounds).
	SessionTimeout time.Duration `toml:"session_timeout" source:"zookeeper"`
	// Auth is the ZooKeeper digest credential "user:password".
	Auth Secret `toml:"auth" source:"zookeeper"`

	// ZoneKeys are the metadata keys that give an instance's zone, the
	// first one set winning; each is looked up in the instance's metadata,
	// then in its node's (Consul node meta). At most 16, each printable
	// ASCII without spaces; empty: the source's instances have no zone.
	ZoneKeys []string `toml:"zone_keys"`
	// RegionKeys are the metadata keys that give an instance's region,
	// like ZoneKeys.
	RegionKeys []string `toml:"region_keys"`
}

// Default returns the default configuration: DNS on 127.0.0.1:8053 for
// svc.internal., no forwarding upstreams, admin HTTP on 127.0.0.1:9153,
// info text logs and no sources.
func Default() *Config {
	return &Config{
		DNS: DNS{
			Listen:            []string{"127.0.0.1:8053"},
			Zone:              "svc.internal.",
			TTL:               5 * time.Second,
			NegativeTTL:       5 * time.Second,
			TCPIdleTimeout:    10 * time.Second,
			MaxTCPConnections: 1000,
			UDPSize:           1232,
			ClientRateLimit:   ClientRateLimitUnset,
			StartupWait:       10 * time.Second,

			ClientRateLimitClients: 100000,
			// A stub resolver holds one connection, a caching resolver
			// or proxy a few; 32 leaves a busy host room while one
			// address alone fills at most a thirtieth of the default
			// total.
			MaxTCPConnectionsPerClient: 32,
		},
		Forward: Forward{
			Upstreams: []string{},
			Allow: []netip.Prefix{
				netip.MustParsePrefix("127.0.0.0/8"),
				netip.MustParsePrefix("::1/128"),
			},
			Timeout:     2 * time.Second,
			CacheSize:   10000,
			MaxStale:    24 * time.Hour,
			MaxInFlight: 1000,
		},
		HTTP:     HTTP{Listen: "127.0.0.1:9153"},
		Log:      Log{Level: "info", Format: "text"},
		Locality: Locality{MinLocal: MinLocal{Fraction: 0.25}},
	}
}

// DefaultSource returns a Source of the given type with that type's
// defaults; Name and Zone stay empty for Validate to fill in. For an
// unknown type it returns a Source with only Type set.
func DefaultSource(typ string) Source {
	s := Source{Type: typ, ZoneKeys: slices.Clone(defaultZoneKeys), RegionKeys: slices.Clone(defaultRegionKeys)}
	switch typ {
	case TypeEtcd:
		s.Endpoints = []string{"127.0.0.1:2379"}
		s.Prefix = "/services"
		s.DialTimeout = 5 * time.Second
		s.ResyncInterval = 5 * time.Minute
	case TypeConsul:
		s.Address = "127.0.0.1:8500"
		s.IncludeWarning = true
		s.ResyncInterval = 5 * time.Minute
		s.MaxConnections = 64
		s.RateLimit = 200
	case TypeZooKeeper:
		s.Servers = []string{"127.0.0.1:2181"}
		s.Prefix = "/services"
		s.SessionTimeout = 10 * time.Second
	}
	if f := formats[typ]; len(f) > 0 {
		s.Format = f[0]
	}
	return s
}

// Secret is a credential. It prints, logs and marshals as "[redacted]"
// (or "" when empty) so it cannot leak through fmt, slog or encoders; use
// string(s) to get the value.
type Secret string

const redacted = "[redacted]"

func (s Secret) shown() string {
	if s == "" {
		return ""
	}
	return redacted
}

// String returns "[redacted]", or "" when the secret is empty.
func (s Secret) String() string { return s.shown() }

// Format makes every fmt verb print the redacted form.
func (s Secret) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.shown()) }

// MarshalText returns the redacted form.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.shown()), nil }

// LogValue returns the redacted form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.shown()) }

// LogValue summarises the configuration for slog without any secret.
func (c Config) LogValue() slog.Value {
	srcs := make([]slog.Attr, len(c.Sources))
	for i, s := range c.Sources {
		srcs[i] = slog.Any(fmt.Sprint(i), s)
	}
	return slog.GroupValue(
		slog.String("state_file", c.StateFile),
		slog.Group("dns",
			slog.Any("listen", c.DNS.Listen),
			slog.String("zone", c.DNS.Zone),
			slog.Duration("ttl", c.DNS.TTL),
			slog.Duration("negative_ttl", c.DNS.NegativeTTL),
			slog.Duration("tcp_idle_timeout", c.DNS.TCPIdleTimeout),
			slog.Int("max_tcp_connections", c.DNS.MaxTCPConnections),
			slog.Int("max_tcp_connections_per_client", c.DNS.MaxTCPConnectionsPerClient),
			slog.Int("sockets", c.DNS.Sockets),
			slog.Int("udp_size", c.DNS.UDPSize),
			slog.Int("client_rate_limit_clients", c.DNS.ClientRateLimitClients)),
		slog.Group("forward",
			slog.Any("upstreams", c.Forward.Upstreams),
			slog.Any("allow", c.Forward.Allow),
			slog.Duration("timeout", c.Forward.Timeout),
			slog.Int("max_in_flight", c.Forward.MaxInFlight)),
		slog.Group("http", slog.String("listen", c.HTTP.Listen)),
		slog.Group("log", slog.String("level", c.Log.Level), slog.String("format", c.Log.Format)),
		slog.Any("locality", c.Locality),
		slog.Attr{Key: "source", Value: slog.GroupValue(srcs...)},
	)
}

// LogValue summarises the source for slog: the keys of its type, with
// secrets shown as "[redacted]" when set.
func (s Source) LogValue() slog.Value {
	a := []slog.Attr{
		slog.String("name", s.Name),
		slog.String("type", s.Type),
		slog.String("zone", s.Zone),
		slog.String("format", s.Format),
		slog.Any("zone_keys", s.ZoneKeys),
		slog.Any("region_keys", s.RegionKeys),
	}
	switch s.Type {
	case TypeEtcd:
		a = append(a,
			slog.Any("endpoints", s.Endpoints),
			slog.String("prefix", s.Prefix),
			slog.String("username", s.Username),
			slog.String("password", s.Password.shown()),
			slog.Duration("dial_timeout", s.DialTimeout),
			slog.Duration("resync_interval", s.ResyncInterval))
	case TypeConsul:
		a = append(a,
			slog.String("address", s.Address),
			slog.String("datacenter", s.Datacenter),
			slog.String("token", s.Token.shown()),
			slog.String("ca_file", s.CAFile),
			slog.String("cert_file", s.CertFile),
			slog.String("key_file", s.KeyFile),
			slog.Bool("include_warning", s.IncludeWarning),
			slog.Any("tags", s.Tags),
			slog.Duration("resync_interval", s.ResyncInterval),
			slog.Int("max_connections", s.MaxConnections),
			slog.Int("rate_limit", s.RateLimit))
	case TypeZooKeeper:
		a = append(a,
			slog.Any("servers", s.Servers),
			slog.String("prefix", s.Prefix),
			slog.Duration("session_timeout", s.SessionTimeout),
			slog.String("auth", s.Auth.shown()))
	}
	return slog.GroupValue(a...)
}
