/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Minimal kernel type definitions for CO-RE reads from the kfree_skb hook.
 *
 * Only the members nsint reads are declared. preserve_access_index makes the
 * loader relocate every access against the running kernel's BTF, so neither
 * the layout nor the nesting (anonymous unions in sk_buff) needs to match.
 */
#ifndef __NSINT_KERNEL_H
#define __NSINT_KERNEL_H

#include <linux/types.h>

#pragma clang attribute push(__attribute__((preserve_access_index)),           \
			     apply_to = record)

struct ns_common {
	unsigned int inum;
};

struct net {
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	int ifindex;
	possible_net_t nd_net;
};

struct sock_common {
	unsigned short skc_family;
	possible_net_t skc_net;
};

struct sock {
	struct sock_common __sk_common;
	__u16 sk_type;
};

struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	int skb_iif;
	unsigned int len;
	__be16 protocol;
	__u16 transport_header;
	__u16 network_header;
	__u16 mac_header;
	unsigned int tail; /* sk_buff_data_t: an offset from head on 64-bit */
	unsigned int end;  /* sk_buff_data_t: skb_shared_info at head + end */
	unsigned char *head;
	unsigned char *data;
	__u8 pkt_type : 3; /* PACKET_HOST, _BROADCAST, _MULTICAST, _OTHERHOST… */
};

#define NSINT_PACKET_BROADCAST 1
#define NSINT_PACKET_MULTICAST 2
#define NSINT_PACKET_OTHERHOST 3
#define NSINT_AF_PACKET	       17
#define NSINT_SOCK_RAW	       3

struct skb_shared_info {
	unsigned short gso_size;
	unsigned short gso_segs;
};

#pragma clang attribute pop

#endif /* __NSINT_KERNEL_H */
