// On-demand re-reads, asked by requests whose cookie failed its MAC: the keys may be stale (a
// secret another instance stored a moment ago). Split from ring.go because this is the request
// path's only contact with storage, and its bounds are what keep a forged cookie cheap: a
// request waits a bounded time whatever the storage module does, one read runs at a time, and
// reads that find nothing new back off to one per re-read interval.

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
	// onDemandEvery is the shortest spacing of on-demand reads; each read that finds no new
	// secret doubles the spacing, up to the ring's re-read interval, and one that finds one
	// resets it.
	onDemandEvery = time.Second
	// onDemandWait is the longest a request waits: for a read that starts within onDemandEvery
	// of its asking, and a quarter of a second more for the read itself. Past it, the request
	// goes on with the keys it has; the read goes on in the background.
	onDemandWait = onDemandEvery + 250*time.Millisecond
	// onDemandTimeout bounds a read for the storage modules that honour their context; the
	// requests do not rely on it.
	onDemandTimeout = 5 * time.Second
)

// onDemand schedules on-demand reads: every request waits for a read that starts after it
// asked, shared by the requests asking until it starts, and never two reads at once.
type onDemand struct {
	every, wait time.Duration // onDemandEvery and onDemandWait (shorter in tests)

	mu    sync.Mutex
	gap   time.Duration // the spacing after the last read
	last  time.Time     // when the last read started
	reads int           // how many have started
	next  *readFlight   // the read that requests asking now wait for, not started yet
	prev  *readFlight   // the last read started; it may still run
}

// readFlight is one on-demand read and the requests waiting for it.
type readFlight struct {
	at   time.Time // when it starts at the earliest (and not before prev has ended)
	done chan struct{}
	ok   bool
}

// ReadOnDemand is asked when a cookie failed its MAC. It waits at most onDemandWait for a
// re-read of storage that starts after this call and reports whether the keys in use now
// reflect it: true even when this read changed nothing, because another may have changed them
// after the cookie failed; the cookie is then verified again. It does not wait, and reports
// false, when the next read is too far off (reads back off while they find nothing new) or
// when the read running already took longer than a request may wait (a slow or hung storage).
func (u *Use) ReadOnDemand() bool { return u.ring.readOnDemand() }

func (r *Ring) readOnDemand() bool {
	asked := time.Now()
	od := &r.onDemand
	od.mu.Lock()
	if p := od.prev; p != nil && !closed(p.done) && asked.Sub(od.last) > od.wait {
		od.mu.Unlock()
		return false
	}
	f := od.next
	if f == nil {
		f = &readFlight{at: asked, done: make(chan struct{})}
		if next := od.last.Add(od.gap); next.After(asked) {
			f.at = next
		}
		od.next = f
		go r.fly(f, od.prev)
	}
	od.mu.Unlock()
	if f.at.Sub(asked) > od.every {
		return false
	}
	t := time.NewTimer(od.wait - time.Since(asked))
	defer t.Stop()
	select {
	case <-f.done:
		return f.ok
	case <-t.C:
		return false
	}
}

// fly runs the read f once its time has come and prev has ended, and sets the spacing to the
// next one.
func (r *Ring) fly(f, prev *readFlight) {
	defer close(f.done)
	t := time.NewTimer(time.Until(f.at))
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.life.Done():
		return
	}
	if prev != nil {
		select {
		case <-prev.done:
		case <-r.life.Done():
			return
		}
	}
	od := &r.onDemand
	od.mu.Lock()
	od.next, od.prev = nil, f // requests from now on wait for the next read
	od.last = time.Now()
	od.reads++
	od.mu.Unlock()
	found, ok := r.adopt()
	r.mu.Lock()
	every := r.pace()
	r.mu.Unlock()
	od.mu.Lock()
	if found {
		od.gap = od.every
	} else {
		od.gap = max(min(satDouble(od.gap), every), od.every)
	}
	od.mu.Unlock()
	f.ok = ok
}

// OnDemandReads is how many on-demand reads have started.
func (r *Ring) OnDemandReads() int {
	r.onDemand.mu.Lock()
	defer r.onDemand.mu.Unlock()
	return r.onDemand.reads
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// adopt reads storage and takes the secrets it holds into use, without locking or writing:
// when storage lacks something this process must add, the loop is woken to do it. found
// reports a secret this process did not know; ok that the read succeeded.
func (r *Ring) adopt() (found, ok bool) {
	defer func() {
		if err := recover(); err != nil {
			r.logger.Error("key ring re-read panicked; keeping the keys in use", zap.Any("panic", err), zap.ByteString("stack", debug.Stack()))
			found, ok = false, false
		}
	}()
	ctx, cancel := context.WithTimeout(r.life, onDemandTimeout)
	defer cancel()
	f, err := Read(ctx, r.storage)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.wakeLoop() // to restore it
		return false, true
	case err != nil:
		r.count("read")
		r.logError("key ring re-read failed; keeping the keys in use", err)
		return false, false
	}
	for _, s := range f.Secrets {
		if _, ok := r.known[s.Secret]; !ok {
			found = true
		}
	}
	r.remember(f)
	if r.mustWrite(f) {
		r.wakeLoop()
	} else {
		r.file, r.stored = f, true
	}
	r.apply("a cookie signed with a key not in use")
	return found, true
}
