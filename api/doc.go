// Package api is the vocabulary of the Mozpool HTTP API: the JSON bodies of
// its requests and answers, the header names and the wire time format. The
// server (httpapi) fills these types from the replicated state and the Go
// client (client) decodes into them, so each shape is written once.
//
// The package imports only the standard library, so that a program talking
// to Mozpool over HTTP does not pull in Raft, gossip or the storage engine.
//
// The shapes are those of Mozpool 4.x, which Python clients (mozpoolclient)
// read: nullable columns are pointers rendered as null, times are naive
// ISO-8601 in UTC (FormatTime), and answers that the original built from a
// dict list their keys in sorted order. Extensions of this reimplementation
// (images, PXE configs, inventory sync, cluster membership and backup) follow
// the same conventions.
package api
