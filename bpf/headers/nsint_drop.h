/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Helpers of the kfree_skb drop hook: everything is read from kernel memory
 * (bpf_probe_read_kernel / CO-RE), since the hook sees a struct sk_buff, not
 * a __sk_buff with packet pointers.
 */
#ifndef __NSINT_DROP_H
#define __NSINT_DROP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "nsint_kernel.h"
#include "nsint_parse.h"

#define NSINT_HDR_UNSET ((__u16)~0U)

static __always_inline void drop_l4(const unsigned char *l4, struct tuple *t)
{
	struct nsint_l4_head h;

	if (!l4_min_len(t->proto))
		return;
	if (bpf_probe_read_kernel(&h, sizeof(h), l4))
		return;
	l4_ports(&h, t);
}

/* Flow tuple of a dropped skb, from its network header. */
static __always_inline void drop_tuple(struct sk_buff *skb, unsigned char *head,
				       __u16 nh, struct tuple *t, __u8 *flags)
{
	__be16 proto = BPF_CORE_READ(skb, protocol);
	unsigned char *l3 = head + nh;
	int i;

	if (nh == NSINT_HDR_UNSET)
		return;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_probe_read_kernel(&ip, sizeof(ip), l3) ||
		    ip.version != 4)
			return;
		t->family = 4;
		t->proto = ip.protocol;
		t->saddr[0] = ip.saddr;
		t->daddr[0] = ip.daddr;
		if (bpf_ntohs(ip.frag_off) & 0x1fff) {
			*flags |= NSINT_EVF_NONFIRST_FRAG;
			return;
		}
		drop_l4(l3 + ip.ihl * 4, t);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		struct nsint_ext_hdr eh;
		unsigned char *pos = l3 + sizeof(ip6);
		__u8 next;

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), l3) ||
		    ip6.version != 6)
			return;
		t->family = 6;
		__builtin_memcpy(t->saddr, &ip6.saddr, 16);
		__builtin_memcpy(t->daddr, &ip6.daddr, 16);
		next = ip6.nexthdr;
		for (i = 0; i < NSINT_MAX_EXTHDR; i++) {
			if (next != NSINT_IPPROTO_HOPOPTS &&
			    next != NSINT_IPPROTO_ROUTING &&
			    next != NSINT_IPPROTO_DSTOPTS &&
			    next != NSINT_IPPROTO_AH &&
			    next != NSINT_IPPROTO_FRAGMENT)
				break;
			if (bpf_probe_read_kernel(&eh, sizeof(eh), pos))
				return;
			if (next == NSINT_IPPROTO_FRAGMENT) {
				t->proto = eh.nexthdr;
				if (bpf_ntohs(eh.frag_off) & 0xfff8) {
					*flags |= NSINT_EVF_NONFIRST_FRAG;
					return;
				}
				pos += 8;
			} else if (next == NSINT_IPPROTO_AH) {
				pos += ((__u32)eh.hdrlen + 2) * 4;
			} else {
				pos += ((__u32)eh.hdrlen + 1) * 8;
			}
			next = eh.nexthdr;
		}
		t->proto = next;
		drop_l4(pos, t);
	}
}

/* Port of the device (netns, ifindex), or 0 when it is not observed. */
static __always_inline __u16 port_lookup(__u64 netns, __u32 ifindex)
{
	struct port_key pk = { .netns = netns, .ifindex = ifindex };
	__u32 *id = bpf_map_lookup_elem(&port_ids, &pk);

	return id ? *id : 0;
}

/*
 * Take a drop into its flow's rate limit; returns the drops to report now
 * (this one and those folded since the last report) or 0. Folded drops that
 * no later drop reports are taken by the sweep (sweep_drop). Two CPUs can
 * find a report due at once: the one whose compare-and-swap moves the last
 * report time reports, and drops are taken by exchange, so each is
 * reported once. Without those instructions (the per-CPU-table kernels,
 * before 5.12) every drop is reported on its own.
 */
static __always_inline __u64 drop_rate_limit(const struct drop_key *key,
					     __u64 segs, __u16 in_port,
					     __u16 out_port, __u8 flags,
					     __u64 now)
{
	struct drop_state init = { .last_report_ns = now,
				   .in_port = in_port,
				   .out_port = out_port,
				   .flags = flags };
	struct drop_state *ds;
	__u64 last;

	if (!cfg.flows_shared)
		return segs;
	ds = bpf_map_lookup_elem(&drop_flows, key);
	if (!ds) {
		if (!bpf_map_update_elem(&drop_flows, key, &init, BPF_NOEXIST))
			return segs;
		ds = bpf_map_lookup_elem(&drop_flows, key);
		if (!ds)
			return segs;
	}
	__sync_fetch_and_add(&ds->drops, segs);
	ds->in_port = in_port;
	ds->out_port = out_port;
	ds->flags = flags;
	last = ds->last_report_ns;
	if (now < last || now - last < cfg.drop_report_interval_ns) {
		stat_inc(NSINT_STAT_DROPS_SUPPRESSED);
		return 0;
	}
	if (__sync_val_compare_and_swap(&ds->last_report_ns, last, now) != last)
		return 0;
	return __sync_lock_test_and_set(&ds->drops, 0);
}

