package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/braid-dev/braid/reason"
)

func sample(i int) Sample {
	return Sample{Key: fmt.Sprintf("serial|%d|1", i), Strategy: "serial", Problem: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)),
		Index: i, Seed: 1, Answer: fmt.Sprint(i), Correct: i%2 == 0, Usage: reason.Usage{TotalTokens: 10 * i, CriticalPathTokens: 5 * i, Threads: 1 + 2*i, Depth: i, LatencyMS: int64(i), FormatErrors: i % 2}, Tree: json.RawMessage(`{"node":"0"}`)}
}

func TestSaveResumeNoDuplicates(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "braid.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{"strategies": []string{"serial"}, "n": 5}
	if err := s.StartRun(ctx, "r1", cfg); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Save(ctx, "r1", sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.StartRun(ctx, "r1", cfg); err != nil {
		t.Fatalf("resuming: %v", err)
	}
	if err := s.StartRun(ctx, "r1", map[string]any{"n": 6}); err == nil || !strings.Contains(err.Error(), "another configuration") {
		t.Errorf("resuming with another grid: %v", err)
	}
	// The refusal names what differs, not the whole configuration.
	other := map[string]any{"n": 3, "problems": strings.Repeat("x", 500), "model_sum": "ab12"}
	if err := s.StartRun(ctx, "r2", other); err != nil {
		t.Fatal(err)
	}
	other["n"], other["model_sum"] = 4, nil
	delete(other, "model_sum")
	other["context"] = 4096
	err = s.StartRun(ctx, "r2", other)
	if err == nil || !strings.Contains(err.Error(), `(context: was unset, now 4096; model_sum: was "ab12", now unset; n: was 3, now 4)`) ||
		strings.Contains(err.Error(), "xxx") {
		t.Errorf("the refusal of another configuration: %v", err)
	}
	done, err := s.Done(ctx, "r1")
	if err != nil || len(done) != 3 || !done["serial|2|1"] {
		t.Fatalf("done %v, %v", done, err)
	}
	again := sample(1)
	again.Answer = "changed"
	if err := s.Save(ctx, "r1", again); err != nil {
		t.Fatal(err)
	}
	got, err := s.Samples(ctx, "r1")
	if err != nil || len(got) != 3 {
		t.Fatalf("%d samples, %v", len(got), err)
	}
	if got[1].Answer != "1" || got[2].TotalTokens != 20 || string(got[0].Tree) != `{"node":"0"}` || !got[2].Correct ||
		got[2].Usage != sample(2).Usage || got[1].Usage != sample(1).Usage {
		t.Errorf("read back %+v", got)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "braid.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.db.Exec(`UPDATE schema_version SET version = 99`)
	s.Close()
	if _, err := Open(ctx, path); err == nil || !strings.Contains(err.Error(), "newer braid") {
		t.Errorf("a newer schema: %v", err)
	}
}

// A writer killed with SIGKILL mid-run leaves every sample it committed
// and a database that opens.
func TestSurvivesKill9(t *testing.T) {
	if dbPath := os.Getenv("BRAID_STORE_WRITER"); dbPath != "" {
		ctx := context.Background()
		s, err := Open(ctx, dbPath)
		if err != nil {
			os.Exit(3)
		}
		s.StartRun(ctx, "r", "cfg")
		for i := 0; ; i++ {
			if err := s.Save(ctx, "r", sample(i)); err != nil {
				os.Exit(4)
			}
			fmt.Println(i) // committed
		}
	}
	path := filepath.Join(t.TempDir(), "braid.db")
	cmd := exec.Command(os.Args[0], "-test.run", "TestSurvivesKill9")
	cmd.Env = append(os.Environ(), "BRAID_STORE_WRITER="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	committed := 0
	deadline := time.Now().Add(20 * time.Second)
	for committed < 20 && time.Now().Before(deadline) {
		n, err := out.Read(buf)
		if err != nil {
			break
		}
		committed += strings.Count(string(buf[:n]), "\n")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if committed < 20 {
		t.Fatalf("the writer committed only %d samples", committed)
	}
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Samples(context.Background(), "r")
	if err != nil || len(got) < committed {
		t.Errorf("%d samples after the kill, %d were committed (%v)", len(got), committed, err)
	}
}

// A database written by the first schema (before cells and goal tokens)
// opens, migrates, and keeps its samples.
func TestMigratesFromTheFirstSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "braid.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`CREATE TABLE schema_version (version INTEGER NOT NULL)`,
		`INSERT INTO schema_version (version) VALUES (1)`,
		migrations[0],
		`INSERT INTO runs VALUES ('r', '2026-11-27T00:00:00Z', '"cfg"')`,
		`INSERT INTO samples VALUES ('r', 'serial|0|1', 'serial', '{}', 0, 1, '27', 'target', 1, '', 100, 100, 1, 5, NULL, '2026-11-27T00:00:00Z')`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Samples(ctx, "r")
	if err != nil || len(got) != 1 || !got[0].Correct || got[0].TokensToGoal != -1 {
		t.Fatalf("after migrating: %+v, %v", got, err)
	}
	if err := s.AddCells(ctx, "r", []string{"serial|0|1", "serial|1|1"}); err != nil {
		t.Fatal(err)
	}
	if todo, _, err := s.Remaining(ctx, "r"); err != nil || todo != 1 {
		t.Errorf("%d cells to do (%v): the migrated sample's cell should be done", todo, err)
	}
}

// Workers started together open one fresh SQLite file at once. Turning a
// file to WAL takes an exclusive lock for which SQLite runs no busy
// handler, so each open must wait its turn rather than fail.
func TestConcurrentOpensOfAFreshFile(t *testing.T) {
	ctx := context.Background()
	for round := range 5 {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("braid%d.db", round))
		const workers = 16
		errs := make(chan error, workers)
		start := make(chan struct{})
		for range workers {
			go func() {
				<-start
				s, err := Open(ctx, path)
				if err != nil {
					errs <- err
					return
				}
				defer s.Close()
				errs <- s.StartRun(ctx, "r", "grid")
			}()
		}
		close(start)
		for range workers {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}
