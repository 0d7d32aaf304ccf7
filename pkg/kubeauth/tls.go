package kubeauth

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// CertFiles serves a certificate and key from files, re-reading them when
// either changes (checked at most once a second, at a TLS handshake). A pair
// that does not load (caught half-way through a rotation) leaves the
// previous certificate in use until the next check.
type CertFiles struct {
	certFile, keyFile string

	mu        sync.Mutex
	cert      *tls.Certificate
	certStamp stamp
	keyStamp  stamp
	checked   time.Time
	lastErr   error

	reloads, reloadErrors atomic.Uint64
}

// stamp is what tells that a file changed: its identity, size and mtime
// (a Secret volume swaps a symlink; cert-manager may rewrite in place).
type stamp struct {
	fi   os.FileInfo
	size int64
	mod  time.Time
}

func (s stamp) same(o stamp) bool {
	return s.fi != nil && o.fi != nil && os.SameFile(s.fi, o.fi) && s.size == o.size && s.mod.Equal(o.mod)
}

func stampOf(path string) (stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{fi: fi, size: fi.Size(), mod: fi.ModTime()}, nil
}

// LoadCertFiles loads the pair once, returning an error naming the files
// when it does not load.
func LoadCertFiles(certFile, keyFile string) (*CertFiles, error) {
	c := &CertFiles{certFile: certFile, keyFile: keyFile}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *CertFiles) load() error {
	cs, err := stampOf(c.certFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s: %w", c.certFile, err)
	}
	ks, err := stampOf(c.keyFile)
	if err != nil {
		return fmt.Errorf("TLS key %s: %w", c.keyFile, err)
	}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert, c.certStamp, c.keyStamp = &pair, cs, ks
	return nil
}

// GetCertificate is tls.Config.GetCertificate.
func (c *CertFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checked) >= time.Second {
		c.checked = now
		cs, err1 := stampOf(c.certFile)
		ks, err2 := stampOf(c.keyFile)
		if err1 == nil && err2 == nil && (!cs.same(c.certStamp) || !ks.same(c.keyStamp)) {
			if err := c.load(); err != nil {
				c.lastErr = err
				c.reloadErrors.Add(1)
			} else {
				c.lastErr = nil
				c.reloads.Add(1)
			}
		}
	}
	return c.cert, nil
}

// Reloads returns how many times changed files were loaded, and how many
// times they did not load.
func (c *CertFiles) Reloads() (ok, failed uint64) { return c.reloads.Load(), c.reloadErrors.Load() }

// LastError is why the last reload failed, nil when it did not.
func (c *CertFiles) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// TLSConfig returns a server configuration serving the files' certificate
// (TLS 1.2 and later).
func (c *CertFiles) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.GetCertificate}
}
