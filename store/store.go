// Package store keeps evaluation runs durable: each finished sample is
// committed at once, so an evaluation killed at any moment (kill -9
// included) resumes where it stopped, with nothing lost or done twice. It
// uses SQLite by default (pure Go, no cgo; WAL mode, full synchronous
// commits) and PostgreSQL when given a postgres:// address, where several
// evaluation processes, on one machine or many, share a run: each cell is
// claimed by one worker at a time (FOR UPDATE SKIP LOCKED), and the claims
// of a worker that dies expire and are taken over.
package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/braid-dev/braid/reason"
	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL, registered as "pgx"
	_ "modernc.org/sqlite"             // the pure-Go SQLite driver, registered as "sqlite"
)

// Sample is one cell of an evaluation grid, done.
type Sample struct {
	// Key identifies the cell within its run: strategy, problem, seed.
	Key      string          `json:"key"`
	Strategy string          `json:"strategy"`
	Problem  json.RawMessage `json:"problem"`
	// Index is the problem's place in the run's problem list.
	Index  int    `json:"index"`
	Seed   uint64 `json:"seed"`
	Answer string `json:"answer"`
	// Class names the answer's equivalence class (answers of one class
	// are the same answer, for majority votes); "" for no answer.
	Class   string `json:"class,omitempty"`
	Correct bool   `json:"correct"`
	// Error says why the sample failed, when it did (then it has no
	// answer).
	Error string `json:"error,omitempty"`
	reason.Usage
	// TokensToGoal counts the tokens spent when the answer was first found
	// (Countdown: the first "Goal Reached" in any thread), -1 when it was
	// not or the task cannot tell.
	TokensToGoal int             `json:"tokens_to_goal"`
	Tree         json.RawMessage `json:"tree,omitempty"`
}

// Store is an open database of runs.
type Store struct {
	db       *sql.DB
	postgres bool
}

// migrations bring a database from version i to i+1, in SQL both SQLite
// and PostgreSQL read. Never edit one that has shipped: add another.
var migrations = []string{
	`CREATE TABLE runs (
		id TEXT PRIMARY KEY,
		created TEXT NOT NULL,
		config TEXT NOT NULL
	);
	CREATE TABLE samples (
		run_id TEXT NOT NULL REFERENCES runs(id),
		key TEXT NOT NULL,
		strategy TEXT NOT NULL,
		problem TEXT NOT NULL,
		problem_index BIGINT NOT NULL,
		seed BIGINT NOT NULL,
		answer TEXT NOT NULL,
		class TEXT NOT NULL,
		correct BOOLEAN NOT NULL,
		error TEXT NOT NULL,
		total_tokens BIGINT NOT NULL,
		critical_path_tokens BIGINT NOT NULL,
		threads BIGINT NOT NULL,
		latency_ms BIGINT NOT NULL,
		tree TEXT,
		created TEXT NOT NULL,
		PRIMARY KEY (run_id, key)
	);`,
	// The cells of a run, for workers sharing it to claim one at a time.
	`CREATE TABLE cells (
		run_id TEXT NOT NULL REFERENCES runs(id),
		key TEXT NOT NULL,
		position BIGINT NOT NULL,
		worker TEXT NOT NULL DEFAULT '',
		lease_until BIGINT NOT NULL DEFAULT 0,
		done BOOLEAN NOT NULL DEFAULT FALSE,
		PRIMARY KEY (run_id, key)
	);
	CREATE INDEX cells_todo ON cells (run_id, done, position);`,
	`ALTER TABLE samples ADD COLUMN tokens_to_goal BIGINT NOT NULL DEFAULT -1`,
	// Samples taken before their prompt tokens were kept read 0.
	`ALTER TABLE samples ADD COLUMN prompt_tokens BIGINT NOT NULL DEFAULT 0`,
	`ALTER TABLE samples ADD COLUMN cached_prompt_tokens BIGINT NOT NULL DEFAULT 0`,
	`ALTER TABLE samples ADD COLUMN format_errors BIGINT NOT NULL DEFAULT 0`,
	`ALTER TABLE samples ADD COLUMN depth BIGINT NOT NULL DEFAULT 0`,
}

