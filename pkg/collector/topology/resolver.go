package topology

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsint/nsint/pkg/api"
)

// Path is where agents serve their topology.
const Path = "/api/v1/topology"

// maxDocumentBytes bounds what the resolver reads from one agent.
const maxDocumentBytes = 32 << 20

// Config configures a Resolver.
type Config struct {
	// Agents is the static list of agent base URLs ("http://10.0.0.1:4048").
	// When empty, the agent of a report is asked at the report's source
	// address and AgentPort.
	Agents    []string
	AgentPort int
	// HTTPS asks the agents found at report sources over https (Client
	// then holds the CA to verify them with).
	HTTPS bool
	// Client fetches documents; nil means a client with a 5 s timeout.
	Client *http.Client
	// Refresh is how often every known agent is asked again (0: 30 s).
	Refresh time.Duration
	// MinInterval is the least time between two fetches of one agent (0: 1 s).
	MinInterval time.Duration
	// MaxAgents bounds how many agents discovered from report sources are
	// remembered (0: 4096); requests beyond it are counted and ignored.
	MaxAgents int
	// MaxConcurrent bounds simultaneous fetches (0: 8).
	MaxConcurrent int
	// OnChange is called from Run's goroutine after the snapshot changed.
	OnChange func()
	// OnSources is called from Run's goroutine after the state of a source
	// address (see Source) changed.
	OnSources func()
}

// Stats are the resolver's counters.
type Stats struct {
	Fetches        uint64 `json:"fetches"`
	FetchErrors    uint64 `json:"fetchErrors"`
	Changes        uint64 `json:"changes"`
	Agents         int    `json:"agents"`
	AgentsOverflow uint64 `json:"agentsOverflow"`
	RequestsQueued uint64 `json:"requestsQueued"`
	RequestsLost   uint64 `json:"requestsLost"` // the request queue was full
}

// AgentStatus describes one agent for diagnostics.
type AgentStatus struct {
	URL        string    `json:"url"`
	SwitchID   uint32    `json:"switchId"`
	Node       string    `json:"node"`
	Generation uint64    `json:"generation"`
	Ports      int       `json:"ports"`
	Fetched    time.Time `json:"fetched"`
	LastError  string    `json:"lastError,omitempty"`
}

// portIndex packs a Key into one word so lookups hash a single integer.
type portIndex uint64

func (k Key) index() portIndex { return portIndex(uint64(k.SwitchID)<<16 | uint64(k.Port)) }

type snapshot struct {
	ports map[portIndex]*Port
	// bySwitch maps a switch ID to the URL of its agent.
	bySwitch map[uint32]string
	// nodes maps a switch ID to its agent's node name.
	nodes  map[uint32]string
	docs   []Document
	agents []AgentStatus
	// sources is the state of each address an agent was asked at or
	// resolved to (see Source); staticDone: every static agent's host was
	// resolved (or tried once), so any other address is no agent.
	sources    map[netip.Addr]SourceState
	staticDone bool
}

type request struct {
	source   netip.Addr
	switchID uint32
}

type agent struct {
	url      string
	static   bool         // from Config.Agents
	addrs    []netip.Addr // static: its host's addresses, once resolved
	done     bool         // a fetch completed (or failed)
	doc      *Document
	fetched  time.Time
	tried    time.Time
	inFlight bool
	again    bool // asked for while in flight or too soon: fetch when allowed
	lastErr  string
}

type fetchResult struct {
	url   string
	doc   *Document
	err   error
	addrs []netip.Addr // static agents: the host's addresses; nil: not resolved
}

// Resolver resolves (switch ID, port ID) to ports from the agents' topologies.
type Resolver struct {
	cfg      Config
	static   bool
	snap     atomic.Pointer[snapshot]
	requests chan request

	fetches, fetchErrors, changes   atomic.Uint64
	agentsOverflow, queued, reqLost atomic.Uint64

	mu     sync.Mutex // guards agents; written only by Run
	agents map[string]*agent
}

