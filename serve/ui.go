package serve

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"

	"github.com/braid-dev/braid/report"
	"github.com/braid-dev/braid/store"
)

// The web UI: static files embedded in the binary (no build step, no
// CDN), and two endpoints that give it the evaluation runs.
//
//go:embed ui
var uiFiles embed.FS

func (s *Server) ui(mux *http.ServeMux) {
	static, _ := fs.Sub(uiFiles, "ui")
	files := http.FileServerFS(static)
	mux.Handle("GET /{$}", files)
	mux.Handle("GET /ui/", http.StripPrefix("/ui/", files))
	mux.Handle("GET /v1/braid/runs", s.api(kindRead, s.runs))
	mux.Handle("GET /v1/braid/runs/{id}/report", s.api(kindRead, s.runReport))
}

// runs lists the evaluation runs of the store the server was given.
func (s *Server) runs(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Runs == nil {
		writeJSON(w, http.StatusOK, map[string]any{"runs": []any{}, "note": "start braid serve with --db to show evaluation runs"})
		return nil
	}
	rs, err := s.opts.Runs.Runs(r.Context())
	if err != nil {
		return internal(err)
	}
	if rs == nil {
		rs = []store.Run{} // [] in JSON, not null
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": rs})
	return nil
}

// runReport renders one run's report page (charts and tables).
func (s *Server) runReport(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Runs == nil {
		return notFound("no evaluation store: start braid serve with --db")
	}
	runs, err := report.Load(r.Context(), s.opts.Runs, r.PathValue("id"))
	if err != nil {
		return notFound("%w", err)
	}
	var b bytes.Buffer
	if err := report.HTML(&b, runs); err != nil {
		return internal(err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", reportPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(b.Bytes())
	return nil
}

// reportPolicy allows a report page, opened on its own, only what it uses:
// its inline style and its inline self-check script (which measures the
// charts). Nothing is loaded or sent, and the sandbox gives the page an
// origin of its own, away from the UI's API key. The UI's iframe carries
// the same sandbox (index.html): a page written into it through srcdoc
// gets no headers.
const reportPolicy = "sandbox allow-scripts; default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
