package registry

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	etcd "go.etcd.io/etcd/client/v3"
)

// ErrStoreChanged matches (errors.Is) the error a Watcher's session ends
// with when etcd is no longer the store its registry was read from.
//
// An etcd wiped and restarted empty, restored from a backup or replaced
// by another cluster may keep the same address and even the same cluster
// ID. A watch resumed on it from the old revision + 1 is a watch from the
// future: etcd stays silent until the new store reaches that revision,
// then sends events that do not follow from what was read. Either way the
// registry in memory would go stale without an error. The Watcher tells
// by three signs, and then reads everything again at once:
//   - a full read at a revision lower than the registry's,
//   - a full read from another cluster ID,
//   - a watch event that does not follow from what was read: every put
//     of a key raises its version by one, and the Watcher sees every put
//     in its ranges, so a key created that it holds, changed that it
//     never saw, or changed from another version than the one it saw,
//     comes from another history.
//
// A watch that does not answer a progress request within a second (or
// half the progress interval) is checked with a one-key read for the
// first two signs, so a store that stays below the old revision is found
// within about one progress interval; a watch silent for three intervals
// is resynced anyway (stall detection).
var ErrStoreChanged = errors.New("registry: etcd is not the store the registry was read from (wiped, restored from a backup, or replaced)")

type storeChangedError struct{ detail string }

func (e *storeChangedError) Error() string        { return ErrStoreChanged.Error() + ": " + e.detail }
func (e *storeChangedError) Is(target error) bool { return target == ErrStoreChanged }

// StoreChange is the last time a Watcher found etcd to be another store.
type StoreChange struct {
	Count  int       `json:"count"`
	Time   time.Time `json:"time,omitzero"`
	Reason string    `json:"reason,omitempty"`
}

// StoreChanges reports how often, and last when and why, the Watcher
// found etcd to be another store than the one it had read.
func (w *Watcher) StoreChanges() StoreChange {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.storeChange
}

// sameStore compares a full read (at rev, from cluster) with the registry
// it is about to replace.
func (w *Watcher) sameStore(rev int64, cluster uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	prev := w.cluster
	w.cluster = cluster
	switch {
	case prev != 0 && cluster != prev:
		return &storeChangedError{fmt.Sprintf("cluster ID %x, was %x", cluster, prev)}
	case w.current != nil && rev < w.current.Rev:
		return &storeChangedError{fmt.Sprintf("revision %d, lower than the registry's %d", rev, w.current.Rev)}
	}
	return nil
}

// probeStore reads one key, for the revision and cluster ID etcd answers
// with: a revision below rev, the newest the registry applied, or another
// cluster means another store. An unreachable etcd is not a store change.
func (w *Watcher) probeStore(ctx context.Context, rev int64) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	resp, err := w.cli.Get(ctx, w.keys.Root(), etcd.WithCountOnly())
	if err != nil {
		return nil
	}
	w.mu.Lock()
	cluster := w.cluster
	w.mu.Unlock()
	switch {
	case cluster != 0 && resp.Header.ClusterId != cluster:
		return &storeChangedError{fmt.Sprintf("cluster ID %x, was %x", resp.Header.ClusterId, cluster)}
	case resp.Header.Revision < rev:
		return &storeChangedError{fmt.Sprintf("revision %d, lower than the registry's %d, and the watch silent", resp.Header.Revision, rev)}
	}
	return nil
}

// versions is the version of every key the registry was built from, as
// etcd counts them (puts since the key was created), by a hash of the
// key: 16 bytes a key, not a copy of it.
type versions map[uint64]int64

var versionSeed = maphash.MakeSeed()

func keyHash(k []byte) uint64 { return maphash.Bytes(versionSeed, k) }

// fits checks that a watch event follows from the keys' versions as read
// and watched so far, and records its effect.
func (v versions) fits(ev *etcd.Event) error {
	h := keyHash(ev.Kv.Key)
	if ev.Type == mvccpb.DELETE {
		delete(v, h)
		return nil
	}
	prev, held := v[h]
	v[h] = ev.Kv.Version
	switch {
	case ev.Kv.Version == 1 && held:
		return &storeChangedError{fmt.Sprintf("key %s created at revision %d, but the registry holds it", ev.Kv.Key, ev.Kv.ModRevision)}
	case ev.Kv.Version > 1 && !held:
		return &storeChangedError{fmt.Sprintf("key %s changed at revision %d (version %d), but the registry never saw it created", ev.Kv.Key, ev.Kv.ModRevision, ev.Kv.Version)}
	case ev.Kv.Version > 1 && ev.Kv.Version != prev+1:
		return &storeChangedError{fmt.Sprintf("key %s changed at revision %d to version %d, but the registry holds version %d", ev.Kv.Key, ev.Kv.ModRevision, ev.Kv.Version, prev)}
	}
	return nil
}

// storeChanged records and reports a store change loudly: what the
// templater renders next comes from another store, and its guards judge it.
func (w *Watcher) storeChanged(err error) {
	w.storeChanges.Inc()
	w.mu.Lock()
	w.storeChange.Count++
	w.storeChange.Time = time.Now()
	w.storeChange.Reason = err.Error()
	w.etcdRev = 0
	w.mu.Unlock()
	w.log.Error("etcd is not the store the registry was read from; reading everything again", "err", err)
}