// New returns a resolver; call Run to make it fetch anything.
func New(cfg Config) (*Resolver, error) {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 30 * time.Second
	}
	if cfg.MinInterval <= 0 {
		cfg.MinInterval = time.Second
	}
	if cfg.MaxAgents <= 0 {
		cfg.MaxAgents = 4096
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 8
	}
	r := &Resolver{cfg: cfg, static: len(cfg.Agents) > 0,
		requests: make(chan request, 1024), agents: map[string]*agent{}}
	for _, a := range cfg.Agents {
		u, err := NormalizeAgentURL(a)
		if err != nil {
			return nil, err
		}
		a := &agent{url: u, static: true}
		if addr, ok := urlAddr(u); ok {
			a.addrs = []netip.Addr{addr}
		}
		r.agents[u] = a
	}
	sources, staticDone := r.sourcesLocked()
	r.snap.Store(&snapshot{ports: map[portIndex]*Port{}, bySwitch: map[uint32]string{}, nodes: map[uint32]string{},
		sources: sources, staticDone: staticDone})
	return r, nil
}

// NormalizeAgentURL checks an agent base URL and strips the topology path
// and trailing slashes: "http://h:4048/api/v1/topology" → "http://h:4048". A
// bare "host:port" gets the http scheme.
func NormalizeAgentURL(s string) (string, error) {
	raw := s
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("agent url %q: want http(s)://host:port", raw)
	}
	u.Path = strings.TrimRight(strings.TrimSuffix(strings.TrimRight(u.Path, "/"), Path), "/")
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

// AgentURL is the base URL of the agent reporting from source on port.
func AgentURL(source netip.Addr, port int) string {
	return "http://" + net.JoinHostPort(source.Unmap().WithZone("").String(), strconv.Itoa(port))
}

// Lookup returns the port, or nil when it is not (yet) known. It never
// blocks and is safe for concurrent use; the result is shared and read-only.
func (r *Resolver) Lookup(k Key) *Port {
	return r.snap.Load().ports[k.index()]
}

// Node returns the node name of the agent whose topology has switchID (its
// document's node, else its URL's host), and false while no fetched topology
// has it. It never blocks.
func (r *Resolver) Node(switchID uint32) (string, bool) {
	n, ok := r.snap.Load().nodes[switchID]
	return n, ok
}

// Request asks Run to fetch the topology that should know switchID (from the
// agent at source, or from the static list). It never blocks: when the queue
// is full, the request is counted as lost.
func (r *Resolver) Request(source netip.Addr, switchID uint32) {
	select {
	case r.requests <- request{source: source, switchID: switchID}:
		r.queued.Add(1)
	default:
		r.reqLost.Add(1)
	}
}

