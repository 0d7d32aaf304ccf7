package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nsint/nsint/ifacewatch/selection"
	"github.com/nsint/nsint/internal/flagconf"
	"github.com/nsint/nsint/pkg/tc/legacyfilter"
)

// EnvPrefix prefixes the environment variable of every agent flag.
const EnvPrefix = "NSINT_"

// DefaultAPIPort is the agent API's port, the one the original INT Host
// Reporter used.
const DefaultAPIPort = 4048

// DefaultCollectorPort is the de-facto INT report port of the ecosystem.
const DefaultCollectorPort = 32766

// DefaultSelect is the interface selection when no --select rule is given:
// every interface but loopback.
const DefaultSelect = "exclude kind=loopback"

// AttachMode is the --attach-mode value: how programs are attached to the TC
// hooks.
type AttachMode string

// The attach modes.
const (
	AttachAuto   AttachMode = "auto" // TCX when the kernel has it, else legacy tc
	AttachTCX    AttachMode = "tcx"  // TCX links only
	AttachLegacy AttachMode = "tc"   // legacy clsact + cls_bpf only
)

// Agent is the validated configuration of nsint-agent.
type Agent struct {
	Collectors         []string         // host:port, each validated
	CollectorReplicas  string           // host:port of a name with one address per collector replica ("" = none)
	CollectorRefresh   time.Duration    // how often CollectorReplicas is resolved again
	ReportFormat       string           // "v0.5" or "v2.0"
	SwitchID           uint32           // INT switch / node ID
	SwitchIDSource     string           // how SwitchID was chosen, for the log
	APIAddr            string           // host:port of the REST API
	NetnsDirs          []string         // directories of namespace files
	AttachMode         AttachMode       // auto, tcx or tc
	TailCall           string           // direct or indirect: how dispatchers enter the shared program
	Watchlist          string           // YAML file of watchlist rules ("" = report everything)
	StateDir           string           // persistent state (port IDs)
	BPFFSDir           string           // mount point of the BPF filesystem; pins go under BPFFSDir/nsint
	NodeName           string           // this node's name
	NodeIP             string           // this node's address, when known
	LogLevel           slog.Level       // debug, info, warn, error
	HostNetns          bool             // also watch the agent's own network namespace
	ReportInterval     time.Duration    // refresh interval of an active flow's reports
	DropReportInterval time.Duration    // minimum gap between drop reports of one flow
	SnapLen            int              // bytes of each packet carried in a report
	Select             []selection.Rule // interface selection (DefaultSelect when none is given)
	TCPriority         int              // preferred priority of our legacy tc filters
	TCHandle           uint32           // legacy tc filter handle of ours
	MaxPorts           int              // port IDs available on the node
	MaxFlows           int              // flow-state entries in the kernel
	ReportBufferBytes  int              // report ring room per CPU
	Kubeconfig         string           // "" = in-cluster when in a pod, else no Kubernetes
	Kubernetes         string           // auto, on or off
	APIAuth            APIAuth          // none or kubernetes (auto resolved)
	APIAuthFrom        string           // the --api-auth value APIAuth was resolved from
	APITLSCert         string           // PEM certificate of the API ("" = plain HTTP)
	APITLSKey          string           // PEM key of APITLSCert
	APIAuthCacheTTL    time.Duration    // how long an authentication or authorization decision is reused
}

// APIAuth is who may call the agent's API.
type APIAuth string

// The API authentication modes.
const (
	APIAuthAuto       APIAuth = "auto"       // kubernetes when Kubernetes is on, else none
	APIAuthNone       APIAuth = "none"       // anyone who reaches the port
	APIAuthKubernetes APIAuth = "kubernetes" // bearer tokens, TokenReview and SubjectAccessReview
)

type rawAgent struct {
	collectors, netnsDirs, selects   *flagconf.StringList
	format, switchID, apiAddr        *string
	attachMode, watchlist            *string
	stateDir, bpffs, nodeName        *string
	nodeIP, logLevel, config         *string
	hostNetns                        *bool
	reportInterval, dropInterval     *time.Duration
	snaplen, tcPrio                  *int
	tcHandle                         *string
	maxPorts, maxFlows, reportBuffer *int
	kubeconfig, kubernetes           *string
	tailCall                         *string
	replicas                         *string
	replicaRefresh                   *time.Duration
	apiAuth, apiCert, apiKey         *string
	apiAuthTTL                       *time.Duration
}

