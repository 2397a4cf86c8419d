// Package registry is the table of the registries discodns speaks: for each
// source type, how to build the watcher that mirrors a configured source
// and the registrar that writes an instance into that registry. Adding a
// registry touches this table (and config's list of types and formats);
// nothing else switches on the source type.
package registry

import (
	"fmt"
	"log/slog"

	"github.com/discodns/discodns/config"
	"github.com/discodns/discodns/register"
	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/consul"
	"github.com/discodns/discodns/watcher/etcd"
	"github.com/discodns/discodns/watcher/zookeeper"
)

// Type is what discodns does with one kind of registry.
type Type struct {
	// NewSource builds the watcher of a configured source.
	NewSource func(sc config.Source, metrics *watcher.Metrics, log *slog.Logger) (watcher.Source, error)
	// NewRegistrar builds the registrar that keeps an instance registered
	// in the source's registry, in the layout discodns reads.
	NewRegistrar func(sc config.Source, log *slog.Logger) register.Registrar
}

// types is the table, keyed by config.Source.Type.
var types = map[string]Type{
	config.TypeEtcd: {
		NewSource: func(sc config.Source, metrics *watcher.Metrics, log *slog.Logger) (watcher.Source, error) {
			return etcd.New(etcd.Config{
				Name:           sc.Name,
				Endpoints:      sc.Endpoints,
				Prefix:         sc.Prefix,
				Format:         sc.Format,
				Zone:           sc.Zone,
				Username:       sc.Username,
				Password:       string(sc.Password),
				DialTimeout:    sc.DialTimeout,
				ResyncInterval: sc.ResyncInterval,
			}, metrics, log)
		},
		NewRegistrar: func(sc config.Source, log *slog.Logger) register.Registrar {
			return &register.Etcd{Endpoints: sc.Endpoints, Prefix: sc.Prefix, Username: sc.Username, Password: string(sc.Password), Log: log}
		},
	},
	config.TypeConsul: {
		NewSource: func(sc config.Source, metrics *watcher.Metrics, log *slog.Logger) (watcher.Source, error) {
			return consul.New(consul.Config{
				Name:           sc.Name,
				Address:        sc.Address,
				Datacenter:     sc.Datacenter,
				Token:          string(sc.Token),
				CAFile:         sc.CAFile,
				CertFile:       sc.CertFile,
				KeyFile:        sc.KeyFile,
				IncludeWarning: sc.IncludeWarning,
				Tags:           sc.Tags,
				MaxConnections: sc.MaxConnections,
				RateLimit:      sc.RateLimit,
				ResyncInterval: sc.ResyncInterval,
			}, metrics, log)
		},
		NewRegistrar: func(sc config.Source, log *slog.Logger) register.Registrar {
			return &register.Consul{Address: sc.Address, Datacenter: sc.Datacenter, Token: string(sc.Token),
				CAFile: sc.CAFile, CertFile: sc.CertFile, KeyFile: sc.KeyFile, Log: log}
		},
	},
	config.TypeZooKeeper: {
		NewSource: func(sc config.Source, metrics *watcher.Metrics, log *slog.Logger) (watcher.Source, error) {
			return zookeeper.New(zookeeper.Config{
				Name:           sc.Name,
				Servers:        sc.Servers,
				Prefix:         sc.Prefix,
				Format:         sc.Format,
				SessionTimeout: sc.SessionTimeout,
				Auth:           string(sc.Auth),
			}, metrics, log)
		},
		NewRegistrar: func(sc config.Source, log *slog.Logger) register.Registrar {
			return &register.ZooKeeper{Servers: sc.Servers, Prefix: sc.Prefix, SessionTimeout: sc.SessionTimeout, Auth: string(sc.Auth), Log: log}
		},
	},
}

// Lookup returns the registry of a source type.
func Lookup(typ string) (Type, error) {
	t, ok := types[typ]
	if !ok {
		return Type{}, fmt.Errorf("source type %q is not supported by this build", typ)
	}
	return t, nil
}

// NewSource builds the watcher of a configured source.
func NewSource(sc config.Source, metrics *watcher.Metrics, log *slog.Logger) (watcher.Source, error) {
	t, err := Lookup(sc.Type)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", sc.Name, err)
	}
	return t.NewSource(sc, metrics, log)
}
