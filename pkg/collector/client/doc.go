// Package client reads a running collector's views over HTTP and renders them
// for a terminal (`nsint-collector flows`).
//
// It owns only the HTTP client side and the table layout; filtering and
// validation happen on the server, whose 400 answers are returned as errors.
package client
