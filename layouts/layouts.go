// Package layouts finds which registry layouts a registry holds: it is the
// logic of `discodns layouts`. A scan reads a bounded sample of a
// registry's entries (etcd keys, ZooKeeper nodes, Consul health entries),
// gives each to the layouts of its registry type in table order, and
// counts, for each layout and prefix, the services and instances that the
// layout's own decoder (the one its source uses) makes of them; each
// finding comes with the [[source]] block that serves it.
//
// # Adding a layout
//
// A layout is one row of Table:
//
//		{Type: config.TypeEtcd, Format: config.FormatGRPC, Place: underService, Decode: etcd.DecodeGRPC},
//
//	  - Type and Format are the [[source]] keys type and format.
//	  - Place tells where a source of the layout would be rooted to read the
//	    key: it returns the source's prefix, or ok false when the layout's
//	    keys never look like this one. underService is the usual
//	    <prefix>/<service>/<id>; hostPortID requires the id to be host:port.
//	  - Decode is the source's decoder (a watcher.Decoder). During the claim
//	    it gets the key's last two path elements as service and id.
//	  - Split, when set, is the source's key splitter for a prefix and zone
//	    (nil: watcher.SplitKey); Zone, when set, guesses the zone a source
//	    needs from the keys found (skydns).
//
// Rows are tried in order and the first whose Place accepts a key and
// whose Decode accepts its value (or says it is removed) claims the entry:
// a strict layout goes before a permissive one, discox last of its type.
package layouts

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/discodns/discodns/config"
	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/consul"
	"github.com/discodns/discodns/watcher/etcd"
	"github.com/discodns/discodns/watcher/zookeeper"
)

// A Layout is how one format's entries look in one registry type.
type Layout struct {
	// Type is the registry type (config.TypeEtcd, ...).
	Type string
	// Format is the source's format key (config.FormatDiscox, ...).
	Format string
	// Place returns the prefix a source of the layout reads key under,
	// without its trailing slash; ok false when key cannot be one of the
	// layout's instance keys.
	Place func(key string) (prefix string, ok bool)
	// Split returns the source's key splitter for prefix (with its
	// trailing slash) and zone; nil means watcher.SplitKey.
	Split func(prefix, zone string) func(key string) (service, id string, err error)
	// Zone, when set, guesses the zone a source needs from the keys found
	// under prefix.
	Zone func(prefix string, keys []string) string
	// Decode is the decoder the layout's source uses.
	Decode watcher.Decoder
}

// Table is every layout the command knows, in claim order.
func Table() []Layout {
	return []Layout{
		{Type: config.TypeEtcd, Format: config.FormatDubbo, Place: dubboProvider, Split: dubboSplit, Decode: watcher.DecodeDubbo},
		{Type: config.TypeEtcd, Format: config.FormatGRPC, Place: underService, Decode: etcd.DecodeGRPC},
		{Type: config.TypeEtcd, Format: config.FormatGoZero, Place: leaseKey, Split: gozeroSplit, Decode: etcd.DecodeGoZero},
		{Type: config.TypeEtcd, Format: config.FormatKratos, Place: underService, Decode: watcher.DecodeKratos},
		{Type: config.TypeEtcd, Format: config.FormatGoMicro, Place: underService, Decode: etcd.DecodeGoMicro},
		{Type: config.TypeEtcd, Format: config.FormatRPCX, Place: rpcxAddress, Decode: etcd.DecodeRPCX},
		{Type: config.TypeEtcd, Format: config.FormatKitex, Place: relativeHostPortID, Decode: etcd.DecodeKitex},
		{Type: config.TypeEtcd, Format: config.FormatSkyDNS, Place: firstElement, Split: etcd.SkyDNSSplitter, Zone: skydnsZone, Decode: etcd.DecodeSkyDNS},
		{Type: config.TypeEtcd, Format: config.FormatDiscox, Place: hostPortID, Decode: watcher.DecodeDiscox},
		{Type: config.TypeZooKeeper, Format: config.FormatDubbo, Place: dubboProvider, Split: dubboSplit, Decode: watcher.DecodeDubbo},
		{Type: config.TypeZooKeeper, Format: config.FormatServerset, Place: serversetMember, Decode: zookeeper.DecodeServerset},
		{Type: config.TypeZooKeeper, Format: config.FormatCurator, Place: underService, Decode: zookeeper.DecodeCurator},
		{Type: config.TypeZooKeeper, Format: config.FormatKratos, Place: underService, Decode: watcher.DecodeKratos},
		{Type: config.TypeZooKeeper, Format: config.FormatDiscox, Place: hostPortIDFromRoot, Decode: watcher.DecodeDiscox},
		{Type: config.TypeConsul, Format: config.FormatNative, Place: consulEntry, Decode: consul.DecodeEntry},
	}
}

// An Entry is one registry entry: an etcd key, a ZooKeeper node with no
// children, or a Consul health entry as JSON under /<service>/<node>/<id>.
type Entry struct {
	Key   string
	Value []byte
}

