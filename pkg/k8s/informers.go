package k8s

import (
	"context"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// listThenWatch makes a reflector list, then watch, instead of streaming the
// initial state through a watch: while the server is unreachable, a streaming
// reflector retries inside its watch without reporting the failure and
// without watching for its context's end, so Stats would not show the outage
// and Run would return only after the current back-off (up to a minute).
type listThenWatch struct{ *cache.ListWatch }

// IsWatchListSemanticsUnSupported tells client-go's reflector not to stream.
func (listThenWatch) IsWatchListSemanticsUnSupported() bool { return true }

// podInformer watches the pods of this node only.
func (e *Enricher) podInformer() cache.SharedIndexInformer {
	selector := fields.OneTermEqualSelector("spec.nodeName", e.nodeName).String()
	pods := e.kube.CoreV1().Pods(metav1.NamespaceAll)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = selector
			return pods.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			return pods.Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformer(listThenWatch{lw}, &corev1.Pod{}, 0, cache.Indexers{})
	// Keep only what matching needs: pods carry large specs and managed fields.
	_ = inf.SetTransform(func(obj any) (any, error) {
		if pod, ok := obj.(*corev1.Pod); ok {
			return slimPod(pod), nil
		}
		return obj, nil
	})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { e.podChanged(obj) },
		UpdateFunc: func(_, obj any) { e.podChanged(obj) },
		DeleteFunc: e.podDeleted,
	})
	return inf
}

// slimPod returns the fields of pod that matching reads.
func slimPod(pod *corev1.Pod) *corev1.Pod {
	slim := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID,
			ResourceVersion: pod.ResourceVersion,
		},
		Spec: corev1.PodSpec{NodeName: pod.Spec.NodeName, HostNetwork: pod.Spec.HostNetwork},
		Status: corev1.PodStatus{
			Phase: pod.Status.Phase, PodIP: pod.Status.PodIP, PodIPs: pod.Status.PodIPs,
		},
	}
	if v, ok := pod.Annotations[nadv1.NetworkStatusAnnot]; ok {
		slim.Annotations = map[string]string{nadv1.NetworkStatusAnnot: v}
	}
	return slim
}

func (e *Enricher) podChanged(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	uid := string(pod.UID)
	p, err := podNetworksOf(pod)
	e.mu.Lock()
	e.pods[uid] = p
	report := err != nil && !e.malformed[uid]
	if err != nil {
		e.malformed[uid] = true
	} else {
		delete(e.malformed, uid)
	}
	e.mu.Unlock()
	if report {
		e.malformedCount.Add(1)
		if e.onMalformed != nil {
			e.onMalformed(p.ref, err)
		}
	}
	e.notify()
}

func (e *Enricher) podDeleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	e.mu.Lock()
	delete(e.pods, string(pod.UID))
	delete(e.malformed, string(pod.UID))
	e.mu.Unlock()
	e.notify()
}

// nadInformer watches NetworkAttachmentDefinitions in every namespace, for
// their CNI type.
func (e *Enricher) nadInformer() cache.SharedIndexInformer {
	nads := e.nads.K8sCniCncfIoV1().NetworkAttachmentDefinitions(metav1.NamespaceAll)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return nads.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return nads.Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformer(listThenWatch{lw}, &nadv1.NetworkAttachmentDefinition{}, 0, cache.Indexers{})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { e.nadChanged(obj, false) },
		UpdateFunc: func(_, obj any) { e.nadChanged(obj, false) },
		DeleteFunc: func(obj any) { e.nadChanged(obj, true) },
	})
	return inf
}

func (e *Enricher) nadChanged(obj any, deleted bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	nad, ok := obj.(*nadv1.NetworkAttachmentDefinition)
	if !ok {
		return
	}
	key := nad.Namespace + "/" + nad.Name
	e.mu.Lock()
	if deleted {
		delete(e.nadTypes, key)
	} else {
		e.nadTypes[key] = cniType(nad)
	}
	e.mu.Unlock()
	e.notify()
}
