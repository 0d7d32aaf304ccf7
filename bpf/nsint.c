//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * nsint datapath: the TC programs (entered by tail call from a per-attachment
 * dispatcher that stamps the identity) and the kfree_skb drop hook.
 *
 * Packet fate: every TC path ends at the single exit returning TC_ACT_UNSPEC
 * (== TCX_NEXT). Nothing here writes to the packet, its metadata or skb->cb.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "nsint_types.h"
#include "nsint_maps.h"
#include "nsint_parse.h"
#include "nsint_flow.h"
#include "nsint_drop.h"
#include "nsint_sweep.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * The enums Go takes from the generated bindings (bpf/gen.go, -type), and
 * struct event, which only the ring's records are (no map names it). clang
 * writes a type into the object's BTF only when a declaration uses it, and
 * these are used as constants only: this variable uses them, in a section no
 * loader reads, so it adds no map, no instruction and nothing to the kernel.
 */
struct nsint_enums {
	enum nsint_direction dir;
	enum nsint_event_type type;
	enum nsint_reason reason;
	enum nsint_event_flags event_flags;
	enum nsint_port_flags port_flags;
	enum nsint_stat stat;
	enum nsint_drop_class drop_class;
	enum nsint_sweep_kind sweep_kind;
	enum nsint_sweep_flags sweep_flags;
	enum nsint_sweep_result sweep_result;
	struct event event; /* the ring's records: no map declares it */
} nsint_enums SEC(".nsint_enums");

/*
 * The bytes a packet of segs GSO segments puts on the wire: every segment
 * carries the headers again (as the kernel's qdisc_pkt_len_init counts).
 * Both ends of a veth then agree whether it segments or not.
 */
static __always_inline __u64 wire_bytes(struct __sk_buff *skb, __u64 segs,
					__u16 hdr_len)
{
	return skb->len + (segs - 1) * hdr_len;
}

static __always_inline void tc_observe(struct __sk_buff *skb,
				       struct cpu_state *cs, const __u8 dir,
				       const __u8 bypass)
{
	struct flow_key key = {};
	struct pkt_meta meta = {};
	struct flow_cache *cache;
	__u64 segs, bytes, now, due;
	__u16 port;

	port = cs->id.port;
	segs = skb->gso_segs;
	if (!segs)
		segs = 1;
	if (parse_frame(skb, &key.t, &meta)) {
		struct port_counters *c;
		__u32 p = port;

		count_port(port, dir, segs, skb->len);
		c = bpf_map_lookup_elem(&port_counters, &p);
		if (c)
			c->dir[dir & 1].flowless += segs;
		stat_inc(NSINT_STAT_UNPARSED);
		return;
	}
	bytes = segs > 1 ? wire_bytes(skb, segs, meta.hdr_len) : skb->len;
	put_pair(&key.port, port, dir); /* and the pad */
	cache = &cs->flow[dir & 1];
	/*
	 * A hit counts the packet for its port too (flow_cache_flush): the
	 * port's counters live on another page, one more miss per packet.
	 * Egress from a device (transit) is never cached: see egress_flow; nor
	 * is the end of a TCP connection, which is reported at once.
	 */
	if (!bypass && !(meta.flags & NSINT_EVF_TCP_END) &&
	    (dir == NSINT_DIR_INGRESS || !skb->ingress_ifindex) &&
	    flow_cache_hit(cache, &key, segs, bytes))
		return;
	now = clock_decision();
	count_port(port, dir, segs, bytes);
	if (bypass) {
		stat_inc(NSINT_STAT_SWEEP_BYPASSED);
	} else {
		flow_cache_flush(cache);
	}
	if (dir == NSINT_DIR_INGRESS)
		due = ingress_flow(skb, &key, cs->id.netns, now, segs, bytes,
				   meta.flags, bypass);
	else
		due = egress_flow(skb, &key, cs->id.netns, now, segs, bytes,
				  meta.flags, bypass);
	if (!bypass)
		flow_cache_load(cache, &key, due);
}

/*
 * Entry of both main programs. busy tells the sweep, which may interrupt
 * this CPU between any two instructions (nsint_sweep.h), that this CPU's
 * slots and per-CPU entries are being changed; it is set before the first
 * access and cleared after the last. bypass is set when this program
 * interrupted the sweep itself on this CPU: the slots are the sweep's then.
 */
static __always_inline void tc_enter(struct __sk_buff *skb, const __u8 dir)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct cpu_state *cs;

	cs = bpf_map_lookup_elem(&cpu_state, &cpu);
	if (!cs || !cs->id.port) {
		stat_inc(NSINT_STAT_NO_IDENTITY);
		return;
	}
	WRITE_ONCE(cs->busy, 1);
	nsint_barrier();
	tc_observe(skb, cs, dir, READ_ONCE(cs->sweeping));
	nsint_barrier();
	WRITE_ONCE(cs->busy, 0);
}

