package collector

import (
	"net/http"

	"github.com/nsint/nsint/pkg/collector/web"
)

func (c *Collector) newHandler() http.Handler {
	return web.New(web.Sources{
		Table:    c.table,
		Resolver: c.resolver,
		Stats:    func() any { return c.Stats() },
		Agents:   c.Agents,
		Served:   c.Served,
		Metrics:  c.metrics.handler(),
		Rejected: func() uint64 { return c.ing.rejected.Load() },
	})
}
