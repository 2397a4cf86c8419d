package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"
)

// Error is a configuration problem. Its message reads
//
//	config FILE: KEY: REASON (line N)
//
// leaving out the parts that are not known. It never contains a secret.
type Error struct {
	// File is the configuration file; "" for a Config validated in memory.
	File string
	// Line is the line of the key in File; 0 when unknown.
	Line int
	// Key names the key, such as `dns.ttl` or `source[1] ("consul").format`;
	// "" when the problem is not about one key.
	Key string
	// Err is the reason.
	Err error

	path string // key path into the lines recorded by Load
}

// Error formats the problem.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config")
	if e.File != "" {
		b.WriteString(" " + e.File)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Err.Error())
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

// Unwrap returns the reason.
func (e *Error) Unwrap() error { return e.Err }

// keyErr returns an *Error about key (of a table, such as "dns.ttl").
func keyErr(key string, err error) *Error {
	return &Error{Key: key, path: key, Err: err}
}

// srcLabel names source i for messages: `source[1] ("consul")`, or
// `source[1]` when it has neither name nor type.
func srcLabel(i int, name, typ string) string {
	if name == "" {
		name = typ
	}
	if name == "" {
		return fmt.Sprintf("source[%d]", i)
	}
	return fmt.Sprintf("source[%d] (%q)", i, name)
}

// srcErr returns an *Error about key of source i ("" for the whole source).
func srcErr(i int, label, key string, err error) *Error {
	e := &Error{Key: label, path: "source." + strconv.Itoa(i), Err: err}
	if key != "" {
		e.Key += "." + key
		e.path += "." + key
	}
	return e
}

// Validate checks c, which must serve something (have a source, or
// forward), and normalises it on the way: zones become lowercase and
// fully qualified, prefixes lose their trailing "/", allowed networks are
// masked, an empty source name becomes the source type and an empty
// source zone becomes DNS.Zone. It returns nil or an *Error for the first
// problem. Per-type source defaults are not filled in: start sources from
// DefaultSource.
func (c *Config) Validate() error {
	if e := c.validate(); e != nil {
		return e
	}
	return nil
}