/* The packets a freed skb stands for: its GSO segments, or 1. */
static __always_inline __u64 drop_segs(struct sk_buff *skb, unsigned char *head)
{
	struct skb_shared_info *sh =
		(struct skb_shared_info *)(head + BPF_CORE_READ(skb, end));
	__u16 segs;

	if (!BPF_CORE_READ(sh, gso_size))
		return 1;
	segs = BPF_CORE_READ(sh, gso_segs);
	return segs ? segs : 1;
}

/*
 * Give back drops whose report the ring had no room for, for the next report
 * or the sweep. Only the shared-table kernels keep drop counts.
 */
static __always_inline void drop_unreport(const struct drop_key *key,
					  __u64 drops)
{
	struct drop_state *ds;

	if (!cfg.flows_shared)
		return;
	ds = bpf_map_lookup_elem(&drop_flows, key);
	if (ds)
		__sync_fetch_and_add(&ds->drops, drops);
}

/*
 * Is a freed packet a drop? Not when no one on the host wanted it in the
 * first place, nor when it was delivered after all (docs/architecture.md,
 * "Drops"):
 * - a frame for another host (PACKET_OTHERHOST: promiscuous devices, macvlan
 *   and bridge parents);
 * - a multicast or broadcast frame freed because nothing subscribed to it
 *   (no socket, no protocol handler, or no reason given);
 * - an ICMP or ICMPv6 echo reply freed because no ICMP datagram socket took
 *   it: raw sockets (busybox ping, iputils ping without ping_group_range)
 *   were handed a copy before that check, which the kernel does not tell;
 * - a copy that a raw or packet socket (ping, tcpdump) threw away: the
 *   packet itself went on (6.12+ name the socket; see cfg.drop_has_rx_sk);
 * - what a socket's own queue held when it closed or purged it: delivered,
 *   or never sent, but not discarded by the network stack;
 * - a packet freed with no reason (NOT_SPECIFIED, or any free on kernels
 *   without reasons) that is not unicast TCP, UDP or SCTP: older kernels
 *   free handled ICMPv6 (echo, neighbour discovery) and control frames
 *   that way.
 */
static __always_inline int drop_is_real(struct sk_buff *skb, __u32 reason,
					const struct tuple *t,
					struct sock *rx_sk)
{
	__u8 pkt_type = BPF_CORE_READ_BITFIELD_PROBED(skb, pkt_type);
	__u8 class = NSINT_DROP_REAL, *cl, icmp_type;
	__u32 idx = reason;

	if (cfg.drop_has_reason) {
		cl = idx < 256 ? bpf_map_lookup_elem(&drop_class, &idx) : 0;
		if (cl)
			class = *cl;
	} else {
		class = NSINT_DROP_VAGUE;
	}
	if (pkt_type == NSINT_PACKET_OTHERHOST ||
	    class == NSINT_DROP_OTHERHOST || class == NSINT_DROP_SOCKET)
		return 0;
	if ((pkt_type == NSINT_PACKET_BROADCAST ||
	     pkt_type == NSINT_PACKET_MULTICAST) &&
	    class != NSINT_DROP_REAL)
		return 0;
	icmp_type = t->sport >> 8;
	if ((class == NSINT_DROP_NO_SOCKET || class == NSINT_DROP_VAGUE) &&
	    ((t->proto == IPPROTO_ICMP && icmp_type == 0) ||
	     (t->proto == IPPROTO_ICMPV6 && icmp_type == 129)))
		return 0;
	if (class == NSINT_DROP_VAGUE &&
	    (!t->family ||
	     (t->proto != IPPROTO_TCP && t->proto != IPPROTO_UDP &&
	      t->proto != IPPROTO_SCTP)))
		return 0;
	if (rx_sk) {
		__u16 family = BPF_CORE_READ(rx_sk, __sk_common.skc_family);

		if (family == NSINT_AF_PACKET ||
		    BPF_CORE_READ(rx_sk, sk_type) == NSINT_SOCK_RAW)
			return 0;
	}
	return 1;
}

#endif /* __NSINT_DROP_H */
