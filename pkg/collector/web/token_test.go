package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nsint/nsint/pkg/collector/access"
	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/collector/topology"
)

// TestPageToken loads the page in headless Chromium behind a gate that wants
// a bearer token and lets its user see namespace team-b only: without a
// token the page says 401; with the token given in the Token field it shows
// team-b's row only, keeps the token across a reload of the tab, and a token
// whose user may not read the views gets the 403 message.
func TestPageToken(t *testing.T) {
	wd := startChromium(t)
	table := flowtable.New(100)
	fillTable(table)
	res, err := topology.New(topology.Config{AgentPort: 4048})
	if err != nil {
		t.Fatal(err)
	}
	const good, denied = "t0ken-team-b", "t0ken-nobody"
	h := New(Sources{Table: table, Resolver: res, Stats: func() any { return nil }})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/") {
			h.ServeHTTP(w, r)
			return
		}
		switch r.Header.Get("Authorization") {
		case "Bearer " + good:
			h.ServeHTTP(w, r.WithContext(access.WithScope(r.Context(), access.Namespaces(false, "team-b"))))
		case "Bearer " + denied:
			http.Error(w, "forbidden", http.StatusForbidden)
		default:
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		}
	}))
	t.Cleanup(srv.Close)

	waitFor := func(what, js string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			var ok bool
			wd.script(js, &ok)
			if ok {
				return
			}
			if time.Now().After(deadline) {
				var msg string
				wd.script(`return document.getElementById("error").textContent`, &msg)
				t.Fatalf("page never showed %s (error line %q)", what, msg)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	errorSays := func(s string) string {
		return `const e = document.getElementById("error"); return !e.hidden && e.textContent.includes(` + "`" + s + "`" + `)`
	}
	wd.navigate(srv.URL + "/")
	waitFor("the 401 message", errorSays("Not authenticated (401)"))

	wd.typeInto("#token", good)
	wd.click("#token-save")
	waitFor("team-b's rows", `return document.body.dataset.loaded === "all"`)
	var pods []string
	wd.script(`return Array.from(document.querySelectorAll("#flows tbody tr")).map(tr => tr.dataset.pod)`, &pods)
	if len(pods) != 1 || pods[0] != "team-b/pod-b" {
		t.Errorf("rows of %v, want team-b/pod-b's only", pods)
	}
	var stored, field string
	wd.script(`return sessionStorage.getItem("nsint-collector-token")`, &stored)
	wd.script(`return document.getElementById("token").value`, &field)
	if stored != good || field != "" {
		t.Errorf("sessionStorage %q, field %q: want the token stored and the field emptied", stored, field)
	}

	wd.navigate(srv.URL + "/")
	waitFor("the rows after a reload", `return document.body.dataset.loaded === "all"`)

	wd.typeInto("#token", denied)
	wd.click("#token-save")
	waitFor("the 403 message", errorSays("Forbidden (403)"))

	wd.click("#token-forget")
	waitFor("the 401 message again", errorSays("Not authenticated (401)"))
	wd.script(`return sessionStorage.getItem("nsint-collector-token") || ""`, &stored)
	if stored != "" {
		t.Errorf("token still stored after Forget: %q", stored)
	}
}
