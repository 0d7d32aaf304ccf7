package ifacewatch

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/pkg/netif"
)

// IFLA_LINK_NETNSID names the namespace of a veth peer or of a macvlan's
// parent by an nsid, a number local to the namespace that reports it. Turning
// it into an inode takes a question to the kernel per candidate namespace
// (RTM_GETNSID with its fd: "which nsid did you give this one?"), asked on the
// namespace's own socket. Answers never change while both namespaces live, so
// they are cached; candidates are asked newest first, since a new nsid
// usually belongs to a namespace that just appeared.

type nsidCache struct {
	byNsid map[int]nsidTarget // nsid → namespace
	asked  map[nsidTarget]int // namespace → its nsid here (-1: none yet)
	miss   map[int]uint64     // nsid → registry generation when last not found
}

// nsidTarget is a namespace incarnation: its registry entry (nil for the
// host) and inode.
type nsidTarget struct {
	entry *nsEntry
	id    netif.Netns
}

func newNsidCache() nsidCache {
	return nsidCache{byNsid: make(map[int]nsidTarget), asked: make(map[nsidTarget]int), miss: make(map[int]uint64)}
}

// resolveNsid returns the namespace that nsid names in this worker's
// namespace, 0 when it is neither watched nor the host.
func (k *nsWorker) resolveNsid(sock *rtnlSocket, nsid int) (netif.Netns, error) {
	c := &k.nsids
	if t, ok := c.byNsid[nsid]; ok {
		if k.w.reg.alive(t.id, t.entry) {
			return t.id, nil
		}
		delete(c.byNsid, nsid)
	}
	for t := range c.asked {
		if !k.w.reg.alive(t.id, t.entry) {
			delete(c.asked, t)
		}
	}
	gen := k.w.reg.generation()
	if g, ok := c.miss[nsid]; ok && g == gen {
		return 0, nil
	}
	var found netif.Netns
	err := k.w.reg.candidates(func(id netif.Netns, e *nsEntry, fd int) (bool, error) {
		t := nsidTarget{entry: e, id: id}
		if id == k.ns.ID {
			return false, nil
		}
		if known, ok := c.asked[t]; ok && known >= 0 {
			return false, nil // has another nsid here
		}
		got, err := k.queryNsid(sock, fd)
		if err != nil {
			return true, err
		}
		k.w.stats.nsidLookups.Add(1)
		c.asked[t] = got
		if got >= 0 {
			c.byNsid[got] = t
		}
		if got == nsid {
			found = id
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return 0, err
	}
	if found == 0 {
		c.miss[nsid] = gen
	} else {
		delete(c.miss, nsid)
	}
	return found, nil
}

// queryNsid asks the kernel for the nsid of the namespace fd as seen from the
// socket's namespace (-1: none assigned). Other messages read meanwhile go to
// the backlog, in order.
func (k *nsWorker) queryNsid(sock *rtnlSocket, fd int) (int, error) {
	seq := sock.nextSeq()
	if err := sock.send(getNsidRequest(seq, fd)); err != nil {
		return 0, fmt.Errorf("RTM_GETNSID: %w", err)
	}
	for {
		buf, n, err := sock.recv()
		if err != nil {
			return 0, fmt.Errorf("RTM_GETNSID reply: %w", err)
		}
		answered := false
		nsid := -1
		err = splitMessages((*buf)[:n], func(m nlMessage) error {
			if !answered && m.hdr.Pid == sock.pid && m.hdr.Seq == seq {
				switch m.hdr.Type {
				case unix.RTM_NEWNSID:
					nsid = parseNsid(m.data)
					answered = true
				case unix.NLMSG_ERROR:
					// An error reply (an fd of a dying namespace) means "unknown".
					answered = true
				}
				return nil
			}
			m.data = append([]byte(nil), m.data...)
			k.backlog = append(k.backlog, m)
			return nil
		})
		putBuf(buf)
		if err != nil {
			return 0, err
		}
		if answered {
			return nsid, nil
		}
	}
}
