package proxyclient

import (
	"sync"
	"time"
)

// workers runs short jobs on goroutines that are kept a while after their job. A relayed
// connection needs a second goroutine for its other direction; reusing one that already
// has a grown stack costs less than starting afresh for every connection.
type workers struct {
	jobs chan func()
	quit chan struct{}
	wg   sync.WaitGroup
	idle time.Duration
	once sync.Once
}

func newWorkers(idle time.Duration) *workers {
	return &workers{jobs: make(chan func()), quit: make(chan struct{}), idle: idle}
}

// Go runs f on an idle worker or a new one.
func (w *workers) Go(f func()) {
	select {
	case w.jobs <- f:
	default:
		w.wg.Add(1)
		go w.loop(f)
	}
}

func (w *workers) loop(f func()) {
	defer w.wg.Done()
	t := time.NewTimer(w.idle)
	defer t.Stop()
	for {
		f()
		t.Reset(w.idle)
		select {
		case f = <-w.jobs:
		case <-t.C:
			return
		case <-w.quit:
			return
		}
	}
}

// Stop makes idle workers exit and waits for every worker to finish its job.
func (w *workers) Stop() {
	w.once.Do(func() { close(w.quit) })
	w.wg.Wait()
}
