// Package netns is nsint's one way into a network namespace: it opens
// namespace files, checks that they really are network namespaces, names them
// by their nsfs inode, and runs code inside them on a locked OS thread.
//
// Why one package: opening a file under /var/run/netns is not enough. `ip netns
// add`, CRI-O and containerd create the file first and bind-mount the
// namespace onto it a moment later, so a file can exist and still be an empty
// regular file; Open checks the open descriptor (not the path, so a mount
// racing with the open cannot fool it) and says so with ErrNotNsfs. And
// setns(2) switches only the calling thread: done carelessly, a goroutine
// scheduled onto that thread later runs in a pod's namespace. Do and DoNew
// switch only a thread locked to a goroutine of their own, and hand it back to
// the Go scheduler only once it is home again.
//
// Identity: a namespace is its nsfs inode (NS.Inode), the number stat(2) on
// its file and the kernel's net->ns.inum both give. The kernel reuses the
// number once the namespace is destroyed, so it is unique among live
// namespaces only.
//
// Prefer handles opened in the namespace over working in it: a socket (a
// netlink handle) created inside Do keeps talking to that namespace after the
// thread has switched back, so Do should run only the call that creates it.
//
// It must not log or keep state of its own; an NS holds one file descriptor,
// which keeps the namespace alive until Close.
package netns