// FlagSet declares every agent flag on a new flag set. The returned function
// validates the parsed values into an Agent.
func FlagSet(name string) (*flag.FlagSet, func() (*Agent, error)) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	r := &rawAgent{
		collectors: flagconf.NewStringList(),
		netnsDirs:  flagconf.NewStringList("/var/run/netns"),
		selects:    flagconf.NewStringList(),
	}
	fs.Var(r.collectors, "collector", "INT collector `host:port` to send reports to (repeatable; port defaults to 32766)")
	r.replicas = fs.String("collector-replicas", "", "collector run as several replicas: `host:port` of a name with one address per replica (a headless Service); this node's reports go to one of them, chosen by rendezvous hashing of the node name (port defaults to 32766)")
	r.replicaRefresh = fs.Duration("collector-refresh", 30*time.Second, "how often --collector-replicas is resolved again (a replica added or gone moves only the nodes that must move)")
	r.format = fs.String("report-format", "v2.0", "INT Telemetry Report format: v2.0, or v0.5 for DeepInsight and SD-Fabric")
	r.switchID = fs.String("switch-id", "", "INT switch/node ID: a uint32 or an IPv4 address (default: derived from --node-ip, else the node name)")
	r.apiAddr = fs.String("api-addr", fmt.Sprintf(":%d", DefaultAPIPort), "listen address of the REST API (topology, metrics, health)")
	fs.Var(r.netnsDirs, "netns-dir", "directory of network namespace files to watch (repeatable)")
	r.attachMode = fs.String("attach-mode", "auto", "TC attachment: auto (TCX when the kernel has it), tcx, or tc (legacy clsact + cls_bpf)")
	r.tailCall = fs.String("tail-call", "direct", "how each interface's dispatcher enters the shared program: direct (a jump patched in at load: fewest ns per packet) or indirect (about half the load cost and no IPI to every CPU per hook, some ns more per packet on CPUs with retpolines)")
	r.watchlist = fs.String("watchlist", "", "YAML file of watchlist rules; reloaded on change (empty: report every flow)")
	r.stateDir = fs.String("state-dir", "/var/lib/nsint", "directory for persistent state (port IDs)")
	r.bpffs = fs.String("bpffs", "/sys/fs/bpf", "BPF filesystem mount point (mounted when absent); pins go under <bpffs>/nsint")
	r.nodeName = fs.String("node-name", "", "this node's name (default: the host name)")
	r.nodeIP = fs.String("node-ip", "", "this node's IP address (in a DaemonSet: from the downward API)")
	r.logLevel = fs.String("log-level", "info", "log level: debug, info, warn or error")
	r.hostNetns = fs.Bool("host-netns", true, "also watch the agent's own network namespace (tests and the demo set false)")
	r.reportInterval = fs.Duration("report-interval", time.Second, "refresh interval of reports for an active flow")
	r.dropInterval = fs.Duration("drop-report-interval", 25*time.Millisecond, "minimum gap between two drop reports of one flow")
	r.snaplen = fs.Int("snaplen", 128, "bytes of each reported packet carried in the report (64..128)")
	fs.Var(r.selects, "select", "interface selection rule (repeatable), e.g. 'include name=net*' or 'exclude kind=veth'")
	r.tcPrio = fs.Int("tc-priority", int(legacyfilter.DefaultPriority), fmt.Sprintf("preferred priority of our legacy tc filters (1..%d); when it is taken or not ahead of every other filter, a free one that is", legacyfilter.MaxPriority))
	r.tcHandle = fs.String("tc-handle", fmt.Sprintf("%#x", legacyfilter.DefaultHandle), "handle of our legacy tc filters")
	r.maxPorts = fs.Int("max-ports", 4096, "port IDs available on this node (at most 65535)")
	r.maxFlows = fs.Int("max-flows", 65536, "flow-state entries kept in the kernel")
	r.reportBuffer = fs.Int("report-buffer-size", 256*1024, "room of the report ring per CPU in bytes (the ring all CPUs share holds this times their number, rounded up to a power of two)")
	r.kubeconfig = fs.String("kubeconfig", "", "kubeconfig file (default: in-cluster configuration when running in a pod)")
	r.kubernetes = fs.String("kubernetes", "auto", "Kubernetes enrichment: auto (when in a pod or --kubeconfig is set), on, off")
	r.apiAuth = fs.String("api-auth", "auto", "who may call the API: kubernetes (a bearer token that TokenReview accepts, allowed by SubjectAccessReview to get the path; needs --api-tls-cert and --api-tls-key), none, or auto (kubernetes when Kubernetes is on, else none); /healthz and /readyz stay open")
	r.apiCert = fs.String("api-tls-cert", "", "PEM certificate (chain) the API serves HTTPS with, re-read when it changes (with --api-tls-key; empty: plain HTTP)")
	r.apiKey = fs.String("api-tls-key", "", "PEM private key of --api-tls-cert, re-read when it changes")
	r.apiAuthTTL = fs.Duration("api-auth-cache-ttl", 30*time.Second, "how long an allow or deny decision of --api-auth kubernetes is reused for the same token (0: ask every time)")
	r.config = fs.String("config", "", "YAML file with any of these flags as keys")
	return fs, r.validate
}

