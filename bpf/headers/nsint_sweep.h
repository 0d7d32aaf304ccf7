/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The sweep: counts that no packet will report. A flow that goes quiet
 * keeps its last counts in its entry, and a CPU that sees no further packet
 * keeps its last-flow slots; user space runs nsint_sweep on every CPU
 * (BPF_PROG_TEST_RUN with BPF_F_TEST_RUN_ON_CPU) to empty the slots, and on
 * a list of flows whose report is due (quiet for their interval, ended, or
 * on a port going away) to take their counts for a report.
 *
 * How the sweep and the TC programs of one CPU keep out of each other's
 * way. The kernel runs the sweep on CPU X either in an IPI (hardirq: it can
 * interrupt a TC program of X between any two instructions, but nothing on
 * X interrupts it) or, when the caller already runs on X, in process
 * context (a TC program of X can then run to completion between any two of
 * the sweep's instructions, never the other way round). So:
 * - TC programs set cpu_state.busy for as long as they touch the slots and
 *   per-CPU entries; a sweep that finds it set interrupted one and returns
 *   NSINT_SWEEP_BUSY at once, touching nothing (user space retries).
 * - The sweep sets cpu_state.sweeping while it works; a TC program that
 *   finds it set interrupted the sweep and bypasses: it leaves the slots
 *   alone and, on the per-CPU table, never takes a flow's counts.
 * - Whatever else both may change — per-CPU entries, port counters — the
 *   sweep changes with single atomic instructions, which a TC program
 *   cannot split, and takes a count as "read it, then subtract what was
 *   read", which keeps whatever a TC program added in between.
 * On the shared table every CPU's programs take counts by exchange and
 * claim reports by compare-and-swap: the sweep does the same.
 *
 * One gap remains, on the per-CPU table only (kernels before 5.12): between
 * reading an entry's counts and subtracting them, the LRU may evict the
 * entry and hand its memory to another flow, whose counts then lose what
 * was read. It takes an eviction, on a full table, within the two
 * instructions between; the sweep of the shared table has no such gap.
 */
#ifndef __NSINT_SWEEP_H
#define __NSINT_SWEEP_H

#include "nsint_flow.h"

/* Return values of nsint_sweep. */
enum nsint_sweep_result {
	NSINT_SWEEP_DONE = 0,
	NSINT_SWEEP_BUSY = 1,  /* a TC program of this CPU was interrupted */
	NSINT_SWEEP_NOMAP = 2, /* cannot happen: an array lookup failed */
};

/* Empty one last-flow slot of this CPU into its port and flow entry. */
static __always_inline void sweep_slot(struct flow_cache *c)
{
	struct port_counters *pc;
	struct flow_state *st;
	__u64 packets, bytes;
	__u32 port;

	if (!c->valid)
		return;
	packets = c->packets;
	bytes = c->bytes;
	c->valid = 0;
	c->packets = 0;
	c->bytes = 0;
	if (!packets)
		return;
	port = c->key.port;
	pc = bpf_map_lookup_elem(&port_counters, &port);
	if (pc) {
		__sync_fetch_and_add(&pc->dir[c->key.dir & 1].packets, packets);
		__sync_fetch_and_add(&pc->dir[c->key.dir & 1].bytes, bytes);
	}
	st = bpf_map_lookup_elem(&flows, &c->key);
	if (slot_entry_live(st)) {
		__sync_fetch_and_add(&st->packets, packets);
		__sync_fetch_and_add(&st->bytes, bytes);
	} else {
		stat_inc(NSINT_STAT_CACHE_FLUSH_LOST);
	}
}

/* Take a flow's counts for a report when one is due (or forced). */
static __always_inline void sweep_flow(struct sweep_item *it, __u64 now)
{
	struct flow_state *st = bpf_map_lookup_elem(&flows, &it->key);
	__u64 last, packets, bytes;

	if (!st)
		return;
	last = st->last_report_ns;
	if (!last) /* per-CPU table: this CPU never counted the flow */
		return;
	if (!it->force && !st->ended && !refresh_due(now, last))
		return;
	if (cfg.flows_shared) {
		/* see flow_claim and flow_take */
		if (__sync_val_compare_and_swap(&st->last_report_ns, last,
						now) != last)
			return;
		packets = __sync_lock_test_and_set(&st->packets, 0);
		bytes = __sync_lock_test_and_set(&st->bytes, 0);
	} else {
		packets = st->packets;
		bytes = st->bytes;
		__sync_fetch_and_add(&st->packets, -packets);
		__sync_fetch_and_add(&st->bytes, -bytes);
		st->last_report_ns = now;
	}
	if (!packets && !bytes) /* bytes alone: see emit_flow */
		return;
	if (!st->watched) {
		stat_inc(NSINT_STAT_UNWATCHED);
		return;
	}
	if (it->key.dir == NSINT_DIR_INGRESS) {
		if (st->forwarded == NSINT_FWD_ROUTED) /* reported at egress */
			return;
		it->in_port = it->key.port;
		it->out_port = ingress_out_port(it->key.port, st->forwarded);
	} else {
		it->in_port = st->in_port == NSINT_PORT_LOCAL ?
				      local_port_of(it->key.port) :
				      st->in_port;
		it->out_port = it->key.port;
	}
	it->packets = packets;
	it->bytes = bytes;
	it->flags = st->ended ? NSINT_EVF_TCP_END : 0;
	it->taken = 1;
}

/*
 * Take the drops the rate limit folded and no later drop reported. Only
 * the shared-table kernels fold drops (drop_rate_limit).
 */
static __always_inline void sweep_drop(struct sweep_item *it, __u64 now)
{
	struct drop_key dk = { .fk = it->key, .reason = it->reason };
	struct drop_state *ds;
	__u64 last, drops;

	if (!cfg.flows_shared)
		return;
	ds = bpf_map_lookup_elem(&drop_flows, &dk);
	if (!ds)
		return;
	last = ds->last_report_ns;
	if (!it->force &&
	    (now < last || now - last < cfg.drop_report_interval_ns))
		return;
	if (__sync_val_compare_and_swap(&ds->last_report_ns, last, now) != last)
		return;
	drops = __sync_lock_test_and_set(&ds->drops, 0);
	if (!drops)
		return;
	it->in_port = ds->in_port;
	it->out_port = ds->out_port;
	it->flags = ds->flags;
	it->packets = drops;
	it->taken = 1;
}

static __always_inline int sweep(void)
{
	__u32 cpu = bpf_get_smp_processor_id(), zero = 0, i, count;
	struct sweep_ctl *ctl = bpf_map_lookup_elem(&sweep_ctl, &zero);
	struct cpu_state *cs = bpf_map_lookup_elem(&cpu_state, &cpu);
	struct sweep_item *it;
	__u64 now;

	if (!cs || !ctl)
		return NSINT_SWEEP_NOMAP;
	if (READ_ONCE(cs->busy))
		return NSINT_SWEEP_BUSY;
	WRITE_ONCE(cs->sweeping, 1);
	nsint_barrier();
	if (ctl->flags & NSINT_SWEEP_SLOTS) {
		sweep_slot(&cs->flow[0]);
		sweep_slot(&cs->flow[1]);
	}
	/*
	 * Tracing programs may not read the coarse clock; the precise one of
	 * the same base is at most a tick ahead of it, which only makes a
	 * refresh due that much earlier here.
	 */
	now = bpf_ktime_get_ns();
	count = ctl->count;
	for (i = 0; i < NSINT_SWEEP_BATCH; i++) {
		__u32 k = i;

		if (i >= count)
			break;
		it = bpf_map_lookup_elem(&sweep_items, &k);
		if (!it)
			break;
		it->taken = 0;
		if (it->kind == NSINT_SWEEP_FLOW)
			sweep_flow(it, now);
		else if (it->kind == NSINT_SWEEP_DROP)
			sweep_drop(it, now);
		if (it->taken)
			stat_inc(NSINT_STAT_SWEEP_REPORTS);
	}
	nsint_barrier();
	WRITE_ONCE(cs->sweeping, 0);
	return NSINT_SWEEP_DONE;
}

/*
 * The scan: the same takes as sweep_flow, over the whole shared flow table
 * in the kernel (bpf_for_each_map_elem, 5.13+), so that user space need not
 * read the table to find what is due. It fills sweep_items with what it
 * took, at most NSINT_SCAN_BATCH per run; user space runs it again while
 * it fills them all. Shared table only: nothing per CPU is touched, so it
 * may run anywhere, and every take is a claim by compare-and-swap and an
 * exchange, as the TC programs' on other CPUs.
 */
struct bpf_map;

struct scan_ctx {
	__u64 now;
	__u32 n;
	__u32 scanned;
	__u16 force_port;
	__u8 force_all;
	__u8 pad;
};

static long scan_flow(struct bpf_map *map, struct flow_key *key,
		      struct flow_state *st, struct scan_ctx *c)
{
	struct sweep_item *it;
	__u64 last, packets, bytes;
	__u32 n = c->n;

	c->scanned++;
	last = st->last_report_ns;
	if (!last || (!READ_ONCE(st->packets) && !READ_ONCE(st->bytes)))
		return 0;
	if (!c->force_all && key->port != c->force_port && !st->ended &&
	    !refresh_due(c->now, last))
		return 0;
	if (n >= NSINT_SCAN_BATCH)
		return 1;
	it = bpf_map_lookup_elem(&sweep_items, &n);
	if (!it)
		return 1;
	if (__sync_val_compare_and_swap(&st->last_report_ns, last, c->now) !=
	    last)
		return 0;
	packets = __sync_lock_test_and_set(&st->packets, 0);
	bytes = __sync_lock_test_and_set(&st->bytes, 0);
	if (!packets && !bytes)
		return 0;
	if (!st->watched) {
		stat_inc(NSINT_STAT_UNWATCHED);
		return 0;
	}
	if (key->dir == NSINT_DIR_INGRESS) {
		if (st->forwarded == NSINT_FWD_ROUTED) /* reported at egress */
			return 0;
		it->in_port = key->port;
		it->out_port = ingress_out_port(key->port, st->forwarded);
	} else {
		it->in_port = st->in_port == NSINT_PORT_LOCAL ?
				      local_port_of(key->port) :
				      st->in_port;
		it->out_port = key->port;
	}
	__builtin_memcpy(&it->key, key, sizeof(*key));
	it->kind = NSINT_SWEEP_FLOW;
	it->force = c->force_all || key->port == c->force_port;
	it->packets = packets;
	it->bytes = bytes;
	it->flags = st->ended ? NSINT_EVF_TCP_END : 0;
	it->taken = 1;
	stat_inc(NSINT_STAT_SWEEP_REPORTS);
	c->n = n + 1;
	return c->n >= NSINT_SCAN_BATCH;
}

static __always_inline int sweep_scan(void)
{
	__u32 zero = 0;
	struct sweep_ctl *ctl = bpf_map_lookup_elem(&sweep_ctl, &zero);
	struct scan_ctx c = {};

	if (!ctl)
		return NSINT_SWEEP_NOMAP;
	c.now = bpf_ktime_get_ns();
	c.force_port = ctl->force_port;
	c.force_all = !!(ctl->flags & NSINT_SWEEP_FORCE_ALL);
	bpf_for_each_map_elem(&flows, scan_flow, &c, 0);
	ctl->count = c.n;
	ctl->scanned = c.scanned;
	{
		__u32 k = NSINT_STAT_SWEEP_SCANNED;
		__u64 *v = bpf_map_lookup_elem(&stats, &k);

		if (v)
			__sync_fetch_and_add(v, c.scanned);
	}
	return NSINT_SWEEP_DONE;
}

#endif /* __NSINT_SWEEP_H */
