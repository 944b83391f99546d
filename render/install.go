package render

import (
	"context"
	"os"
	"path/filepath"
)

// installed is a destination replaced in this round, with what to put
// back if the round fails.
type installed struct {
	t       *Target
	plan    *planned
	prev    []byte
	existed bool
	// change is the file's change as the template's runtime applies it
	// (nil without a runtime); live is what it did live, or whyReload why
	// it could not.
	change          RuntimeChange
	live, whyReload string
}

// install writes out to a staged file beside the destination, runs the
// check on it, and renames it into place.
func (t *Target) install(ctx context.Context, p *planned) (*installed, error) {
	staged, err := t.stage(p.out)
	if err != nil {
		return nil, &Error{Template: t.cfg.Name, Stage: StageWrite, Err: err}
	}
	defer os.Remove(staged) // no-op after a successful rename
	if !t.cfg.Check.IsZero() {
		if output, err := t.cfg.Check.run(ctx, t.vars(staged), t.cfg.CommandTimeout); err != nil {
			return nil, &Error{Template: t.cfg.Name, Stage: StageCheck, Output: output, Err: err}
		}
	}
	// The directory is fsynced later (syncDir), after the change reached
	// its consumer: a crash before that can only bring back the previous
	// file, which the templater replaces again when it starts.
	if err := os.Rename(staged, t.cfg.Destination); err != nil {
		return nil, &Error{Template: t.cfg.Name, Stage: StageWrite, Err: err}
	}
	return &installed{t: t, plan: p, prev: p.prev, existed: p.existed}, nil
}

// restore puts the previous file back. A destination that did not exist
// before is left in place: there is nothing to go back to.
func (in *installed) restore() error {
	if !in.existed {
		return nil
	}
	return in.t.writeAtomic(in.prev)
}

// writeAtomic replaces the destination with b without a check.
func (t *Target) writeAtomic(b []byte) error {
	staged, err := t.stage(b)
	if err != nil {
		return err
	}
	if err := os.Rename(staged, t.cfg.Destination); err != nil {
		os.Remove(staged)
		return err
	}
	return t.syncDir()
}

// stage writes b to a new file in the destination's directory, fsynced,
// with the configured mode.
func (t *Target) stage(b []byte) (string, error) {
	dir, base := filepath.Dir(t.cfg.Destination), filepath.Base(t.cfg.Destination)
	f, err := os.CreateTemp(dir, "."+base+".rewire-*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(os.FileMode(t.cfg.Mode))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// syncDir fsyncs the destination's directory, so that a rename into it
// survives a crash.
func (t *Target) syncDir() error {
	d, err := os.Open(filepath.Dir(t.cfg.Destination))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
