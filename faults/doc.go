// Package faults holds the fault scripts: the real server binary, driven
// over HTTP on 127.0.0.1 under load, while its database is restarted,
// locked or killed under it, and while it is sent SIGTERM or SIGKILL. They
// start a private PostgreSQL cluster of their own (never the shared one)
// and run behind a build tag, since they take about a minute:
//
//	go test -tags faults -count=1 -v ./faults/
//
// Each prints the figures it measured on lines starting with FIGURE.
package faults
