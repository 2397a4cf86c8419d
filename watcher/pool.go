package watcher

import (
	"context"
	"sync"
)

// ForEach calls fn for every item with at most workers calls at once, and
// returns the first error, which cancels the calls not yet made.
func ForEach(ctx context.Context, items []string, workers int, fn func(context.Context, string) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	feed := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for item := range feed {
				if err := fn(ctx, item); err != nil {
					cancel(err)
				}
			}
		})
	}
loop:
	for _, item := range items {
		select {
		case feed <- item:
		case <-ctx.Done():
			break loop
		}
	}
	close(feed)
	wg.Wait()
	return context.Cause(ctx)
}
