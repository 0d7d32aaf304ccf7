/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Types shared between the BPF programs and Go (bpf2go generates the Go
 * side from these definitions, so the two never drift). An enum Go uses is
 * named in bpf/gen.go (-type) and in struct nsint_enums (nsint.c), which
 * keeps it in the object's BTF.
 */
#ifndef __NSINT_TYPES_H
#define __NSINT_TYPES_H

#include <linux/types.h>

#define NSINT_MAX_SNAP	 1024 /* upper bound of the snap length: a power of two */
#define NSINT_MAX_RULES	 64   /* watchlist capacity */
#define NSINT_PORT_LOCAL 0xffff /* flow state: "local stack of this netns" */

enum nsint_direction {
	NSINT_DIR_INGRESS = 0,
	NSINT_DIR_EGRESS = 1,
};

enum nsint_event_type {
	NSINT_EVENT_FLOW = 1,
	NSINT_EVENT_DROP = 2,
};

/* Why a report went out. */
enum nsint_reason {
	NSINT_REASON_NEW = 1,
	NSINT_REASON_REFRESH = 2,
	NSINT_REASON_PORTS = 3,
	NSINT_REASON_LATENCY = 4,
	NSINT_REASON_DROP = 5,
	NSINT_REASON_IDLE = 6,	/* quiet for its interval: the last counts */
	NSINT_REASON_END = 7,	/* TCP FIN or RST */
	NSINT_REASON_FLUSH = 8, /* port released or agent stopping */
};

enum nsint_event_flags {
	NSINT_EVF_HOP_LATENCY = 1 << 0,	   /* hop_latency_ns is a measurement */
	NSINT_EVF_NONFIRST_FRAG = 1 << 1,  /* fragment without L4 header */
	NSINT_EVF_DROP_NO_REASON = 1 << 2, /* kernel gives no drop reason */
	NSINT_EVF_DATA_L3 = 1 << 3,	   /* data starts at the IP header */
	NSINT_EVF_TCP_END = 1 << 4,	   /* the packet carries FIN or RST */
	NSINT_EVF_TCP_SYN = 1 << 5,	   /* the packet carries SYN */
};

enum nsint_port_flags {
	NSINT_PORT_BRIDGE = 1 << 0,  /* mac is the bridge's */
	NSINT_PORT_HAS_MAC = 1 << 2, /* mac is the device's own */
	NSINT_PORT_LOCAL_STACK = 1 << 1,
};

/* Per-CPU counters in the stats map. */
enum nsint_stat {
	NSINT_STAT_REPORTS = 0,
	NSINT_STAT_RING_FULL, /* reports the ring had no room for */
	NSINT_STAT_UNPARSED,
	NSINT_STAT_NO_IDENTITY,
	NSINT_STAT_FLOW_UPDATE_ERRORS,
	NSINT_STAT_DROP_REPORTS,
	NSINT_STAT_DROPS_SUPPRESSED,
	NSINT_STAT_UNWATCHED,
	NSINT_STAT_CACHE_FLUSH_LOST,
	NSINT_STAT_NOT_DROPS, /* frees that are no drop (delivered, unwanted) */
	NSINT_STAT_SWEEP_REPORTS, /* reports the sweep sent */
	NSINT_STAT_SWEEP_BYPASSED, /* packets counted while a sweep held the CPU */
	NSINT_STAT_SWEEP_SCANNED, /* flow entries the in-kernel scan looked at */
	NSINT_STAT_FIRST_PACKETS, /* first packets reported without an entry */
	NSINT_STAT_MAX,
};

/* Load-time constants, set from Go before load (volatile const). */
struct config {
	__u64 report_interval_ns;
	__u64 drop_report_interval_ns;
	__u64 transit_max_age_ns;
	__u32 snap_len;
	__u32 drop_consumed_reason; /* SKB_CONSUMED here, or ~0 */
	__u8 drop_has_reason;	    /* kfree_skb carries enum skb_drop_reason */
	__u8 flows_shared;   /* flow map shared by all CPUs: atomic adds */
	__u8 coarse_clock;   /* bpf_ktime_get_coarse_ns exists (5.11+) */
	__u8 drop_has_rx_sk; /* kfree_skb passes the receiving socket (6.12+) */
	__u32 wakeup_reports; /* reports in the ring that wake its reader */
};

/* Written by each attachment's dispatcher into its CPU's cpu_state. */
struct identity {
	__u16 port;
	__u8 dir;
	__u8 pad;
	__u32 netns; /* nsfs inode of the attachment's namespace */
};

/* Addresses in network order; IPv4 in the first four bytes, rest zero. */
struct tuple {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport; /* host order; ICMP: type << 8 | code */
	__u16 dport; /* host order; ICMP echo: identifier */
	__u8 family; /* 4 or 6 */
	__u8 proto;
	__u8 pad[2];
};

struct flow_key {
	struct tuple t;
	__u16 port;
	__u8 dir;
	__u8 pad;
};

/* Per CPU and direction: the last flow counted there (flow_cache_hit). */
struct flow_cache {
	struct flow_key key;
	__u32 valid;
	__u64 packets; /* counted here, not yet in the flow's entry */
	__u64 bytes;
	__u64 due; /* clock_decision() time of the flow's next refresh */
	__u64 checked_tick; /* jiffies when due was last found ahead */
};

/*
 * What one CPU's TC programs touch on every packet, in one place: the
 * identity the dispatcher stamps and the last-flow slots the main program
 * reads right after. Each distinct line or page touched per packet is a
 * cache or TLB miss on a busy stack (docs/performance.md); aligned so that
 * two CPUs never share a line (nor a pair of them: adjacent-line prefetch).
 */
