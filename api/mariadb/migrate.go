package mariadb

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// migrations holds the schema, one file per version, applied in order of
// the number that starts each file name.
//
//go:embed migrations/*.sql
var migrations embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var list []migration
	for _, name := range names {
		base := path.Base(name)
		number, _, ok := strings.Cut(base, "_")
		version, err := strconv.Atoi(number)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive version number and _", base)
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return nil, err
		}
		list = append(list, migration{version: version, name: base, sql: string(body)})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].version < list[j].version })
	for i := 1; i < len(list); i++ {
		if list[i].version == list[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d",
				list[i-1].name, list[i].name, list[i].version)
		}
	}
	return list, nil
}

// Migrate brings the schema to the newest version embedded in the binary.
//
// Several instances may start at once, against one server or against
// several Galera nodes. GET_LOCK cannot serialise them, because MariaDB
// rejects it while wsrep_on is set (MDEV-30473), so every migration must be
// idempotent instead: it uses the IF NOT EXISTS forms of CREATE and ALTER,
// and its version is recorded with INSERT IGNORE. Galera runs each DDL
// statement in total order on every node, so concurrent runs converge.
func (db *DB) Migrate(ctx context.Context) error {
	list, err := loadMigrations()
	if err != nil {
		return err
	}
	if _, err := db.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INT UNSIGNED NOT NULL PRIMARY KEY,
		name VARCHAR(255) NOT NULL,
		applied_at DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6)
	) ENGINE = InnoDB`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}

	applied := map[int]bool{}
	rows, err := db.db.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}

	for _, m := range list {
		if applied[m.version] {
			continue
		}
		db.log.Info("applying migration", "version", m.version, "name", m.name)
		if _, err := db.db.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if _, err := db.db.ExecContext(ctx,
			"INSERT IGNORE INTO schema_migrations (version, name) VALUES (?, ?)",
			m.version, m.name); err != nil {
			return fmt.Errorf("record migration %s: %w", m.name, err)
		}
	}
	db.migrated.Store(true)
	return nil
}
