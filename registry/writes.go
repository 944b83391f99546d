package registry

// The Writer's record writes: what differs from etcd, the per-record rate
// limit, and batching into transactions.

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	etcd "go.etcd.io/etcd/client/v3"
)

// syncOnce grants a lease when there is none, then writes every record that
// differs from what was last written under it, as the rate limit allows.
// It returns how long until a deferred write is due (an hour if none).
func (r *Writer) syncOnce(ctx context.Context, st *leaseState) (time.Duration, error) {
	r.mu.Lock()
	desired := maps.Clone(r.desired)
	r.mu.Unlock()
	if st.lease == 0 {
		if len(desired) == 0 {
			return time.Hour, nil
		}
		if err := r.grant(ctx, st); err != nil {
			return time.Hour, err
		}
	}
	ops, next := r.pending(st, desired, time.Now())
	// Batch into transactions (etcd allows 128 operations per txn by
	// default): registering a thousand instances takes a few round trips,
	// not a thousand.
	for chunk := range slices.Chunk(ops, maxTxnOps) {
		err := r.commit(ctx, st, chunk)
		if IsPermission(err) && len(chunk) > 1 {
			// One refused key fails the whole transaction: write the
			// records one by one, to name it and let the others through.
			err = nil
			for _, o := range chunk {
				if e := r.commit(ctx, st, []writeOp{o}); e != nil && (err == nil || IsPermission(err)) {
					err = e
				}
			}
		}
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			// The lease expired before its keepalive channel said so.
			r.lost(st, "lease expired under a write; registering again under a new lease")
			return next, err
		}
		if err != nil {
			return next, err
		}
	}
	return next, nil
}

// pending lists the writes that make etcd match desired: puts of records
// whose bytes differ from what was written under the lease (a rewrite only
// when its rate limit allows) and deletes of records no longer desired.
// next is how long until a write held back by the limit is due (an hour if
// none).
func (r *Writer) pending(st *leaseState, desired map[string][]byte, now time.Time) (ops []writeOp, next time.Duration) {
	written, buckets := st.written, st.buckets
	next = time.Hour
	for key, val := range desired {
		if bytes.Equal(written[key], val) {
			continue
		}
		if _, ok := written[key]; ok {
			b := buckets[key]
			if b == nil {
				b = r.limit.newBucket(now)
				buckets[key] = b
			}
			if wait := r.limit.take(b, now); wait > 0 {
				r.deferred.Inc()
				next = min(next, wait)
				continue
			}
		}
		ops = append(ops, writeOp{key, val})
	}
	for key := range written {
		if _, ok := desired[key]; !ok {
			ops = append(ops, writeOp{key: key})
		}
	}
	return ops, next
}

// writeOp is one record write of syncOnce.
type writeOp struct {
	key string
	val []byte // nil: delete
}

func (o writeOp) name() string {
	if o.val == nil {
		return "delete"
	}
	return "put"
}

// commit writes ops in one transaction under st's lease and records what
// was written. A single op that etcd refuses for lack of permission is
// recorded (and logged once) as a PermissionError naming its key.
func (r *Writer) commit(ctx context.Context, st *leaseState, chunk []writeOp) error {
	tops := make([]etcd.Op, len(chunk))
	for i, o := range chunk {
		if o.val == nil {
			tops[i] = etcd.OpDelete(o.key)
		} else {
			tops[i] = etcd.OpPut(o.key, string(o.val), etcd.WithLease(st.lease))
		}
	}
	tctx, cancel := withTimeout(ctx)
	_, err := r.cli.Txn(tctx).Then(tops...).Commit()
	cancel()
	if IsPermission(err) && len(chunk) == 1 {
		return r.denied.fail(chunk[0].name(), chunk[0].key, err)
	}
	if err != nil {
		return err
	}
	r.writes.Add(float64(len(chunk)))
	for _, o := range chunk {
		r.denied.ok(o.name(), o.key)
		if o.val == nil {
			st.setWritten(o.key, nil)
			delete(st.buckets, o.key)
			r.log.Info("record deleted", "key", o.key)
		} else {
			st.setWritten(o.key, o.val)
			r.log.Debug("record written", "key", o.key)
		}
	}
	return nil
}

// rateLimit is a token bucket per record.
type rateLimit struct {
	interval time.Duration // < 0: unlimited
	burst    float64
}

type bucket struct {
	tokens float64
	last   time.Time
}

func (l rateLimit) newBucket(now time.Time) *bucket { return &bucket{tokens: l.burst, last: now} }

// take spends a token from b, or returns how long until one is available.
func (l rateLimit) take(b *bucket, now time.Time) time.Duration {
	if l.interval < 0 {
		return 0
	}
	b.tokens = min(l.burst, b.tokens+float64(now.Sub(b.last))/float64(l.interval))
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(l.interval))
}

// maxTxnOps bounds the operations of one write transaction.
const maxTxnOps = 100
