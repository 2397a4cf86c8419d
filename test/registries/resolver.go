package registries

import (
	"context"
	"net"
)

// Resolver is Go's own resolver (PreferGo) asking the DNS server at addr,
// host:port, alone.
func Resolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dialer net.Dialer
		return dialer.DialContext(ctx, network, addr)
	}}
}
