package consul

import (
	"bytes"
	"compress/zlib"
	"encoding/hex"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

// What frameworks write into a Consul service registration beyond its
// address, port, tags and meta:
//
//   - Kratos (go-kratos/kratos contrib/registry/consul, client.go Register)
//     puts each endpoint URL in TaggedAddresses under its scheme,
//     {"grpc": {"Address": "grpc://10.0.0.5:9000", "Port": 9000}}, and the
//     first endpoint's host and port in Address and Port. Each becomes a
//     named port: _grpc._tcp.<svc>.
//   - go-micro (go-micro/plugins v4/registry/consul, consul.go Register and
//     encoding.go) encodes the node metadata, each endpoint and the version
//     as tags "t-", "e-" and "v-" followed by the hex of zlib-compressed
//     data. They are not served as tags; the version becomes the metadata
//     key "version" unless Meta has one.

// maxVersionSize bounds a go-micro version decompressed from a tag.
const maxVersionSize = 256

// consulAddressKey reports whether key is a TaggedAddresses key that
// Consul itself defines (plain addresses, not a framework's endpoints).
func consulAddressKey(key string) bool {
	switch key {
	case "lan", "lan_ipv4", "lan_ipv6", "wan", "wan_ipv4", "wan_ipv6", "virtual", "consul-virtual":
		return true
	}
	return false
}

// namedPorts returns the named ports of Kratos endpoints in tagged: each
// entry whose address is a URL with the entry's key as its scheme, a port,
// and host, the instance's address (a named port shares the instance's
// SRV target). Other entries are ignored; nil when none is left.
func namedPorts(address string, tagged map[string]api.ServiceAddress) map[string]uint16 {
	var ports map[string]uint16
	for key, sa := range tagged {
		if consulAddressKey(key) {
			continue
		}
		u, err := url.Parse(sa.Address)
		if err != nil || !strings.EqualFold(u.Scheme, key) || u.Port() == "" {
			continue
		}
		port, err := strconv.ParseUint(u.Port(), 10, 16)
		if err != nil || port == 0 {
			continue
		}
		if host, err := watcher.ParseHost(u.Hostname()); err != nil || host != address {
			continue
		}
		label := cache.Label(key)
		if label == "" {
			continue
		}
		if ports == nil {
			ports = map[string]uint16{}
		}
		ports[label] = uint16(port)
	}
	return ports
}

// splitTags returns tags without go-micro's encoded ones, and the version
// a go-micro "v-" tag encodes ("" when none).
func splitTags(tags []string) (served []string, version string) {
	served = tags[:0:0]
	for _, t := range tags {
		data, ok := goMicroTag(t)
		if !ok {
			served = append(served, t)
			continue
		}
		if t[0] == 'v' && version == "" {
			version = inflate(data, maxVersionSize)
		}
	}
	return served, version
}

// goMicroTag reports whether tag is one of go-micro's encoded tags: "t-",
// "e-" or "v-" and hex data starting with a zlib header. It returns the
// compressed data.
func goMicroTag(tag string) ([]byte, bool) {
	if len(tag) < 6 || !strings.ContainsRune("tev", rune(tag[0])) || tag[1] != '-' {
		return nil, false
	}
	data, err := hex.DecodeString(tag[2:])
	if err != nil || data[0]&0x0f != 8 || (uint(data[0])<<8|uint(data[1]))%31 != 0 {
		return nil, false
	}
	return data, true
}

// inflate returns the zlib data decompressed, at most limit bytes, or ""
// when it does not decompress.
func inflate(data []byte, limit int64) string {
	zr, err := zlib.NewReader(bytes.NewReader(data))
	if err != nil {
		return ""
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, limit))
	if err != nil {
		return ""
	}
	return string(out)
}