// Parse parses args and the environment into a validated Agent. Errors name
// the field and the value (*flagconf.Error where a single value is at fault).
func Parse(args []string, environ []string, output io.Writer) (*Agent, error) {
	fs, validate := FlagSet("nsint-agent")
	fs.SetOutput(output)
	if err := flagconf.Parse(fs, args, EnvPrefix, "config", environ); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return validate()
}

func bad(field, value string, err error) error {
	return &flagconf.Error{Field: field, Value: value, Source: "configuration", Err: err}
}

func (r *rawAgent) validate() (*Agent, error) {
	a := &Agent{
		ReportFormat:       *r.format,
		APIAddr:            *r.apiAddr,
		NetnsDirs:          r.netnsDirs.Values,
		AttachMode:         AttachMode(*r.attachMode),
		TailCall:           *r.tailCall,
		Watchlist:          *r.watchlist,
		StateDir:           *r.stateDir,
		BPFFSDir:           *r.bpffs,
		NodeName:           *r.nodeName,
		NodeIP:             *r.nodeIP,
		HostNetns:          *r.hostNetns,
		ReportInterval:     *r.reportInterval,
		DropReportInterval: *r.dropInterval,
		SnapLen:            *r.snaplen,
		TCPriority:         *r.tcPrio,
		MaxPorts:           *r.maxPorts,
		MaxFlows:           *r.maxFlows,
		ReportBufferBytes:  *r.reportBuffer,
		Kubeconfig:         *r.kubeconfig,
		Kubernetes:         *r.kubernetes,
		APIAuthFrom:        *r.apiAuth,
		APITLSCert:         *r.apiCert,
		APITLSKey:          *r.apiKey,
		APIAuthCacheTTL:    *r.apiAuthTTL,
	}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range r.collectors.Values {
		hp, err := CollectorAddr(c)
		if err != nil {
			add(bad("collector", c, err))
			continue
		}
		a.Collectors = append(a.Collectors, hp)
	}
	if *r.replicas != "" {
		hp, err := CollectorAddr(*r.replicas)
		if err != nil {
			add(bad("collector-replicas", *r.replicas, err))
		}
		a.CollectorReplicas = hp
	}
	a.CollectorRefresh = *r.replicaRefresh
	if a.CollectorRefresh < time.Second || a.CollectorRefresh > time.Hour {
		add(bad("collector-refresh", a.CollectorRefresh.String(), errors.New("want 1s..1h")))
	}
	switch a.ReportFormat {
	case "v0.5", "v2.0":
	default:
		add(bad("report-format", a.ReportFormat, errors.New("want v0.5 or v2.0")))
	}
	switch a.AttachMode {
	case AttachAuto, AttachTCX, AttachLegacy:
	default:
		add(bad("attach-mode", *r.attachMode, errors.New("want auto, tcx or tc")))
	}
	switch a.TailCall {
	case "direct", "indirect":
	default:
		add(bad("tail-call", a.TailCall, errors.New("want direct or indirect")))
	}
	switch a.Kubernetes {
	case "auto", "on", "off":
	default:
		add(bad("kubernetes", a.Kubernetes, errors.New("want auto, on or off")))
	}
	add(a.resolveAPIAuth())
	if _, _, err := net.SplitHostPort(a.APIAddr); err != nil {
		add(bad("api-addr", a.APIAddr, err))
	}
	selects := r.selects.Values
	if len(selects) == 0 {
		selects = []string{DefaultSelect}
	}
	for _, s := range selects {
		rule, err := selection.Parse(s)
		if err != nil {
			add(bad("select", s, err))
			continue
		}
		a.Select = append(a.Select, rule)
	}
	for _, d := range a.NetnsDirs {
		if d == "" {
			add(bad("netns-dir", d, errors.New("must not be empty")))
		}
	}
	if len(a.NetnsDirs) == 0 && !a.HostNetns {
		add(bad("netns-dir", "", errors.New("nothing to watch: give a --netns-dir or keep --host-netns")))
	}
	if a.StateDir == "" {
		add(bad("state-dir", "", errors.New("must not be empty")))
	}
	if a.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			add(bad("node-name", "", fmt.Errorf("no --node-name and no host name: %w", err)))
		}
		a.NodeName = h
	}
	if a.NodeIP != "" {
		if _, err := netip.ParseAddr(a.NodeIP); err != nil {
			add(bad("node-ip", a.NodeIP, err))
		}
	}
	lvl, err := ParseLogLevel(*r.logLevel)
	if err != nil {
		add(bad("log-level", *r.logLevel, err))
	}
	a.LogLevel = lvl
	if a.ReportInterval < time.Millisecond || a.ReportInterval > time.Hour {
		add(bad("report-interval", a.ReportInterval.String(), errors.New("want 1ms..1h")))
	}
	if a.DropReportInterval < 0 || a.DropReportInterval > time.Hour {
		add(bad("drop-report-interval", a.DropReportInterval.String(), errors.New("want 0..1h")))
	}
	if a.SnapLen < 64 || a.SnapLen > 128 {
		add(bad("snaplen", strconv.Itoa(a.SnapLen), errors.New("want 64..128 (reports carry at most 128 bytes of the packet)")))
	}
	if a.TCPriority < 1 || a.TCPriority > int(legacyfilter.MaxPriority) {
		add(bad("tc-priority", strconv.Itoa(a.TCPriority),
			fmt.Errorf("want 1..%d (from %d up the kernel numbers filters added without a priority, which would run before ours)", legacyfilter.MaxPriority, legacyfilter.MaxPriority+1)))
	}
	h, err := strconv.ParseUint(*r.tcHandle, 0, 32)
	if err != nil || h == 0 {
		add(bad("tc-handle", *r.tcHandle, errors.New("want a non-zero 32-bit number")))
	}
	a.TCHandle = uint32(h)
	if a.MaxPorts < 16 || a.MaxPorts > 65535 {
		add(bad("max-ports", strconv.Itoa(a.MaxPorts), errors.New("want 16..65535 (INT v0.5 port IDs are 16 bits)")))
	}
	if a.MaxFlows < 1024 || a.MaxFlows > 1<<24 {
		add(bad("max-flows", strconv.Itoa(a.MaxFlows), errors.New("want 1024..16777216")))
	}
	if a.ReportBufferBytes < 4096 || a.ReportBufferBytes > 64<<20 {
		add(bad("report-buffer-size", strconv.Itoa(a.ReportBufferBytes), errors.New("want 4096..67108864")))
	}
	id, src, err := SwitchID(*r.switchID, a.NodeIP, a.NodeName)
	if err != nil {
		add(bad("switch-id", *r.switchID, err))
	}
	a.SwitchID, a.SwitchIDSource = id, src
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return a, nil
}

