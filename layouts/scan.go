package layouts

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hashicorp/consul/api"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Limits bound a scan.
type Limits struct {
	// MaxEntries is the most entries read (etcd keys, ZooKeeper nodes,
	// Consul health entries); > 0.
	MaxEntries int
	// Timeout bounds the whole scan of one registry; > 0.
	Timeout time.Duration
}

// A Scan is what a scan read: the entries, and whether it stopped at a
// limit before reading everything.
type Scan struct {
	Entries   []Entry
	Truncated bool
}

// ScanEtcd reads at most lim.MaxEntries keys of the whole keyspace of the
// etcd at endpoint, in key order.
func ScanEtcd(ctx context.Context, endpoint string, lim Limits) (Scan, error) {
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: lim.Timeout, Context: ctx})
	if err != nil {
		return Scan{}, fmt.Errorf("etcd %s: %w", endpoint, err)
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithLimit(int64(lim.MaxEntries)))
	if err != nil {
		return Scan{}, fmt.Errorf("etcd %s: %w", endpoint, err)
	}
	s := Scan{Truncated: resp.More}
	for _, kv := range resp.Kvs {
		s.Entries = append(s.Entries, Entry{Key: string(kv.Key), Value: kv.Value})
	}
	return s, nil
}

// ScanZooKeeper walks the tree of the ZooKeeper at server breadth first,
// leaving out /zookeeper, and returns its nodes without children; it reads
// at most lim.MaxEntries nodes, and stops at the timeout with what it has.
func ScanZooKeeper(ctx context.Context, server string, lim Limits) (Scan, error) {
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	conn, events, err := zk.Connect([]string{server}, max(lim.Timeout, 4*time.Second), zk.WithLogger(quiet{}))
	if err != nil {
		return Scan{}, fmt.Errorf("zookeeper %s: %w", server, err)
	}
	defer conn.Close()
	for conn.State() != zk.StateHasSession {
		select {
		case <-events:
		case <-ctx.Done():
			return Scan{}, fmt.Errorf("zookeeper %s: no session: %w", server, ctx.Err())
		}
	}
	var s Scan
	queue, read := []string{"/"}, 0
	for len(queue) > 0 {
		if read >= lim.MaxEntries || ctx.Err() != nil {
			s.Truncated = true
			break
		}
		node := queue[0]
		queue = queue[1:]
		read++
		children, _, err := conn.Children(node)
		if err == zk.ErrNoNode {
			continue
		}
		if err != nil {
			return s, fmt.Errorf("zookeeper %s: children of %s: %w", server, node, err)
		}
		if len(children) > 0 {
			slices.Sort(children)
			for _, c := range children {
				if p := path.Join(node, c); p != "/zookeeper" {
					queue = append(queue, p)
				}
			}
			continue
		}
		data, _, err := conn.Get(node)
		if err == zk.ErrNoNode {
			continue
		}
		if err != nil {
			return s, fmt.Errorf("zookeeper %s: %s: %w", server, node, err)
		}
		s.Entries = append(s.Entries, Entry{Key: node, Value: data})
	}
	return s, nil
}

// quiet drops the ZooKeeper client's log lines.
type quiet struct{}

func (quiet) Printf(string, ...any) {}

// ScanConsul reads the health entries of the services of the Consul agent
// at address, service by service in name order, at most lim.MaxEntries of
// them; each becomes the Entry /<service>/<node>/<id> holding the entry as
// JSON.
func ScanConsul(ctx context.Context, address string, lim Limits) (Scan, error) {
	ctx, cancel := context.WithTimeout(ctx, lim.Timeout)
	defer cancel()
	cli, err := api.NewClient(&api.Config{Address: address})
	if err != nil {
		return Scan{}, fmt.Errorf("consul %s: %w", address, err)
	}
	q := (&api.QueryOptions{}).WithContext(ctx)
	services, _, err := cli.Catalog().Services(q)
	if err != nil {
		return Scan{}, fmt.Errorf("consul %s: %w", address, err)
	}
	var s Scan
	names := make([]string, 0, len(services))
	for name := range services {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		entries, _, err := cli.Health().Service(name, "", false, q)
		if err != nil {
			if ctx.Err() != nil {
				s.Truncated = true
				return s, nil
			}
			return s, fmt.Errorf("consul %s: service %s: %w", address, name, err)
		}
		for _, e := range entries {
			if len(s.Entries) >= lim.MaxEntries {
				s.Truncated = true
				return s, nil
			}
			value, err := json.Marshal(e)
			if err != nil {
				return s, fmt.Errorf("consul %s: service %s: %w", address, name, err)
			}
			s.Entries = append(s.Entries, Entry{Key: "/" + name + "/" + e.Node.Node + "/" + e.Service.ID, Value: value})
		}
	}
	return s, nil
}
