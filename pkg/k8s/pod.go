package k8s

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	nadutils "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/utils"
	corev1 "k8s.io/api/core/v1"
)

// ErrMalformedNetworkStatus is wrapped by the error Config.OnMalformed receives
// when a pod's network-status annotation cannot be used.
var ErrMalformedNetworkStatus = errors.New("malformed " + nadv1.NetworkStatusAnnot + " annotation")

// podNetworksOf returns what the matcher needs of pod, or nil for a pod that
// owns no network namespace of its own (hostNetwork) or has none any more
// (finished). A malformed network-status annotation yields an error wrapping
// ErrMalformedNetworkStatus together with the best the pod still offers: its
// primary interface from status.podIPs, and any entries that were usable.
func podNetworksOf(pod *corev1.Pod) (*podNetworks, error) {
	if pod.Spec.HostNetwork || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil, nil
	}
	p := &podNetworks{ref: PodRef{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID)}}
	fromPodIPs := func() {
		a := attachment{iface: "eth0", primary: true}
		for _, ip := range pod.Status.PodIPs {
			if addr, err := parseIP(ip.IP); err == nil {
				a.ips = append(a.ips, addr)
			}
		}
		if len(a.ips) > 0 {
			p.attachments = append(p.attachments, a)
		}
	}
	if _, ok := pod.Annotations[nadv1.NetworkStatusAnnot]; !ok {
		fromPodIPs()
		return p, nil
	}
	statuses, err := nadutils.GetNetworkStatus(pod)
	if err != nil {
		fromPodIPs()
		return p, fmt.Errorf("pod %s: %w: %w", p.ref, ErrMalformedNetworkStatus, err)
	}
	var problems []error
	for i, s := range statuses {
		a, err := attachmentOf(s)
		if err != nil {
			problems = append(problems, fmt.Errorf("entry %d (%q): %w", i, s.Name, err))
		}
		p.attachments = append(p.attachments, a)
	}
	if len(problems) > 0 {
		return p, fmt.Errorf("pod %s: %w: %w", p.ref, ErrMalformedNetworkStatus, errors.Join(problems...))
	}
	return p, nil
}

// attachmentOf converts one network-status entry, keeping what parses.
func attachmentOf(s nadv1.NetworkStatus) (attachment, error) {
	a := attachment{network: s.Name, iface: s.Interface, primary: s.Default}
	var problems []error
	if s.Mac != "" {
		if mac, err := net.ParseMAC(s.Mac); err == nil {
			a.mac = canonicalMAC(mac)
		} else {
			problems = append(problems, fmt.Errorf("mac: %w", err))
		}
	}
	for _, ip := range s.IPs {
		if addr, err := parseIP(ip); err == nil {
			a.ips = append(a.ips, addr)
		} else {
			problems = append(problems, err)
		}
	}
	if d := s.DeviceInfo; d != nil {
		switch {
		case d.Pci != nil:
			a.pci = strings.ToLower(d.Pci.PciAddress)
		case d.Vdpa != nil:
			a.pci = strings.ToLower(d.Vdpa.PciAddress)
		}
	}
	return a, errors.Join(problems...)
}

// parseIP accepts an address with or without a prefix length.
func parseIP(s string) (netip.Addr, error) {
	if addr, err := netip.ParseAddr(s); err == nil {
		return addr.Unmap(), nil
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("ip %q: not an address", s)
	}
	return pfx.Addr().Unmap(), nil
}

// cniType returns the CNI type a NetworkAttachmentDefinition's config names:
// its "type", or for a plugin list the first plugin's. "" when there is none.
func cniType(nad *nadv1.NetworkAttachmentDefinition) string {
	var conf struct {
		Type    string `json:"type"`
		Plugins []struct {
			Type string `json:"type"`
		} `json:"plugins"`
	}
	if json.Unmarshal([]byte(nad.Spec.Config), &conf) != nil {
		return ""
	}
	if conf.Type != "" {
		return conf.Type
	}
	if len(conf.Plugins) > 0 {
		return conf.Plugins[0].Type
	}
	return ""
}