// KubernetesOn says whether Kubernetes enrichment is on for --kubernetes
// mode: "on", "off", or "auto" (when running in a pod or given a kubeconfig).
func KubernetesOn(mode, kubeconfig string) bool {
	switch mode {
	case "on":
		return true
	case "off":
		return false
	}
	return kubeconfig != "" || os.Getenv("KUBERNETES_SERVICE_HOST") != ""
}

// resolveAPIAuth resolves --api-auth auto and checks the TLS flags: bearer
// tokens are never accepted over plain HTTP.
func (a *Agent) resolveAPIAuth() error {
	var errs []error
	switch APIAuth(a.APIAuthFrom) {
	case APIAuthNone, APIAuthKubernetes:
		a.APIAuth = APIAuth(a.APIAuthFrom)
	case APIAuthAuto:
		a.APIAuth = APIAuthNone
		if KubernetesOn(a.Kubernetes, a.Kubeconfig) {
			a.APIAuth = APIAuthKubernetes
		}
	default:
		return bad("api-auth", a.APIAuthFrom, errors.New("want auto, none or kubernetes"))
	}
	switch {
	case a.APITLSCert != "" && a.APITLSKey == "":
		errs = append(errs, bad("api-tls-key", "", errors.New("--api-tls-cert is set: give its key too")))
	case a.APITLSCert == "" && a.APITLSKey != "":
		errs = append(errs, bad("api-tls-cert", "", errors.New("--api-tls-key is set: give its certificate too")))
	case a.APIAuth == APIAuthKubernetes && a.APITLSCert == "":
		why := "--api-auth kubernetes needs --api-tls-cert and --api-tls-key: bearer tokens are never accepted over plain HTTP"
		if APIAuth(a.APIAuthFrom) == APIAuthAuto {
			why = "Kubernetes is on (--kubernetes, --kubeconfig or running in a pod), so --api-auth auto means kubernetes, which needs --api-tls-cert and --api-tls-key (bearer tokens are never accepted over plain HTTP); give both, or --api-auth none"
		}
		errs = append(errs, bad("api-tls-cert", "", errors.New(why)))
	}
	if a.APIAuthCacheTTL < 0 || a.APIAuthCacheTTL > time.Hour {
		errs = append(errs, bad("api-auth-cache-ttl", a.APIAuthCacheTTL.String(), errors.New("want 0..1h")))
	}
	return errors.Join(errs...)
}

