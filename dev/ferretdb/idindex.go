package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the SQLite driver FerretDB itself uses
)

// FerretDB v1's SQLite backend filters `{_id: <string or ObjectId>}` with
// `WHERE _ferretdb_sjson->'$._id' = ?` and deletes with `... IN (...)` on the same
// expression, but it creates the collection's unique _id index on `_ferretdb_sjson->"_id"`.
// SQLite only uses an expression index for the same expression, so every find, update and
// delete by _id reads the whole table: ~1 s per call at 100k documents. idPathColumn is the
// expression of FerretDB's filter; indexIDs gives each collection table an index on it.
const idPathColumn = `_ferretdb_sjson->'$._id'`

// indexIDs adds the missing _id path indexes in every database file under dir now and then
// every `every`, until ctx ends. FerretDB's metadata does not list these indexes (listIndexes
// shows FerretDB's own); dropping a collection drops its table and them with it.
func indexIDs(ctx context.Context, dir string, every time.Duration, logger *slog.Logger) {
	for {
		files, err := filepath.Glob(filepath.Join(dir, "*.sqlite"))
		if err != nil {
			logger.Warn("listing the SQLite files", "dir", dir, "err", err)
		}
		for _, f := range files {
			if n, err := indexFile(ctx, f); err != nil && ctx.Err() == nil && !errors.Is(err, fs.ErrNotExist) {
				if _, statErr := os.Stat(f); errors.Is(statErr, fs.ErrNotExist) {
					continue // dropped while we looked
				}
				logger.Warn("indexing _id paths", "file", f, "err", err)
			} else if n > 0 {
				fmt.Fprintf(os.Stderr, "ecom-ferretdb: indexed the _id path of %d new table(s) in %s\n", n, f)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// indexFile creates the missing _id path indexes in one database file and returns how many.
func indexFile(ctx context.Context, path string) (int, error) {
	// mode=rw: never create a file (a database dropped since the glob stays gone).
	db, err := sql.Open("sqlite", "file:"+path+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	// Collection tables: FerretDB's own tables start with its reserved prefix.
	rows, err := db.QueryContext(ctx, `
		SELECT t.name FROM sqlite_master t
		WHERE t.type = 'table' AND t.name NOT LIKE '\_ferretdb\_%' ESCAPE '\' AND t.name NOT LIKE 'sqlite\_%' ESCAPE '\'
		AND NOT EXISTS (SELECT 1 FROM sqlite_master i WHERE i.type = 'index' AND i.name = t.name || '_ecom_id_path')`)
	if err != nil {
		return 0, err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return 0, err
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, t := range tables {
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (%s)`, t+"_ecom_id_path", t, idPathColumn)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return 0, fmt.Errorf("%s: %w", q, err)
		}
	}
	return len(tables), nil
}
