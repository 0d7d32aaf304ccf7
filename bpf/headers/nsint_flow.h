/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-flow state and the report decision of the TC programs.
 *
 * Hot path (a run of packets of one established flow, nothing due): counter
 * adds in this CPU's last-flow slot (flow_cache_hit), no map lookup beyond
 * cpu_state. Otherwise one flow-map lookup and counter adds, plus one
 * transit-map access for forwarded traffic. Everything else —
 * port config, FIB lookup, watchlist, report output — happens on the slow path
 * (new flow, refresh interval passed, port pair or latency bucket changed).
 */
#ifndef __NSINT_FLOW_H
#define __NSINT_FLOW_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "nsint_maps.h"
#include "nsint_watch.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#define NSINT_EEXIST 17
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* What a report says; filled on the slow path only. */
struct report {
	__u64 in_ts;  /* 0: seen by this hook only */
	__u64 out_ts; /* 0: now */
	__u64 latency;
	__u64 packets;
	__u64 bytes;
	__u16 in_port;
	__u16 out_port;
	__u8 reason;
	__u8 flags;
};

static __always_inline __u8 log2_u64(__u64 v)
{
	__u8 r = 0;

	if (v >> 32) {
		v >>= 32;
		r += 32;
	}
	if (v >> 16) {
		v >>= 16;
		r += 16;
	}
	if (v >> 8) {
		v >>= 8;
		r += 8;
	}
	if (v >> 4) {
		v >>= 4;
		r += 4;
	}
	if (v >> 2) {
		v >>= 2;
		r += 2;
	}
	if (v >> 1)
		r += 1;
	return r;
}

/*
 * Clock of the report decisions. The coarse clock (tick resolution, same
 * CLOCK_MONOTONIC base) is a fraction of the cost of bpf_ktime_get_ns in
 * VMs; timestamps and hop latencies always use the precise clock.
 */
static __always_inline __u64 clock_decision(void)
{
	if (cfg.coarse_clock)
		return bpf_ktime_get_coarse_ns();
	return bpf_ktime_get_ns();
}

static __always_inline void count_port(__u32 port, __u8 dir, __u64 segs,
				       __u64 bytes)
{
	struct port_counters *c = bpf_map_lookup_elem(&port_counters, &port);

	if (!c)
		return;
	c->dir[dir & 1].packets += segs;
	c->dir[dir & 1].bytes += bytes;
}

static __always_inline void flow_add(struct flow_state *st, __u64 segs,
				     __u64 bytes)
{
	if (cfg.flows_shared) {
		__sync_fetch_and_add(&st->packets, segs);
		__sync_fetch_and_add(&st->bytes, bytes);
	} else {
		st->packets += segs;
		st->bytes += bytes;
	}
}

/*
 * Is a refresh of a flow last reported at last due at now? In the shared
 * table another CPU may have reported the flow after this CPU read its
 * clock: last is then ahead of now, and nothing is due.
 */
static __always_inline int refresh_due(__u64 now, __u64 last)
{
	return now >= last && now - last >= cfg.report_interval_ns;
}

/*
 * Take the refresh that is due (last: last_report_ns as read by the caller).
 * In the shared table two CPUs can find the same refresh due at once: the
 * one that moves last_report_ns from last to now reports, the other has
 * only counted its packet. Without this, both would take the same counts
 * and report them twice. The compare-and-swap is only ever reached with
 * flows_shared set, which the loader sets only where the kernel has
 * BPF_CMPXCHG (5.12+); see datapath.newSpec.
 */
static __always_inline int flow_claim(struct flow_state *st, __u64 last,
				      __u64 now)
{
	if (!cfg.flows_shared) {
		st->last_report_ns = now;
		return 1;
	}
	return __sync_val_compare_and_swap(&st->last_report_ns, last, now) ==
	       last;
}

/*
 * The mark slot of key's flow (first_marks), and in *hash the hash that
 * tells whose mark a slot holds (never 0, the hash of an empty slot).
 */
static __always_inline struct first_mark *flow_mark(const struct flow_key *key,
						    __u32 *hash)
{
	const __u32 *w = (const __u32 *)key;
	__u32 h = 0x9e3779b9, slot;
	int i;

	/* key was written in whole words just before (put_pair) */
#pragma unroll
	for (i = 0; i < sizeof(*key) / 4; i++)
		h = (h ^ w[i]) * 0x85ebca6b;
	h ^= h >> 15;
	slot = (h >> 16) & (NSINT_FIRST_MARKS - 1);
	*hash = h | 1;
	return bpf_map_lookup_elem(&first_marks, &slot);
}