// A Finding is one layout found under one prefix.
type Finding struct {
	Type, Format string
	// Prefix is the source's prefix ("" for Consul); Zone the zone it
	// needs ("" when the layout needs none).
	Prefix, Zone string
	// Services and Instances count what the layout's source would serve;
	// Skipped counts the entries claimed that do not decode under the
	// source's own key split.
	Services, Instances, Skipped int
}

// Find gives entries of a registry of type typ to the layouts of table
// and returns what they found, sorted by format and prefix.
func Find(table []Layout, typ string, entries []Entry) []Finding {
	type group struct {
		layout  *Layout
		prefix  string
		entries []Entry
	}
	groups := map[string]*group{}
	for _, e := range entries {
		for i := range table {
			l := &table[i]
			if l.Type != typ {
				continue
			}
			prefix, ok := l.Place(e.Key)
			if !ok {
				continue
			}
			service, id := lastTwo(e.Key)
			if _, err := l.Decode(service, id, e.Value); err != nil && !errors.Is(err, watcher.ErrRemoved) {
				continue
			}
			k := l.Format + "\x00" + prefix
			if groups[k] == nil {
				groups[k] = &group{layout: l, prefix: prefix}
			}
			groups[k].entries = append(groups[k].entries, e)
			break
		}
	}
	var out []Finding
	for _, k := range slices.Sorted(maps.Keys(groups)) {
		g := groups[k]
		f := Finding{Type: typ, Format: g.layout.Format, Prefix: g.prefix}
		if g.layout.Zone != nil {
			keys := make([]string, len(g.entries))
			for i, e := range g.entries {
				keys[i] = e.Key
			}
			f.Zone = g.layout.Zone(g.prefix, keys)
		}
		dir := strings.TrimSuffix(g.prefix, "/") + "/" // the root "/" too
		split := func(key string) (string, string, error) { return watcher.SplitKey(dir, key) }
		if g.layout.Split != nil {
			split = g.layout.Split(dir, f.Zone)
		}
		services := map[string]bool{}
		for _, e := range g.entries {
			service, id, err := split(e.Key)
			if err == nil {
				_, err = g.layout.Decode(service, id, e.Value)
			}
			switch {
			case err == nil:
				services[service] = true
				f.Instances++
			case !errors.Is(err, watcher.ErrRemoved):
				f.Skipped++
			}
		}
		f.Services = len(services)
		if f.Instances > 0 {
			out = append(out, f)
		}
	}
	return out
}

// lastTwo returns the last two elements of a slash-separated key.
func lastTwo(key string) (string, string) {
	parent, last := splitLast(key)
	_, service := splitLast(parent)
	return service, last
}

// splitLast splits key at its last slash.
func splitLast(key string) (string, string) {
	i := strings.LastIndexByte(key, '/')
	if i < 0 {
		return "", key
	}
	return key[:i], key[i+1:]
}

// underService places <prefix>/<service>/<id>: the prefix is the key
// without its last two elements, and not empty (an etcd or ZooKeeper
// source needs one).
func underService(key string) (string, bool) {
	parent, id := splitLast(key)
	prefix, service := splitLast(parent)
	if id == "" || service == "" || prefix == "" {
		return "", false
	}
	return prefix, true
}

// consulEntry places a Consul health entry: a Consul source has no prefix.
func consulEntry(string) (string, bool) { return "", true }

// hostPortID places <prefix>/<service>/<host:port>.
func hostPortID(key string) (string, bool) {
	_, id := splitLast(key)
	if _, _, err := watcher.ParseHostPort(id); err != nil {
		return "", false
	}
	return underService(key)
}

// leaseKey places go-zero's <Etcd.Key>/<lease ID>: a gozero source reads
// the whole keyspace, prefix "".
func leaseKey(key string) (string, bool) {
	_, _, err := etcd.GoZeroSplitter("")(key)
	return "", err == nil
}

// gozeroSplit is the gozero source's splitter for the whole keyspace,
// which Find gives as the prefix "/".
func gozeroSplit(prefix, _ string) func(key string) (service, id string, err error) {
	return etcd.GoZeroSplitter(strings.TrimPrefix(prefix, "/"))
}

// rpcxAddress places rpcx's <base>/<service>/<network>@<host:port>.
func rpcxAddress(key string) (string, bool) {
	_, id := splitLast(key)
	if _, addr, ok := strings.Cut(id, "@"); !ok || addr == "" {
		return "", false
	}
	return underService(key)
}

// relativeHostPortID places <prefix>/<service>/<host:port> where the
// prefix has no leading slash, as Kitex writes kitex/registry-etcd.
func relativeHostPortID(key string) (string, bool) {
	if strings.HasPrefix(key, "/") {
		return "", false
	}
	return hostPortID(key)
}