// Open opens the store at target: a postgres:// (or postgresql://) address,
// or the path of a SQLite file (created if needed). It brings the schema up
// to date, under a lock, so that workers starting together migrate once.
func Open(ctx context.Context, target string) (*Store, error) {
	var s Store
	var err error
	if strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://") {
		s.postgres = true
		s.db, err = sql.Open("pgx", target)
	} else {
		// Immediate transactions take the write lock at BEGIN, so a
		// claim's read and write are one step; one connection keeps the
		// pragmas in force and SQLite's one-writer rule.
		s.db, err = sql.Open("sqlite", "file:"+target+"?_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_txlock=immediate")
		if err == nil {
			s.db.SetMaxOpenConns(1)
			err = s.useWAL(ctx)
		}
	}
	if err != nil {
		if s.db != nil {
			s.db.Close()
		}
		return nil, fmt.Errorf("open %s: %w", Redact(target), err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("open %s: %w", Redact(target), err)
	}
	return &s, nil
}

// walWait bounds how long an open waits for another worker to let it turn
// the file to write-ahead logging; it matches the busy timeout above.
const walWait = 10 * time.Second

// useWAL turns a SQLite file to write-ahead logging, which lets workers read
// while one writes. Changing the mode takes an exclusive lock for which SQLite
// runs no busy handler, so workers opening one fresh file together would fail
// with "database is locked"; this retries until walWait is spent. The mode is
// kept in the file: once one worker has set it, the rest find it set.
func (s *Store) useWAL(ctx context.Context) error {
	deadline := time.Now().Add(walWait)
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		var mode string
		err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode=WAL`).Scan(&mode)
		if err == nil && strings.EqualFold(mode, "wal") {
			return nil
		}
		if err == nil {
			// SQLite answers with the old mode when it could not change it.
			err = fmt.Errorf("journal mode stays %q", mode)
		} else if !busy(err) {
			return fmt.Errorf("turn on write-ahead logging: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("turn on write-ahead logging: waited %v for other workers: %w", walWait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// busy reports whether err is SQLite's SQLITE_BUSY (or one of its extended
// codes): another connection holds the lock.
func busy(err error) bool {
	var coded interface{ Code() int }
	return errors.As(err, &coded) && coded.Code()&0xff == 5
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// q writes a query for the database: PostgreSQL numbers its placeholders.
func (s *Store) q(query string) string {
	if !s.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if s.postgres {
		// Workers starting together take turns; SQLite's immediate
		// transaction is its own lock.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(2093844)`); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)`); err != nil {
		return err
	}
	var v int
	switch err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("store: the database is at schema version %d, this braid knows %d: use a newer braid", v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		for stmt := range strings.SplitSeq(migrations[v], ";") {
			if strings.TrimSpace(stmt) == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("store: migration %d: %w", v+1, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE schema_version SET version = ?`), v+1); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// StartRun records a run, or checks that an existing run of that id was
// started with the same configuration: resuming with another grid would
// mix two experiments. The configuration is stored with its credentials
// hidden (Redact), and compared so: a run that an older braid stored with
// them resumes, and is stored without them from then on.
func (s *Store) StartRun(ctx context.Context, id string, config any) error {
	cfg, err := configJSON(config)
	if err != nil {
		return err
	}
	// Insert if new, then compare with what is there: two workers starting
	// at once both insert, one wins, and the other is still checked.
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO runs (id, created, config) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`),
		id, time.Now().UTC().Format(time.RFC3339), string(cfg)); err != nil {
		return fmt.Errorf("store: start run %s: %w", id, err)
	}
	var have string
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT config FROM runs WHERE id = ?`), id).Scan(&have); err != nil {
		return fmt.Errorf("store: start run %s: %w", id, err)
	}
	if have == string(cfg) {
		return nil
	}
	if was := string(redactJSON([]byte(have))); was != string(cfg) {
		return fmt.Errorf("store: run %q was started with another configuration (%s); pick another --run", id, configDiff(was, string(cfg)))
	}
	// Rewritten only if still what was compared above.
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE runs SET config = ? WHERE id = ? AND config = ?`), string(cfg), id, have); err != nil {
		return fmt.Errorf("store: start run %s: hide its credentials: %w", id, err)
	}
	return nil
}

// configDiff names the fields in which two JSON configurations differ, as
// "field: was X, now Y" (long values only named); the whole of either
// configuration, a run's problems included, is too long to read.
func configDiff(was, now string) string {
	var a, b map[string]json.RawMessage
	if json.Unmarshal([]byte(was), &a) != nil || json.Unmarshal([]byte(now), &b) != nil {
		return "was " + was
	}
	show := func(v json.RawMessage) string {
		switch {
		case v == nil:
			return "unset"
		case len(v) > 40:
			return "another value"
		}
		return string(v)
	}
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var diffs []string
	for _, k := range keys {
		if !bytes.Equal(a[k], b[k]) {
			diffs = append(diffs, fmt.Sprintf("%s: was %s, now %s", k, show(a[k]), show(b[k])))
		}
	}
	return strings.Join(diffs, "; ")
}

// Done returns the keys of the run's finished samples.
func (s *Store) Done(ctx context.Context, run string) (map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT key FROM samples WHERE run_id = ?`), run)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	done := map[string]bool{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		done[k] = true
	}
	return done, rows.Err()
}