/*
 * The first packet of a flow (no entry, no mark of it): it is reported on
 * its own, and instead of an entry it leaves a mark of what the entry would
 * hold, in place of the mark of whichever flow had the slot. So a flow of
 * one packet (a DNS query, a probe, a scan) costs no insert into the flow
 * table and evicts nothing from it. A mark written while another CPU reads
 * it may be read half written: then the second packet's entry starts with
 * another time or port pair, and reports earlier or later; each packet is
 * still counted once.
 */
static __always_inline void flow_mark_first(struct first_mark *m, __u32 hash,
					    const struct flow_state *init)
{
	stat_inc(NSINT_STAT_FIRST_PACKETS);
	if (!m)
		return;
	m->ts = init->last_report_ns;
	m->in_port = init->in_port;
	m->lat_bucket = init->lat_bucket;
	m->bits = (init->has_latency ? NSINT_MARK_LATENCY : 0) |
		  (init->ended ? NSINT_MARK_ENDED : 0) |
		  init->forwarded << NSINT_MARK_FWD_SHIFT;
	nsint_barrier();
	m->hash = hash;
}

/*
 * Insert init as key's entry: 1. In the shared table another CPU may have
 * stored the flow since our lookup: its entry stays, 0. Other failures are
 * counted, -1.
 */
static __always_inline int flow_insert(const struct flow_key *key,
				       const struct flow_state *init)
{
	/*
	 * int, not long: before 6.4 a map's update returned int, and the JIT
	 * calls it directly (no helper around it to sign-extend), so -EEXIST
	 * arrives with the upper half zero.
	 */
	int err = bpf_map_update_elem(&flows, key, init,
				      cfg.flows_shared ? BPF_NOEXIST : BPF_ANY);

	if (!err)
		return 1;
	if (cfg.flows_shared && err == -NSINT_EEXIST)
		return 0;
	stat_inc(NSINT_STAT_FLOW_UPDATE_ERRORS);
	return -1;
}

/*
 * The second packet of a flow, which found its first's mark: store the
 * entry the first would have made, so that this packet is counted and
 * decided on as any later one (a refresh may be due, the port pair may
 * have changed). Returns the entry (in the shared table another CPU's, if
 * it stored the flow first), NULL when the insert failed: the packet is
 * then taken for a first one.
 */
static __always_inline struct flow_state *flow_store(const struct flow_key *key,
						     const struct first_mark *m)
{
	struct flow_state init = {
		.last_report_ns = m->ts,
		.in_port = m->in_port,
		.lat_bucket = m->lat_bucket,
		.has_latency = m->bits & NSINT_MARK_LATENCY ? 1 : 0,
		.ended = m->bits & NSINT_MARK_ENDED ? 1 : 0,
		.forwarded = m->bits >> NSINT_MARK_FWD_SHIFT,
	};

	if (key->dir == NSINT_DIR_EGRESS)
		init.out_port = key->port;
	else
		init.out_port = init.forwarded ? 0 : NSINT_PORT_LOCAL;
	watch_refresh(&init, &key->t, 1);
	if (flow_insert(key, &init) < 0)
		return NULL;
	return bpf_map_lookup_elem(&flows, key);
}

/*
 * A first packet's report the ring had no room for: store its flow with
 * the packet in it, for the sweep or the next report to carry.
 */
static __always_inline void flow_keep(const struct flow_key *key,
				      struct flow_state *init,
				      const struct report *r)
{
	struct flow_state *st;

	init->packets = r->packets;
	init->bytes = r->bytes;
	if (flow_insert(key, init) != 0)
		return;
	st = bpf_map_lookup_elem(&flows, key);
	if (st)
		flow_add(st, r->packets, r->bytes);
	else
		stat_inc(NSINT_STAT_FLOW_UPDATE_ERRORS);
}

