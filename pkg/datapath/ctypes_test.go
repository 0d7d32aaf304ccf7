package datapath

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/nsint/nsint/bpf"
	"github.com/nsint/nsint/pkg/netif"
	"github.com/nsint/nsint/pkg/watchlist"
)

// The tests in this file hold the Go side to the C side as the committed
// object's BTF describes it: the generated types' sizes and offsets, the
// enum values this package uses, and where the dispatcher writes. They fail
// when the C changed and the bindings were not regenerated, or when Go
// names a value the C does not have.

func nsintSpec(t *testing.T) *ebpf.CollectionSpec {
	t.Helper()
	spec, err := bpf.LoadNsint()
	if err != nil {
		t.Fatalf("read nsint object: %v", err)
	}
	return spec
}

func btfStruct(t *testing.T, spec *ebpf.CollectionSpec, name string) *btf.Struct {
	t.Helper()
	var s *btf.Struct
	if err := spec.Types.TypeByName(name, &s); err != nil {
		t.Fatalf("struct %s in the object's BTF: %v", name, err)
	}
	return s
}

func btfMember(t *testing.T, s *btf.Struct, name string) btf.Member {
	t.Helper()
	for _, m := range s.Members {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("struct %s has no member %s", s.Name, name)
	return btf.Member{}
}

// TestGeneratedTypesMatchC: every type pkg/datapath exchanges with the
// programs has the C struct's size, and each of its fields the C member's
// name, offset, size and shape, recursively.
func TestGeneratedTypesMatchC(t *testing.T) {
	spec := nsintSpec(t)
	types := map[string]any{
		"config":        bpf.NsintConfig{},
		"cpu_state":     bpf.NsintCpuState{},
		"identity":      bpf.NsintIdentity{},
		"flow_cache":    bpf.NsintFlowCache{},
		"tuple":         bpf.NsintTuple{},
		"flow_key":      bpf.NsintFlowKey{},
		"flow_state":    bpf.NsintFlowState{},
		"transit_key":   bpf.NsintTransitKey{},
		"transit_entry": bpf.NsintTransitEntry{},
		"drop_key":      bpf.NsintDropKey{},
		"drop_state":    bpf.NsintDropState{},
		"port_key":      bpf.NsintPortKey{},
		"port_config":   bpf.NsintPortConfig{},
		"port_counters": bpf.NsintPortCounters{},
		"rule":          bpf.NsintRule{},
		"watch_meta":    bpf.NsintWatchMeta{},
		"sweep_item":    bpf.NsintSweepItem{},
		"sweep_ctl":     bpf.NsintSweepCtl{},
		"event":         bpf.NsintEvent{},
	}
	for name, v := range types {
		compareLayout(t, name, btfStruct(t, spec, name), reflect.TypeOf(v))
	}
	if eventSize != int(btfStruct(t, spec, "event").Size) {
		t.Errorf("eventSize %d, C struct event is %d bytes", eventSize, btfStruct(t, spec, "event").Size)
	}
}

// compareLayout reports where the Go type g differs from the C type c.
func compareLayout(t *testing.T, path string, c btf.Type, g reflect.Type) {
	t.Helper()
	c = btf.UnderlyingType(c)
	size, err := btf.Sizeof(c)
	if err != nil {
		t.Errorf("%s: size of C type: %v", path, err)
		return
	}
	if uintptr(size) != g.Size() {
		t.Errorf("%s: C %d bytes, Go %s %d bytes", path, size, g, g.Size())
		return
	}
	switch c := c.(type) {
	case *btf.Int:
		signed := c.Encoding&btf.Signed != 0
		switch g.Kind() {
		case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			if !signed {
				t.Errorf("%s: C unsigned, Go %s", path, g)
			}
		case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if signed {
				t.Errorf("%s: C signed, Go %s", path, g)
			}
		default:
			t.Errorf("%s: C integer, Go %s", path, g)
		}
	case *btf.Enum:
		switch g.Kind() {
		case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		default:
			t.Errorf("%s: C enum, Go %s", path, g)
		}
	case *btf.Array:
		if g.Kind() != reflect.Array || uint32(g.Len()) != c.Nelems {
			t.Errorf("%s: C array of %d, Go %s", path, c.Nelems, g)
			return
		}
		compareLayout(t, path+"[]", c.Type, g.Elem())
	case *btf.Struct:
		if g.Kind() != reflect.Struct {
			t.Errorf("%s: C struct, Go %s", path, g)
			return
		}
		// Go's blank fields are bpf2go's: structs.HostLayout and the
		// padding up to the C size (aligned(128) in cpu_state).
		var fields []reflect.StructField
		for i := range g.NumField() {
			if f := g.Field(i); f.Name != "_" {
				fields = append(fields, f)
			}
		}
		if len(fields) != len(c.Members) {
			t.Errorf("%s: C %d members, Go %s %d fields", path, len(c.Members), g, len(fields))
			return
		}
		for i, m := range c.Members {
			f := fields[i]
			p := path + "." + m.Name
			if m.BitfieldSize != 0 {
				t.Errorf("%s: a bitfield, which Go cannot lay out", p)
				continue
			}
			if want := goName(m.Name); f.Name != want {
				t.Errorf("%s: Go field %s, want %s", p, f.Name, want)
			}
			if uintptr(m.Offset.Bytes()) != f.Offset {
				t.Errorf("%s: C offset %d, Go %d", p, m.Offset.Bytes(), f.Offset)
			}
			compareLayout(t, p, m.Type, f.Type)
		}
	default:
		t.Errorf("%s: C %s, not expected in a type shared with Go", path, c)
	}
}

// goName is bpf2go's Go name of a C member: snake_case to CamelCase.
func goName(c string) string {
	var b strings.Builder
	for _, part := range strings.Split(c, "_") {
		if part == "" {
			continue
		}
		r := []rune(part)
		r[0] = unicode.ToUpper(r[0])
		b.WriteString(string(r))
	}
	return b.String()
}

// TestEnumsMatchC: each enum value this package uses is the one of the C
// enumerator of that name; where Go must know every value (complete), the
// C enum has no other.
func TestEnumsMatchC(t *testing.T) {
	spec := nsintSpec(t)
	enums := []struct {
		name     string
		values   map[string]uint64
		complete bool
	}{
		{"nsint_direction", map[string]uint64{
			"NSINT_DIR_INGRESS": uint64(cIngress),
			"NSINT_DIR_EGRESS":  uint64(cEgress),
		}, true},
		{"nsint_event_type", map[string]uint64{
			"NSINT_EVENT_FLOW": uint64(FlowEvent),
			"NSINT_EVENT_DROP": uint64(DropEvent),
		}, true},
		{"nsint_reason", map[string]uint64{
			"NSINT_REASON_NEW":     uint64(ReasonNew),
			"NSINT_REASON_REFRESH": uint64(ReasonRefresh),
			"NSINT_REASON_PORTS":   uint64(ReasonPorts),
			"NSINT_REASON_LATENCY": uint64(ReasonLatency),
			"NSINT_REASON_DROP":    uint64(ReasonDrop),
			"NSINT_REASON_IDLE":    uint64(ReasonIdle),
			"NSINT_REASON_END":     uint64(ReasonEnd),
			"NSINT_REASON_FLUSH":   uint64(ReasonFlush),
		}, true},
		{"nsint_event_flags", map[string]uint64{
			"NSINT_EVF_HOP_LATENCY":    uint64(evfHopLatency),
			"NSINT_EVF_NONFIRST_FRAG":  uint64(evfNonFirstFrag),
			"NSINT_EVF_DROP_NO_REASON": uint64(evfNoDropReason),
			"NSINT_EVF_DATA_L3":        uint64(evfDataL3),
			"NSINT_EVF_TCP_END":        uint64(evfTCPEnd),
		}, false},
		{"nsint_port_flags", map[string]uint64{
			"NSINT_PORT_BRIDGE":      uint64(portFlagBridge),
			"NSINT_PORT_LOCAL_STACK": uint64(portFlagLocalStack),
			"NSINT_PORT_HAS_MAC":     uint64(portFlagHasMAC),
		}, true},
		{"nsint_drop_class", map[string]uint64{
			"NSINT_DROP_REAL":      uint64(dropReal),
			"NSINT_DROP_UNWANTED":  uint64(dropUnwanted),
			"NSINT_DROP_NO_SOCKET": uint64(dropNoSocket),
			"NSINT_DROP_OTHERHOST": uint64(dropOtherHost),
			"NSINT_DROP_SOCKET":    uint64(dropSocket),
			"NSINT_DROP_VAGUE":     uint64(dropVague),
		}, true},
		{"nsint_sweep_kind", map[string]uint64{
			"NSINT_SWEEP_FLOW": uint64(sweepKindFlow),
			"NSINT_SWEEP_DROP": uint64(sweepKindDrop),
		}, true},
		{"nsint_sweep_flags", map[string]uint64{
			"NSINT_SWEEP_SLOTS":     uint64(sweepFlagSlots),
			"NSINT_SWEEP_FORCE_ALL": uint64(sweepFlagForceAll),
		}, true},
		{"nsint_sweep_result", map[string]uint64{
			"NSINT_SWEEP_DONE": uint64(sweepDone),
			"NSINT_SWEEP_BUSY": uint64(sweepBusy),
		}, false},
	}
	for _, e := range enums {
		c := btfEnum(t, spec, e.name)
		for name, v := range e.values {
			cv, ok := c[name]
			switch {
			case !ok:
				t.Errorf("enum %s has no %s", e.name, name)
			case cv != v:
				t.Errorf("%s is %d in C, %d in Go", name, cv, v)
			}
		}
		if !e.complete {
			continue
		}
		for name := range c {
			if _, ok := e.values[name]; !ok {
				t.Errorf("enum %s: Go has no counterpart of %s", e.name, name)
			}
		}
	}
}

func btfEnum(t *testing.T, spec *ebpf.CollectionSpec, name string) map[string]uint64 {
	t.Helper()
	var e *btf.Enum
	if err := spec.Types.TypeByName(name, &e); err != nil {
		t.Fatalf("enum %s in the object's BTF: %v", name, err)
	}
	values := map[string]uint64{}
	for _, v := range e.Values {
		values[v.Name] = v.Value
	}
	return values
}

// TestStatsMatchC: Stats reads each slot of the stats map (C enum
// nsint_stat, below NSINT_STAT_MAX, the map's size) into the field of the
// same name, and has no field no slot fills.
func TestStatsMatchC(t *testing.T) {
	spec := nsintSpec(t)
	c := btfEnum(t, spec, "nsint_stat")
	names := map[uint64]string{}
	for name, v := range c {
		names[v] = name
	}
	maxStat, ok := c["NSINT_STAT_MAX"]
	if !ok {
		t.Fatal("enum nsint_stat has no NSINT_STAT_MAX")
	}
	if n := spec.Maps[bpf.NsintMapStats].MaxEntries; uint64(n) != maxStat {
		t.Errorf("stats map has %d slots, NSINT_STAT_MAX is %d", n, maxStat)
	}
	var s Stats
	base := uintptr(unsafe.Pointer(&s))
	st := reflect.TypeOf(s)
	byOffset := map[uintptr]string{}
	for i := range st.NumField() {
		byOffset[st.Field(i).Offset] = st.Field(i).Name
	}
	seen := map[uint64]bool{}
	fields := map[string]bool{}
	for _, f := range s.slots() {
		field := byOffset[uintptr(unsafe.Pointer(f.field))-base]
		slot := uint64(f.slot)
		cName, ok := names[slot]
		switch {
		case !ok || slot >= maxStat:
			t.Errorf("Stats.%s read from slot %d, which nsint_stat does not name", field, slot)
		case cName != "NSINT_STAT_"+upperSnake(field):
			t.Errorf("Stats.%s read from slot %d, which is %s", field, slot, cName)
		}
		if seen[slot] {
			t.Errorf("slot %d read twice", slot)
		}
		if fields[field] {
			t.Errorf("Stats.%s read twice", field)
		}
		seen[slot], fields[field] = true, true
	}
	for v := range maxStat {
		if !seen[v] {
			t.Errorf("Stats does not read %s (slot %d)", names[v], v)
		}
	}
	for i := range st.NumField() {
		if !fields[st.Field(i).Name] {
			t.Errorf("Stats.%s is read from no slot", st.Field(i).Name)
		}
	}
}

// upperSnake is the C spelling of a Go name: CamelCase to UPPER_SNAKE.
func upperSnake(g string) string {
	var b strings.Builder
	for i, r := range g {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// TestDispatcherWritesIdentity: the dispatcher's stores, applied to a
// cpu_state element, put port, dir and netns where the C struct has them and
// touch nothing else of the element; the indirect tail call reads dir back
// from there.
func TestDispatcherWritesIdentity(t *testing.T) {
	spec := nsintSpec(t)
	cs := btfStruct(t, spec, "cpu_state")
	id := btfStruct(t, spec, "identity")
	idOff := uint32(btfMember(t, cs, "id").Offset.Bytes())
	field := func(name string) (off, size uint32) {
		m := btfMember(t, id, name)
		n, err := btf.Sizeof(m.Type)
		must(t, err)
		return idOff + uint32(m.Offset.Bytes()), uint32(n)
	}
	const port, netns = 0xbeef, 0xf0000001
	for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
		for _, direct := range []bool{true, false} {
			elem := make([]byte, cs.Size)
			for i := range elem {
				elem[i] = 0xa5
			}
			var dirLoad *asm.Instruction
			for _, ins := range dispatcherSpec(-1, -1, port, dir, netns, direct).Instructions {
				switch {
				case ins.OpCode.Class() == asm.StClass && ins.Dst == asm.R0:
					if ins.OpCode.Size() != asm.Word || int(ins.Offset)+4 > len(elem) {
						t.Fatalf("dispatcher stores %v: not a word inside the %d-byte element", ins, len(elem))
					}
					binary.NativeEndian.PutUint32(elem[ins.Offset:], uint32(ins.Constant))
				case ins.OpCode.Class() == asm.LdXClass && ins.Src == asm.R0:
					dirLoad = &ins
				}
			}
			read := func(name string) uint64 {
				off, size := field(name)
				var b [8]byte
				copy(b[:], elem[off:off+size])
				return binary.NativeEndian.Uint64(b[:])
			}
			if got := read("port"); got != port {
				t.Errorf("dir %s: port %#x, want %#x", dir, got, port)
			}
			if c, _ := cDirection(dir); read("dir") != uint64(c) {
				t.Errorf("dir %s: dir %d", dir, read("dir"))
			}
			if got := read("netns"); got != netns {
				t.Errorf("dir %s: netns %#x, want %#x", dir, got, netns)
			}
			if got := read("pad"); got != 0 {
				t.Errorf("dir %s: pad %#x, want 0", dir, got)
			}
			for i, b := range elem {
				if (uint32(i) < idOff || uint32(i) >= idOff+id.Size) && b != 0xa5 {
					t.Errorf("dir %s: byte %d outside the identity written", dir, i)
				}
			}
			off, size := field("dir")
			switch {
			case direct && dirLoad != nil:
				t.Errorf("direct tail call reads the element: %v", dirLoad)
			case !direct && dirLoad == nil:
				t.Error("indirect tail call does not read dir back")
			case !direct && (uint32(dirLoad.Offset) != off || uint32(dirLoad.OpCode.Size().Sizeof()) != size):
				t.Errorf("indirect tail call reads %d bytes at %d, dir is %d at %d",
					dirLoad.OpCode.Size().Sizeof(), dirLoad.Offset, size, off)
			}
		}
	}
}

// TestCLimits: the C bounds that Go copies as plain numbers.
func TestCLimits(t *testing.T) {
	spec := nsintSpec(t)
	if n := spec.Maps[bpf.NsintMapSweepItems].MaxEntries; n != scanBatch {
		t.Errorf("sweep_items holds %d, scanBatch is %d (NSINT_SCAN_BATCH)", n, scanBatch)
	}
	if n := spec.Maps[bpf.NsintMapWatchRules].MaxEntries; uint64(n) < uint64(watchlist.MaxRules) {
		t.Errorf("watch_rules holds %d, the watchlist allows %d (NSINT_MAX_RULES)", n, watchlist.MaxRules)
	}
}