// CollectorAddr validates a collector address and adds the default port when
// none is given ("collector" → "collector:32766", "fd00::1" → "[fd00::1]:32766").
func CollectorAddr(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty address")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a bare host name, IPv4 or IPv6 address.
		host, port = strings.Trim(s, "[]"), strconv.Itoa(DefaultCollectorPort)
		if strings.ContainsAny(host, "[]") {
			return "", fmt.Errorf("want host:port: %w", err)
		}
	}
	if host == "" {
		return "", errors.New("missing host")
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", fmt.Errorf("bad port %q", port)
	}
	return net.JoinHostPort(host, port), nil
}

// ParseLogLevel parses debug, info, warn or error.
func ParseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "error":
		return l, l.UnmarshalText([]byte(s))
	}
	return l, errors.New("want debug, info, warn or error")
}

// SwitchID resolves the INT switch ID: an explicit uint32 or IPv4 address; by
// default the node's IPv4 address, else an FNV-1a hash of the node name.
func SwitchID(explicit, nodeIP, nodeName string) (uint32, string, error) {
	if explicit != "" {
		if v, err := strconv.ParseUint(explicit, 0, 32); err == nil {
			return uint32(v), "--switch-id", nil
		}
		ip, err := netip.ParseAddr(explicit)
		if err != nil || !ip.Is4() {
			return 0, "", errors.New("want a uint32 or an IPv4 address")
		}
		return ipv4ToUint32(ip), "--switch-id", nil
	}
	if ip, err := netip.ParseAddr(nodeIP); err == nil && ip.Unmap().Is4() {
		return ipv4ToUint32(ip.Unmap()), "node IP " + nodeIP, nil
	}
	h := uint32(2166136261)
	for i := 0; i < len(nodeName); i++ {
		h ^= uint32(nodeName[i])
		h *= 16777619
	}
	return h, "hash of node name " + nodeName, nil
}

func ipv4ToUint32(ip netip.Addr) uint32 {
	b := ip.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