/*
 * Move the counts since the last report into r. In the shared table each
 * count is swapped for zero in one step: adds racing with us stay for the
 * next report, and even two takes that overlap (the claim serialises them,
 * but a CPU held up between claim and take for longer than the interval,
 * such as a preempted vCPU, lets the next claim in) get disjoint shares.
 * BPF_XCHG came with BPF_CMPXCHG (5.12); see flow_claim.
 */
static __always_inline void flow_take(struct flow_state *st, struct report *r)
{
	if (cfg.flows_shared) {
		r->packets = __sync_lock_test_and_set(&st->packets, 0);
		r->bytes = __sync_lock_test_and_set(&st->bytes, 0);
	} else {
		r->packets = st->packets;
		r->bytes = st->bytes;
		st->packets = 0;
		st->bytes = 0;
	}
}

static __always_inline __u16 local_port_of(__u32 port)
{
	struct port_config *pc = bpf_map_lookup_elem(&port_configs, &port);

	return pc ? pc->local_port : 0;
}

/*
 * Send report r of key's flow. A report carries the counts since the
 * previous one, so one that carries none is not sent (another CPU or the
 * sweep took them first), and one the ring has no room for gives its
 * counts back to the flow's entry, for the next report or the sweep to
 * carry; it returns 0 when the flow has no entry to take them (a first
 * packet's report). Bytes without packets are a report too: a take that
 * ran between another CPU's two adds (packets, then bytes) left them
 * behind, and their packets went out in an earlier report.
 */
static __always_inline int emit_flow(struct __sk_buff *skb,
				     const struct flow_key *key,
				     const struct report *r, __u8 pkt_flags)
{
	__u64 now = r->out_ts ? r->out_ts : bpf_ktime_get_ns();
	__u32 cap = skb->len;
	struct flow_state *st;
	struct event *ev;

	if (!r->packets && !r->bytes)
		return 1;
	ev = report_reserve();
	if (!ev) {
		stat_inc(NSINT_STAT_RING_FULL);
		st = bpf_map_lookup_elem(&flows, key);
		if (!st)
			return 0;
		flow_add(st, r->packets, r->bytes);
		return 1;
	}
	if (cap > cfg.snap_len)
		cap = cfg.snap_len;
	/*
	 * The copy must be within the reservation and not empty, and
	 * verifiers before 6.x learn no lower bound from cap != 0: arithmetic
	 * that changes no value in 1..NSINT_MAX_SNAP bounds it below, a test
	 * that always passes (cap <= snap_len) above. The empty asm keeps clang
	 * from testing cap - 1 instead, or a copy made before the test; those
	 * verifiers would not carry the bound over.
	 */
	if (cap) {
		cap = ((cap - 1) & (NSINT_MAX_SNAP - 1)) + 1;
		asm volatile("" : "+r"(cap));
		if (cap > cfg.snap_len ||
		    bpf_skb_load_bytes(skb, 0, ev + 1, cap))
			cap = 0;
	}
	*ev = (struct event){
		.type = NSINT_EVENT_FLOW,
		.dir = key->dir,
		.obs_port = key->port,
		.in_port = r->in_port,
		.out_port = r->out_port,
		.in_ts = r->in_ts ? r->in_ts : now,
		.out_ts = now,
		.hop_latency_ns = r->latency,
		.packets = r->packets,
		.bytes = r->bytes,
		.reason = r->reason,
		.flags = r->flags | pkt_flags,
		.family = key->t.family,
		.proto = key->t.proto,
		.sport = key->t.sport,
		.dport = key->t.dport,
		.orig_len = skb->len,
		.cap_len = cap,
	};
	__builtin_memcpy(ev->saddr, key->t.saddr, 16);
	__builtin_memcpy(ev->daddr, key->t.daddr, 16);
	report_submit(ev);
	stat_inc(NSINT_STAT_REPORTS);
	return 1;
}

/* Where a packet arriving on a port goes (flow_state.forwarded). */
enum nsint_fwd {
	NSINT_FWD_LOCAL = 0,  /* to this namespace's stack */
	NSINT_FWD_ROUTED = 1, /* out of another port: reported at its egress */
	NSINT_FWD_DEVICE = 2, /* handed on by the device itself (macvlan parent,
			       * promiscuous or ipvlan lower device): reported
			       * here, with no egress port */
};

