package registry

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rewire/rewire/registry/schema"
	"go.etcd.io/etcd/api/v3/mvccpb"
	etcd "go.etcd.io/etcd/client/v3"
)

// TestWatcherNoticesWipedStore: etcd is wiped and restarted on the same
// address (same cluster ID, revisions from 1 again) while a Watcher
// follows it. Before the fix the watch resumed at the old revision + 1 on
// the new store: silent, then fed with events that did not follow from
// what was read, so deleted records kept being served.
func TestWatcherNoticesWipedStore(t *testing.T) {
	tests := []struct {
		name string
		// refill writes the new store after the wipe; the registry must
		// end up equal to it.
		refill func(t *testing.T, cli *etcd.Client)
		want   []string // web's instances in the new store
		// progress is the watcher's progress interval: stall detection
		// resyncs after three silent ones.
		progress time.Duration
	}{
		{
			// Registrars re-register fast, and the new store passes the old
			// revision before the watch would call itself stalled: the
			// first event that does not fit gives it away.
			name: "new store passes the old revision",
			refill: func(t *testing.T, cli *etcd.Client) {
				for i := range 40 {
					putRev(t, cli, testKeys.Instance("web", "web-2"), mustMarshal(t, testInstance("web", "web-2")))
					putRev(t, cli, testKeys.Root()+"app/n", fmt.Sprint(i))
				}
			},
			want: []string{"web-2"},
			// Long enough that only the events can give the change away.
			progress: time.Hour,
		},
		{
			// Nothing is written: the watch from the future stays silent,
			// stall detection resyncs, and the read is at a lower revision.
			name:     "new store stays below the old revision",
			refill:   func(t *testing.T, cli *etcd.Client) {},
			want:     nil,
			progress: 200 * time.Millisecond,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := startEtcd(t)
			cli := e.Client(t)
			reg := prometheus.NewRegistry()
			log := &logRecorder{}
			w := NewWatcher(WatcherOptions{Client: cli, Keys: testKeys, Registerer: reg, ProgressInterval: tc.progress, Logger: slog.New(log)})
			runInBackground(t, w.Run)
			for _, id := range []string{"web-1", "web-2", "web-3"} {
				putRev(t, cli, testKeys.Instance("web", id), mustMarshal(t, testInstance("web", id)))
			}
			for i := range 20 {
				putRev(t, cli, testKeys.Root()+"app/n", fmt.Sprint(i))
			}
			old := atRev(t, w, e.Rev(t, cli))

			e.Wipe(t)
			tc.refill(t, cli)
			waitSnapshot(t, w, fmt.Sprintf("web = %v as in the new store", tc.want), func(s *schema.Snapshot) bool {
				v, _ := s.Get(testKeys.Root() + "app/n")
				return slices.Equal(instanceIDs(s, "web"), tc.want) && s != old && (len(tc.want) == 0 || v == "39")
			})
			sc := w.StoreChanges()
			if sc.Count < 1 || !strings.Contains(sc.Reason, "not the store") || sc.Time.IsZero() {
				t.Errorf("StoreChanges() = %+v, want at least one, with a reason", sc)
			}
			if n := metricValue(t, reg, "registry_store_changes_total"); n < 1 {
				t.Errorf("registry_store_changes_total = %v, want >= 1", n)
			}
			if len(log.find("etcd is not the store the registry was read from; reading everything again")) == 0 {
				t.Error("no error logged for the store change")
			}
		})
	}
}

// TestVersionsFit: the consistency rule alone.
func TestVersionsFit(t *testing.T) {
	held := testKeys.Instance("web", "web-1")
	put := func(key string, version int64) *etcd.Event {
		return &etcd.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(key), Version: version, ModRevision: 9}}
	}
	del := &etcd.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte(held), ModRevision: 9}}
	tests := []struct {
		name    string
		evs     []*etcd.Event
		changed bool
	}{
		{"create of a new key", []*etcd.Event{put(testKeys.Instance("web", "web-2"), 1)}, false},
		{"next version of a held key", []*etcd.Event{put(held, 5), put(held, 6)}, false},
		{"delete, then create again", []*etcd.Event{del, put(held, 1)}, false},
		{"create of a held key", []*etcd.Event{put(held, 1)}, true},
		{"a version skipped", []*etcd.Event{put(held, 7)}, true},
		{"a version gone back", []*etcd.Event{put(held, 3)}, true},
		{"change of a key never seen", []*etcd.Event{put(testKeys.Instance("web", "web-3"), 4)}, true},
		{"change of a free-form key never seen", []*etcd.Event{put(testKeys.Root()+"app/x", 2)}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := versions{keyHash([]byte(held)): 4}
			var err error
			for _, ev := range tc.evs {
				if err = v.fits(ev); err != nil {
					break
				}
			}
			if got := errors.Is(err, ErrStoreChanged); got != tc.changed {
				t.Errorf("fits = %v, want store changed: %v", err, tc.changed)
			}
		})
	}
}
