package watchlist

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// MaxRules is the most rules the kernel evaluates.
const MaxRules = 64

// Rule matches flows; zero fields match anything.
type Rule struct {
	Proto   uint8        // IP protocol number; 0 = any
	Src     netip.Prefix // invalid (zero) = any
	Dst     netip.Prefix
	SrcPort PortRange
	DstPort PortRange
}

// PortRange is an inclusive range of L4 ports; {0, 0} = any.
type PortRange struct{ Lo, Hi uint16 }

// Any reports whether r matches every port.
func (r PortRange) Any() bool { return r.Lo == 0 && r.Hi == 0 }

// Family is 4 or 6 when the rule's prefixes fix the address family, else 0.
func (r Rule) Family() int {
	for _, p := range []netip.Prefix{r.Src, r.Dst} {
		if p.IsValid() {
			if p.Addr().Is4() {
				return 4
			}
			return 6
		}
	}
	return 0
}

type fileRule struct {
	Proto   string `json:"proto"`
	Src     string `json:"src"`
	Dst     string `json:"dst"`
	SrcPort any    `json:"srcPort"`
	DstPort any    `json:"dstPort"`
}

type file struct {
	Rules []fileRule `json:"rules"`
}

// Load reads and validates a watchlist file.
func Load(path string) ([]Rule, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read watchlist: %w", err)
	}
	return Parse(raw)
}

// Parse validates a watchlist document.
func Parse(raw []byte) ([]Rule, error) {
	var f file
	if err := yaml.UnmarshalStrict(raw, &f); err != nil {
		return nil, fmt.Errorf("parse watchlist: %w", err)
	}
	if len(f.Rules) > MaxRules {
		return nil, fmt.Errorf("watchlist has %d rules, at most %d are supported", len(f.Rules), MaxRules)
	}
	rules := make([]Rule, 0, len(f.Rules))
	var errs []error
	for i, fr := range f.Rules {
		r, err := fr.rule()
		if err != nil {
			errs = append(errs, fmt.Errorf("watchlist rule %d: %w", i+1, err))
			continue
		}
		rules = append(rules, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rules, nil
}

var protocols = map[string]uint8{"any": 0, "": 0, "icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "sctp": 132}

func (fr fileRule) rule() (Rule, error) {
	var r Rule
	p, ok := protocols[strings.ToLower(fr.Proto)]
	if !ok {
		n, err := strconv.ParseUint(fr.Proto, 10, 8)
		if err != nil {
			return r, fmt.Errorf("proto %q: want tcp, udp, sctp, icmp, icmpv6, any or a protocol number", fr.Proto)
		}
		p = uint8(n)
	}
	r.Proto = p
	var err error
	if r.Src, err = prefix("src", fr.Src); err != nil {
		return r, err
	}
	if r.Dst, err = prefix("dst", fr.Dst); err != nil {
		return r, err
	}
	if r.Src.IsValid() && r.Dst.IsValid() && r.Src.Addr().Is4() != r.Dst.Addr().Is4() {
		return r, fmt.Errorf("src %s and dst %s are of different address families", r.Src, r.Dst)
	}
	if r.SrcPort, err = portRange("srcPort", fr.SrcPort); err != nil {
		return r, err
	}
	if r.DstPort, err = portRange("dstPort", fr.DstPort); err != nil {
		return r, err
	}
	if (!r.SrcPort.Any() || !r.DstPort.Any()) && r.Proto != 0 && r.Proto != 6 && r.Proto != 17 && r.Proto != 132 {
		return r, fmt.Errorf("ports given for proto %q, which has none", fr.Proto)
	}
	return r, nil
}

func prefix(field, s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%s %q: %w", field, s, err)
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("%s %q: %w", field, s, err)
	}
	return p.Masked(), nil
}

func portRange(field string, v any) (PortRange, error) {
	var s string
	switch t := v.(type) {
	case nil:
		return PortRange{}, nil
	case float64:
		s = strconv.FormatFloat(t, 'f', -1, 64)
	case string:
		s = t
	default:
		return PortRange{}, fmt.Errorf("%s %v: want a port or a range lo-hi", field, v)
	}
	lo, hi, isRange := strings.Cut(s, "-")
	l, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	h := l
	var err2 error
	if isRange {
		h, err2 = strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	}
	if err1 != nil || err2 != nil || l == 0 || h < l {
		return PortRange{}, fmt.Errorf("%s %q: want a port 1..65535 or a range lo-hi", field, s)
	}
	return PortRange{uint16(l), uint16(h)}, nil
}
