package watchlist

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/fsnotify/fsnotify"
)

// Watch loads path, calls apply with its rules, then calls apply again each
// time the file changes and still validates. A file that no longer validates
// is reported to onError and the rules in force stay. Watch returns when ctx
// ends, or at once if the first load fails. It watches the file's directory,
// so editors that replace the file and ConfigMap updates (symlink swaps) are
// seen.
func Watch(ctx context.Context, path string, apply func([]Rule) error, onError func(error)) error {
	// Watch first, then load: a change made in between is seen, never missed.
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch watchlist: %w", err)
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(path)); err != nil {
		return fmt.Errorf("watch %s: %w", filepath.Dir(path), err)
	}
	rules, err := Load(path)
	if err != nil {
		return err
	}
	if err := apply(rules); err != nil {
		return fmt.Errorf("apply watchlist %s: %w", path, err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-w.Errors:
			onError(fmt.Errorf("watch watchlist %s: %w", path, err))
		case ev := <-w.Events:
			if ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) == 0 {
				continue
			}
			next, err := Load(path)
			if err != nil {
				onError(fmt.Errorf("watchlist %s rejected, keeping the rules in force: %w", path, err))
				continue
			}
			if slices.Equal(next, rules) {
				continue // another file of the directory, or no real change
			}
			rules = next
			if err := apply(rules); err != nil {
				onError(fmt.Errorf("apply watchlist %s: %w", path, err))
			}
		}
	}
}
