package registry

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rewire/rewire/internal/etcdtest"
	"github.com/rewire/rewire/registry/schema"
	etcd "go.etcd.io/etcd/client/v3"
)

// TestSnapshotReadsEveryPage loads more records than one read page holds
// and checks that a full read returns all of them.
func TestSnapshotReadsEveryPage(t *testing.T) {
	e := etcdtest.Start(t)
	cli := e.Client(t)
	keys := schema.Keys{Prefix: "/pg"}
	const n = 2*readPage + 500
	var ops []etcd.Op
	flush := func() {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range n {
		svc, id := fmt.Sprintf("svc%d", i%7), fmt.Sprintf("i%05d", i)
		v := fmt.Sprintf(`{"v":1,"service":%q,"id":%q,"address":"10.0.0.1","port":80,"health":{"shallow":"passing"}}`, svc, id)
		ops = append(ops, etcd.OpPut(keys.Instance(svc, id), v))
		if len(ops) == 100 {
			flush()
		}
	}
	flush()
	w := NewWatcher(WatcherOptions{Client: cli, Keys: keys})
	snap, err := w.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, name := range snap.ServiceNames() {
		got += len(snap.Service(name).Instances)
	}
	if got != n {
		t.Errorf("Snapshot read %d instances, want %d (%d pages)", got, n, n/readPage+1)
	}
}
