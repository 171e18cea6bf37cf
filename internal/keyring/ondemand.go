// On-demand re-reads, asked by requests whose cookie failed its MAC: the keys may be stale (a
// secret another instance stored a moment ago). Split from ring.go because this is the request
// path's only contact with storage.

package keyring

import (
	"context"
	"errors"
	"io/fs"
	"runtime/debug"
	"sync"
	"time"

	"go.uber.org/zap"
)

const (
	// onDemandEvery is how often a cookie signed by an unknown key may make a shared ring
	// re-read storage before its loop would; onDemandTimeout bounds such a read.
	onDemandEvery   = time.Second
	onDemandTimeout = 5 * time.Second
)

// onDemand schedules the re-reads that cookies with an unknown key ask for: at most one
// starts per onDemandEvery, and every request waits for one that starts after it asked.
type onDemand struct {
	mu      sync.Mutex
	last    time.Time // when the last read started
	reads   int       // how many have started
	pending *readFlight
}

// readFlight is one scheduled on-demand read and the requests waiting for it.
type readFlight struct {
	done chan struct{}
	ok   bool
}

// ReadOnDemand is asked when a cookie failed its MAC. It waits for a re-read of storage that
// starts after this call (at most one starts per onDemandEvery, shared by every request
// waiting, so forged cookies cost at most one storage read a second and a request at most
// about a second) and reports whether the keys in use now reflect it: true even when this read
// changed nothing, because another may have changed them after the cookie failed; the cookie
// is then verified again.
func (u *Use) ReadOnDemand() bool { return u.ring.readOnDemand() }

func (r *Ring) readOnDemand() bool {
	od := &r.onDemand
	od.mu.Lock()
	f := od.pending
	lead := f == nil
	var wait time.Duration
	if lead {
		f = &readFlight{done: make(chan struct{})}
		od.pending = f
		if !od.last.IsZero() {
			wait = time.Until(od.last.Add(onDemandEvery))
		}
	}
	od.mu.Unlock()
	if !lead {
		<-f.done
		return f.ok
	}
	defer close(f.done) // also when adopt panics: no request waits forever
	if wait > 0 {
		time.Sleep(wait)
	}
	od.mu.Lock()
	od.pending = nil // requests from now on wait for the next read
	od.last = time.Now()
	od.reads++
	od.mu.Unlock()
	f.ok = r.adopt()
	return f.ok
}

// OnDemandReads is how many on-demand reads have started.
func (r *Ring) OnDemandReads() int {
	r.onDemand.mu.Lock()
	defer r.onDemand.mu.Unlock()
	return r.onDemand.reads
}

// adopt reads storage and takes the secrets it holds into use, without locking or writing:
// when storage lacks something this process must add, the loop is woken to do it.
func (r *Ring) adopt() (ok bool) {
	defer func() {
		if err := recover(); err != nil {
			r.logger.Error("key ring re-read panicked; keeping the keys in use", zap.Any("panic", err), zap.ByteString("stack", debug.Stack()))
			ok = false
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), onDemandTimeout)
	defer cancel()
	f, err := Read(ctx, r.storage)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.wakeLoop() // to restore it
		return true
	case err != nil:
		r.logError("key ring re-read failed; keeping the keys in use", err)
		return false
	}
	r.remember(f)
	if r.mustWrite(f) {
		r.wakeLoop()
	} else {
		r.file, r.stored = f, true
	}
	r.apply("a cookie signed with a key not in use")
	return true
}