func (c *Config) validate() *Error {
	d := &c.DNS
	if len(d.Listen) == 0 {
		return keyErr("dns.listen", errors.New("must list at least one address"))
	}
	if err := checkAddrs(d.Listen); err != nil {
		return keyErr("dns.listen", err)
	}
	z, err := normaliseZone(d.Zone)
	if err == nil {
		err = checkZoneScope(z)
	}
	if err != nil {
		return keyErr("dns.zone", err)
	}
	d.Zone = z
	if err := checkTTL(d.TTL); err != nil {
		return keyErr("dns.ttl", err)
	}
	if err := checkTTL(d.NegativeTTL); err != nil {
		return keyErr("dns.negative_ttl", err)
	}
	if err := inRange(d.TCPIdleTimeout, time.Second, time.Hour); err != nil {
		return keyErr("dns.tcp_idle_timeout", err)
	}
	if err := inRange(d.MaxTCPConnections, 1, maxTCPConnections); err != nil {
		return keyErr("dns.max_tcp_connections", err)
	}
	if err := inRange(d.MaxTCPConnectionsPerClient, 1, maxTCPConnections); err != nil {
		return keyErr("dns.max_tcp_connections_per_client", err)
	}
	if err := inRange(d.Sockets, 0, 256); err != nil {
		return keyErr("dns.sockets", err)
	}
	if err := inRange(d.UDPSize, 512, 4096); err != nil {
		return keyErr("dns.udp_size", err)
	}
	if err := inRange(d.StartupWait, 0, time.Hour); err != nil {
		return keyErr("dns.startup_wait", err)
	}
	if d.ClientRateLimit != ClientRateLimitUnset {
		if err := checkClientRateLimit(d.ClientRateLimit); err != nil {
			return keyErr("dns.client_rate_limit", err)
		}
	}
	if err := inRange(d.ClientRateLimitClients, 1, 10_000_000); err != nil {
		return keyErr("dns.client_rate_limit_clients", err)
	}

	f := &c.Forward
	if err := checkAddrs(f.Upstreams); err != nil {
		return keyErr("forward.upstreams", err)
	}
	upstreamsKey := "forward.upstreams"
	if f.ResolvConf != "" {
		ups, err := ResolvConfServers(f.ResolvConf)
		if err != nil {
			return keyErr("forward.resolv_conf", err)
		}
		f.Upstreams = ups
		upstreamsKey = "forward.resolv_conf"
	}
	if err := checkLoop(f.Upstreams, d.Listen); err != nil {
		if f.ResolvConf != "" {
			err = fmt.Errorf("%w; point it at a file that lists the real upstreams (behind systemd-resolved, /run/systemd/resolve/resolv.conf)", err)
		}
		return keyErr(upstreamsKey, err)
	}
	if err := inRange(f.CacheSize, 0, maxCacheSize); err != nil {
		return keyErr("forward.cache_size", fmt.Errorf("%w (0: no cache)", err))
	}
	if err := inRange(f.MaxStale, 0, 7*24*time.Hour); err != nil {
		return keyErr("forward.max_stale", fmt.Errorf("%w (0s: never stale; RFC 8767 suggests 1 to 3 days)", err))
	}
	for i, p := range f.Allow {
		if !p.IsValid() {
			return keyErr("forward.allow", errors.New("invalid network (want CIDR such as 10.0.0.0/8)"))
		}
		f.Allow[i] = p.Masked()
	}
	if err := inRange(f.Timeout, 10*time.Millisecond, 10*time.Second); err != nil {
		return keyErr("forward.timeout", err)
	}
	if err := inRange(f.MaxInFlight, 1, MaxForwardInFlight); err != nil {
		return keyErr("forward.max_in_flight", err)
	}

	if c.HTTP.Listen != "" {
		if err := checkHostPort(c.HTTP.Listen, false, true); err != nil {
			return keyErr("http.listen", err)
		}
	}
	if c.StateFile != "" {
		if err := checkStateFile(c.StateFile); err != nil {
			return keyErr("state_file", err)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return keyErr("log.level", fmt.Errorf("unknown level %q (want debug, info, warn or error)", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return keyErr("log.format", fmt.Errorf("unknown format %q (want text or json)", c.Log.Format))
	}

	if e := c.Locality.validate(); e != nil {
		return e
	}

	names := map[string]int{}
	for i := range c.Sources {
		s := &c.Sources[i]
		if e := s.validate(i, d.Zone); e != nil {
			return e
		}
		if j, dup := names[s.Name]; dup {
			return srcErr(i, srcLabel(i, s.Name, s.Type), "name",
				fmt.Errorf("duplicate name %q, also used by source[%d]; give each source its own name", s.Name, j))
		}
		names[s.Name] = i
	}
	if e := c.checkNesting(); e != nil {
		return e
	}
	if len(c.Sources) == 0 && len(f.Upstreams) == 0 {
		return &Error{Err: errors.New("serves nothing: no [[source]] and no forwarding (forward.upstreams or forward.resolv_conf), so every name would be NXDOMAIN or REFUSED (an empty or half-written file?); add a [[source]] table, or upstreams to forward to")}
	}
	return nil
}

// checkNesting refuses a zone strictly inside another, comparing dns.zone
// and every source's zone pairwise; equal zones are fine (sources share
// one). Names under the inner zone would be answered by one and denied by
// the other: SRV targets in one are NXDOMAIN in the other.
func (c *Config) checkNesting() *Error {
	type zone struct {
		name, key string
		fail      func(error) *Error
	}
	zones := []zone{{c.DNS.Zone, "dns.zone", func(err error) *Error { return keyErr("dns.zone", err) }}}
	for i, s := range c.Sources {
		label := srcLabel(i, s.Name, s.Type)
		zones = append(zones, zone{s.Zone, label + ".zone", func(err error) *Error { return srcErr(i, label, "zone", err) }})
	}
	for i, a := range zones {
		for _, b := range zones[:i] {
			inner, outer := a, b
			if strings.HasSuffix(b.name, "."+a.name) {
				inner, outer = b, a
			} else if !strings.HasSuffix(a.name, "."+b.name) {
				continue
			}
			return a.fail(fmt.Errorf("zone %q (%s) is inside zone %q (%s): nested zones are refused, since the inner one's names would be answered by one zone and NXDOMAIN in the other; use equal zones or zones side by side (svc.internal. and consul.internal., for instance)",
				inner.name, inner.key, outer.name, outer.key))
		}
	}
	return nil
}

// validate checks and normalises source i; zone is the DNS zone.
func (s *Source) validate(i int, zone string) *Error {
	if err := checkType(s.Type); err != nil {
		return srcErr(i, srcLabel(i, s.Name, ""), "type", err)
	}
	if s.Name == "" {
		s.Name = s.Type
	}
	label := srcLabel(i, s.Name, s.Type)
	fail := func(key string, err error) *Error { return srcErr(i, label, key, err) }

	if s.Zone == "" {
		s.Zone = zone
	} else {
		z, err := normaliseZone(s.Zone)
		if err == nil {
			err = checkZoneScope(z)
		}
		if err != nil {
			return fail("zone", err)
		}
		s.Zone = z
	}
	if want := formats[s.Type]; !slices.Contains(want, s.Format) {
		return fail("format", fmt.Errorf("unknown format %q for type %s (want %s)", s.Format, s.Type, oneOf(want)))
	}
	if err := checkLocalityKeys(s.ZoneKeys); err != nil {
		return fail("zone_keys", err)
	}
	if err := checkLocalityKeys(s.RegionKeys); err != nil {
		return fail("region_keys", err)
	}

	switch s.Type {
	case TypeEtcd:
		if len(s.Endpoints) == 0 {
			return fail("endpoints", errors.New("must list at least one endpoint"))
		}
		for _, ep := range s.Endpoints {
			if err := checkHostPort(ep, true, false); err != nil {
				return fail("endpoints", err)
			}
		}
		p, err := etcdPrefix(s.Format, s.Prefix)
		if err != nil {
			return fail("prefix", err)
		}
		s.Prefix = p
		if s.Username == "" && s.Password != "" {
			return fail("password", errors.New("set without username"))
		}
		if s.Username != "" && s.Password == "" {
			return fail("username", errors.New("set without password"))
		}
		if err := inRange(s.DialTimeout, 100*time.Millisecond, time.Minute); err != nil {
			return fail("dial_timeout", err)
		}
		if err := checkResync(s.ResyncInterval); err != nil {
			return fail("resync_interval", err)
		}
	case TypeConsul:
		if err := checkHostPort(s.Address, true, false); err != nil {
			return fail("address", err)
		}
		if s.CertFile != "" && s.KeyFile == "" {
			return fail("cert_file", errors.New("set without key_file; the two go together"))
		}
		if s.KeyFile != "" && s.CertFile == "" {
			return fail("key_file", errors.New("set without cert_file; the two go together"))
		}
		for _, t := range s.Tags {
			if t == "" {
				return fail("tags", errors.New("empty tag"))
			}
		}
		if err := checkResync(s.ResyncInterval); err != nil {
			return fail("resync_interval", err)
		}
		if err := inRange(s.MaxConnections, 3, 1000); err != nil {
			return fail("max_connections", fmt.Errorf("%w (two blocking queries and at least one worker)", err))
		}
		if err := inRange(s.RateLimit, 1, 100000); err != nil {
			return fail("rate_limit", fmt.Errorf("%w requests per second", err))
		}
	case TypeZooKeeper:
		if len(s.Servers) == 0 {
			return fail("servers", errors.New("must list at least one server"))
		}
		for _, sv := range s.Servers {
			if err := checkHostPort(sv, false, false); err != nil {
				return fail("servers", err)
			}
		}
		p, err := normalisePrefix(s.Prefix, s.Format != FormatDubbo)
		if err != nil {
			return fail("prefix", err)
		}
		s.Prefix = p
		if err := inRange(s.SessionTimeout, time.Second, 10*time.Minute); err != nil {
			return fail("session_timeout", err)
		}
		if s.Auth != "" {
			if u, _, ok := strings.Cut(string(s.Auth), ":"); !ok || u == "" {
				return fail("auth", errors.New(`must be a digest credential "user:password"`))
			}
		}
	}
	return nil
}

func checkType(typ string) error {
	if typ == "" {
		return fmt.Errorf("missing (want %s)", oneOf(sourceTypes))
	}
	if !slices.Contains(sourceTypes, typ) {
		return fmt.Errorf("unknown type %q (want %s)", typ, oneOf(sourceTypes))
	}
	return nil
}

// inRange accepts lo <= v <= hi; its error states the range, such as
// "must be 1s to 1h, got 1ns".
func inRange[T int | time.Duration](v, lo, hi T) error {
	if v < lo || v > hi {
		return fmt.Errorf("must be %s to %s, got %s", show(lo), show(hi), show(v))
	}
	return nil
}

// show prints a number, or a duration the way one is written ("1h", not
// "1h0m0s").
func show[T int | time.Duration](v T) string {
	d, ok := any(v).(time.Duration)
	if !ok {
		return strconv.Itoa(int(v))
	}
	s := d.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

func checkClientRateLimit(n int) error {
	if err := inRange(n, 0, maxClientRateLimit); err != nil {
		return fmt.Errorf("%w (0: no limit)", err)
	}
	return nil
}

// checkResync accepts a re-list period: often enough to matter, rarely
// enough not to load the registry.
func checkResync(d time.Duration) error { return inRange(d, time.Second, 24*time.Hour) }

// checkTTL accepts whole seconds from 0 to 24h.
func checkTTL(d time.Duration) error {
	if err := inRange(d, 0, 24*time.Hour); err != nil {
		return err
	}
	if d%time.Second != 0 {
		return fmt.Errorf("must be whole seconds (DNS TTLs count seconds), got %s", d)
	}
	return nil
}

// checkAddrs checks addresses to bind or send to, "IP:port" with
// specified IPs, ports 1-65535 and no duplicates, and rewrites them in
// canonical form, IPv4-mapped IPv6 addresses as IPv4.
func checkAddrs(addrs []string) error {
	seen := map[netip.AddrPort]string{}
	for i, s := range addrs {
		ap, err := parseAddrPort(s)
		if err != nil {
			return err
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if ap.Addr().IsUnspecified() {
			return fmt.Errorf("%q: unspecified address; use an exact IP, since a wildcard bind answers from the wrong source address and resolvers drop those answers", s)
		}
		if prev, dup := seen[ap]; dup {
			if prev != s {
				return fmt.Errorf("%q: listed twice (also as %q)", s, prev)
			}
			return fmt.Errorf("%q: listed twice", s)
		}
		seen[ap] = s
		addrs[i] = ap.String()
	}
	return nil
}

// checkLoop refuses an upstream that is one of the listen addresses, both
// canonical: the same IP and port, however spelt, whatever the IPv6 zone.
func checkLoop(upstreams, listen []string) error {
	key := func(s string) netip.AddrPort {
		ap, _ := netip.ParseAddrPort(s)
		return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
	}
	for _, up := range upstreams {
		for _, l := range listen {
			if key(up) == key(l) {
				return fmt.Errorf("%s is one of dns.listen: discodns would forward to itself (a loop)", up)
			}
		}
	}
	return nil
}

// parseAddrPort parses "IP:port" ("[IPv6]:port") with a literal IP.
func parseAddrPort(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: want IP:port: %w", s, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		if strings.Trim(strings.ToLower(host), "0123456789abcdef.:") == "" {
			return netip.AddrPort{}, fmt.Errorf("%q: %q is not a valid IP address: %w", s, host, err)
		}
		return netip.AddrPort{}, fmt.Errorf("%q: %q is not an IP address (want a literal IP, not a host name: discodns resolves no name to find its own addresses)", s, host)
	}
	n, err := parsePort(port)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: %w", s, err)
	}
	return netip.AddrPortFrom(ip, n), nil
}

func parsePort(p string) (uint16, error) {
	n, err := strconv.ParseUint(p, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q must be 1-65535", p)
	}
	return uint16(n), nil
}

// checkHostPort checks host:port, or http(s)://host:port when schemes is
// set. emptyHost allows ":port". A value with "@" may carry credentials,
// so messages about it do not repeat it.
func checkHostPort(s string, schemes, emptyHost bool) error {
	if strings.Contains(s, "@") {
		return errors.New("must not contain credentials (\"@\"); use the credential keys")
	}
	hp := s
	if schemes && strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("%q: %w", s, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return fmt.Errorf("%q: scheme must be http or https", s)
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("%q: want scheme://host:port with no path", s)
		}
		hp = u.Host
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		want := "host:port"
		if schemes {
			want = "host:port or http(s)://host:port"
		}
		return fmt.Errorf("%q: want %s: %w", s, want, err)
	}
	if host == "" && !emptyHost {
		return fmt.Errorf("%q: missing host", s)
	}
	if _, err := parsePort(port); err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	return nil
}

// normaliseZone returns zone lowercase and fully qualified, or why it is
// not a valid domain name.
func normaliseZone(zone string) (string, error) {
	z := strings.ToLower(zone)
	if z == "" {
		return "", errors.New("must not be empty")
	}
	if z == "." {
		return "", errors.New(`must not be the root zone "."`)
	}
	z = strings.TrimSuffix(z, ".")
	if len(z)+1 > 254 {
		return "", fmt.Errorf("%q is longer than 253 characters", zone)
	}
	for _, l := range strings.Split(z, ".") {
		switch {
		case l == "":
			return "", fmt.Errorf("%q has an empty label", zone)
		case len(l) > 63:
			return "", fmt.Errorf("%q has a label of %d characters, over the limit of 63", zone, len(l))
		case l[0] == '-' || l[len(l)-1] == '-':
			return "", fmt.Errorf("%q: label %q starts or ends with '-'", zone, l)
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return "", fmt.Errorf("%q: label %q has %q (want letters, digits, '-' or '_')", zone, l, r)
			}
		}
	}
	return z + ".", nil
}

