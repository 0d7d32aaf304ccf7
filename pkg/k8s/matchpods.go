package k8s

import (
	"errors"

	corev1 "k8s.io/api/core/v1"

	"github.com/nsint/nsint/pkg/netif"
)

// MatchPods runs the matcher the Enricher uses over the given pods instead of
// its informers' cache: it answers, for ifaces, the Kubernetes meaning of
// those it can attribute (index into ifaces → Meta). Interfaces whose
// namespace inode is skipInode (0: none) are never attributed. NetworkType is
// left empty: it needs the NetworkAttachmentDefinitions.
//
// A pod with a malformed network-status annotation still takes part with what
// it offers, as in the Enricher; the returned error joins every such problem
// (each wraps ErrMalformedNetworkStatus).
func MatchPods(pods []*corev1.Pod, ifaces []Iface, skipInode netif.Netns) (map[int]Meta, error) {
	byKey := make(map[string]*podNetworks, len(pods))
	var problems []error
	for _, pod := range pods {
		p, err := podNetworksOf(pod)
		if err != nil {
			problems = append(problems, err)
		}
		if p != nil {
			byKey[p.ref.String()+"/"+p.ref.UID] = p
		}
	}
	return newMatcher(sortedPods(byKey), nil).match(ifaces, skipInode), errors.Join(problems...)
}