// Save commits one finished sample, and marks its cell done. Saving a key
// twice keeps the first: a resumed run never counts a sample twice.
func (s *Store) Save(ctx context.Context, run string, x Sample) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: save %s: %w", x.Key, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO samples (run_id, key, strategy, problem, problem_index, seed, answer, class, correct, error,
		total_tokens, prompt_tokens, cached_prompt_tokens, critical_path_tokens, threads, depth, latency_ms, format_errors, tokens_to_goal, tree, created)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, key) DO NOTHING`),
		run, x.Key, x.Strategy, string(x.Problem), x.Index, int64(x.Seed), x.Answer, x.Class, x.Correct, x.Error,
		x.TotalTokens, x.PromptTokens, x.CachedTokens, x.CriticalPathTokens, x.Threads, x.Depth, x.LatencyMS, x.FormatErrors, x.TokensToGoal, nullable(x.Tree),
		time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		return fmt.Errorf("store: save %s: %w", x.Key, err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE cells SET done = TRUE WHERE run_id = ? AND key = ?`), run, x.Key); err != nil {
		return fmt.Errorf("store: save %s: %w", x.Key, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: save %s: %w", x.Key, err)
	}
	return nil
}

// AddCells records a run's cells, in order, for workers to claim; cells
// already recorded (by another worker, or before a restart) stay as they
// are.
func (s *Store) AddCells(ctx context.Context, run string, keys []string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, s.q(`INSERT INTO cells (run_id, key, position, done)
		SELECT ?, ?, ?, EXISTS (SELECT 1 FROM samples WHERE run_id = ? AND key = ?)
		ON CONFLICT (run_id, key) DO NOTHING`))
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i, k := range keys {
		if _, err := stmt.ExecContext(ctx, run, k, i, run, k); err != nil {
			return fmt.Errorf("store: add cell %s: %w", k, err)
		}
	}
	return tx.Commit()
}

// Claim gives worker up to n cells of the run that are neither done nor
// held by a live claim (expired claims of a worker that died are taken
// over), held until now+lease, first in grid order. No two workers get
// the same cell while its claim lives.
func (s *Store) Claim(ctx context.Context, run, worker string, n int, lease time.Duration) ([]string, error) {
	// SKIP LOCKED: PostgreSQL workers claiming at once take different
	// cells instead of queueing on the same rows. SQLite runs the one
	// statement under its single writer lock.
	lock := ""
	if s.postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	rows, err := s.db.QueryContext(ctx, s.q(`UPDATE cells SET worker = ?, lease_until = `+s.now()+` + ? WHERE run_id = ? AND key IN (
		SELECT key FROM cells WHERE run_id = ? AND NOT done AND lease_until < `+s.now()+`
		ORDER BY position LIMIT ?`+lock+`) RETURNING key`), worker, lease.Milliseconds(), run, run, n)
	if err != nil {
		return nil, fmt.Errorf("store: claim: %w", err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// Renew extends worker's claims on the run's cells not done (lapsed ones
// nobody has taken since included) to now+lease: a worker still at work
// keeps its cells.
func (s *Store) Renew(ctx context.Context, run, worker string, lease time.Duration) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE cells SET lease_until = `+s.now()+` + ? WHERE run_id = ? AND worker = ? AND NOT done AND lease_until > 0`),
		lease.Milliseconds(), run, worker)
	if err != nil {
		return fmt.Errorf("store: renew claims of %s: %w", worker, err)
	}
	return nil
}

// Release gives up worker's claims on the run's cells not done, so that
// others take them at once: a worker stopping, or one found dead.
func (s *Store) Release(ctx context.Context, run, worker string) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE cells SET lease_until = 0 WHERE run_id = ? AND worker = ? AND NOT done`), run, worker)
	if err != nil {
		return fmt.Errorf("store: release claims of %s: %w", worker, err)
	}
	return nil
}

