// Package backoff is the one retry delay of rewire's loops (the registry
// watch and writer, the templater's failed applies): exponential, from Min
// doubling up to Max, with jitter over the upper half of each step so that
// many daemons retrying together spread out.
//
//	b := backoff.New(100*time.Millisecond, time.Second)
//	for err := try(); err != nil; err = try() {
//		time.Sleep(b.Next())
//	}
//	b.Reset()
//
// A Backoff is not safe for concurrent use.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff is an exponential delay with jitter.
type Backoff struct {
	min, max, cur time.Duration
}

// New returns a Backoff whose first delay is about min and whose delays
// never exceed max.
func New(minD, maxD time.Duration) *Backoff { return &Backoff{min: minD, max: maxD, cur: minD} }

// Next returns the next delay: between half of and the current step, which
// then doubles (up to max).
func (b *Backoff) Next() time.Duration {
	d := b.cur/2 + rand.N(b.cur/2+1)
	b.cur = min(b.cur*2, b.max)
	return d
}

// Reset starts again from min.
func (b *Backoff) Reset() { b.cur = b.min }
