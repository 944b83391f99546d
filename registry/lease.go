package registry

// The Writer's lease: granting it, keeping it alive, noticing its loss and
// revoking it on shutdown. Run's goroutine owns all of it.

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	etcd "go.etcd.io/etcd/client/v3"
)

// leaseState is what Run knows about its lease and what it wrote under
// it. It is owned by Run's goroutine.
type leaseState struct {
	lease  etcd.LeaseID // 0: none
	alive  <-chan *etcd.LeaseKeepAliveResponse
	stopKA context.CancelFunc
	// written is key → bytes written under lease. Only Run's goroutine
	// changes it, holding mu (the Writer's), so Wrote can read it.
	written map[string][]byte
	mu      *sync.Mutex
	buckets map[string]*bucket
}

func (st *leaseState) setWritten(key string, val []byte) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if val == nil {
		delete(st.written, key)
	} else {
		st.written[key] = val
	}
}

// drop stops the keepalive, waits for its goroutine, and forgets the
// lease and everything written under it: the next sync registers again.
func (st *leaseState) drop() {
	if st.stopKA != nil {
		st.stopKA()
	}
	if st.alive != nil {
		for range st.alive { // wait for drainKeepAlive's goroutine
		}
	}
	st.lease, st.alive, st.stopKA = 0, nil, nil
	st.mu.Lock()
	clear(st.written)
	st.mu.Unlock()
	clear(st.buckets)
}

// lost counts and logs a lost lease, then drops it.
func (r *Writer) lost(st *leaseState, msg string) {
	r.leaseLost.Inc()
	r.log.Warn(msg, "lease_id", int64(st.lease))
	st.drop()
}

// forgetMissing drops from written every key that is no longer in etcd.
// It reads exactly those keys, so a role allowing only the registrar's own
// services suffices.
func (r *Writer) forgetMissing(ctx context.Context, st *leaseState) {
	present, err := r.present(ctx, slices.Collect(maps.Keys(st.written)))
	if err != nil {
		r.log.Warn("cannot check which records still exist", "err", err)
		return
	}
	for key := range st.written {
		if !present[key] {
			st.setWritten(key, nil)
			r.log.Warn("record deleted by someone else; writing it again", "key", key)
		}
	}
	r.kick()
}

// present returns which of keys exist, reading them in batched
// transactions of single-key gets.
func (r *Writer) present(ctx context.Context, keys []string) (map[string]bool, error) {
	out := make(map[string]bool, len(keys))
	for chunk := range slices.Chunk(keys, maxTxnOps) {
		ops := make([]etcd.Op, len(chunk))
		for i, k := range chunk {
			ops[i] = etcd.OpGet(k, etcd.WithKeysOnly())
		}
		tctx, cancel := withTimeout(ctx)
		resp, err := r.cli.Txn(tctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			return nil, err
		}
		for _, rr := range resp.Responses {
			for _, kv := range rr.GetResponseRange().Kvs {
				out[string(kv.Key)] = true
			}
		}
	}
	return out, nil
}

// grant takes a new lease and starts its keepalive.
func (r *Writer) grant(ctx context.Context, st *leaseState) error {
	gctx, cancel := withTimeout(ctx)
	resp, err := r.cli.Grant(gctx, int64(r.ttl/time.Second))
	cancel()
	if IsPermission(err) {
		return r.denied.fail("grant", "lease", err)
	}
	if err != nil {
		return err
	}
	r.denied.ok("grant", "lease")
	kactx, kacancel := context.WithCancel(context.WithoutCancel(ctx))
	ch, err := r.cli.KeepAlive(kactx, resp.ID)
	if err != nil {
		kacancel()
		return err
	}
	st.lease, st.alive, st.stopKA = resp.ID, drainKeepAlive(ch), kacancel
	r.registers.Inc()
	r.log.Info("lease granted", "lease_id", int64(resp.ID), "ttl", r.ttl.String())
	return nil
}

// checkLease answers VerifyLease: when the lease is gone it drops it (the
// next sync registers again); when it is alive, records someone deleted
// by hand are forgotten, so the next sync writes them again.
func (r *Writer) checkLease(ctx context.Context, st *leaseState) {
	if st.lease == 0 {
		return
	}
	vctx, cancel := withTimeout(ctx)
	ttl, err := r.cli.TimeToLive(vctx, st.lease)
	cancel()
	if err == nil && ttl.TTL > 0 {
		r.forgetMissing(ctx, st)
		return
	}
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return // etcd unreachable: keepalive will tell
	}
	r.lost(st, "lease gone (records disappeared); registering again under a new lease")
}

// revoke drops the lease on shutdown and revokes it, which deregisters
// every record written under it at once.
func (r *Writer) revoke(ctx context.Context, st *leaseState) {
	lease, records := st.lease, len(st.written)
	st.drop()
	if lease == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	_, err := r.cli.Revoke(rctx, lease)
	cancel()
	if err != nil {
		r.log.Warn("revoke lease on shutdown failed; records expire with the lease", "lease_id", int64(lease), "err", err)
	} else {
		r.log.Info("deregistered: lease revoked", "lease_id", int64(lease), "records", records)
	}
}

// drainKeepAlive consumes keepalive responses (the client needs them read)
// and closes the returned channel when the lease is gone.
func drainKeepAlive(ch <-chan *etcd.LeaseKeepAliveResponse) <-chan *etcd.LeaseKeepAliveResponse {
	done := make(chan *etcd.LeaseKeepAliveResponse)
	go func() {
		defer close(done)
		for range ch {
		}
	}()
	return done
}