/*
 * Where does a packet arriving on this port go? Decided once per flow
 * refresh. A unicast frame not addressed to the MAC the port's stack
 * answers to goes past the stack: a bridge port bridges it on (a
 * bridge's ports answer to the bridge's MAC), other devices hand it on
 * below IP — a macvlan parent first shows its children's frames to its own
 * hook — or drop it as addressed to another host. The rest ask the FIB of
 * this namespace.
 */
static __always_inline __u8 ingress_forwarded(struct __sk_buff *skb,
					      const struct flow_key *key)
{
	__u32 port = key->port;
	struct port_config *pc = bpf_map_lookup_elem(&port_configs, &port);
	struct bpf_fib_lookup fib = {};
	long rc;

	if (pc && (pc->flags & (NSINT_PORT_BRIDGE | NSINT_PORT_HAS_MAC))) {
		void *data = (void *)(long)skb->data;
		void *end = (void *)(long)skb->data_end;
		struct ethhdr *eth = data;

		if ((void *)(eth + 1) > end)
			return NSINT_FWD_LOCAL;
		if (!(eth->h_dest[0] & 1) && /* not broadcast or multicast */
		    (eth->h_dest[0] != pc->mac[0] ||
		     eth->h_dest[1] != pc->mac[1] ||
		     eth->h_dest[2] != pc->mac[2] ||
		     eth->h_dest[3] != pc->mac[3] ||
		     eth->h_dest[4] != pc->mac[4] ||
		     eth->h_dest[5] != pc->mac[5]))
			return pc->flags & NSINT_PORT_BRIDGE ?
				       NSINT_FWD_ROUTED :
				       NSINT_FWD_DEVICE;
		if (pc->flags & NSINT_PORT_BRIDGE)
			return NSINT_FWD_LOCAL;
	}

	fib.ifindex = skb->ifindex;
	fib.l4_protocol = key->t.proto;
	fib.sport = bpf_htons(key->t.sport);
	fib.dport = bpf_htons(key->t.dport);
	if (key->t.family == 4) {
		fib.family = AF_INET;
		fib.ipv4_src = key->t.saddr[0];
		fib.ipv4_dst = key->t.daddr[0];
	} else {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, key->t.saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, key->t.daddr, 16);
	}
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
	case BPF_FIB_LKUP_RET_NO_NEIGH:
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return NSINT_FWD_ROUTED;
	}
	/* NOT_FWDED (local route), FWD_DISABLED (pods) and errors: local */
	return NSINT_FWD_LOCAL;
}

/* The egress port of an ingress report of a flow going fwd. */
static __always_inline __u16 ingress_out_port(__u32 port, __u8 fwd)
{
	return fwd == NSINT_FWD_LOCAL ? local_port_of(port) : 0;
}

static __always_inline void transit_mark(const struct flow_key *key,
					 __u32 netns, __u64 now)
{
	struct transit_key tk = { .netns = netns, .t = key->t };
	struct transit_entry *tr = bpf_map_lookup_elem(&transit, &tk);
	struct transit_entry init = { .ts = now, .port = key->port };

	if (tr) {
		tr->ts = now;
		tr->port = key->port;
		return;
	}
	bpf_map_update_elem(&transit, &tk, &init, BPF_ANY);
}

/*
 * A TCP FIN or RST ends a flow: that packet and every later one is reported
 * at once (the trailing ACKs too), until a SYN starts the 5-tuple afresh.
 */
static __always_inline __u8 flow_ended(struct flow_state *st, __u8 pkt_flags)
{
	if (pkt_flags & NSINT_EVF_TCP_SYN)
		st->ended = 0;
	if (pkt_flags & NSINT_EVF_TCP_END)
		st->ended = 1;
	return st->ended;
}

/*
 * May this packet claim the flow's report? Not on the per-CPU table while
 * the sweep it interrupted works on this CPU (bypass): the sweep may be
 * between reading the flow's counts and taking them (nsint_sweep.h). The
 * packet is counted all the same and the sweep or a later packet reports it.
 */
static __always_inline int flow_may_claim(__u8 bypass)
{
	return cfg.flows_shared || !bypass;
}

/*
 * The first packet of an ingress flow (flow_mark_first): reported on its
 * own, unless it is forwarded (its egress reports it) or unwatched. Returns
 * 0: with no entry, the fast path has nothing to count the next packets in.
 */
