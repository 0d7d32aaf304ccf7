/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Frame parsing for the TC programs: Ethernet, up to two VLAN tags, IPv4
 * (options), IPv6 (bounded extension-header walk), and the L4 fields used as
 * the flow key. Every access is bounds-checked against data_end; anything
 * truncated or unknown below IP returns -1 and is not reported.
 */
#ifndef __NSINT_PARSE_H
#define __NSINT_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "nsint_types.h"

#define NSINT_MAX_VLAN	 2
#define NSINT_MAX_EXTHDR 6

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif
#define NSINT_IPPROTO_HOPOPTS  0
#define NSINT_IPPROTO_ROUTING  43
#define NSINT_IPPROTO_FRAGMENT 44
#define NSINT_IPPROTO_AH       51
#define NSINT_IPPROTO_DSTOPTS  60

struct nsint_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct nsint_ext_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
	__be16 frag_off; /* fragment header only */
	__u32 rest;
};

/* First 8 bytes of TCP/UDP/SCTP (ports) or ICMP/ICMPv6 (type, code, id). */
struct nsint_l4_head {
	union {
		struct {
			__be16 sport;
			__be16 dport;
		};
		struct {
			__u8 type;
			__u8 code;
			__be16 csum;
			__be16 echo_id;
		};
	};
};

static __always_inline int l4_min_len(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return 20;
	case IPPROTO_UDP:
		return 8;
	case IPPROTO_SCTP:
		return 12;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return 8;
	}
	return 0;
}

static __always_inline int icmp_is_echo(__u8 proto, __u8 type)
{
	if (proto == IPPROTO_ICMP)
		return type == 0 || type == 8;
	return type == 128 || type == 129;
}

/*
 * Store lo and hi, two adjacent 16-bit fields (or a byte pair and the zero
 * pad after it) at p, as one 32-bit store. The last-flow slot compares the
 * key in 32-bit words right after the parse wrote it on the stack
 * (flow_cache_hit): a load that spans several narrower stores still in
 * flight cannot take its value from them and waits until they retire, a
 * stall of its own on every packet; a load that matches one store gets its
 * value forwarded.
 */
static __always_inline void put_pair(void *p, __u16 lo, __u16 hi)
{
	__u32 w = lo | (__u32)hi << 16;

	__builtin_memcpy(p, &w, sizeof(w));
}

/* Fill ports from the L4 header (h already bounds-checked by the caller). */
static __always_inline void l4_ports(const struct nsint_l4_head *h,
				     struct tuple *t)
{
	switch (t->proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		put_pair(&t->sport, bpf_ntohs(h->sport), bpf_ntohs(h->dport));
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		put_pair(&t->sport, (__u16)h->type << 8 | h->code,
			 icmp_is_echo(t->proto, h->type) ?
				 bpf_ntohs(h->echo_id) :
				 0);
		break;
	}
}

/* family and proto, and the zero pad after them (put_pair). */
static __always_inline void put_family_proto(struct tuple *t, __u8 family,
					     __u8 proto)
{
	put_pair(&t->family, family | (__u16)proto << 8, 0);
}

#define NSINT_TCP_FIN 0x01
#define NSINT_TCP_SYN 0x02
#define NSINT_TCP_RST 0x04

/*
 * What the parse says about a packet besides its flow key. hdr_len is the
 * length of its headers up to the L4 payload: a GSO packet of n segments
 * puts n - 1 more copies of them on the wire (gso_wire_bytes).
 */
struct pkt_meta {
	__u8 flags; /* NSINT_EVF_* of the packet */
	__u16 hdr_len;
};

static __always_inline int parse_l4(void *base, void *l4, void *end,
				    struct tuple *t, struct pkt_meta *m)
{
	int need = l4_min_len(t->proto);
	__u8 tcp;

	m->hdr_len = l4 - base;
	if (!need)
		return 0;
	/* need is one of a few constants; the verifier sees each branch */
	if (need == 20) {
		if (l4 + 20 > end)
			return -1;
		tcp = ((__u8 *)l4)[13]; /* CWR ECE URG ACK PSH RST SYN FIN */
		if (tcp & (NSINT_TCP_FIN | NSINT_TCP_RST))
			m->flags |= NSINT_EVF_TCP_END;
		if (tcp & NSINT_TCP_SYN)
			m->flags |= NSINT_EVF_TCP_SYN;
		m->hdr_len += (((__u8 *)l4)[12] >> 4) * 4; /* data offset */
	} else if (need == 12) {
		if (l4 + 12 > end)
			return -1;
	} else if (l4 + 8 > end) {
		return -1;
	} else if (t->proto == IPPROTO_UDP) {
		m->hdr_len += 8;
	}
	l4_ports(l4, t);
	return 0;
}

