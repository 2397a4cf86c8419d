package register

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Etcd registers <prefix>/<service>/<host:port> (discox layout) under a
// lease kept alive; the key goes when the lease expires.
type Etcd struct {
	Endpoints          []string
	Prefix             string
	Username, Password string
	Log                *slog.Logger
}

// Keep implements Registrar.
func (e *Etcd) Keep(ctx context.Context, in Instance) error {
	log := logger(e.Log)
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: e.Endpoints, DialTimeout: 5 * time.Second,
		Username: e.Username, Password: e.Password, Logger: zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("etcd %v: %w", e.Endpoints, err)
	}
	defer cli.Close()
	key := strings.TrimRight(e.Prefix, "/") + "/" + in.Service + "/" + in.addr()
	ttl := int64(in.TTL / time.Second)
	for attempt := 0; ; attempt++ {
		lease, err := e.register(ctx, cli, key, in.discoxValue(), ttl)
		if err == nil {
			log.Info("registered", "registry", "etcd", "key", key, "ttl", in.TTL)
			attempt = 0
			alive, err := cli.KeepAlive(ctx, lease)
			if err == nil {
				for range alive { // until the lease is lost or ctx ends
				}
			}
			if ctx.Err() != nil {
				rctx, cancel := cleanupContext()
				defer cancel()
				_, err := cli.Revoke(rctx, lease) // deletes the key
				if err != nil {
					_, err = cli.Delete(rctx, key)
				}
				if err != nil {
					return fmt.Errorf("etcd deregister %s: %w", key, err)
				}
				log.Info("deregistered", "registry", "etcd", "key", key)
				return nil
			}
			log.Warn("etcd lease lost; registering again", "key", key)
		} else {
			log.Warn("etcd registration failed; retrying", "key", key, "err", err)
		}
		if !retry(ctx, attempt) {
			return nil
		}
	}
}

func (e *Etcd) register(ctx context.Context, cli *clientv3.Client, key string, value []byte, ttl int64) (clientv3.LeaseID, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	lease, err := cli.Grant(ctx, ttl)
	if err != nil {
		return 0, fmt.Errorf("etcd grant: %w", err)
	}
	if _, err := cli.Put(ctx, key, string(value), clientv3.WithLease(lease.ID)); err != nil {
		return 0, fmt.Errorf("etcd put %s: %w", key, err)
	}
	return lease.ID, nil
}