// Ports returns every known port, ordered by switch ID then port ID.
func (r *Resolver) Ports() []*Port {
	s := r.snap.Load()
	out := make([]*Port, 0, len(s.ports))
	for _, d := range s.docs {
		for i := range d.Ports {
			if p := s.ports[Key{SwitchID: d.SwitchID, Port: d.Ports[i].ID}.index()]; p != nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// Documents returns the topology documents of every agent fetched so far.
func (r *Resolver) Documents() []Document { return r.snap.Load().docs }

// Agents returns the status of every agent.
func (r *Resolver) Agents() []AgentStatus { return r.snap.Load().agents }

// Stats returns the resolver's counters.
func (r *Resolver) Stats() Stats {
	return Stats{
		Fetches: r.fetches.Load(), FetchErrors: r.fetchErrors.Load(), Changes: r.changes.Load(),
		Agents: len(r.snap.Load().agents), AgentsOverflow: r.agentsOverflow.Load(),
		RequestsQueued: r.queued.Load(), RequestsLost: r.reqLost.Load(),
	}
}

// Run fetches topologies on request and every Refresh until ctx ends. In
// static mode it fetches every agent at start.
func (r *Resolver) Run(ctx context.Context) error {
	results := make(chan fetchResult)
	sem := make(chan struct{}, r.cfg.MaxConcurrent)
	var wg sync.WaitGroup
	defer wg.Wait()

	start := func(a *agent, now time.Time) {
		if a.inFlight || now.Sub(a.tried) < r.cfg.MinInterval {
			a.again = true
			return
		}
		a.inFlight, a.tried, a.again = true, now, false
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			var addrs []netip.Addr
			if a.static {
				addrs = resolveHost(ctx, a.url)
			}
			doc, err := Fetch(ctx, r.cfg.Client, a.url)
			<-sem
			select {
			case results <- fetchResult{url: a.url, doc: doc, err: err, addrs: addrs}:
			case <-ctx.Done():
			}
		}()
	}
	startAll := func() {
		now := time.Now()
		r.mu.Lock()
		for _, a := range r.agents {
			start(a, now)
		}
		r.mu.Unlock()
	}
	startDeferred := func() {
		now := time.Now()
		r.mu.Lock()
		for _, a := range r.agents {
			if a.again {
				start(a, now)
			}
		}
		r.mu.Unlock()
	}
	startAll()
	tick := time.NewTicker(r.cfg.Refresh)
	defer tick.Stop()
	retry := time.NewTicker(r.cfg.MinInterval)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			startAll()
		case <-retry.C:
			startDeferred()
		case req := <-r.requests:
			r.handleRequest(req, start)
		case res := <-results:
			r.apply(res)
		}
	}
}

func (r *Resolver) handleRequest(req request, start func(*agent, time.Time)) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	snap := r.snap.Load()
	u := ""
	if req.source.IsValid() {
		u = AgentURL(req.source, r.cfg.AgentPort)
		if r.cfg.HTTPS {
			u = "https" + strings.TrimPrefix(u, "http")
		}
	}
	if su, ok := snap.bySwitch[req.switchID]; ok {
		if a := r.agents[su]; a != nil {
			start(a, now)
			// A source that is not yet an agent is asked itself too,
			// whatever switch ID its reports claim: that is what makes
			// it an agent or rejects it.
			if r.static || u == "" || u == su || snap.sources[req.source.Unmap().WithZone("")] == SourceAgent {
				return
			}
		}
	}
	if r.static {
		for _, a := range r.agents {
			start(a, now)
		}
		return
	}
	if u == "" {
		return
	}
	a := r.agents[u]
	if a == nil {
		if len(r.agents) >= r.cfg.MaxAgents && !r.evictRejectedLocked() {
			r.agentsOverflow.Add(1)
			return
		}
		a = &agent{url: u}
		r.agents[u] = a
	}
	start(a, now)
}

func (r *Resolver) apply(res fetchResult) {
	r.fetches.Add(1)
	r.mu.Lock()
	a := r.agents[res.url]
	if a == nil {
		r.mu.Unlock()
		return
	}
	a.inFlight, a.done = false, true
	if res.addrs != nil {
		a.addrs = res.addrs
	}
	old := r.snap.Load()
	if res.err != nil {
		r.fetchErrors.Add(1)
		a.lastErr = res.err.Error()
		r.publishLocked(false)
		cur := r.snap.Load()
		r.mu.Unlock()
		r.notifySources(old, cur)
		return
	}
	a.lastErr = ""
	changed := a.doc == nil || a.doc.Generation != res.doc.Generation || res.doc.Generation == 0 ||
		a.doc.SwitchID != res.doc.SwitchID
	a.doc, a.fetched = res.doc, time.Now()
	// Ports are rebuilt on every fetch, so that their counters are those of
	// the latest one; only a new generation is a change of the topology.
	r.publishLocked(true)
	cur := r.snap.Load()
	r.mu.Unlock()
	r.notifySources(old, cur)
	if changed {
		r.changes.Add(1)
		if r.cfg.OnChange != nil {
			r.cfg.OnChange()
		}
	}
}

