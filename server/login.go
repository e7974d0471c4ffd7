package server

import (
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>ciclo: log in</title></head>
<body style="font-family: sans-serif; max-width: 24rem; margin: 3rem auto">
<h1>ciclo</h1>
{{if .LoggedIn}}<p>You are logged in.</p><p><a href="{{.Next}}">Continue</a></p>
<form method="post" action="/logout"><button type="submit">Log out</button></form>
{{else}}{{if .Error}}<p role="alert" style="color: #b00">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="next" value="{{.Next}}">
{{if .User}}<p><label>User<br><input name="user" autocomplete="username"></label></p>{{end}}
<p><label>Password<br><input name="password" type="password" autocomplete="current-password" required autofocus></label></p>
<p><small>{{if .User}}The UI user (CICLO_UI_USER, CICLO_UI_PASSWORD), or any user with the API token as password.{{else}}The API token (CICLO_API_TOKEN).{{end}}</small></p>
<button type="submit">Log in</button>
</form>{{end}}
</body></html>`))

// loginRoutes are the browser login: a form, its post, and logout. The
// posts refuse other origins, so no page can log a browser in or out.
func (o *Ops) loginRoutes() []Route {
	return []Route{
		{Pattern: "GET /login", Auth: AuthPublic, Timeout: o.cfg.RequestTimeout, Handler: http.HandlerFunc(o.loginForm)},
		{Pattern: "POST /login", Auth: AuthPublic, SameOrigin: true, MaxBody: maxFormBody, Timeout: o.cfg.RequestTimeout, Handler: http.HandlerFunc(o.login)},
		{Pattern: "POST /logout", Auth: AuthPublic, SameOrigin: true, MaxBody: maxFormBody, Timeout: o.cfg.RequestTimeout, Handler: http.HandlerFunc(o.logout)},
	}
}

func (o *Ops) loginForm(w http.ResponseWriter, r *http.Request) {
	o.renderLogin(w, r, http.StatusOK, "")
}

// login checks the form and sets the session cookie: 303 to next, or 401
// with the form again and no cookie.
func (o *Ops) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "malformed login form: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !o.auth.checkLogin(r.PostForm.Get("user"), r.PostForm.Get("password")) {
		o.cfg.Logger.WarnContext(r.Context(), "server: login failed")
		o.renderLogin(w, r, http.StatusUnauthorized, "Wrong user or password.")
		return
	}
	value, expires := o.auth.newSession()
	http.SetCookie(w, o.auth.sessionCookie(value, expires))
	http.Redirect(w, r, o.safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

// logout clears the session cookie and shows the login form.
func (o *Ops) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, o.auth.sessionCookie("", time.Time{}))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (o *Ops) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The login form must not be framed by another site (clickjacking).
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
	w.WriteHeader(status)
	_ = loginPage.Execute(w, map[string]any{
		"Error": msg, "Next": o.safeNext(r.FormValue("next")), "User": o.auth.basicEnabled(),
		"LoggedIn": status == http.StatusOK && o.auth.uiAuthorized(r),
	})
}

// safeNext keeps a redirect target on this site: a local path, else the
// default page. "//host" and "/\host" would leave it.
func (o *Ops) safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.HasPrefix(next, `/\`) || u.Host != "" || u.Scheme != "" {
		if o.cfg.RiverUI != nil {
			return "/riverui/"
		}
		return "/login"
	}
	return u.RequestURI()
}
