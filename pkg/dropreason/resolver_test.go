package dropreason

import (
	"errors"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/nsint/nsint/pkg/datapath"
)

// TestResolverFromHandMadeEnum resolves an enum whose values deliberately
// differ from any real kernel's.
func TestResolverFromHandMadeEnum(t *testing.T) {
	r := NewResolver(map[uint32]string{
		0:          "SKB_NOT_DROPPED_YET",
		7:          "SKB_DROP_REASON_NOT_SPECIFIED",
		3:          "SKB_DROP_REASON_NETFILTER_DROP",
		42:         "SKB_DROP_REASON_NO_SOCKET",
		9:          "SKB_DROP_REASON_BRAND_NEW",
		43:         "SKB_DROP_REASON_MAX",
		0xFFFF0000: "SKB_DROP_REASON_SUBSYS_MASK",
		0x30001:    "SKB_DROP_REASON_OVS_EXAMPLE",
	})
	for _, c := range []struct {
		value uint32
		name  string
		code  uint8
	}{
		{3, "SKB_DROP_REASON_NETFILTER_DROP", CodeACLDeny},
		{42, "SKB_DROP_REASON_NO_SOCKET", CodeNoSocket},
		{7, "SKB_DROP_REASON_NOT_SPECIFIED", CodeUnknown},
		{9, "SKB_DROP_REASON_BRAND_NEW", CodeOtherKernel},
		{0x30001, "SKB_DROP_REASON_OVS_EXAMPLE", CodeOtherKernel},
		{43, UnknownName, CodeUnknown}, // MAX is not a reason
		{0xFFFF0000, UnknownName, CodeUnknown},
		{12, UnknownName, CodeUnknown},
		{1 << 31, UnknownName, CodeUnknown},
	} {
		if got := r.Name(c.value); got != c.name {
			t.Errorf("Name(%d) = %q, want %q", c.value, got, c.name)
		}
		if got := r.INTCode(c.value); got != c.code {
			t.Errorf("INTCode(%d) = %d, want %d", c.value, got, c.code)
		}
	}
	if v, ok := r.Value("SKB_DROP_REASON_NO_SOCKET"); !ok || v != 42 {
		t.Errorf("Value(NO_SOCKET) = %d, %v, want 42, true", v, ok)
	}
	if v, ok := r.Value("NETFILTER_DROP"); !ok || v != 3 {
		t.Errorf("Value(NETFILTER_DROP) = %d, %v, want 3, true", v, ok)
	}
	if _, ok := r.Value("SKB_DROP_REASON_MAX"); ok {
		t.Error("Value(MAX) found, want absent")
	}
	if r.Len() != 6 {
		t.Errorf("Len() = %d, want 6", r.Len())
	}
}

// A kernel without the enum gives no names (datapath.DropReasonNames): the
// Resolver is empty.
func TestResolverWithoutEnumIsEmpty(t *testing.T) {
	r := NewResolver(nil)
	if r.Len() != 0 || r.Name(3) != UnknownName || r.INTCode(3) != CodeUnknown {
		t.Errorf("empty resolver: len %d name %q code %d", r.Len(), r.Name(3), r.INTCode(3))
	}
	if _, ok := r.Value("SKB_DROP_REASON_NO_SOCKET"); ok {
		t.Error("empty resolver found a value")
	}
	var nilResolver *Resolver
	if nilResolver.Name(1) != UnknownName || nilResolver.INTCode(1) != CodeUnknown || nilResolver.Len() != 0 {
		t.Error("nil resolver is not empty")
	}
}

// TestTableAgainstKernel checks the table's names against this kernel's enum:
// names the kernel lacks are logged (they may be older or newer), and every
// reason the kernel has resolves to the table's code.
func TestTableAgainstKernel(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skipf("kernel has no BTF: %v", err)
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	var enum *btf.Enum
	if err := spec.TypeByName(EnumName, &enum); errors.Is(err, btf.ErrNotFound) {
		t.Skipf("kernel BTF has no enum %s (kernel before 5.17)", EnumName)
	} else if err != nil {
		t.Fatal(err)
	}
	names, err := datapath.DropReasonNames()
	if err != nil {
		t.Fatal(err)
	}
	r := NewResolver(names)
	if r.Len() == 0 {
		t.Fatalf("kernel has enum %s but the resolver is empty", EnumName)
	}

	var absent []string
	for name, code := range kernelToINT {
		v, ok := r.Value(name)
		if !ok {
			absent = append(absent, name)
			continue
		}
		if got := r.INTCode(v); got != code {
			t.Errorf("%s (value %d): INTCode %d, want %d", name, v, got, code)
		}
		if got := r.Name(v); got != Prefix+name {
			t.Errorf("value %d: Name %q, want %q", v, got, Prefix+name)
		}
	}
	sort.Strings(absent)
	if len(absent) > 0 {
		t.Logf("table names this kernel lacks: %s", strings.Join(absent, ", "))
	}

	var mapped int
	var unmapped []string
	for _, v := range enum.Values {
		name, isReason := strings.CutPrefix(v.Name, Prefix)
		if !isReason || name == "MAX" || name == "SUBSYS_MASK" {
			continue
		}
		if _, ok := kernelToINT[name]; ok {
			mapped++
		} else {
			unmapped = append(unmapped, name)
		}
	}
	t.Logf("kernel enum %s: %d %s* reasons, table maps %d; unmapped (code %d): %v",
		EnumName, mapped+len(unmapped), Prefix, mapped, CodeOtherKernel, unmapped)

	// Reasons that have been in the enum since 5.17 must be there.
	for _, name := range []string{"NOT_SPECIFIED", "NO_SOCKET", "PKT_TOO_SMALL", "TCP_CSUM", "NETFILTER_DROP"} {
		if _, ok := r.Value(name); !ok {
			t.Errorf("kernel enum lacks %s%s", Prefix, name)
		}
	}
}
