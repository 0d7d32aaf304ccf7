package watchlist

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	rules, err := Parse([]byte(`
rules:
  - proto: tcp
    dst: 198.18.0.0/15
    dstPort: 443
  - proto: udp
    src: fd00::1
    srcPort: "1000-2000"
  - proto: icmpv6
  - {}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{Proto: 6, Dst: netip.MustParsePrefix("198.18.0.0/15"), DstPort: PortRange{443, 443}},
		{Proto: 17, Src: netip.MustParsePrefix("fd00::1/128"), SrcPort: PortRange{1000, 2000}},
		{Proto: 58},
		{},
	}
	if len(rules) != len(want) {
		t.Fatalf("got %d rules", len(rules))
	}
	for i := range want {
		if rules[i] != want[i] {
			t.Errorf("rule %d = %+v, want %+v", i+1, rules[i], want[i])
		}
	}
	if rules[0].Family() != 4 || rules[1].Family() != 6 || rules[2].Family() != 0 {
		t.Error("families wrong")
	}
	empty, err := Parse([]byte("rules: []\n"))
	if err != nil || len(empty) != 0 {
		t.Fatalf("empty list: %v %v", empty, err)
	}
}

func TestParseErrorsNameRuleAndField(t *testing.T) {
	cases := map[string]string{
		"rules: [{proto: tcpp}]":                   `rule 1: proto "tcpp"`,
		"rules: [{}, {src: 198.18.0.0/33}]":        `rule 2: src "198.18.0.0/33"`,
		"rules: [{dstPort: 0}]":                    `rule 1: dstPort "0"`,
		"rules: [{srcPort: 20-10}]":                `rule 1: srcPort "20-10"`,
		"rules: [{src: 198.18.0.1, dst: fd00::1}]": "different address families",
		"rules: [{proto: icmp, dstPort: 80}]":      `ports given for proto "icmp"`,
		"rules: [{proto: tcp, dport: 80}]":         "dport",
		"ruls: []":                                 "ruls",
	}
	for doc, want := range cases {
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to contain %q", doc, err, want)
		}
	}
}

func TestWatchReloadsAndKeepsOldRulesOnBadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "watchlist.yaml")
	write := func(s string) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write("rules: [{proto: tcp}]\n")
	applied := make(chan []Rule, 10)
	errs := make(chan error, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- Watch(ctx, path, func(r []Rule) error { applied <- r; return nil }, func(err error) { errs <- err })
	}()
	wait := func() []Rule {
		select {
		case r := <-applied:
			return r
		case <-time.After(5 * time.Second):
			t.Fatal("no rules applied")
			return nil
		}
	}
	if r := wait(); len(r) != 1 || r[0].Proto != 6 {
		t.Fatalf("initial rules %+v", r)
	}
	write("rules: [{proto: bogus}]\n")
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "keeping the rules in force") {
			t.Fatalf("error %v", err)
		}
	case r := <-applied:
		t.Fatalf("bad file applied: %+v", r)
	case <-time.After(5 * time.Second):
		t.Fatal("bad file not reported")
	}
	write("rules: [{proto: udp}, {proto: sctp}]\n")
	if r := wait(); len(r) != 2 || r[0].Proto != 17 {
		t.Fatalf("reloaded rules %+v", r)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
