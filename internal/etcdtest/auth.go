package etcdtest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Perm is one permission of a role: Prefix true grants the range of every
// key starting with Key, otherwise Key alone.
type Perm struct {
	Key    string
	Prefix bool
	Type   clientv3.PermissionType // Read, Write or ReadWrite
}

// Permission types for Perm.
const (
	Read      = clientv3.PermissionType(clientv3.PermRead)
	Write     = clientv3.PermissionType(clientv3.PermWrite)
	ReadWrite = clientv3.PermissionType(clientv3.PermReadWrite)
)

// RootPassword is the root user's password after EnableAuth.
const RootPassword = "root-test-password"

// EnableAuth creates the root user and turns authentication on, through
// cli (a client without credentials, such as Client's), and returns a
// client logged in as root, closed at cleanup.
func (e *Etcd) EnableAuth(t testing.TB, cli *clientv3.Client) *clientv3.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := cli.UserAdd(ctx, "root", RootPassword); err != nil {
		t.Fatalf("etcdtest: add root: %v", err)
	}
	if _, err := cli.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatalf("etcdtest: grant root: %v", err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		t.Fatalf("etcdtest: auth enable: %v", err)
	}
	return e.ClientAs(t, "root", RootPassword)
}

// AddUser creates user with password and one role of the same name
// holding perms, through a root client.
func AddUser(t testing.TB, root *clientv3.Client, user, password string, perms ...Perm) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := root.UserAdd(ctx, user, password); err != nil {
		t.Fatalf("etcdtest: add user %s: %v", user, err)
	}
	if _, err := root.RoleAdd(ctx, user); err != nil {
		t.Fatalf("etcdtest: add role %s: %v", user, err)
	}
	for _, p := range perms {
		end := ""
		if p.Prefix {
			end = clientv3.GetPrefixRangeEnd(p.Key)
		}
		if _, err := root.RoleGrantPermission(ctx, user, p.Key, end, p.Type); err != nil {
			t.Fatalf("etcdtest: grant %s on %s: %v", user, p.Key, err)
		}
	}
	if _, err := root.UserGrantRole(ctx, user, user); err != nil {
		t.Fatalf("etcdtest: grant role %s: %v", user, err)
	}
}

// ClientAs returns a client of e authenticated as user, closed at cleanup.
func (e *Etcd) ClientAs(t testing.TB, user, password string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   e.Endpoints,
		DialTimeout: 5 * time.Second,
		Username:    user,
		Password:    password,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcdtest: client as %s: %v", user, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