// checkZoneScope refuses a zone, normalised, that would shadow names it
// does not own: discodns answers every name in its zones itself (NXDOMAIN
// for what no registry holds) and never forwards them.
func checkZoneScope(zone string) error {
	name := strings.TrimSuffix(zone, ".")
	rest, tld := "", name
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		rest, tld = name[:i], name[i+1:]
	}
	if why := specialUse(tld); why != "" {
		return fmt.Errorf("%q is at or under %s., %s", zone, tld, why)
	}
	if tld == "arpa" {
		if rest == "home" || strings.HasSuffix(rest, ".home") {
			return nil
		}
		return fmt.Errorf("%q is at or under arpa., the tree of reverse lookups (in-addr.arpa., ip6.arpa.): discodns would answer NXDOMAIN there and break them; of arpa. only home.arpa. (RFC 8375) and the names under it may be zones", zone)
	}
	// A public suffix (com., co.uk., github.io.) holds other people's
	// names. A single label the list does not know (internal., consul.,
	// corp.) falls to its default rule and is not one.
	if suffix, icann := publicsuffix.PublicSuffix(name); suffix == name && (icann || strings.Contains(name, ".")) {
		return fmt.Errorf("%q is a public suffix (a top-level domain or a registry's domain, as the Public Suffix List has it): discodns would answer NXDOMAIN for every name under it, public ones included; use a name under a domain you own, or under internal. (reserved for private use): svc.internal., for instance", zone)
	}
	return nil
}

