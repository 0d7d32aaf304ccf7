// Package client reads a running collector's views over HTTP and renders them
// for a terminal (`nsint-collector flows`: the rows, then a line per agent
// that lost reports).
//
// It owns only the HTTP client side and the table layout; filtering and
// validation happen on the server, whose 400 answers are returned as errors.
package client
