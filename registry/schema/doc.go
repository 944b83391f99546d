// Package schema is rewire's public data contract, version 1: the etcd key
// schema, the instance record stored under each service key, its validation,
// and Snapshot, an immutable view of the whole registry at one etcd revision.
//
// It imports no etcd code, so that render (which must not depend on etcd) and
// registry (which talks to etcd) share one definition of the data:
//
//	k := schema.Keys{Prefix: "/rewire"}
//	key := k.Instance("web", "web-1")           // "/rewire/services/web/web-1"
//	inst, err := schema.DecodeInstance(value)   // strict validation on read
//
// Every field a template can print is validated both when a record is
// written and when it is read: a record that fails validation never reaches a
// rendered file.
//
// All types here are plain values; a *Snapshot is immutable once built and is
// safe for concurrent use.
package schema