// publishLocked rebuilds the snapshot; ports are rebuilt only when changed.
func (r *Resolver) publishLocked(changed bool) {
	old := r.snap.Load()
	s := &snapshot{ports: old.ports, bySwitch: old.bySwitch, nodes: old.nodes, docs: old.docs}
	if changed {
		s.ports, s.bySwitch, s.nodes, s.docs = map[portIndex]*Port{}, map[uint32]string{}, map[uint32]string{}, nil
		for _, a := range r.agents {
			if a.doc == nil {
				continue
			}
			d := *a.doc
			node := d.Node
			if node == "" {
				node = hostOf(a.url)
			}
			s.docs = append(s.docs, d)
			s.bySwitch[d.SwitchID] = a.url
			s.nodes[d.SwitchID] = node
			// Gone ports still name the reports they sent as they went;
			// a current port of the same ID takes precedence.
			for _, list := range [][]api.Port{d.GonePorts, d.Ports} {
				for i := range list {
					p := Port{Port: list[i], SwitchID: d.SwitchID, Node: node}
					s.ports[Key{SwitchID: d.SwitchID, Port: p.ID}.index()] = &p
				}
			}
		}
		sortDocs(s.docs)
	}
	for _, a := range r.agents {
		st := AgentStatus{URL: a.url, Fetched: a.fetched, LastError: a.lastErr}
		if a.doc != nil {
			st.SwitchID, st.Node, st.Generation, st.Ports = a.doc.SwitchID, a.doc.Node, a.doc.Generation, len(a.doc.Ports)
		}
		s.agents = append(s.agents, st)
	}
	sortAgents(s.agents)
	s.sources, s.staticDone = r.sourcesLocked()
	r.snap.Store(s)
}

func (r *Resolver) notifySources(old, cur *snapshot) {
	if r.cfg.OnSources != nil && sourcesChanged(old, cur) {
		r.cfg.OnSources()
	}
}

func hostOf(u string) string {
	_, rest, _ := strings.Cut(u, "://")
	host, _, err := net.SplitHostPort(rest)
	if err != nil {
		return rest
	}
	return host
}

// ErrBadDocument is returned by Fetch for a topology document it cannot use.
var ErrBadDocument = errors.New("bad topology document")

// Fetch gets and decodes the topology of the agent at base URL.
func Fetch(ctx context.Context, c *http.Client, base string) (*Document, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+Path, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch topology from %s: %w", base, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch topology from %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch topology from %s: http status %d", base, resp.StatusCode)
	}
	var d Document
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDocumentBytes)).Decode(&d); err != nil {
		return nil, fmt.Errorf("decode topology from %s: %w: %w", base, ErrBadDocument, err)
	}
	return &d, nil
}

// FetchAll fetches the topology of every agent in urls (base URLs, see
// NormalizeAgentURL), in order, and returns them or the errors of those
// that failed.
func FetchAll(ctx context.Context, c *http.Client, urls []string) ([]Document, error) {
	var docs []Document
	var errs []error
	for _, raw := range urls {
		u, err := NormalizeAgentURL(raw)
		if err == nil {
			var d *Document
			if d, err = Fetch(ctx, c, u); err == nil {
				docs = append(docs, *d)
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return docs, errors.Join(errs...)
}

// Install adds or replaces the document of the agent at base URL as if it
// had just been fetched (for documents obtained elsewhere, and tests). It
// calls OnChange like Run does.
func (r *Resolver) Install(base string, doc Document) error {
	u, err := NormalizeAgentURL(base)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if r.agents[u] == nil {
		r.agents[u] = &agent{url: u}
	}
	r.mu.Unlock()
	r.apply(fetchResult{url: u, doc: &doc})
	return nil
}
