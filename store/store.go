// Package store keeps evaluation runs durable: each finished sample is
// committed at once, so an evaluation killed at any moment (kill -9
// included) resumes where it stopped, with nothing lost or done twice. It
// uses SQLite (pure Go, no cgo) in WAL mode with full synchronous commits.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
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
	Error              string          `json:"error,omitempty"`
	TotalTokens        int             `json:"total_tokens"`
	CriticalPathTokens int             `json:"critical_path_tokens"`
	Threads            int             `json:"threads"`
	LatencyMS          int64           `json:"latency_ms"`
	Tree               json.RawMessage `json:"tree,omitempty"`
}

// Store is an open database of runs.
type Store struct {
	db *sql.DB
}

// migrations bring a database from version i to i+1. Never edit one that
// has shipped: add another.
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
		problem_index INTEGER NOT NULL,
		seed INTEGER NOT NULL,
		answer TEXT NOT NULL,
		class TEXT NOT NULL,
		correct INTEGER NOT NULL,
		error TEXT NOT NULL,
		total_tokens INTEGER NOT NULL,
		critical_path_tokens INTEGER NOT NULL,
		threads INTEGER NOT NULL,
		latency_ms INTEGER NOT NULL,
		tree TEXT,
		created TEXT NOT NULL,
		PRIMARY KEY (run_id, key)
	);`,
}

// Open opens (creating if needed) the SQLite database at path and brings
// its schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// One writer at a time is SQLite's rule; a single connection keeps
	// it and the pragmas in force.
	db.SetMaxOpenConns(1)
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	var v int
	switch err := s.db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := s.db.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("store: the database is at schema version %d, this braid knows %d: use a newer braid", v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: migration %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, v+1); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// StartRun records a run, or checks that an existing run of that id was
// started with the same configuration: resuming with another grid would
// mix two experiments.
func (s *Store) StartRun(ctx context.Context, id string, config any) error {
	cfg, err := json.Marshal(config)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	var have string
	switch err := s.db.QueryRowContext(ctx, `SELECT config FROM runs WHERE id = ?`, id).Scan(&have); {
	case errors.Is(err, sql.ErrNoRows):
		_, err := s.db.ExecContext(ctx, `INSERT INTO runs (id, created, config) VALUES (?, ?, ?)`, id, time.Now().UTC().Format(time.RFC3339), string(cfg))
		return err
	case err != nil:
		return err
	}
	if have != string(cfg) {
		return fmt.Errorf("store: run %q was started with another configuration (%s); pick another --run", id, have)
	}
	return nil
}

// Done returns the keys of the run's finished samples.
func (s *Store) Done(ctx context.Context, run string) (map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key FROM samples WHERE run_id = ?`, run)
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

// Save commits one finished sample. Saving a key twice keeps the first:
// a resumed run never counts a sample twice.
func (s *Store) Save(ctx context.Context, run string, x Sample) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO samples (run_id, key, strategy, problem, problem_index, seed, answer, class, correct, error,
		total_tokens, critical_path_tokens, threads, latency_ms, tree, created)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, key) DO NOTHING`,
		run, x.Key, x.Strategy, string(x.Problem), x.Index, int64(x.Seed), x.Answer, x.Class, x.Correct, x.Error,
		x.TotalTokens, x.CriticalPathTokens, x.Threads, x.LatencyMS, nullable(x.Tree), time.Now().UTC().Format(time.RFC3339Nano))
	if err != nil {
		return fmt.Errorf("store: save %s: %w", x.Key, err)
	}
	return nil
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
	rows, err := s.db.QueryContext(ctx, `SELECT key, strategy, problem, problem_index, seed, answer, class, correct, error,
		total_tokens, critical_path_tokens, threads, latency_ms, tree FROM samples WHERE run_id = ? ORDER BY problem_index, key`, run)
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
			&x.TotalTokens, &x.CriticalPathTokens, &x.Threads, &x.LatencyMS, &tree); err != nil {
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