static __always_inline __u64 ingress_first(struct __sk_buff *skb,
					   struct flow_key *key, __u32 netns,
					   __u64 now, __u64 segs, __u64 bytes,
					   __u8 pkt_flags, struct first_mark *m,
					   __u32 hash)
{
	struct flow_state init = {
		.last_report_ns = now,
		.in_port = key->port,
	};
	struct report r = {
		.reason = NSINT_REASON_NEW,
		.packets = segs,
		.bytes = bytes,
	};
	__u8 fwd;

	flow_ended(&init, pkt_flags);
	fwd = ingress_forwarded(skb, key);
	init.forwarded = fwd;
	init.out_port = fwd ? 0 : NSINT_PORT_LOCAL;
	flow_mark_first(m, hash, &init);
	if (fwd == NSINT_FWD_ROUTED) {
		transit_mark(key, netns, bpf_ktime_get_ns());
		return 0;
	}
	watch_refresh(&init, &key->t, 1);
	if (!init.watched) {
		stat_inc(NSINT_STAT_UNWATCHED);
		return 0;
	}
	r.in_port = key->port;
	r.out_port = ingress_out_port(key->port, fwd);
	if (!emit_flow(skb, key, &r, pkt_flags))
		flow_keep(key, &init, &r);
	return 0;
}

/*
 * Ingress. Returns when the next refresh of a flow the fast path may count
 * (flow_cache) is due, 0 for one it may not (forwarded, ended, not stored,
 * or another CPU claimed it first).
 */
static __always_inline __u64 ingress_flow(struct __sk_buff *skb,
					  struct flow_key *key, __u32 netns,
					  __u64 now, __u64 segs, __u64 bytes,
					  __u8 pkt_flags, __u8 bypass)
{
	struct flow_state *st = bpf_map_lookup_elem(&flows, key);
	struct report r = {};
	struct first_mark *m;
	__u32 hash;
	__u64 last;
	__u8 fwd, end;

	/*
	 * With the per-CPU flow map, an entry created on another CPU has a
	 * zeroed slot here: this CPU has not seen the flow yet, treat it as new.
	 */
	if (!st || !(last = st->last_report_ns)) {
		m = flow_mark(key, &hash);
		if (!m || m->hash != hash || !(st = flow_store(key, m)))
			return ingress_first(skb, key, netns, now, segs, bytes,
					     pkt_flags, m, hash);
		last = st->last_report_ns;
	}
	flow_add(st, segs, bytes);
	end = flow_ended(st, pkt_flags);
	if (st->forwarded == NSINT_FWD_ROUTED)
		transit_mark(key, netns, bpf_ktime_get_ns());
	if (!end && !refresh_due(now, last))
		return st->forwarded == NSINT_FWD_ROUTED ?
			       0 :
			       last + cfg.report_interval_ns;
	if (!flow_may_claim(bypass) || !flow_claim(st, last, now))
		return 0;

	/* Slow path: refresh the decision, the verdict, report. */
	fwd = ingress_forwarded(skb, key);
	watch_refresh(st, &key->t, 0);
	if (end)
		r.reason = NSINT_REASON_END;
	else if (fwd != st->forwarded)
		r.reason = NSINT_REASON_PORTS;
	else
		r.reason = NSINT_REASON_REFRESH;
	st->forwarded = fwd;
	st->out_port = fwd ? 0 : NSINT_PORT_LOCAL;
	flow_take(st, &r);
	if (fwd == NSINT_FWD_ROUTED) {
		transit_mark(key, netns, bpf_ktime_get_ns());
		return 0;
	}
	if (!st->watched) {
		stat_inc(NSINT_STAT_UNWATCHED);
		return end ? 0 : now + cfg.report_interval_ns;
	}
	r.in_port = key->port;
	r.out_port = ingress_out_port(key->port, fwd);
	emit_flow(skb, key, &r, pkt_flags);
	return end ? 0 : now + cfg.report_interval_ns;
}

/* Where an egress packet came from, and how long it took (transit). */
struct hop {
	__u64 in_ts;   /* at the ingress hook; 0: not transit */
	__u64 latency; /* from in_ts to this hook */
	__u16 in_port; /* NSINT_PORT_LOCAL: from this namespace's stack */
	__u8 has_latency;
	__u8 bucket; /* log2 of latency */
};

/*
 * The hop of an egress packet: only packets that entered this namespace
 * from a device can be transit, and their ingress port is the one the
 * transit map names, if it saw the flow recently.
 */
