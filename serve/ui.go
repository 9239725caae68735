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
	mux.HandleFunc("GET /v1/braid/runs", s.api(s.runs))
	mux.HandleFunc("GET /v1/braid/runs/{id}/report", s.api(s.runReport))
}

// runs lists the evaluation runs of the store the server was given.
func (s *Server) runs(w http.ResponseWriter, r *http.Request) {
	if s.opts.Runs == nil {
		writeJSON(w, http.StatusOK, map[string]any{"runs": []any{}, "note": "start braid serve with --db to show evaluation runs"})
		return
	}
	rs, err := s.opts.Runs.Runs(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	if rs == nil {
		rs = []store.Run{} // [] in JSON, not null
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": rs})
}

// runReport renders one run's report page (charts and tables).
func (s *Server) runReport(w http.ResponseWriter, r *http.Request) {
	if s.opts.Runs == nil {
		writeError(w, http.StatusNotFound, "not_found_error", "no evaluation store: start braid serve with --db")
		return
	}
	runs, err := report.Load(r.Context(), s.opts.Runs, r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, "not_found_error", err.Error())
		return
	}
	var b bytes.Buffer
	if err := report.HTML(&b, runs); err != nil {
		writeError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes())
}
