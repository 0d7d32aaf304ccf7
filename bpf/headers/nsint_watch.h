/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Watchlist evaluation. Runs only when a flow is new or on its refresh, and
 * the verdict is cached in the flow state with the generation it saw.
 */
#ifndef __NSINT_WATCH_H
#define __NSINT_WATCH_H

#include "nsint_maps.h"

static __always_inline int addr_match(const __u32 *a, const __u32 *net,
				      const __u32 *mask)
{
	return ((a[0] & mask[0]) == net[0]) && ((a[1] & mask[1]) == net[1]) &&
	       ((a[2] & mask[2]) == net[2]) && ((a[3] & mask[3]) == net[3]);
}

static __always_inline int rule_match(const struct rule *r,
				      const struct tuple *t)
{
	if (r->proto && r->proto != t->proto)
		return 0;
	if (r->family && r->family != t->family)
		return 0;
	if (t->sport < r->sport_lo || t->sport > r->sport_hi)
		return 0;
	if (t->dport < r->dport_lo || t->dport > r->dport_hi)
		return 0;
	return addr_match(t->saddr, r->src, r->src_mask) &&
	       addr_match(t->daddr, r->dst, r->dst_mask);
}

/*
 * The tuple watch_eval judges, handed over in a per-CPU slot: a global
 * function takes pointer arguments (other than the context) only from 5.12 on
 * — 5.10 rejects the program with "Arg#0 type PTR in watch_eval() is not
 * supported yet" — and a tuple does not fit in scalar arguments. The slot is
 * written and read in the same program run, which no other program
 * interrupts on this CPU (TC runs with bottom halves off), like cpu_state.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tuple);
} watch_tuple SEC(".maps");

/*
 * A global function, not a static one: the verifier checks it once, on its
 * own, instead of again at every call path with the caller's state. As a
 * static subprogram, 6.1's verifier re-walked the 64-rule loop on each path
 * of the report code and hit its 1M-instruction limit. Scalars only in its
 * signature (see watch_tuple), so that it verifies on every kernel with
 * global functions (5.6+). count is at least 1.
 */
__attribute__((noinline)) int watch_eval(__u32 count)
{
	const struct tuple *t;
	struct rule *r;
	__u32 i, key = 0;

	t = bpf_map_lookup_elem(&watch_tuple, &key);
	if (!t)
		return 0;
	for (i = 0; i < NSINT_MAX_RULES; i++) {
		if (i >= count)
			break;
		/* The counter stays in a register; only a copy goes to the
		 * stack for the lookup, so the verifier keeps its bounds.
		 */
		key = i;
		r = bpf_map_lookup_elem(&watch_rules, &key);
		if (r && rule_match(r, t))
			return 1;
	}
	return 0;
}

/* Re-evaluate the cached verdict when the watchlist changed. */
static __always_inline void watch_refresh(struct flow_state *st,
					  const struct tuple *t, int force)
{
	__u32 zero = 0;
	struct watch_meta *m = bpf_map_lookup_elem(&watch_meta, &zero);
	struct tuple *slot;
	__u32 gen = 0, count = 0;

	if (m) {
		gen = m->generation;
		count = m->count;
	}
	if (!force && st->watch_gen == gen)
		return;
	st->watch_gen = gen;
	if (count == 0) { /* no watchlist: everything is watched */
		st->watched = 1;
		return;
	}
	slot = bpf_map_lookup_elem(&watch_tuple, &zero);
	if (!slot) {
		st->watched = 0;
		return;
	}
	__builtin_memcpy(slot, t, sizeof(*slot));
	st->watched = watch_eval(count);
}

#endif /* __NSINT_WATCH_H */
