// This file is added to FerretDB's embeddable package `ferretdb` in a copy of the module at
// build time (see dev/install): v1.24's Config has no field for its experimental SCRAM
// authentication, which only its own command line (--test-enable-new-auth, --setup-*) can
// turn on. NewWithAuth is New with those options; no upstream file is changed.

package ferretdb

import (
	"errors"
	"fmt"
	"time"

	"github.com/FerretDB/FerretDB/build/version"
	"github.com/FerretDB/FerretDB/internal/clientconn"
	"github.com/FerretDB/FerretDB/internal/clientconn/connmetrics"
	"github.com/FerretDB/FerretDB/internal/handler/registry"
	"github.com/FerretDB/FerretDB/internal/util/password"
	"github.com/FerretDB/FerretDB/internal/util/state"
)

// AuthConfig turns on authentication: every command but the handshake and SASL needs an
// authenticated connection; users live in admin.system.users (createUser, SCRAM-SHA-1/256).
type AuthConfig struct {
	// SetupDatabase and SetupUsername/SetupPassword create the first user at start when the
	// database does not exist yet (FerretDB's --setup-database/--setup-username/--setup-password).
	SetupDatabase string
	SetupUsername string
	SetupPassword string
}

// NewWithAuth is New with FerretDB's new authentication enabled.
func NewWithAuth(config *Config, auth AuthConfig) (*FerretDB, error) {
	version.Get().Package = "embedded"

	if config.Listener.TCP == "" && config.Listener.Unix == "" && config.Listener.TLS == "" {
		return nil, errors.New("Listener TCP, Unix and TLS are empty")
	}

	sp, err := state.NewProvider("")
	if err != nil {
		return nil, fmt.Errorf("failed to construct handler: %s", err)
	}

	err = sp.Update(func(s *state.State) {
		s.DisableTelemetry()
		s.TelemetryLocked = true
	})
	if err != nil {
		return nil, fmt.Errorf("failed to construct handler: %s", err)
	}

	metrics := connmetrics.NewListenerMetrics()

	h, closeBackend, err := registry.NewHandler(config.Handler, &registry.NewHandlerOpts{
		Logger:        config.Logger,
		ConnMetrics:   metrics.ConnMetrics,
		StateProvider: sp,
		TCPHost:       config.Listener.TCP,

		SetupDatabase: auth.SetupDatabase,
		SetupUsername: auth.SetupUsername,
		SetupPassword: password.WrapPassword(auth.SetupPassword),
		SetupTimeout:  30 * time.Second,

		PostgreSQLURL: config.PostgreSQLURL,
		SQLiteURL:     config.SQLiteURL,

		TestOpts: registry.TestOpts{
			CappedCleanupPercentage: 10,
			BatchSize:               100,
			EnableNewAuth:           true,
		},
	})
	if err != nil {
		if closeBackend != nil {
			closeBackend()
		}
		return nil, fmt.Errorf("failed to construct handler: %s", err)
	}

	l, err := clientconn.Listen(&clientconn.NewListenerOpts{
		TCP:         config.Listener.TCP,
		Unix:        config.Listener.Unix,
		TLS:         config.Listener.TLS,
		TLSCertFile: config.Listener.TLSCertFile,
		TLSKeyFile:  config.Listener.TLSKeyFile,
		TLSCAFile:   config.Listener.TLSCAFile,
		Mode:        clientconn.NormalMode,
		Metrics:     metrics,
		Handler:     h,
		Logger:      config.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to construct handler: %s", err)
	}

	return &FerretDB{config: config, closeBackend: closeBackend, l: l}, nil
}
