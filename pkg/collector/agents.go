package collector

import (
	"github.com/nsint/nsint/pkg/collector/topology"
	"github.com/nsint/nsint/pkg/collector/web"
)

// Agents returns every agent (source address) whose report sequences are
// tracked, ordered by address: the reports received from it, those lost in
// sequence gaps, and its node when the topology of its switch ID is known.
// There are at most Config.MaxSources of them; a source is listed once it is
// a known agent (topology.SourceAgent).
func (c *Collector) Agents() []web.AgentReports {
	per := c.seq.perSource()
	out := make([]web.AgentReports, 0, len(per))
	for _, s := range per {
		if c.resolver.Source(s.Source) != topology.SourceAgent {
			continue
		}
		node, _ := c.resolver.Node(s.SwitchID)
		out = append(out, web.AgentReports{Source: s.Source.String(), Node: node, SwitchID: s.SwitchID,
			Reports: s.Reports, LostReports: s.Lost, SequenceResets: s.Resets})
	}
	return out
}

// Served returns every agent (source address and switch ID) the collector
// received reports from, ordered by address and switch ID, with its node when
// its topology is known: with sharded collector replicas, the agents this
// replica serves (and those that moved away, by their last report time). Like
// Agents, it lists only sources that are known agents.
func (c *Collector) Served() []web.ServedAgent {
	seen := c.seq.served()
	out := make([]web.ServedAgent, 0, len(seen))
	for _, a := range seen {
		if c.resolver.Source(a.Source) != topology.SourceAgent {
			continue
		}
		node, _ := c.resolver.Node(a.SwitchID)
		out = append(out, web.ServedAgent{Source: a.Source.String(), SwitchID: a.SwitchID, Node: node, Reports: a.Reports,
			FirstReport: a.First.UTC(), LastReport: a.Last.UTC()})
	}
	return out
}
