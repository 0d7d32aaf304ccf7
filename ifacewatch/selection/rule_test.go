package selection

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	good := map[string]Rule{
		"include name=net1":                            {Name: "net1"},
		"exclude netns=host":                           {Exclude: true, Netns: "host"},
		" include name=net*, kind=macvlan,netns=cni-*": {Name: "net*", Kind: "macvlan", Netns: "cni-*"},
	}
	for s, want := range good {
		got, err := Parse(s)
		if err != nil {
			t.Errorf("Parse(%q): %v", s, err)
			continue
		}
		got.text = ""
		if got != want {
			t.Errorf("Parse(%q) = %+v, want %+v", s, got, want)
		}
	}
	bad := []string{
		"", "include", "select name=x", "include name", "include name=", "include color=red",
		"include name=a,name=b", "exclude name=[",
	}
	for _, s := range bad {
		_, err := Parse(s)
		if err == nil {
			t.Errorf("Parse(%q) accepted", s)
			continue
		}
		if !errors.Is(err, ErrBadRule) || !strings.Contains(err.Error(), `"`+s+`"`) {
			t.Errorf("Parse(%q) error %q does not wrap ErrBadRule and name the rule", s, err)
		}
	}
}
