package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"

	"github.com/discodns/discodns/watcher"
)

// connect creates the client. Without authentication, creating it does
// not touch the network, so an error is a setup problem and is returned.
// With authentication it authenticates, which is retried until it works
// or ctx ends (then it returns nil, nil).
func (r *run) connect(ctx context.Context) (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:            r.cfg.Endpoints,
		Username:             r.cfg.Username,
		Password:             r.cfg.Password,
		DialTimeout:          r.cfg.DialTimeout,
		DialKeepAliveTime:    keepAliveTime,
		DialKeepAliveTimeout: keepAliveTimeout,
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			// gRPC's default reconnection backoff grows to 120 s, which
			// would keep the source stale long after etcd is back.
			Backoff: grpcbackoff.Config{
				BaseDelay:  watcher.MinBackoff,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   watcher.MaxBackoff,
			},
			MinConnectTimeout: r.cfg.DialTimeout,
		})},
		Context: ctx,
		// The source logs what it sees itself; the client's own log is
		// retry chatter.
		Logger: zap.NewNop(),
	}
	for {
		cli, err := clientv3.New(cfg)
		if err == nil {
			return cli, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		err = fmt.Errorf("etcd connect %s: %w", strings.Join(r.cfg.Endpoints, ","), err)
		if r.cfg.Username == "" {
			return nil, fmt.Errorf("etcd source %s: %w", r.cfg.Name, err)
		}
		r.outage.Fail(err)
		if !r.bo.Wait(ctx) {
			return nil, nil
		}
	}
}

// errClientClosed is returned by waitReady when the client was closed.
var errClientClosed = errors.New("etcd client closed")

// waitReady waits up to DialTimeout for the client connection to be ready,
// so a list during an outage fails after DialTimeout, not listTimeout.
func (r *run) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
	defer cancel()
	conn := r.cli.ActiveConnection()
	for {
		st := conn.GetState()
		switch st {
		case connectivity.Ready:
			return nil
		case connectivity.Idle:
			conn.Connect()
		case connectivity.Shutdown:
			return errClientClosed
		}
		if !conn.WaitForStateChange(ctx, st) {
			return fmt.Errorf("etcd %s: not connected after %s (%s)",
				strings.Join(r.cfg.Endpoints, ","), r.cfg.DialTimeout, st)
		}
	}
}

// waitNotReady blocks until conn leaves the Ready state and returns the
// state it is in then, or returns false when ctx ends first.
func waitNotReady(ctx context.Context, conn *grpc.ClientConn) (connectivity.State, bool) {
	for {
		st := conn.GetState()
		if st != connectivity.Ready {
			return st, true
		}
		if !conn.WaitForStateChange(ctx, st) {
			return st, false
		}
	}
}
