package docscheck

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/nsint/nsint/internal/flagconf"
	"github.com/nsint/nsint/pkg/collector"
	"github.com/nsint/nsint/pkg/collector/client"
	"github.com/nsint/nsint/pkg/config"
)

// TestConfigurationReferenceMatchesFlags checks each documented table row
// against the flag set the binaries really build: the flag, its environment
// variable and, when it has one, its default.
func TestConfigurationReferenceMatchesFlags(t *testing.T) {
	raw, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)

	agent, _ := config.FlagSet("nsint-agent")
	serve := flag.NewFlagSet("serve", flag.ContinueOnError)
	serve.String("config", "", "")
	cfg := collector.DefaultConfig()
	cfg.RegisterFlags(serve)
	flows := flag.NewFlagSet("flows", flag.ContinueOnError)
	flows.String("config", "", "")
	var fo client.FlowsOptions
	fo.RegisterFlags(flows)

	for _, c := range []struct {
		section, next, prefix string
		fs                    *flag.FlagSet
	}{
		{"## nsint-agent", "## nsint-collector", config.EnvPrefix, agent},
		{"### serve", "### flows", collector.EnvPrefix, serve},
		{"### flows", "### deepinsight-topology", collector.EnvPrefix, flows},
	} {
		text := section(t, doc, c.section, c.next)
		c.fs.VisitAll(func(f *flag.Flag) {
			row := tableRow(text, "| `--"+f.Name+"` |")
			if row == "" {
				t.Errorf("%s: no row for --%s", c.section, f.Name)
				return
			}
			if env := flagconf.EnvName(c.prefix, f.Name); !strings.Contains(row, "`"+env+"`") {
				t.Errorf("%s: row of --%s lacks its variable %s: %s", c.section, f.Name, env, row)
			}
			if f.DefValue != "" && !strings.Contains(row, "`"+f.DefValue+"`") {
				t.Errorf("%s: row of --%s lacks its default %q: %s", c.section, f.Name, f.DefValue, row)
			}
		})
		// And no row for a flag the code does not have.
		for _, line := range strings.Split(text, "\n") {
			if name, ok := strings.CutPrefix(line, "| `--"); ok {
				name, _, _ = strings.Cut(name, "`")
				if c.fs.Lookup(name) == nil {
					t.Errorf("%s: documents --%s, which the code does not have", c.section, name)
				}
			}
		}
	}
}

func section(t *testing.T, doc, start, end string) string {
	t.Helper()
	i := strings.Index(doc, "\n"+start+"\n")
	j := strings.Index(doc, "\n"+end+"\n")
	if i < 0 || j < i {
		t.Fatalf("docs/configuration.md lacks the section %q (followed by %q)", start, end)
	}
	return doc[i:j]
}

func tableRow(text, prefix string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}

// TestREADMENamesEveryFlag checks that the README's short configuration
// reference names every agent and collector flag.
func TestREADMENamesEveryFlag(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	agent, _ := config.FlagSet("nsint-agent")
	serve := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg := collector.DefaultConfig()
	cfg.RegisterFlags(serve)
	for _, fs := range []*flag.FlagSet{agent, serve} {
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(string(raw), "`--"+f.Name+"`") {
				t.Errorf("README.md does not name --%s", f.Name)
			}
		})
	}
}
