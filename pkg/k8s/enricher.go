package k8s

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/go-logr/logr"
	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/nsint/nsint/pkg/netif"
)

// Config configures an Enricher.
type Config struct {
	// Kubeconfig is a kubeconfig file; "" means the in-cluster configuration.
	Kubeconfig string
	// NodeName is this node's name: only its pods are watched. Required.
	NodeName string
	// REST, when set, is used instead of Kubeconfig and the in-cluster
	// configuration (callers that already hold a client configuration).
	REST *rest.Config
	// OnMalformed, when set, is called once per pod whose network-status
	// annotation cannot be used (again only after it was fixed and broke anew).
	// The pod's interfaces are still matched as well as its status allows. It
	// runs on an informer goroutine and must not block.
	OnMalformed func(pod PodRef, err error)
}

// Stats is a snapshot of the Enricher's state and counters.
type Stats struct {
	Pods                 int    // pods of this node currently known (hostNetwork and finished ones included)
	NADs                 int    // NetworkAttachmentDefinitions currently known
	MalformedAnnotations uint64 // malformed network-status annotations reported since start
	WatchErrors          uint64 // failed list/watch attempts (server unreachable, forbidden, CRD absent)
	PodsSynced           bool   // the pod informer has completed its first list
	NADsSynced           bool   // the NetworkAttachmentDefinition informer has completed its first list
	LastWatchError       string // the most recent list/watch error, "" when none
}

// Enricher keeps this node's pods and the cluster's network attachment
// definitions, and matches discovered interfaces to them.
type Enricher struct {
	nodeName    string
	kube        kubernetes.Interface
	nads        nadclient.Interface
	onMalformed func(PodRef, error)
	ownNetns    netif.Netns
	changes     chan struct{}
	running     atomic.Bool

	mu        sync.RWMutex
	pods      map[string]*podNetworks // by pod UID; nil entry: known pod without a namespace of its own
	malformed map[string]bool         // pod UIDs whose annotation was reported malformed
	nadTypes  map[string]string       // "<namespace>/<name>" → CNI type
	synced    []func() bool           // pods, NADs: HasSynced of the running informers
	lastErr   string

	malformedCount atomic.Uint64
	watchErrors    atomic.Uint64
}

// New builds the clients. It does not contact the API server.
func New(cfg Config) (*Enricher, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("kubernetes enrichment: no node name")
	}
	rc := cfg.REST
	if rc == nil {
		var err error
		if cfg.Kubeconfig != "" {
			rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
		} else {
			rc, err = rest.InClusterConfig()
		}
		if err != nil {
			return nil, fmt.Errorf("kubernetes client configuration (kubeconfig %q): %w", cfg.Kubeconfig, err)
		}
	}
	rc = rest.CopyConfig(rc)
	if rc.UserAgent == "" {
		rc.UserAgent = "nsint-agent"
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", rc.Host, err)
	}
	nads, err := nadclient.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("network-attachment-definition client for %s: %w", rc.Host, err)
	}
	return &Enricher{
		nodeName:    cfg.NodeName,
		kube:        kube,
		nads:        nads,
		onMalformed: cfg.OnMalformed,
		ownNetns:    ownNetnsInode(),
		changes:     make(chan struct{}, 1),
		pods:        map[string]*podNetworks{},
		malformed:   map[string]bool{},
		nadTypes:    map[string]string{},
	}, nil
}

// ownNetnsInode returns the inode of the process's network namespace: a
// hostNetwork agent shares it with the host and every hostNetwork pod. The
// calling thread's (thread-self): the main thread (/proc/self) may be running
// a goroutine that switched namespace for a moment.
func ownNetnsInode() netif.Netns {
	fi, err := os.Stat("/proc/thread-self/ns/net")
	if err != nil {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return netif.Netns(st.Ino)
	}
	return 0
}

// Changes signals (coalesced: at most one pending signal) that pods or network
// attachment definitions changed, so the caller should match again.
func (e *Enricher) Changes() <-chan struct{} { return e.changes }

func (e *Enricher) notify() {
	select {
	case e.changes <- struct{}{}:
	default:
	}
}

// Match answers, for the interfaces the agent discovered, the Kubernetes
// meaning of those it can attribute: index into ifaces → Meta. Interfaces of
// the agent's own network namespace are never attributed.
func (e *Enricher) Match(ifaces []Iface) map[int]Meta {
	e.mu.RLock()
	defer e.mu.RUnlock()
	live := make(map[string]*podNetworks, len(e.pods))
	for uid, p := range e.pods {
		if p != nil {
			live[uid] = p
		}
	}
	return newMatcher(sortedPods(live), e.networkTypeLocked).match(ifaces, e.ownNetns)
}

// networkTypeLocked returns the CNI type of network as a pod in podNamespace
// refers to it. Multus names attachments "<namespace>/<name>"; a bare name (the
// default network) is looked up in the pod's namespace, then in kube-system.
func (e *Enricher) networkTypeLocked(podNamespace, network string) string {
	if t, ok := e.nadTypes[network]; ok {
		return t
	}
	for _, ns := range []string{podNamespace, "kube-system"} {
		if t, ok := e.nadTypes[ns+"/"+network]; ok {
			return t
		}
	}
	return ""
}

// Stats returns the current counters and sync state.
func (e *Enricher) Stats() Stats {
	e.mu.RLock()
	defer e.mu.RUnlock()
	s := Stats{
		Pods:                 len(e.pods),
		NADs:                 len(e.nadTypes),
		MalformedAnnotations: e.malformedCount.Load(),
		WatchErrors:          e.watchErrors.Load(),
		LastWatchError:       e.lastErr,
	}
	if len(e.synced) == 2 {
		s.PodsSynced, s.NADsSynced = e.synced[0](), e.synced[1]()
	}
	return s
}

// Run runs the informers until ctx ends. An unreachable server, a missing
// NetworkAttachmentDefinition CRD or a forbidden list only delay names: the
// informers retry with back-off and the failures are counted in Stats. Run
// may be called once.
func (e *Enricher) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("kubernetes enrichment: Run called twice")
	}
	// client-go logs through the context's logger (watch warnings, traces of
	// slow lists): silence it; failures reach Stats through the error handler.
	ctx = klog.NewContext(ctx, logr.Discard())
	pods := e.podInformer()
	nads := e.nadInformer()
	for _, inf := range []struct {
		name string
		inf  cache.SharedIndexInformer
	}{{"pods", pods}, {"network-attachment-definitions", nads}} {
		if err := inf.inf.SetWatchErrorHandlerWithContext(e.watchErrorHandler(inf.name)); err != nil {
			return fmt.Errorf("%s informer: %w", inf.name, err)
		}
	}
	e.mu.Lock()
	e.synced = []func() bool{pods.HasSynced, nads.HasSynced}
	e.mu.Unlock()

	var wg sync.WaitGroup
	for _, inf := range []cache.SharedIndexInformer{pods, nads} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inf.RunWithContext(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// watchErrorHandler replaces client-go's default handler, which logs.
func (e *Enricher) watchErrorHandler(resource string) cache.WatchErrorHandlerWithContext {
	return func(_ context.Context, _ *cache.Reflector, err error) {
		e.watchErrors.Add(1)
		e.mu.Lock()
		e.lastErr = fmt.Sprintf("list/watch %s: %v", resource, err)
		e.mu.Unlock()
	}
}
