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

/* Take a drop into the flow's rate limit; returns drops to report or 0. */
static __always_inline __u64 drop_rate_limit(const struct flow_key *key,
					     __u64 now)
{
	struct drop_state *ds = bpf_map_lookup_elem(&drop_flows, key);
	struct drop_state init = { .last_report_ns = now };
	__u64 drops;

	if (!ds) {
		bpf_map_update_elem(&drop_flows, key, &init, BPF_ANY);
		return 1;
	}
	__sync_fetch_and_add(&ds->drops, 1);
	if (now - ds->last_report_ns < cfg.drop_report_interval_ns) {
		stat_inc(NSINT_STAT_DROPS_SUPPRESSED);
		return 0;
	}
	ds->last_report_ns = now;
	drops = ds->drops;
	__sync_fetch_and_sub(&ds->drops, drops);
	return drops;
}

#endif /* __NSINT_DROP_H */
