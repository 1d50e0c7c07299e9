// Command ferretdb-dailyfeed runs an embedded FerretDB (MongoDB wire protocol)
// backed by SQLite files in a local directory, for dailyfeed's local
// development and integration tests. It is started and stopped by
// scripts/services.sh.
//
// Telemetry is disabled by the embeddable package itself (it never creates a
// reporter and locks the setting off). Logs go to stderr. SIGTERM or SIGINT
// closes the listener and the SQLite backend, then the process exits 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	addr := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	dataDir := flag.String("data-dir", "data", "directory for the SQLite database files")
	logLevel := flag.String("log-level", "warn", "log level: debug, info (one line per client connection), warn, error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-dailyfeed: bad -log-level %q: %v\n", *logLevel, err)
		os.Exit(2)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)

	if err := run(*addr, *dataDir, logger); err != nil {
		logger.Error("ferretdb-dailyfeed failed", "error", err)
		os.Exit(1)
	}
}

func run(addr, dataDir string, logger *slog.Logger) error {
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}

	if err = os.MkdirAll(dir, 0o755); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{
			TCP: addr,
		},
		Logger:  logger,
		Handler: "sqlite",
		// The sqlite handler wants a directory URI ending with a slash.
		SQLiteURL: "file:" + filepath.ToSlash(dir) + "/",
	})
	if err != nil {
		return err
	}

	// Always printed, whatever the log level, so the log shows each start.
	fmt.Fprintf(os.Stderr, "ferretdb-dailyfeed: listening on %s, sqlite data in %s\n", addr, dir)

	if err = f.Run(ctx); err != nil {
		return err
	}

	fmt.Fprintln(os.Stderr, "ferretdb-dailyfeed: stopped")

	return nil
}
