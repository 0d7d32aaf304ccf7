package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/nsint/nsint/pkg/config"
	"github.com/nsint/nsint/pkg/datapath"
	"github.com/nsint/nsint/pkg/ports"
	"github.com/nsint/nsint/pkg/tc"
)

// Cleaned says what Cleanup removed.
type Cleaned struct {
	Generations int    // datapath generations pinned for a next start
	Attachments int    // TCX links and legacy filters
	StateFiles  int    // port allocator state files
	PinDir      string // where the pins were
}

// Total is every object Cleanup removed.
func (c Cleaned) Total() int { return c.Generations + c.Attachments + c.StateFiles }

// Cleanup removes for good what agents run with cfg leave on the node, and
// nothing that is not provably theirs: the datapath state pinned for the
// next start, every attachment (tc.Cleanup, in the namespaces of cfg's
// --netns-dir and, with --host-netns, the host's) and the port IDs' state
// files. No agent may be running. It goes on past errors, and stops between
// steps once ctx ends, returning what it removed with every error joined.
func Cleanup(ctx context.Context, cfg *config.Agent) (Cleaned, error) {
	attachCfg, err := attachConfig(cfg)
	if err != nil {
		return Cleaned{}, err
	}
	done := Cleaned{PinDir: attachCfg.PinDir}
	var errs []error
	// The pinned datapath state first: tc.Cleanup then removes the pin
	// directory once it is empty.
	done.Generations, err = datapath.RemoveGenerations(GenerationDir(cfg.BPFFSDir))
	errs = append(errs, err)
	if err := ctx.Err(); err != nil {
		return done, errors.Join(append(errs, fmt.Errorf("cleanup stopped: %w", err))...)
	}
	done.Attachments, err = tc.Cleanup(attachCfg, tc.CleanupScope{NetnsDirs: cfg.NetnsDirs, IncludeHost: cfg.HostNetns})
	errs = append(errs, err)
	if err := ctx.Err(); err != nil {
		return done, errors.Join(append(errs, fmt.Errorf("cleanup stopped: %w", err))...)
	}
	done.StateFiles, err = ports.RemoveState(cfg.StateDir)
	errs = append(errs, err)
	return done, errors.Join(errs...)
}
