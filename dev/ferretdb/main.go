// Command ecom-ferretdb runs FerretDB v1 (MongoDB wire protocol over SQLite) through its
// embeddable package. The upstream `go install .../cmd/ferretdb` binary panics at start
// because it lacks build/version/version.txt (FerretDB issue 2982); embedding avoids that.
//
// Optional: a TLS listener beside the plain one (--listen-tls with --tls-cert/--tls-key, and
// --tls-ca to require client certificates), and FerretDB's SCRAM authentication (--auth,
// with --setup-user/--setup-password-file making the first user). Authentication is built
// through _overlay/ecom_auth.go, which dev/install adds to a copy of FerretDB's package at build time.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
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
	listenTLS := flag.String("listen-tls", "", "TLS address to listen on as well (needs --tls-cert and --tls-key)")
	tlsCert := flag.String("tls-cert", "", "PEM certificate the TLS listener presents")
	tlsKey := flag.String("tls-key", "", "PEM private key of --tls-cert")
	tlsCA := flag.String("tls-ca", "", "PEM CA; when set, TLS clients must present a certificate it signed")
	auth := flag.Bool("auth", false, "require authentication (SCRAM-SHA-256/SHA-1; users in admin.system.users)")
	setupUser := flag.String("setup-user", "", "with --auth: user created at start in --setup-database if that database does not exist")
	setupPasswordFile := flag.String("setup-password-file", "", "with --setup-user: file holding that user's password")
	setupDatabase := flag.String("setup-database", "admin", "with --setup-user: the user's database (its authSource)")
	flag.Parse()

	if *pingURL != "" {
		v, err := ping(*pingURL, *pingTimeout)
		if err != nil {
			fmt.Fprintf(os.Stderr, "ecom-ferretdb: ping %s: %v\n", redacted(*pingURL), err)
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

	if (*listenTLS == "") != (*tlsCert == "" && *tlsKey == "" && *tlsCA == "") || (*listenTLS != "" && (*tlsCert == "" || *tlsKey == "")) {
		fmt.Fprintln(os.Stderr, "ecom-ferretdb: --listen-tls needs --tls-cert and --tls-key, and they need --listen-tls")
		os.Exit(2)
	}
	if !*auth && *setupUser != "" || (*setupUser == "") != (*setupPasswordFile == "") {
		fmt.Fprintln(os.Stderr, "ecom-ferretdb: --setup-user needs --auth and --setup-password-file")
		os.Exit(2)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	config := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{
			TCP: *listen, TLS: *listenTLS, TLSCertFile: *tlsCert, TLSKeyFile: *tlsKey, TLSCAFile: *tlsCA,
		},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
	}
	var f *ferretdb.FerretDB
	if *auth {
		setup := ferretdb.AuthConfig{}
		if *setupUser != "" {
			pw, err := os.ReadFile(*setupPasswordFile)
			if err != nil {
				fmt.Fprintf(os.Stderr, "ecom-ferretdb: --setup-password-file: %v\n", err)
				os.Exit(2)
			}
			setup = ferretdb.AuthConfig{
				SetupDatabase: *setupDatabase, SetupUsername: *setupUser,
				SetupPassword: strings.TrimRight(string(pw), "\r\n"),
			}
		}
		f, err = ferretdb.NewWithAuth(config, setup)
	} else {
		f, err = ferretdb.New(config)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ecom-ferretdb: %v\n", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "ecom-ferretdb %s listening on %s (TLS: %q, auth: %v), data in %s\n",
		moduleVersion(), *listen, *listenTLS, *auth, abs)
	go indexIDs(ctx, abs, 2*time.Second, logger)
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "ecom-ferretdb: %v\n", err)
		os.Exit(1)
	}
}

// redacted is url with its password replaced, for messages.
func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unparsable URL)"
	}
	return u.Redacted()
}
