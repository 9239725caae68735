// Package storetest gives tests fresh databases on every backend the store
// supports that the machine can reach: a SQLite file always, and the real
// PostgreSQL server when BRAID_TEST_POSTGRES holds its address (.ci/run
// sets it).
package storetest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL, registered as "pgx"
)

// PostgresEnv names the variable holding a PostgreSQL address for tests.
const PostgresEnv = "BRAID_TEST_POSTGRES"

// Targets returns, per backend, a function giving the address of one fresh
// database: a new SQLite file, or a new PostgreSQL schema (dropped when the
// test ends) so that tests never see each other's tables.
func Targets(t testing.TB) map[string]func() string {
	t.Helper()
	dir := t.TempDir()
	n := 0
	out := map[string]func() string{"sqlite": func() string {
		n++
		return filepath.Join(dir, fmt.Sprintf("braid%d.db", n))
	}}
	dsn := os.Getenv(PostgresEnv)
	if dsn == "" {
		t.Logf("%s is not set: testing SQLite only", PostgresEnv)
		return out
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() { admin.Close() })
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	out["postgres"] = func() string {
		var b [6]byte
		rand.Read(b[:])
		schema := "test_" + hex.EncodeToString(b[:])
		if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
			t.Fatalf("PostgreSQL from %s: %v", PostgresEnv, err)
		}
		t.Cleanup(func() { admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`) })
		return dsn + sep + "search_path=" + schema
	}
	return out
}
