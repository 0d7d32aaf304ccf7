// Package client reads a running collector's views over HTTP and renders them
// for a terminal (`nsint-collector flows`: the rows, then a line per agent
// that lost reports).
//
// It owns the HTTP client side — the bearer token (--token, or the current
// context of --kubeconfig) and the CAs of an https collector — and the table
// layout; a token never appears in an error. Filtering, the caller's scope
// and validation happen on the server, whose 400 answers are returned as errors.
package client