SEC("tc")
int nsint_tc_ingress(struct __sk_buff *skb)
{
	tc_enter(skb, NSINT_DIR_INGRESS);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int nsint_tc_egress(struct __sk_buff *skb)
{
	tc_enter(skb, NSINT_DIR_EGRESS);
	return TC_ACT_UNSPEC;
}

/* Baseline for the benchmark: the same entry, no work. */
SEC("tc")
int nsint_tc_noop(struct __sk_buff *skb)
{
	return TC_ACT_UNSPEC;
}

/*
 * skb:kfree_skb. args: skb, location[, reason (5.17+)[, rx_sk (6.12+)]].
 * The reason and the socket are read only when cfg says the tracepoint has
 * them: the verifier sees the constant and never visits the access on
 * kernels whose tracepoint has no such argument, so one program loads
 * everywhere.
 */
SEC("raw_tracepoint/kfree_skb")
int nsint_kfree_skb(struct bpf_raw_tracepoint_args *ctx)
{
	struct sk_buff *skb = (struct sk_buff *)ctx->args[0];
	struct drop_key key = {};
	struct event *ev;
	struct net_device *dev;
	struct sock *rx_sk = 0;
	unsigned char *head;
	__u16 port = 0, in_port = 0, out_port = 0, nh, mh, start;
	__u32 reason = 0, ifindex = 0, iif, tail, data_off;
	__u64 netns = 0, now, drops, segs, cap, frame_len;
	__u8 flags = 0, dir;

	if (cfg.drop_has_reason) {
		reason = (__u32)ctx->args[2];
		if (reason == cfg.drop_consumed_reason)
			return 0;
		if (cfg.drop_has_rx_sk)
			rx_sk = (struct sock *)ctx->args[3];
	} else {
		flags |= NSINT_EVF_DROP_NO_REASON;
	}

	dev = BPF_CORE_READ(skb, dev);
	if (dev) {
		netns = BPF_CORE_READ(dev, nd_net.net, ns.inum);
		ifindex = BPF_CORE_READ(dev, ifindex);
		port = port_lookup(netns, ifindex);
	}
	iif = BPF_CORE_READ(skb, skb_iif);
	if (port) {
		if (iif == ifindex) {
			dir = NSINT_DIR_INGRESS;
			in_port = port;
		} else {
			/* being transmitted: forwarded from iif, or local */
			dir = NSINT_DIR_EGRESS;
			out_port = port;
			in_port = iif ? port_lookup(netns, iif) :
					local_port_of(port);
		}
	} else {
		/* Not an observed device: the namespace's local-stack port. */
		struct sock *sk = BPF_CORE_READ(skb, sk);

		if (sk)
			netns = BPF_CORE_READ(sk, __sk_common.skc_net.net,
					      ns.inum);
		if (!netns)
			return 0;
		port = port_lookup(netns, 0);
		if (!port)
			return 0;
		dir = iif ? NSINT_DIR_INGRESS : NSINT_DIR_EGRESS;
		in_port = port;
	}

	head = BPF_CORE_READ(skb, head);
	nh = BPF_CORE_READ(skb, network_header);
	mh = BPF_CORE_READ(skb, mac_header);
	drop_tuple(skb, head, nh, &key.fk.t, &flags);
	if (!drop_is_real(skb, reason, &key.fk.t, rx_sk)) {
		stat_inc(NSINT_STAT_NOT_DROPS);
		return 0;
	}
	segs = drop_segs(skb, head);
	{
		__u32 p = port;
		struct port_counters *c =
			bpf_map_lookup_elem(&port_counters, &p);

		/* atomic: a drop hook this one interrupted may add too */
		if (c)
			__sync_fetch_and_add(&c->dir[dir & 1].drops, segs);
	}
	key.fk.port = port;
	key.fk.dir = dir;
	key.reason = reason;
	now = bpf_ktime_get_ns();
	drops = drop_rate_limit(&key, segs, in_port, out_port, flags, now);
	if (!drops)
		return 0;

	ev = report_reserve();
	if (!ev) {
		stat_inc(NSINT_STAT_RING_FULL);
		drop_unreport(&key, drops);
		return 0;
	}

	/* Capture from the MAC header when there is one, else from L3. */
	start = mh != NSINT_HDR_UNSET && mh <= nh ? mh : nh;
	if (start == nh)
		flags |= NSINT_EVF_DATA_L3;
	tail = BPF_CORE_READ(skb, tail);
	data_off = BPF_CORE_READ(skb, data) - head;
	frame_len = BPF_CORE_READ(skb, len) + data_off - start;
	cap = 0;
	if (start != NSINT_HDR_UNSET && tail > start) {
		cap = tail - start;
		if (cap > frame_len)
			cap = frame_len;
		/* bounded by the reservation's size, for the verifier */
		if (cap > cfg.snap_len)
			cap = cfg.snap_len;
		if (cap && bpf_probe_read_kernel(ev + 1, cap, head + start))
			cap = 0;
	}

	*ev = (struct event){
		.type = NSINT_EVENT_DROP,
		.reason = NSINT_REASON_DROP,
		.dir = dir,
		.flags = flags,
		.obs_port = port,
		.in_port = in_port,
		.out_port = out_port,
		.in_ts = now,
		.out_ts = now,
		.packets = drops,
		.drop_reason = reason,
		.family = key.fk.t.family,
		.proto = key.fk.t.proto,
		.sport = key.fk.t.sport,
		.dport = key.fk.t.dport,
		.orig_len = frame_len,
		.cap_len = cap,
	};
	__builtin_memcpy(ev->saddr, key.fk.t.saddr, 16);
	__builtin_memcpy(ev->daddr, key.fk.t.daddr, 16);
	report_submit(ev);
	stat_inc(NSINT_STAT_DROP_REPORTS);
	return 0;
}

/*
 * The sweep (nsint_sweep.h), run by user space on each CPU through
 * BPF_PROG_TEST_RUN; never attached.
 */
SEC("raw_tracepoint/nsint_sweep")
int nsint_sweep(void *ctx)
{
	return sweep();
}

/*
 * The in-kernel scan of the shared flow table (nsint_sweep.h), run by user
 * space through BPF_PROG_TEST_RUN. Its instructions are replaced by a bare
 * return on kernels without bpf_for_each_map_elem (before 5.13) or the
 * shared table, where user space reads the table instead (datapath.newSpec).
 */
SEC("raw_tracepoint/nsint_sweep_scan")
int nsint_sweep_scan(void *ctx)
{
	return sweep_scan();
}
