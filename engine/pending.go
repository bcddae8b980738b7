package engine

import (
	"context"
	"sync"
)

// pendingWrites tracks account writes that run after the reply that caused them (the failure
// counter of a wrong password), so readers that must see them can wait for them.
type pendingWrites struct {
	mu      sync.Mutex
	pending map[*pendingWrite]struct{}
	all     sync.WaitGroup
}

type pendingWrite struct {
	key  string
	done chan struct{}
}

// start runs write(key) in the background.
func (p *pendingWrites) start(key string, write func()) {
	w := &pendingWrite{key: key, done: make(chan struct{})}
	p.mu.Lock()
	if p.pending == nil {
		p.pending = make(map[*pendingWrite]struct{})
	}
	p.pending[w] = struct{}{}
	p.all.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.all.Done()
		defer func() {
			p.mu.Lock()
			delete(p.pending, w)
			p.mu.Unlock()
			close(w.done)
		}()
		write()
	}()
}

// wait returns once every write started before the call for one of keys (for any key when
// keys is empty) has finished, or when ctx ends. Writes started later are not waited for, so
// a stream of new failures cannot hold a reader up.
func (p *pendingWrites) wait(ctx context.Context, keys ...string) error {
	var waitFor []chan struct{}
	p.mu.Lock()
	for w := range p.pending {
		if len(keys) == 0 || contains(keys, w.key) {
			waitFor = append(waitFor, w.done)
		}
	}
	p.mu.Unlock()
	for _, done := range waitFor {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// drain waits for every background write.
func (p *pendingWrites) drain() { p.all.Wait() }