struct cpu_state {
	struct identity id;
	/*
	 * The sweep (nsint_sweep) and the TC programs of this CPU keep out of
	 * each other's way with these two flags; see nsint_sweep.h.
	 */
	__u8 busy;     /* a TC program of this CPU is between entry and exit */
	__u8 sweeping; /* the sweep is working on this CPU's state */
	__u8 pad[6];
	struct flow_cache flow[2]; /* by direction */
} __attribute__((aligned(128)));

struct flow_state {
	__u64 last_report_ns;
	__u64 packets; /* since the last report */
	__u64 bytes;
	__u32 watch_gen;
	__u16 in_port; /* last reported pair; NSINT_PORT_LOCAL resolved at report */
	__u16 out_port;
	__u8 lat_bucket;
	__u8 has_latency;
	__u8 forwarded; /* ingress: enum nsint_fwd */
	__u8 watched;
	__u8 ended; /* a FIN or RST passed: every packet is reported */
	__u8 pad[3];
};

/*
 * What a flow's first packet leaves behind instead of an entry in the flow
 * table (flow_first_packet in nsint_flow.h): what the entry would have
 * held, for the second packet to store.
 */
struct first_mark {
	__u64 ts;   /* the entry's last_report_ns */
	__u32 hash; /* of the flow key; tells whose mark this is */
	__u16 in_port;
	__u8 lat_bucket;
	__u8 bits; /* NSINT_MARK_LATENCY | NSINT_MARK_ENDED | forwarded << 2 */
};

#define NSINT_MARK_LATENCY   1
#define NSINT_MARK_ENDED     2
#define NSINT_MARK_FWD_SHIFT 2

struct transit_key {
	__u64 netns;
	struct tuple t;
};

struct transit_entry {
	__u64 ts;
	__u16 port;
	__u8 pad[6];
};

/* Drops are counted per flow, hook and kernel reason. */
struct drop_key {
	struct flow_key fk;
	__u32 reason;
};

struct drop_state {
	__u64 last_report_ns;
	__u64 drops; /* since the last drop report */
	__u16 in_port;
	__u16 out_port;
	__u8 flags; /* event flags of the last drop */
	__u8 pad[3];
};

struct port_key {
	__u64 netns;
	__u32 ifindex; /* 0: the namespace's local-stack port */
	__u32 pad;
};

struct port_config {
	__u64 netns;
	__u32 ifindex;
	__u16 local_port;
	__u8 flags;
	__u8 pad;
	__u8 mac[6]; /* unicast frames to other MACs skip the stack */
	__u8 pad2[2];
};

struct dir_counters {
	__u64 packets;
	__u64 bytes;
	__u64 drops;
	__u64 flowless; /* of packets: not IP, or truncated: in no flow */
};

struct port_counters {
	struct dir_counters dir[2];
};

/* Watchlist rule; Go stores addresses already masked. */
struct rule {
	__u32 src[4];
	__u32 src_mask[4];
	__u32 dst[4];
	__u32 dst_mask[4];
	__u16 sport_lo;
	__u16 sport_hi;
	__u16 dport_lo;
	__u16 dport_hi;
	__u8 proto;  /* 0: any */
	__u8 family; /* 0: any */
	__u8 pad[2];
};

struct watch_meta {
	__u32 count;
	__u32 generation;
};

/*
 * The sweep's work list (nsint_sweep): user space fills key, reason, kind
 * and force; the sweep fills the rest.
 */
enum nsint_sweep_kind {
	NSINT_SWEEP_FLOW = 1,
	NSINT_SWEEP_DROP = 2,
};

#define NSINT_SWEEP_BATCH 256 /* work items per nsint_sweep run */
/*
 * Items one nsint_sweep_scan run may fill: each run walks the whole table
 * again, so the larger, the fewer walks when many flows are due at once.
 */
#define NSINT_SCAN_BATCH  4096

struct sweep_item {
	struct flow_key key;
	__u32 reason; /* drop items: the kernel drop reason of the drop key */
	__u8 kind;    /* enum nsint_sweep_kind */
	__u8 force;   /* take the counts even when nothing is due */
	__u8 taken;   /* out: counts were taken; report them */
	__u8 flags;   /* out: event flags */
	__u16 in_port;
	__u16 out_port;
	__u64 packets;
	__u64 bytes;
};

enum nsint_sweep_flags {
	NSINT_SWEEP_SLOTS = 1 << 0,	/* empty this CPU's last-flow slots */
	NSINT_SWEEP_FORCE_ALL = 1 << 1, /* scan: take every flow's counts */
};

struct sweep_ctl {
	__u32 count;	  /* items to work on; scan: items it filled */
	__u32 flags;	  /* enum nsint_sweep_flags */
	__u32 scanned;	  /* scan: flow entries it looked at */
	__u16 force_port; /* scan: take the counts of this port's flows */
	__u8 pad[2];
};

/* One report; the captured frame bytes follow it in the ring's record. */
struct event {
	__u64 in_ts;  /* ktime ns at the ingress hook */
	__u64 out_ts; /* ktime ns at the egress hook (or of the drop) */
	__u64 hop_latency_ns;
	__u64 packets; /* since the previous report of this flow */
	__u64 bytes;
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 drop_reason; /* kernel enum skb_drop_reason; 0 unless a drop */
	__u32 orig_len;	   /* frame length */
	__u32 cap_len;	   /* bytes that follow */
	__u16 obs_port;
	__u16 in_port;
	__u16 out_port;
	__u16 sport;
	__u16 dport;
	__u8 type;
	__u8 dir;
	__u8 family;
	__u8 proto;
	__u8 reason;
	__u8 flags;
	__u8 pad[4];
};

#endif /* __NSINT_TYPES_H */