// specialUse says why a zone may not be a special-use top-level domain or
// under it, or returns "" for any other name.
func specialUse(tld string) string {
	switch tld {
	case "localhost":
		return "whose names are the loopback address (RFC 6761)"
	case "invalid":
		return "whose names never exist (RFC 6761)"
	case "local":
		return "whose names belong to multicast DNS (RFC 6762): stub resolvers do not ask a DNS server for them"
	case "onion":
		return "whose names are Tor's (RFC 7686)"
	case "alt":
		return "whose names are resolved outside DNS (RFC 9476)"
	}
	return ""
}

// normalisePrefix checks a registry path and trims its trailing "/". The
// root, "/", is refused unless rootOK: only a ZooKeeper source reads it,
// skipping ZooKeeper's own /zookeeper, and not for the dubbo layout, whose
// prefix is a group's root such as /dubbo.
func normalisePrefix(p string, rootOK bool) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%q must start with \"/\"", p)
	}
	t := strings.TrimRight(p, "/")
	if t == "" && rootOK {
		return "/", nil
	}
	if t == "" {
		return "", fmt.Errorf("%q: the root is allowed only for a zookeeper source of format discox, curator or serverset; use a prefix such as \"/services\" (\"/dubbo\" for format dubbo)", p)
	}
	if strings.Contains(t, "//") {
		return "", fmt.Errorf("%q has an empty path segment", p)
	}
	return t, nil
}

