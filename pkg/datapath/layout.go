package datapath

import (
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/nsint/nsint/bpf"
)

// recoveryLayoutVersion is part of every generation's layout ID. Bump it
// when what a pinned map's fields mean changes while their C types stay the
// same (say, packets since the last report becoming packets since load):
// the C types alone would not tell an older generation apart then.
const recoveryLayoutVersion = 2

// baselineLayout describes portBaseline, the one pinned value user space
// defines, for the layout ID.
const baselineLayout = "port_baseline u32 -> {ingress, egress} x {packets, bytes, drops} u64"

// layoutID names the layout of the maps a generation pins, as this build
// reads them: the BTF of their keys and values (names, sizes, offsets),
// baselineLayout and recoveryLayoutVersion. Generations whose layout ID
// differs are not read (ErrGenerationIncompatible).
func layoutID() (string, error) {
	spec, err := bpf.LoadNsint()
	if err != nil {
		return "", fmt.Errorf("read nsint object for its map layout: %w", err)
	}
	return layoutOf(spec)
}

func layoutOf(spec *ebpf.CollectionSpec) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "nsint recovery layout %d\n", recoveryLayoutVersion)
	for _, name := range pinnedKernelMaps {
		ms := spec.Maps[name]
		if ms == nil {
			return "", fmt.Errorf("map layout: no map %s in the nsint object", name)
		}
		if ms.Type == ebpf.RingBuf {
			// No key or value: its records are struct event.
			var ev *btf.Struct
			if err := spec.Types.TypeByName("event", &ev); err != nil {
				return "", fmt.Errorf("map layout: %s records: %w", name, err)
			}
			fmt.Fprintf(h, "%s records ", name)
			if err := writeType(h, ev, 0); err != nil {
				return "", fmt.Errorf("map layout: %s records: %w", name, err)
			}
			fmt.Fprintln(h)
			continue
		}
		if ms.Key == nil || ms.Value == nil {
			return "", fmt.Errorf("map layout: map %s has no BTF key or value type", name)
		}
		fmt.Fprintf(h, "%s key ", name)
		if err := writeType(h, ms.Key, 0); err != nil {
			return "", fmt.Errorf("map layout: %s key: %w", name, err)
		}
		fmt.Fprint(h, " value ")
		if err := writeType(h, ms.Value, 0); err != nil {
			return "", fmt.Errorf("map layout: %s value: %w", name, err)
		}
		fmt.Fprintln(h)
	}
	fmt.Fprintln(h, baselineLayout)
	return fmt.Sprintf("v%d-%x", recoveryLayoutVersion, h.Sum(nil)[:8]), nil
}

// writeType writes a canonical description of t: what a reader of its
// bytes depends on (sizes, offsets, member names, integer encodings), not
// how the source spells it (typedef names, qualifiers).
func writeType(w io.Writer, t btf.Type, depth int) error {
	if depth > 32 {
		return fmt.Errorf("type nested too deep")
	}
	switch t := t.(type) {
	case *btf.Typedef:
		return writeType(w, t.Type, depth+1)
	case *btf.Volatile:
		return writeType(w, t.Type, depth+1)
	case *btf.Const:
		return writeType(w, t.Type, depth+1)
	case *btf.Restrict:
		return writeType(w, t.Type, depth+1)
	case *btf.Int:
		fmt.Fprintf(w, "int%d/%s", t.Size*8, t.Encoding)
	case *btf.Enum:
		fmt.Fprintf(w, "enum%d", t.Size*8)
	case *btf.Array:
		fmt.Fprintf(w, "[%d]", t.Nelems)
		return writeType(w, t.Type, depth+1)
	case *btf.Struct:
		return writeMembers(w, "struct", t.Name, t.Size, t.Members, depth)
	case *btf.Union:
		return writeMembers(w, "union", t.Name, t.Size, t.Members, depth)
	default:
		return fmt.Errorf("unexpected type %s in a pinned map", t)
	}
	return nil
}

func writeMembers(w io.Writer, kind, name string, size uint32, members []btf.Member, depth int) error {
	fmt.Fprintf(w, "%s %s/%d{", kind, name, size)
	for _, m := range members {
		fmt.Fprintf(w, "%s@%d:%d ", m.Name, m.Offset, m.BitfieldSize)
		if err := writeType(w, m.Type, depth+1); err != nil {
			return fmt.Errorf("%s.%s: %w", name, m.Name, err)
		}
		fmt.Fprint(w, "; ")
	}
	fmt.Fprint(w, "}")
	return nil
}
