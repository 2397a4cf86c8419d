package register

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// ZooKeeper registers an ephemeral node <prefix>/<service>/<host:port>
// (discox layout): it goes when the session ends, and is created again in
// every new session (after an expiry).
type ZooKeeper struct {
	Servers        []string
	Prefix         string
	SessionTimeout time.Duration
	Auth           string // digest "user:password", or ""
	Log            *slog.Logger
}

// Keep implements Registrar.
func (z *ZooKeeper) Keep(ctx context.Context, in Instance) error {
	log := logger(z.Log)
	sessions := make(chan struct{}, 1)
	conn, _, err := zk.Connect(z.Servers, z.SessionTimeout, zk.WithLogger(quiet{}),
		zk.WithEventCallback(func(ev zk.Event) {
			if ev.Type == zk.EventSession && ev.State == zk.StateHasSession {
				select {
				case sessions <- struct{}{}:
				default:
				}
			}
		}))
	if err != nil {
		return fmt.Errorf("zookeeper %v: %w", z.Servers, err)
	}
	defer conn.Close()
	if z.Auth != "" {
		if err := conn.AddAuth("digest", []byte(z.Auth)); err != nil {
			return fmt.Errorf("zookeeper auth: %w", err)
		}
	}
	node := strings.TrimRight(z.Prefix, "/") + "/" + in.Service + "/" + in.addr()
	var registered int64 // the session the node belongs to
	for {
		select {
		case <-ctx.Done():
			if registered != 0 {
				if err := conn.Delete(node, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
					return fmt.Errorf("zookeeper deregister %s: %w", node, err)
				}
				log.Info("deregistered", "registry", "zookeeper", "node", node)
			}
			return nil
		case <-sessions:
		case <-time.After(time.Second): // a failed create is retried
		}
		if id := conn.SessionID(); id == registered || conn.State() != zk.StateHasSession {
			continue
		}
		if err := z.create(conn, node, in.discoxValue()); err != nil {
			log.Warn("zookeeper registration failed; retrying", "node", node, "err", err)
			continue
		}
		registered = conn.SessionID()
		log.Info("registered", "registry", "zookeeper", "node", node, "session", fmt.Sprintf("%#x", registered))
	}
}

// create makes the parents and the ephemeral node, replacing a node left by
// an older session of ours.
func (z *ZooKeeper) create(conn *zk.Conn, node string, data []byte) error {
	var parents []string
	for dir := path.Dir(node); dir != "/"; dir = path.Dir(dir) {
		parents = append([]string{dir}, parents...)
	}
	acl := zk.WorldACL(zk.PermAll)
	if z.Auth != "" {
		user, password, _ := strings.Cut(z.Auth, ":")
		acl = zk.DigestACL(zk.PermAll, user, password)
	}
	for _, dir := range parents {
		if _, err := conn.Create(dir, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	_, err := conn.Create(node, data, zk.FlagEphemeral, acl)
	if errors.Is(err, zk.ErrNodeExists) {
		// An ephemeral node of a session that has not expired yet.
		if err := conn.Delete(node, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return fmt.Errorf("replace %s: %w", node, err)
		}
		_, err = conn.Create(node, data, zk.FlagEphemeral, acl)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", node, err)
	}
	return nil
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}