static __always_inline int parse_ipv4(void *base, void *pos, void *end,
				      struct tuple *t, struct pkt_meta *m)
{
	struct iphdr *ip = pos;
	__u32 hlen;

	if ((void *)(ip + 1) > end)
		return -1;
	if (ip->version != 4)
		return -1;
	hlen = ip->ihl * 4;
	if (hlen < sizeof(*ip))
		return -1;
	pos += hlen;
	if (pos > end)
		return -1;

	put_family_proto(t, 4, ip->protocol);
	t->saddr[0] = ip->saddr;
	t->daddr[0] = ip->daddr;
	if (bpf_ntohs(ip->frag_off) & 0x1fff) {
		m->flags |= NSINT_EVF_NONFIRST_FRAG;
		return 0;
	}
	return parse_l4(base, pos, end, t, m);
}

static __always_inline int parse_ipv6(void *base, void *pos, void *end,
				      struct tuple *t, struct pkt_meta *m)
{
	struct ipv6hdr *ip6 = pos;
	struct nsint_ext_hdr *eh;
	__u8 next;
	int i;

	if ((void *)(ip6 + 1) > end)
		return -1;
	if (ip6->version != 6)
		return -1;
	__builtin_memcpy(t->saddr, &ip6->saddr, 16);
	__builtin_memcpy(t->daddr, &ip6->daddr, 16);
	next = ip6->nexthdr;
	pos = ip6 + 1;

#pragma unroll
	for (i = 0; i < NSINT_MAX_EXTHDR; i++) {
		if (next != NSINT_IPPROTO_HOPOPTS &&
		    next != NSINT_IPPROTO_ROUTING &&
		    next != NSINT_IPPROTO_DSTOPTS && next != NSINT_IPPROTO_AH &&
		    next != NSINT_IPPROTO_FRAGMENT)
			break;
		eh = pos;
		if ((void *)(eh + 1) > end)
			return -1;
		if (next == NSINT_IPPROTO_FRAGMENT) {
			next = eh->nexthdr;
			pos += 8;
			if (bpf_ntohs(eh->frag_off) & 0xfff8) {
				put_family_proto(t, 6, next);
				m->flags |= NSINT_EVF_NONFIRST_FRAG;
				return 0;
			}
		} else if (next == NSINT_IPPROTO_AH) {
			next = eh->nexthdr;
			pos += ((__u32)eh->hdrlen + 2) * 4;
		} else {
			next = eh->nexthdr;
			pos += ((__u32)eh->hdrlen + 1) * 8;
		}
	}
	if (next == NSINT_IPPROTO_HOPOPTS || next == NSINT_IPPROTO_ROUTING ||
	    next == NSINT_IPPROTO_DSTOPTS || next == NSINT_IPPROTO_AH ||
	    next == NSINT_IPPROTO_FRAGMENT)
		return -1; /* more extension headers than we walk */
	if (pos > end)
		return -1;
	put_family_proto(t, 6, next);
	return parse_l4(base, pos, end, t, m);
}

/* Parse the frame at skb->data into t. Returns 0 when t is a flow key. */
static __always_inline int parse_frame(struct __sk_buff *skb, struct tuple *t,
				       struct pkt_meta *m)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct nsint_vlan_hdr *vh;
	void *pos;
	__be16 proto;
	int i;

	if ((void *)(eth + 1) > end)
		return -1;
	proto = eth->h_proto;
	pos = eth + 1;

#pragma unroll
	for (i = 0; i < NSINT_MAX_VLAN; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) &&
		    proto != bpf_htons(ETH_P_8021AD))
			break;
		vh = pos;
		if ((void *)(vh + 1) > end)
			return -1;
		proto = vh->proto;
		pos = vh + 1;
	}

	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(data, pos, end, t, m);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(data, pos, end, t, m);
	return -1;
}

#endif /* __NSINT_PARSE_H */