static __always_inline void egress_hop(struct __sk_buff *skb,
				       const struct flow_key *key, __u32 netns,
				       struct hop *hop)
{
	struct transit_key tk;
	struct transit_entry *tr;
	__u64 now;

	hop->in_port = NSINT_PORT_LOCAL;
	if (!skb->ingress_ifindex)
		return;
	hop->in_port = 0; /* forwarded from a port we do not observe */
	tk = (struct transit_key){ .netns = netns, .t = key->t };
	tr = bpf_map_lookup_elem(&transit, &tk);
	if (!tr)
		return;
	now = bpf_ktime_get_ns();
	if (now < tr->ts || now - tr->ts >= cfg.transit_max_age_ns)
		return;
	hop->in_port = tr->port;
	hop->in_ts = tr->ts;
	hop->latency = now - tr->ts;
	hop->has_latency = 1;
	hop->bucket = log2_u64(hop->latency);
}

/* The ports and hop latency of an egress report. */
static __always_inline void egress_report(struct report *r,
					  const struct flow_key *key,
					  const struct hop *hop)
{
	r->in_port = hop->in_port == NSINT_PORT_LOCAL ?
			     local_port_of(key->port) :
			     hop->in_port;
	r->out_port = key->port;
	r->in_ts = hop->in_ts;
	r->out_ts = hop->has_latency ? hop->in_ts + hop->latency : 0;
	r->latency = hop->latency;
	r->flags = hop->has_latency ? NSINT_EVF_HOP_LATENCY : 0;
}

/* The first packet of an egress flow; see ingress_first. */
static __always_inline __u64 egress_first(struct __sk_buff *skb,
					  const struct flow_key *key,
					  const struct hop *hop, __u64 now,
					  __u64 segs, __u64 bytes,
					  __u8 pkt_flags, struct first_mark *m,
					  __u32 hash)
{
	struct flow_state init = {
		.last_report_ns = now,
		.in_port = hop->in_port,
		.out_port = key->port,
		.has_latency = hop->has_latency,
		.lat_bucket = hop->bucket,
	};
	struct report r = {
		.reason = NSINT_REASON_NEW,
		.packets = segs,
		.bytes = bytes,
	};

	flow_ended(&init, pkt_flags);
	flow_mark_first(m, hash, &init);
	watch_refresh(&init, &key->t, 1);
	if (!init.watched) {
		stat_inc(NSINT_STAT_UNWATCHED);
		return 0;
	}
	egress_report(&r, key, hop);
	if (!emit_flow(skb, key, &r, pkt_flags))
		flow_keep(key, &init, &r);
	return 0;
}

/* Egress; returns as ingress_flow does. Transit traffic is never cached. */
static __always_inline __u64 egress_flow(struct __sk_buff *skb,
					 struct flow_key *key, __u32 netns,
					 __u64 now, __u64 segs, __u64 bytes,
					 __u8 pkt_flags, __u8 bypass)
{
	struct flow_state *st;
	struct report r = {};
	struct hop hop = {};
	struct first_mark *m;
	__u32 hash;
	__u64 last;
	/* the interval to the next refresh of a cacheable flow, else 0 */
	__u64 next = skb->ingress_ifindex ? 0 : cfg.report_interval_ns;

	egress_hop(skb, key, netns, &hop);
	st = bpf_map_lookup_elem(&flows, key);
	if (!st || !(last = st->last_report_ns)) { /* see ingress_flow */
		m = flow_mark(key, &hash);
		if (!m || m->hash != hash || !(st = flow_store(key, m)))
			return egress_first(skb, key, &hop, now, segs, bytes,
					    pkt_flags, m, hash);
		last = st->last_report_ns;
	}
	flow_add(st, segs, bytes);
	if (flow_ended(st, pkt_flags)) {
		next = 0;
		r.reason = NSINT_REASON_END;
	} else if (st->in_port != hop.in_port)
		r.reason = NSINT_REASON_PORTS;
	else if (st->has_latency != hop.has_latency ||
		 st->lat_bucket != hop.bucket)
		r.reason = NSINT_REASON_LATENCY;
	else if (refresh_due(now, last))
		r.reason = NSINT_REASON_REFRESH;
	else
		return next ? last + next : 0;
	if (!flow_may_claim(bypass) || !flow_claim(st, last, now))
		return 0;

	/* Slow path. */
	watch_refresh(st, &key->t, 0);
	flow_take(st, &r);
	st->in_port = hop.in_port;
	st->has_latency = hop.has_latency;
	st->lat_bucket = hop.bucket;
	if (!st->watched) {
		stat_inc(NSINT_STAT_UNWATCHED);
		return next ? now + next : 0;
	}
	egress_report(&r, key, &hop);
	emit_flow(skb, key, &r, pkt_flags);
	return next ? now + next : 0;
}

