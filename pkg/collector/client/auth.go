package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// FlagError is a bad value of a flag of `nsint-collector flows`. Value never
// holds a token.
type FlagError struct {
	Flag  string
	Value string
	Why   string
}

func (e *FlagError) Error() string {
	return fmt.Sprintf("invalid --%s %q: %s", e.Flag, e.Value, e.Why)
}

// HTTPClient returns the client that asks the collector at o.Server: with the
// bearer token of --token (a value, or @FILE) or of the current context of
// --kubeconfig (which also gives the CA for an https server, unless
// --ca-file names one), and with --ca-file's CAs for https. A token is sent
// only over https or to a loopback address. Errors are *FlagError naming the
// flag.
func (o *FlowsOptions) HTTPClient() (*http.Client, error) {
	u, err := url.Parse(o.Server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &FlagError{"server", o.Server, "want http(s)://host[:port]"}
	}
	token, err := o.token()
	if err != nil {
		return nil, err
	}
	var rt http.RoundTripper
	if o.Kubeconfig != "" {
		if rt, err = o.kubeconfigTransport(token); err != nil {
			return nil, err
		}
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if o.CAFile != "" {
			pool, err := readCAs(o.CAFile)
			if err != nil {
				return nil, err
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		rt = tr
		if token != "" {
			rt = &bearer{token: token, next: tr}
		}
	}
	if (token != "" || o.Kubeconfig != "") && u.Scheme != "https" && !loopback(u.Hostname()) {
		return nil, &FlagError{"server", o.Server, "a token is sent only over https (or to a loopback address)"}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: rt}, nil
}

// token returns --token's value, or the contents of the file it names after
// '@' (trimmed); "" when not given.
func (o *FlowsOptions) token() (string, error) {
	t := o.Token
	if t == "" {
		return "", nil
	}
	shown := "(hidden)"
	if path, ok := strings.CutPrefix(t, "@"); ok {
		shown = t
		b, err := os.ReadFile(path)
		if err != nil {
			return "", &FlagError{"token", shown, "cannot read the token file: " + why(err)}
		}
		t = strings.TrimSpace(string(b))
	}
	if t == "" {
		return "", &FlagError{"token", shown, "the token is empty"}
	}
	if strings.ContainsAny(t, " \t\r\n") {
		return "", &FlagError{"token", shown, "a token has no white space"}
	}
	return t, nil
}

// kubeconfigTransport authenticates as the current context of --kubeconfig
// does (its token, token file or credential plugin; token, when given,
// replaces them) and trusts its CA, or --ca-file's.
func (o *FlowsOptions) kubeconfigTransport(token string) (http.RoundTripper, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return nil, &FlagError{"kubeconfig", o.Kubeconfig, err.Error()}
	}
	if token != "" {
		cfg.BearerToken, cfg.BearerTokenFile, cfg.ExecProvider, cfg.AuthProvider = token, "", nil, nil
	}
	if cfg.BearerToken == "" && cfg.BearerTokenFile == "" && cfg.ExecProvider == nil && cfg.AuthProvider == nil {
		return nil, &FlagError{"kubeconfig", o.Kubeconfig,
			"its current context has no token (nor credential plugin); client certificates are not accepted by the collector"}
	}
	// Only the API server's name: the collector's certificate names the
	// collector.
	cfg.TLSClientConfig.ServerName = ""
	if o.CAFile != "" {
		if _, err := readCAs(o.CAFile); err != nil {
			return nil, err
		}
		cfg.TLSClientConfig.CAFile, cfg.TLSClientConfig.CAData = o.CAFile, nil
	}
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, &FlagError{"kubeconfig", o.Kubeconfig, err.Error()}
	}
	return rt, nil
}

func readCAs(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &FlagError{"ca-file", path, "cannot read: " + why(err)}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, &FlagError{"ca-file", path, "no PEM certificate in it"}
	}
	return pool, nil
}

// why is err without the path a *fs.PathError repeats.
func why(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// bearer adds the token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}