// etcdPrefix checks an etcd source's prefix for its format: a path as
// normalisePrefix wants it; for the keyPrefixFormats also a key prefix
// without the leading "/", and for gozero "" (the whole keyspace).
func etcdPrefix(format, p string) (string, error) {
	keyPrefix := slices.Contains(keyPrefixFormats, format)
	switch {
	case p == "" && format == FormatGoZero:
		return "", nil
	case p == "" && keyPrefix:
		return "", fmt.Errorf("empty; format %s needs the key prefix its services are registered under", format)
	case !keyPrefix || strings.HasPrefix(p, "/"):
		t, err := normalisePrefix(p, false)
		if err != nil && !strings.HasPrefix(p, "/") {
			err = fmt.Errorf("%w (only formats %s read keys without it)", err, oneOf(keyPrefixFormats))
		}
		return t, err
	}
	t, err := normalisePrefix("/"+p, false)
	if err != nil {
		return "", fmt.Errorf("key prefix %q: %w", p, err)
	}
	return t[1:], nil
}

// oneOf renders choices as "a", "a or b", "a, b or c".
func oneOf(choices []string) string {
	if len(choices) < 2 {
		return strings.Join(choices, "")
	}
	return strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
}

// maxResolvConf bounds the size of a resolv.conf; real ones are a few
// hundred bytes.
const maxResolvConf = 64 << 10

