// Command ecom-ferretdb runs FerretDB v1 (MongoDB wire protocol over SQLite) through its
// embeddable package. The upstream `go install .../cmd/ferretdb` binary panics at start
// because it lacks build/version/version.txt (FerretDB issue 2982); embedding avoids that.
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
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dataDir := flag.String("data-dir", "", "directory for the SQLite files (required)")
	version := flag.Bool("version", false, "print the FerretDB module version and exit")
	pingURL := flag.String("ping", "", "probe mode: run {ping:1} against this MongoDB URL, print the server version, exit 0 if it answered")
	pingTimeout := flag.Duration("ping-timeout", 3*time.Second, "timeout for -ping")
	flag.Parse()

	if *pingURL != "" {
		v, err := ping(*pingURL, *pingTimeout)
		if err != nil {
			fmt.Fprintf(os.Stderr, "ecom-ferretdb: ping %s: %v\n", *pingURL, err)
			os.Exit(1)
		}
		fmt.Println(v)
		return
	}

	if *version {
		fmt.Println(moduleVersion())
		return
	}
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "ecom-ferretdb: --data-dir is required (where the SQLite files live)")
		os.Exit(2)
	}
	abs, err := filepath.Abs(*dataDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ecom-ferretdb: bad --data-dir %q: %v\n", *dataDir, err)
		os.Exit(2)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "ecom-ferretdb: cannot create %s: %v\n", abs, err)
		os.Exit(1)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ecom-ferretdb: %v\n", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "ecom-ferretdb %s listening on %s, data in %s\n", moduleVersion(), *listen, abs)
	go indexIDs(ctx, abs, 2*time.Second, logger)
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "ecom-ferretdb: %v\n", err)
		os.Exit(1)
	}
}