/*
 * May a last-flow slot's counts go into st, its flow's entry as looked up
 * now? Not when it is gone (evicted), nor, on the per-CPU table, when it
 * was evicted and made again by another CPU since the slot was loaded: this
 * CPU's part of it is zero then (no last_report_ns; every entry this CPU
 * made or counted in has one), and counts put there would never be
 * reported: the sweep passes over a part with no last report, and the
 * flow's next packet here stores the part afresh over them. The caller
 * counts them lost instead (slot_flush_lost).
 */
static __always_inline int slot_entry_live(const struct flow_state *st)
{
	return st && st->last_report_ns;
}

/*
 * The fast path: is this packet of the flow this CPU last counted in this
 * direction, with nothing due? Then count it in the slot and stop there.
 * The flow-table lookup, its hash of the key and the entry's cache lines
 * are most of a packet's cost on real traffic (docs/performance.md); a run
 * of packets of one flow, the common case on a hook, skips them. The slot
 * holds only flows whose packets need nothing but counting (flow_cache_load)
 * and only until their refresh is due, when the next packet flushes it and
 * takes the slow path.
 */
static __always_inline int flow_cache_hit(struct flow_cache *c,
					  const struct flow_key *key,
					  __u64 segs, __u64 bytes)
{
	const __u32 *a = (const __u32 *)&c->key, *b = (const __u32 *)key;
	__u32 diff = 0;
	__u64 tick;
	int i;

	/* key was written in whole words just before (put_pair) */
	if (!c->valid)
		return 0;
#pragma unroll
	for (i = 0; i < sizeof(*key) / 4; i++)
		diff |= a[i] ^ b[i];
	if (diff)
		return 0;
	/*
	 * Is the refresh due? The coarse clock moves only when the tick does
	 * (the timekeeping update follows the jiffies one), so while jiffies
	 * stays where it was at the last check the answer stays no: one load
	 * instead of the clock's seqcount read per packet.
	 */
	tick = cfg.coarse_clock ? bpf_jiffies64() : 0;
	if (!cfg.coarse_clock || tick != c->checked_tick) {
		if (clock_decision() >= c->due)
			return 0;
		c->checked_tick = tick;
	}
	c->packets += segs;
	c->bytes += bytes;
	return 1;
}

/*
 * Hand the slot's counts to its port's counters and its flow's entry and
 * empty the slot: before the slow path runs, so that a refresh it reports
 * includes them. The slot is emptied first: user space reads the counters,
 * then the slots (datapath.PortCountersOf), and must never find a packet in
 * both. An entry gone meanwhile (evicted) loses them, as it would have lost
 * them itself, and so does one made again since (slot_entry_live).
 */
static __always_inline void flow_cache_flush(struct flow_cache *c)
{
	struct flow_state *st;
	__u64 packets = c->packets, bytes = c->bytes;

	if (!c->valid)
		return;
	c->valid = 0;
	c->packets = 0;
	c->bytes = 0;
	if (!packets)
		return;
	count_port(c->key.port, c->key.dir, packets, bytes);
	st = bpf_map_lookup_elem(&flows, &c->key);
	if (slot_entry_live(st))
		flow_add(st, packets, bytes);
	else
		stat_inc(NSINT_STAT_CACHE_FLUSH_LOST);
}

/* After the slow path: keep the flow in the slot until due (0: not). */
static __always_inline void
flow_cache_load(struct flow_cache *c, const struct flow_key *key, __u64 due)
{
	if (!due)
		return;
	__builtin_memcpy(&c->key, key, sizeof(*key));
	c->due = due;
	c->checked_tick = 0; /* the first hit checks the clock */
	c->valid = 1;
}

#endif /* __NSINT_FLOW_H */