// readSmallFile reads a regular file of at most limit bytes: a device, a
// pipe or a huge file (resolv_conf = "/dev/zero") is an error, not a hang.
func readSmallFile(path string, limit int64) ([]byte, error) {
	// Before opening it: opening a named pipe waits for a writer.
	if fi, err := os.Stat(path); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// ResolvConfServers returns the nameservers of a resolv.conf file as
// "IP:53" (IPv6 in brackets), in file order. Link-local IPv6 addresses
// keep their zone.
func ResolvConfServers(path string) ([]string, error) {
	data, err := readSmallFile(path, maxResolvConf)
	if err != nil {
		return nil, err
	}
	var servers []string
	for i, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		ip, err := netip.ParseAddr(fields[1])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: nameserver %q is not an IP address", path, i+1, fields[1])
		}
		ap := netip.AddrPortFrom(ip.Unmap(), 53).String()
		if !slices.Contains(servers, ap) {
			servers = append(servers, ap)
		}
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("%s lists no nameserver", path)
	}
	return servers, nil
}

// checkStateFile checks the state file's path: absolute, and not an
// existing directory. The file need not exist; its directory is checked
// when it is written (an error then is logged and counted).
func checkStateFile(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%q is not an absolute path", path)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%q is a directory; name a file in it", path)
	}
	return nil
}
