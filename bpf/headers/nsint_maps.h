/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Maps and load-time constants. Sizes marked "set from Go" are placeholders
 * that the loader overrides in the collection spec before load.
 */
#ifndef __NSINT_MAPS_H
#define __NSINT_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "nsint_types.h"

volatile const struct config cfg = {
	.report_interval_ns = 1000000000ULL,
	.drop_report_interval_ns = 100000000ULL,
	.transit_max_age_ns = 1000000000ULL,
	.snap_len = 128,
	.drop_consumed_reason = ~0U,
};

/*
 * Indexed by CPU number: a plain array rather than a per-CPU one, because
 * the verifier inlines a plain array's lookup as an address computation,
 * while a per-CPU array's first loads the element's per-CPU pointer from
 * the map (a miss of its own). Only the owning CPU writes its element, with
 * bottom halves off; user space reads them (PortCounters).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* set from Go: possible CPUs */
	__type(key, __u32);
	__type(value, struct cpu_state);
} cpu_state SEC(".maps");

/* Index 0: ingress main program, 1: egress; filled by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} tc_progs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096); /* set from Go: MaxPorts */
	__type(key, __u32);
	__type(value, struct port_config);
} port_configs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* set from Go: MaxPorts */
	__type(key, struct port_key);
	__type(value, __u32);
} port_ids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4096); /* set from Go: MaxPorts */
	__type(key, __u32);
	__type(value, struct port_counters);
} port_counters SEC(".maps");

/* Type chosen from Go: LRU_HASH (shared, 5.12+) or LRU_PERCPU_HASH. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 65536); /* set from Go: MaxFlows */
	__type(key, struct flow_key);
	__type(value, struct flow_state);
} flows SEC(".maps");

/*
 * A flow enters the flow table at its second packet; its first is reported
 * on its own and leaves a mark here (flow_first_packet in nsint_flow.h), in
 * the slot a hash of its key chooses. Shared by all CPUs, as a flow's
 * packets may come through several. 32 768 slots of 16 bytes: 512 KiB,
 * small enough to stay in the caches, as the flow table cannot.
 */
#define NSINT_FIRST_MARKS 32768
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NSINT_FIRST_MARKS);
	__type(key, __u32);
	__type(value, struct first_mark);
} first_marks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* set from Go: MaxFlows */
	__type(key, struct transit_key);
	__type(value, struct transit_entry);
} transit SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384); /* set from Go */
	__type(key, struct drop_key);
	__type(value, struct drop_state);
} drop_flows SEC(".maps");

/*
 * What a kernel drop reason (value < 256) means for the drop hook; filled
 * from Go, which knows the running kernel's enum by name (drop_class()).
 */
enum nsint_drop_class {
	NSINT_DROP_REAL = 0,	 /* a packet meant for delivery or forwarding */
	NSINT_DROP_UNWANTED = 1, /* no one wanted it: not a drop when multi-
				  * or broadcast */
	NSINT_DROP_NO_SOCKET = 2, /* as UNWANTED; also not for echo replies */
	NSINT_DROP_OTHERHOST = 3, /* a frame for another host: never a drop */
	NSINT_DROP_SOCKET = 4,	  /* a socket's own queue: never a drop */
	NSINT_DROP_VAGUE = 5,	  /* no reason given: a drop only of unicast
				   * TCP, UDP or SCTP */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} drop_class SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NSINT_SCAN_BATCH); /* >= NSINT_SWEEP_BATCH */
	__type(key, __u32);
	__type(value, struct sweep_item);
} sweep_items SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sweep_ctl);
} sweep_ctl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NSINT_MAX_RULES);
	__type(key, __u32);
	__type(value, struct rule);
} watch_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct watch_meta);
} watch_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NSINT_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/*
 * Reports to user space: one ring shared by all CPUs (BPF ring buffer,
 * 5.8+), which user space reads in order, and which the generation pins so
 * that reports written while no agent reads them are read by the next one
 * (datapath.Recover). A report is reserved in place (report_reserve), so it
 * is written once, not built on the stack and copied as the perf buffer's
 * output did.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* set from Go: a power of two */
} events SEC(".maps");

/*
 * Reserve a report and room for cfg.snap_len bytes of its packet. The
 * verifier wants the size of a reservation as a constant: cfg is read-only
 * and frozen, so it knows snap_len. A packet shorter than snap_len leaves
 * the rest unused (event.cap_len says how much holds packet bytes).
 *
 * The reservation holds whatever an earlier record left there: the caller
 * writes the whole struct event as one compound literal, which zeroes every
 * field it does not name (pad included), so each byte is written once
 * and none keeps an old report's value.
 */
static __always_inline struct event *report_reserve(void)
{
	return bpf_ringbuf_reserve(&events, sizeof(struct event) + cfg.snap_len,
				   0);
}

/*
 * Hand a report to user space. A wakeup of the reader costs the writing CPU
 * an interrupt to itself (irq_work; in a VM an exit), which the kernel's
 * default policy pays for every report a reader that keeps up is waiting
 * for: several times what the rest of a new flow costs. So only the report
 * that brings the ring to cfg.wakeup_reports unread ones wakes the reader;
 * it also looks at the ring on a timer (datapath.Reader), which bounds the
 * wait of the reports before. Two CPUs crossing the mark at once may both
 * miss it: the timer covers that too. The query reads the positions the
 * reservation has just read: no further cache miss.
 */
static __always_inline void report_submit(struct event *ev)
{
	/* a record: an 8-byte header, the reservation rounded up to 8 */
	__u64 size = 8 + ((sizeof(*ev) + cfg.snap_len + 7) & ~7ULL);
	__u64 mark = size * cfg.wakeup_reports;
	__u64 unread = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

	bpf_ringbuf_submit(ev, unread >= mark && unread < mark + size ?
				       BPF_RB_FORCE_WAKEUP :
				       BPF_RB_NO_WAKEUP);
}

/*
 * Per-CPU stats may be counted from a TC program and from the drop hook or
 * the sweep that it interrupted on the same CPU: an atomic add keeps every
 * count (it is one instruction, so no interruption splits it).
 */
static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v)
		__sync_fetch_and_add(v, 1);
}

/* Keep the compiler from moving memory accesses across this point. */
#define nsint_barrier() asm volatile("" ::: "memory")

/* One access the compiler neither merges, splits, nor leaves out. */
#define READ_ONCE(x)	 (*(volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

#endif /* __NSINT_MAPS_H */
