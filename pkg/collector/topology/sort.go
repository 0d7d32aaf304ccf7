package topology

import (
	"cmp"
	"slices"
)

func sortDocs(ds []Document) {
	slices.SortFunc(ds, func(a, b Document) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.SwitchID, b.SwitchID))
	})
}

func sortAgents(as []AgentStatus) {
	slices.SortFunc(as, func(a, b AgentStatus) int { return cmp.Compare(a.URL, b.URL) })
}
