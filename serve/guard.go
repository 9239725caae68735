package serve

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// guard refuses what a browser sends on behalf of a page the server does
// not trust, before any handler runs: a request whose Host is not
// loopback's while the server listens on loopback (a page on a domain
// that resolves to 127.0.0.1: DNS rebinding), and a request from another
// origin (a cross-origin POST of text/plain needs no preflight, so the
// browser would deliver it) unless AllowOrigins names it. Allowed origins
// get CORS headers and their preflights an answer.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.loopback.Load() && !s.hostAllowed(r.Host) {
			s.writeError(w, r, forbidden("Host %q is not this server's: it listens on loopback, and answers localhost, loopback addresses and --allow-host names", r.Host))
			return
		}
		origin := r.Header.Get("Origin")
		switch {
		case origin == "":
			// Not a browser's cross-origin request, or one that a browser
			// marks cross-site without an Origin (some GETs): refuse those
			// that could change anything.
			if r.Header.Get("Sec-Fetch-Site") == "cross-site" && r.Method != http.MethodGet && r.Method != http.MethodHead {
				s.writeError(w, r, forbidden("cross-site requests are refused"))
				return
			}
		case sameOrigin(origin, r.Host):
		case s.originAllowed(origin):
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		default:
			s.writeError(w, r, forbidden("origin %q may not call this server: start it with --allow-origin %s to allow it", origin, origin))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostAllowed says whether a server on loopback answers Host host:
// localhost (and its subdomains, which resolve to loopback by RFC 6761),
// a loopback address, or one of AllowHosts.
func (s *Server) hostAllowed(host string) bool {
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	name = strings.ToLower(strings.TrimSuffix(strings.Trim(name, "[]"), "."))
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	if ip := net.ParseIP(name); ip != nil && ip.IsLoopback() {
		return true
	}
	return slices.ContainsFunc(s.opts.AllowHosts, func(a string) bool { return strings.EqualFold(a, name) })
}

func (s *Server) originAllowed(origin string) bool {
	return slices.ContainsFunc(s.opts.AllowOrigins, func(a string) bool { return a == "*" || strings.EqualFold(a, origin) })
}

// sameOrigin says whether a browser's Origin is the server's own, as the
// request's Host names it: the UI's own calls.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && strings.EqualFold(u.Host, host)
}

// validOrigin says whether o is an origin as browsers send it:
// scheme://host[:port], nothing after.
func validOrigin(o string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Path == "" && u.RawQuery == "" && u.User == nil
}