// Claimants lists the workers holding live claims on the run's cells.
func (s *Store) Claimants(ctx context.Context, run string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT DISTINCT worker FROM cells WHERE run_id = ? AND NOT done AND lease_until >= `+s.now()), run)
	if err != nil {
		return nil, fmt.Errorf("store: claimants: %w", err)
	}
	defer rows.Close()
	var ws []string
	for rows.Next() {
		var w string
		if err := rows.Scan(&w); err != nil {
			return nil, err
		}
		ws = append(ws, w)
	}
	return ws, rows.Err()
}

// Remaining counts the run's cells not done, and how many of those a live
// claim holds.
func (s *Store) Remaining(ctx context.Context, run string) (todo, claimed int, err error) {
	err = s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*), COALESCE(SUM(CASE WHEN lease_until >= `+s.now()+` THEN 1 ELSE 0 END), 0)
		FROM cells WHERE run_id = ? AND NOT done`), run).Scan(&todo, &claimed)
	if err != nil {
		return 0, 0, fmt.Errorf("store: remaining cells: %w", err)
	}
	return todo, claimed, nil
}

// pgNow is PostgreSQL's clock in Unix milliseconds. Leases are measured on
// the database's clock, so workers on machines whose clocks disagree still
// agree on when a claim expires.
const pgNow = `(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT`

// now is the current time, in Unix milliseconds, in SQL: the database's
// clock for PostgreSQL; SQLite is one machine's file, read by that
// machine's clock.
func (s *Store) now() string {
	if s.postgres {
		return pgNow
	}
	return `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`
}

func nullable(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// Samples returns the run's samples, in the order of their problems, then
// keys.
func (s *Store) Samples(ctx context.Context, run string) ([]Sample, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT key, strategy, problem, problem_index, seed, answer, class, correct, error,
		total_tokens, prompt_tokens, cached_prompt_tokens, critical_path_tokens, threads, depth, latency_ms, format_errors, tokens_to_goal, tree
		FROM samples WHERE run_id = ? ORDER BY problem_index, key`), run)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Sample
	for rows.Next() {
		var x Sample
		var problem string
		var seed int64
		var tree sql.NullString
		if err := rows.Scan(&x.Key, &x.Strategy, &problem, &x.Index, &seed, &x.Answer, &x.Class, &x.Correct, &x.Error,
			&x.TotalTokens, &x.PromptTokens, &x.CachedTokens, &x.CriticalPathTokens, &x.Threads, &x.Depth, &x.LatencyMS, &x.FormatErrors, &x.TokensToGoal, &tree); err != nil {
			return nil, err
		}
		x.Problem, x.Seed = json.RawMessage(problem), uint64(seed)
		if tree.Valid {
			x.Tree = json.RawMessage(tree.String)
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// Run is a run as recorded: its id, when it started, and the configuration
// it was started with (JSON, credentials hidden, even those an older braid
// stored).
type Run struct {
	ID      string          `json:"id"`
	Created string          `json:"created"`
	Config  json.RawMessage `json:"config"`
}

// Runs lists the runs in the database, oldest first; with ids, only those,
// and an id the database lacks is an error.
func (s *Store) Runs(ctx context.Context, ids ...string) ([]Run, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, created, config FROM runs ORDER BY created, id`)
	if err != nil {
		return nil, fmt.Errorf("store: runs: %w", err)
	}
	defer rows.Close()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var out []Run
	for rows.Next() {
		var r Run
		var cfg string
		if err := rows.Scan(&r.ID, &r.Created, &cfg); err != nil {
			return nil, err
		}
		r.Config = json.RawMessage(redactJSON([]byte(cfg)))
		if len(ids) == 0 || want[r.ID] {
			out = append(out, r)
			delete(want, r.ID)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if want[id] {
			return nil, fmt.Errorf("store: no run %q in this database", id)
		}
	}
	return out, nil
}
