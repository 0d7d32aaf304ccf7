package datapath

import (
	"bytes"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// handMadeSpec marshals a BTF blob holding an enum skb_drop_reason with the
// given values, or none when values is nil.
func handMadeSpec(t *testing.T, values []btf.EnumValue) *btf.Spec {
	t.Helper()
	b, err := btf.NewBuilder(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(&btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}); err != nil {
		t.Fatal(err)
	}
	if values != nil {
		if _, err := b.Add(&btf.Enum{Name: "skb_drop_reason", Size: 4, Values: values}); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// The enum is read value to name as the kernel has it; a kernel without it
// (before 5.17) gives no names and no error.
func TestDropReasonNamesFromHandMadeBTF(t *testing.T) {
	names, err := dropReasonNames(handMadeSpec(t, []btf.EnumValue{
		{Name: "SKB_NOT_DROPPED_YET", Value: 0},
		{Name: "SKB_DROP_REASON_NO_SOCKET", Value: 42},
		{Name: "SKB_DROP_REASON_OVS_EXAMPLE", Value: 0x30001},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 3 || names[42] != "SKB_DROP_REASON_NO_SOCKET" || names[0x30001] != "SKB_DROP_REASON_OVS_EXAMPLE" {
		t.Errorf("names %v", names)
	}
	names, err = dropReasonNames(handMadeSpec(t, nil))
	if err != nil || len(names) != 0 {
		t.Errorf("without the enum: %v, %v; want no names, no error", names, err)
	}
}
