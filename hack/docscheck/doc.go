// Package docscheck holds only tests: they keep docs/configuration.md and the
// README true to the code by failing when an agent or collector flag, its
// environment variable or its default is missing from the reference tables,
// or when a documented flag does not exist; and the summary table of
// docs/performance.md true to bench/out/results.json and bench/goals.json.
package docscheck