// dubboProvider places Dubbo's <group>/<interface>/providers/<URL>: the
// prefix is the group's root.
func dubboProvider(key string) (string, bool) {
	parent, node := splitLast(key)
	dir, category := splitLast(parent)
	prefix, iface := splitLast(dir)
	if category != watcher.DubboProviders || node == "" || iface == "" || prefix == "" {
		return "", false
	}
	return prefix, true
}

// dubboSplit is the dubbo sources' splitter (the same on ZooKeeper paths).
func dubboSplit(prefix, _ string) func(key string) (service, id string, err error) {
	return etcd.DubboSplitter(prefix)
}

// hostPortIDFromRoot is hostPortID, and also places /<service>/<host:port>
// at the root "/", which a ZooKeeper source may read (Kitex writes there).
func hostPortIDFromRoot(key string) (string, bool) {
	if prefix, ok := hostPortID(key); ok {
		return prefix, true
	}
	parent, id := splitLast(key)
	root, service := splitLast(parent)
	if _, _, err := watcher.ParseHostPort(id); err != nil || service == "" || root != "" {
		return "", false
	}
	return "/", true
}

// serversetMember places <prefix>/<service>/member_<n>.
func serversetMember(key string) (string, bool) {
	if _, id := splitLast(key); !zookeeper.IsServersetMember(id) {
		return "", false
	}
	return underService(key)
}

// firstElement places /<prefix>/<labels...>: a skydns key, rooted at its
// first element, with at least two labels below it.
func firstElement(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "/")
	if !ok {
		return "", false
	}
	first, labels, _ := strings.Cut(rest, "/")
	if first == "" || strings.Count(labels, "/") < 1 {
		return "", false
	}
	return "/" + first, true
}

// skydnsZone guesses the zone of skydns keys: the labels every key shares,
// but at most all the labels of the longest key less two (a service and an
// instance), and at least one.
func skydnsZone(prefix string, keys []string) string {
	var common []string
	longest := 0
	for i, key := range keys {
		labels := strings.Split(strings.TrimPrefix(strings.ToLower(key), strings.ToLower(prefix)+"/"), "/")
		longest = max(longest, len(labels))
		if i == 0 {
			common = labels
			continue
		}
		n := 0
		for n < len(common) && n < len(labels) && common[n] == labels[n] {
			n++
		}
		common = common[:n]
	}
	common = common[:max(min(len(common), longest-2), 1)]
	zone := slices.Clone(common)
	slices.Reverse(zone)
	return strings.Join(zone, ".") + "."
}

// A Registry is one scanned registry: its type and address.
type Registry struct {
	Type    string
	Address string
}

// Print writes what was found in r, and the [[source]] block of each
// finding, to w.
func Print(w io.Writer, r Registry, found []Finding, scanned int, truncated bool) {
	fmt.Fprintf(w, "# %s %s: %d entries read", r.Type, r.Address, scanned)
	if truncated {
		fmt.Fprint(w, " (a sample: the scan stopped at its limit)")
	}
	fmt.Fprintln(w)
	if len(found) == 0 {
		fmt.Fprintln(w, "#   no known layout found")
	}
	for _, f := range found {
		fmt.Fprintf(w, "#   %-10s prefix %-20s %d services, %d instances", f.Format, orNone(f.Prefix), f.Services, f.Instances)
		if f.Zone != "" {
			fmt.Fprintf(w, ", zone %s", f.Zone)
		}
		if f.Skipped > 0 {
			fmt.Fprintf(w, ", %d entries that do not decode", f.Skipped)
		}
		fmt.Fprintln(w)
	}
	for _, f := range found {
		fmt.Fprintln(w)
		fmt.Fprint(w, SourceBlock(r, f))
	}
}

func orNone(prefix string) string {
	if prefix == "" {
		return "-"
	}
	return prefix
}

// SourceBlock is the [[source]] TOML block that serves f from r.
func SourceBlock(r Registry, f Finding) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[[source]]\nname = %q\ntype = %q\n", sourceName(f), f.Type)
	switch f.Type {
	case config.TypeEtcd:
		fmt.Fprintf(&b, "endpoints = [%q]\n", r.Address)
	case config.TypeZooKeeper:
		fmt.Fprintf(&b, "servers = [%q]\n", r.Address)
	case config.TypeConsul:
		fmt.Fprintf(&b, "address = %q\n", r.Address)
	}
	if f.Prefix != "" {
		fmt.Fprintf(&b, "prefix = %q\n", f.Prefix)
	}
	fmt.Fprintf(&b, "format = %q\n", f.Format)
	if f.Zone != "" {
		fmt.Fprintf(&b, "zone = %q\n", f.Zone)
	}
	return b.String()
}

// sourceName names a finding's source: type, format and prefix as one
// name of letters, digits and dashes.
func sourceName(f Finding) string {
	name := f.Type + "-" + f.Format
	if p := strings.Trim(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, f.Prefix), "-"); p != "" {
		name += "-" + p
	}
	return name
}
