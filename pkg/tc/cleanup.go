package tc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/link"

	"github.com/nsint/nsint/pkg/netif"
)

// CleanupScope tells Cleanup which namespaces the agent may have attached
// to: the same netns dirs as the agent.
type CleanupScope struct {
	// NetnsDirs are searched for namespace files (/var/run/netns).
	NetnsDirs []string
	// NetnsPaths are further namespace files.
	NetnsPaths []string
	// IncludeHost also cleans the agent's own namespace. When false, the
	// host namespace is skipped even if a file in NetnsDirs names it.
	IncludeHost bool
}

// Cleanup removes every attachment of ours on the node and nothing else,
// for uninstall and for recovery after a crashed agent; no agent may be
// running. What it removes is provably ours: every TCX link pinned under
// <cfg.PinDir>/tcx (detached, then unpinned) and every legacy filter whose
// kind, name and handle are ours (at any priority) in each namespace of
// scope. With IncludeHost false nothing in the host namespace is touched,
// pinned or not. Qdiscs are never deleted. It goes on past errors and
// returns how many objects it removed with every error joined.
func Cleanup(cfg Config, scope CleanupScope) (removed int, err error) {
	cfg = cfg.withDefaults()
	own, err := openNetns("", 0)
	if err != nil {
		return 0, fmt.Errorf("cleanup: %w", err)
	}
	hostInode := own.inode
	own.close()

	var errs []error
	if cfg.PinDir != "" {
		n, err := cleanupPins(cfg.PinDir, hostInode, scope.IncludeHost)
		removed += n
		errs = append(errs, err)
	}
	n, err := cleanupFilters(cfg, scope, hostInode)
	removed += n
	errs = append(errs, err)
	return removed, errors.Join(errs...)
}

// cleanupPins drops every link pinned in our layout under pinDir/tcx, except
// those of the host namespace unless includeHost.
func cleanupPins(pinDir string, hostInode netif.Netns, includeHost bool) (int, error) {
	defer removeIfEmpty(pinDir) // New created it; left only when not empty
	root := filepath.Join(pinDir, tcxPinSubdir)
	nsDirs, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("list pins in %s: %w", root, err)
	}
	removed := 0
	var errs []error
	for _, d := range nsDirs {
		inode, err := strconv.ParseUint(d.Name(), 10, 64)
		if err != nil || !d.IsDir() || (netif.Netns(inode) == hostInode && !includeHost) {
			continue
		}
		dir := filepath.Join(root, d.Name())
		pins, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("list pins in %s: %w", dir, err))
			continue
		}
		for _, p := range pins {
			if !isPinName(p.Name()) {
				continue
			}
			path := filepath.Join(dir, p.Name())
			l, err := link.LoadPinnedLink(path, nil)
			if err != nil {
				errs = append(errs, fmt.Errorf("load pinned link %s: %w", path, err))
				continue
			}
			if err := dropLink(l); err != nil {
				errs = append(errs, fmt.Errorf("remove tcx link %s: %w", path, err))
				continue
			}
			removed++
		}
		removeIfEmpty(dir)
	}
	removeIfEmpty(root)
	return removed, errors.Join(errs...)
}

// isPinName matches <ifindex>_<ingress|egress>.
func isPinName(name string) bool {
	idx, dir, ok := strings.Cut(name, "_")
	if !ok || (dir != netif.Ingress.String() && dir != netif.Egress.String()) {
		return false
	}
	_, err := strconv.ParseUint(idx, 10, 31)
	return err == nil
}

// cleanupFilters removes our legacy filters from every interface of every
// namespace in scope, each through a netlink socket opened in that namespace.
func cleanupFilters(cfg Config, scope CleanupScope, hostInode netif.Netns) (int, error) {
	paths := append([]string(nil), scope.NetnsPaths...)
	if scope.IncludeHost {
		paths = append(paths, ownNetnsPath)
	}
	var errs []error
	for _, dir := range scope.NetnsDirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("list netns dir %s: %w", dir, err))
			continue
		}
		for _, e := range entries {
			if !e.IsDir() {
				paths = append(paths, filepath.Join(dir, e.Name()))
			}
		}
	}
	removed := 0
	seen := make(map[netif.Netns]bool)
	for _, path := range paths {
		ns, err := openNetns(path, 0)
		if errors.Is(err, ErrInterfaceGone) {
			continue // not (or no longer) a namespace
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		skip := seen[ns.inode] || (ns.inode == hostInode && !scope.IncludeHost)
		seen[ns.inode] = true
		if !skip {
			n, err := cleanupNetnsFilters(ns, cfg.Handle)
			removed += n
			errs = append(errs, err)
		}
		ns.close()
	}
	return removed, errors.Join(errs...)
}

func cleanupNetnsFilters(ns *nsRef, handle uint32) (int, error) {
	h, err := ns.netlinkHandle()
	if err != nil {
		return 0, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return 0, fmt.Errorf("list links in netns %s: %w", ns.path, err)
	}
	removed := 0
	var errs []error
	for _, l := range links {
		for _, dir := range netif.Directions {
			n, err := removeOurFilters(h, l, dir, handle)
			removed += n
			if err != nil {
				errs = append(errs, fmt.Errorf("netns %s: %w", ns.path, err))
			}
		}
	}
	return removed, errors.Join(errs...)
}
