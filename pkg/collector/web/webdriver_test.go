package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// webDriver is a minimal W3C WebDriver client for chromedriver: enough to
// load a page, type, click, run a script and take a screenshot.
type webDriver struct {
	t       testing.TB
	base    string
	session string
}

const elementKey = "element-6066-11e4-a52e-4f735466cecf"

// startChromium starts chromedriver with headless chromium, or skips the test
// when either is not installed.
func startChromium(t testing.TB) *webDriver {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install chromium chromium-driver)")
	}
	driver, err := exec.LookPath("chromedriver")
	if err != nil {
		t.Skip("chromedriver is not installed (apt-get install chromium-driver)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var logBuf bytes.Buffer
	cmd := exec.Command(driver, "--port="+strconv.Itoa(port), "--allowed-ips=127.0.0.1")
	cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromedriver: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("chromedriver output:\n%s", logBuf.String())
		}
	})
	wd := &webDriver{t: t, base: "http://127.0.0.1:" + strconv.Itoa(port)}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			Value struct{ Ready bool } `json:"value"`
		}
		if err := wd.call(http.MethodGet, "/status", nil, &st); err == nil && st.Value.Ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromedriver did not become ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": chromium,
			"args": []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--disable-dev-shm-usage", "--window-size=1600,900", "--user-data-dir=" + t.TempDir()},
		},
	}}}
	var sess struct {
		Value struct {
			SessionID string `json:"sessionId"`
		} `json:"value"`
	}
	if err := wd.call(http.MethodPost, "/session", caps, &sess); err != nil {
		t.Fatalf("new chromium session: %v", err)
	}
	wd.session = "/session/" + sess.Value.SessionID
	t.Cleanup(func() { wd.call(http.MethodDelete, wd.session, nil, nil) })
	return wd
}

func (wd *webDriver) call(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, wd.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("webdriver %s %s: status %d: %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func (wd *webDriver) must(err error) {
	wd.t.Helper()
	if err != nil {
		wd.t.Fatal(err)
	}
}

func (wd *webDriver) navigate(url string) {
	wd.t.Helper()
	wd.must(wd.call(http.MethodPost, wd.session+"/url", map[string]string{"url": url}, nil))
}

func (wd *webDriver) element(css string) string {
	wd.t.Helper()
	var out struct {
		Value map[string]string `json:"value"`
	}
	wd.must(wd.call(http.MethodPost, wd.session+"/element", map[string]string{"using": "css selector", "value": css}, &out))
	return out.Value[elementKey]
}

func (wd *webDriver) typeInto(css, text string) {
	wd.t.Helper()
	wd.must(wd.call(http.MethodPost, wd.session+"/element/"+wd.element(css)+"/value", map[string]string{"text": text}, nil))
}

func (wd *webDriver) click(css string) {
	wd.t.Helper()
	wd.must(wd.call(http.MethodPost, wd.session+"/element/"+wd.element(css)+"/click", map[string]any{}, nil))
}

// script runs JavaScript in the page and decodes its return value into out.
func (wd *webDriver) script(js string, out any) {
	wd.t.Helper()
	var resp struct {
		Value json.RawMessage `json:"value"`
	}
	wd.must(wd.call(http.MethodPost, wd.session+"/execute/sync", map[string]any{"script": js, "args": []any{}}, &resp))
	wd.must(json.Unmarshal(resp.Value, out))
}

func (wd *webDriver) screenshot(path string) {
	wd.t.Helper()
	var resp struct {
		Value []byte `json:"value"` // base64 in JSON decodes into []byte
	}
	wd.must(wd.call(http.MethodGet, wd.session+"/screenshot", nil, &resp))
	wd.must(os.WriteFile(path, resp.Value, 0o644))
}
