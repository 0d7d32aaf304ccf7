package dropreason

// EnumName is the name of the kernel's drop reason enum in BTF.
const EnumName = "skb_drop_reason"

// UnknownName is what Resolver.Name returns for a value it cannot name.
const UnknownName = "unknown"

// denseLimit bounds the slice that holds the core reasons; values above it
// (subsystem reasons carry the subsystem in the upper 16 bits) use a map.
const denseLimit = 1024

type entry struct {
	name  string // full enum name, e.g. SKB_DROP_REASON_NO_SOCKET
	code  uint8
	valid bool
}

// Resolver maps the numeric drop reasons of one kernel to names and INT
// codes. It is immutable after construction and safe for concurrent use. The
// zero value and a nil *Resolver are empty resolvers.
type Resolver struct {
	dense  []entry
	sparse map[uint32]entry
	byName map[string]uint32
}

// NewResolver builds a Resolver from the values of one kernel's enum
// skb_drop_reason, value to name ("SKB_DROP_REASON_NO_SOCKET"), as
// datapath.DropReasonNames reads them from the kernel's BTF. The enum's
// bookkeeping entries (SKB_DROP_REASON_MAX, SKB_DROP_REASON_SUBSYS_MASK) are
// not reasons and are left out. An empty or nil map gives an empty Resolver.
func NewResolver(names map[uint32]string) *Resolver {
	r := &Resolver{byName: make(map[string]uint32, len(names))}
	for value, name := range names {
		if name == Prefix+"MAX" || name == Prefix+"SUBSYS_MASK" {
			continue
		}
		e := entry{name: name, code: CodeFor(name), valid: true}
		r.byName[name] = value
		if value < denseLimit {
			for uint32(len(r.dense)) <= value {
				r.dense = append(r.dense, entry{})
			}
			r.dense[value] = e
			continue
		}
		if r.sparse == nil {
			r.sparse = make(map[uint32]entry)
		}
		r.sparse[value] = e
	}
	return r
}

func (r *Resolver) lookup(v uint32) entry {
	if r == nil {
		return entry{}
	}
	if v < uint32(len(r.dense)) {
		return r.dense[v]
	}
	return r.sparse[v]
}

// Len returns how many reasons the resolver knows.
func (r *Resolver) Len() int {
	if r == nil {
		return 0
	}
	return len(r.byName)
}

// Name returns the kernel's name for a drop reason value
// ("SKB_DROP_REASON_NO_SOCKET"), or UnknownName.
func (r *Resolver) Name(v uint32) string {
	if e := r.lookup(v); e.valid {
		return e.name
	}
	return UnknownName
}

// INTCode returns the INT drop reason code for a kernel drop reason value:
// the table's code for its name, CodeOtherKernel for a reason the table does
// not map, and CodeUnknown for a value this kernel's enum does not have.
func (r *Resolver) INTCode(v uint32) uint8 {
	if e := r.lookup(v); e.valid {
		return e.code
	}
	return CodeUnknown
}

// Value returns this kernel's value for a drop reason name, given with or
// without Prefix, and whether the kernel has it.
func (r *Resolver) Value(name string) (uint32, bool) {
	if r == nil {
		return 0, false
	}
	if v, ok := r.byName[name]; ok {
		return v, true
	}
	v, ok := r.byName[Prefix+name]
	return v, ok
}
