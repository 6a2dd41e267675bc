//! The approvers' web page on the admin port: server-rendered HTML, no script at all.
//!
//! - Sign-in exchanges an approver token for a session cookie (`HttpOnly`,
//!   `SameSite=Strict`, path `/ui`); sessions live in memory, so a restart signs out.
//! - Every value from a request or the store is HTML-escaped; the CSP forbids scripts
//!   outright, so even an escaping mistake could not run one.
//! - Every form post must carry the session's CSRF token, and a browser's `Origin` /
//!   `Sec-Fetch-Site` must say same-origin.
//! - `frame-ancestors 'none'` and `X-Frame-Options: DENY` stop clickjacking.

use super::api::{self, check_comment, ApproverSide};
use super::auth::Approver;
use super::rfc3339;
use super::store::{Approval, Filter, State};
use crate::pipeline::ResponseBody;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const COOKIE: &str = "lastmile_approver";
const SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);
/// Sessions beyond this many are refused rather than grown without bound.
const MAX_SESSIONS: usize = 10_000;

struct Session {
    approver: Approver,
    csrf: String,
    expires: Instant,
}

/// Signed-in approvers, by session id.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    fn create(&self, approver: Approver) -> Option<String> {
        let id = super::new_id().ok()?;
        let csrf = super::new_id().ok()?;
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            return None;
        }
        map.insert(
            id.clone(),
            Session {
                approver,
                csrf,
                expires: now + SESSION_TTL,
            },
        );
        Some(id)
    }

    /// The approver and CSRF token of the request's session, if it is live.
    fn find(&self, headers: &HeaderMap) -> Option<(Approver, String)> {
        let id = cookie(headers, COOKIE)?;
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&id)
            .filter(|s| s.expires > Instant::now())
            .map(|s| (s.approver.clone(), s.csrf.clone()))
    }

    fn remove(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE) {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
        }
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

impl ApproverSide {
    pub(super) async fn page(&self, request: Request<Incoming>) -> Response<ResponseBody> {
        let path = request.uri().path().to_string();
        let method = request.method().clone();
        match (method, path.as_str()) {
            (Method::GET, "/ui" | "/ui/") => redirect("/ui/approvals", None),
            (Method::GET, "/ui/approvals") => {
                let notice = form_value(request.uri().query().unwrap_or(""), "notice");
                match self.sessions.find(request.headers()) {
                    Some((approver, csrf)) => self.page_list(&approver, &csrf, notice).await,
                    None => login_page(None),
                }
            }
            (Method::POST, "/ui/login") => self.login(request).await,
            (Method::POST, "/ui/logout") => {
                if !same_origin(request.headers()) {
                    return forbidden("cross-origin request refused");
                }
                self.sessions.remove(request.headers());
                redirect("/ui/approvals", Some(clear_cookie()))
            }
            (Method::POST, p) => match p
                .strip_prefix("/ui/approvals/")
                .and_then(|rest| rest.split_once('/'))
            {
                Some((id, action @ ("approve" | "deny"))) => {
                    let (id, action) = (id.to_string(), action.to_string());
                    self.page_decide(request, &id, &action).await
                }
                _ => page_error(StatusCode::NOT_FOUND, "No such page."),
            },
            _ => page_error(StatusCode::NOT_FOUND, "No such page."),
        }
    }

    async fn login(&self, request: Request<Incoming>) -> Response<ResponseBody> {
        if !same_origin(request.headers()) {
            return forbidden("cross-origin request refused");
        }
        let body = match api::read_body(request).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        let token = form_value(&String::from_utf8_lossy(&body), "token").unwrap_or_default();
        match self.auth.check(token.trim()) {
            Ok(approver) => match self.sessions.create(approver) {
                Some(id) => {
                    let cookie = format!(
                        "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}",
                        SESSION_TTL.as_secs()
                    );
                    redirect("/ui/approvals", Some(cookie))
                }
                None => page_error(StatusCode::SERVICE_UNAVAILABLE, "Too many sessions."),
            },
            Err(e) => {
                let mut response = login_page(Some(&e.to_string()));
                *response.status_mut() = StatusCode::UNAUTHORIZED;
                response
            }
        }
    }

    async fn page_decide(
        &self,
        request: Request<Incoming>,
        id: &str,
        action: &str,
    ) -> Response<ResponseBody> {
        let Some((approver, csrf)) = self.sessions.find(request.headers()) else {
            return redirect("/ui/approvals", None);
        };
        if !same_origin(request.headers()) {
            return forbidden("cross-origin request refused");
        }
        let body = match api::read_body(request).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        let form = String::from_utf8_lossy(&body).into_owned();
        let sent = form_value(&form, "csrf").unwrap_or_default();
        if !super::auth::constant_time_eq(sent.as_bytes(), csrf.as_bytes()) {
            return forbidden("the form's CSRF token is missing or stale; reload the page");
        }
        let comment = match check_comment(form_value(&form, "comment")) {
            Ok(comment) => comment,
            Err(too_long) => return too_long.response(),
        };
        let to = if action == "approve" {
            State::Approved
        } else {
            State::Denied
        };
        let notice = match self.apply(id, &approver, comment, to).await {
            Ok(a) => format!("Approval {} is now {}.", a.id, a.state.as_str()),
            Err(e) => {
                let response = api::decide_error(e);
                let status = response.status();
                let text = response
                    .into_body()
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                let message = serde_json::from_slice::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                    .unwrap_or_else(|| status.to_string());
                format!("Not done: {message}")
            }
        };
        let location = format!(
            "/ui/approvals?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("notice", &notice)
                .finish()
        );
        redirect(&location, None)
    }

    async fn page_list(
        &self,
        approver: &Approver,
        csrf: &str,
        notice: Option<String>,
    ) -> Response<ResponseBody> {
        let pending = self
            .approvals
            .list(Filter {
                state: Some(State::Pending),
                limit: 200,
                ..Filter::default()
            })
            .await;
        let recent = self
            .approvals
            .list(Filter {
                limit: 100,
                ..Filter::default()
            })
            .await;
        let (pending, recent) = match (pending, recent) {
            (Ok(p), Ok(r)) => (p, r),
            _ => {
                return page_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The approval store is unavailable.",
                )
            }
        };
        let now = self.approvals.now_ms();
        let mut html = String::new();
        let _ = write!(
            html,
            "<header><h1>Pending approvals</h1><p>Signed in as <b id=\"approver\">{}</b>. \
             <form method=\"post\" action=\"/ui/logout\" class=\"inline\">\
             <button type=\"submit\">Sign out</button></form></p></header>",
            esc(&approver.name)
        );
        if let Some(notice) = notice {
            let _ = write!(
                html,
                "<p id=\"notice\" role=\"status\">{}</p>",
                esc(&notice)
            );
        }
        if pending.is_empty() {
            html.push_str("<p id=\"empty\">Nothing is waiting for a decision.</p>");
        }
        for a in &pending {
            pending_card(&mut html, a, now, csrf, approver);
        }
        html.push_str(
            "<h2>History</h2><table id=\"history\"><thead><tr><th>created</th><th>id</th>\
             <th>route</th><th>user</th><th>state</th><th>decided by</th><th>comment</th>\
             <th>upstream</th></tr></thead><tbody>",
        );
        for a in recent.iter().filter(|a| a.state != State::Pending) {
            let _ = write!(
                html,
                "<tr id=\"history-{id}\" data-state=\"{state}\"><td>{created}</td><td><code>{id}</code></td>\
                 <td>{route}</td><td>{user}</td><td class=\"state\">{state}</td><td>{by}</td>\
                 <td>{comment}</td><td>{upstream}</td></tr>",
                id = esc(&a.id),
                state = esc(a.state.as_str()),
                created = esc(&rfc3339(a.created_ms)),
                route = esc(&a.route),
                user = esc(a.user.as_deref().unwrap_or("-")),
                by = esc(a.decided_by.as_deref().unwrap_or("-")),
                comment = esc(a.comment.as_deref().unwrap_or("")),
                upstream = a
                    .response
                    .as_ref()
                    .map(|r| r.status.to_string())
                    .or_else(|| a.failure.as_ref().map(|f| esc(&f.code)))
                    .unwrap_or_default(),
            );
        }
        html.push_str("</tbody></table>");
        document("Pending approvals", &html)
    }
}

fn pending_card(html: &mut String, a: &Approval, now: u64, csrf: &str, approver: &Approver) {
    let summary = serde_json::to_string_pretty(&a.summary).unwrap_or_default();
    let age = now.saturating_sub(a.created_ms) / 1000;
    let own = a.user.as_deref() == Some(approver.name.as_str());
    let _ = write!(
        html,
        "<article id=\"approval-{id}\" data-state=\"{state}\"><h3><code>{id}</code> on {route}</h3>\
         <p>Requested by <b class=\"user\">{user}</b>, {age} ago; expires {expires}.</p><ul class=\"reasons\">",
        id = esc(&a.id),
        state = esc(a.state.as_str()),
        route = esc(&a.route),
        user = esc(a.user.as_deref().unwrap_or("(no user)")),
        age = esc(&humantime::format_duration(Duration::from_secs(age)).to_string()),
        expires = esc(&rfc3339(a.expires_ms)),
    );
    for r in &a.reasons {
        let _ = write!(
            html,
            "<li><code>{}</code> {}</li>",
            esc(&r.code),
            esc(&r.message)
        );
    }
    let _ = write!(html, "</ul><pre class=\"request\">{}</pre>", esc(&summary));
    if own {
        html.push_str("<p>This is your own request: another approver must decide it.</p>");
    } else {
        for (action, label) in [("approve", "Approve and execute"), ("deny", "Deny")] {
            let _ = write!(
                html,
                "<form method=\"post\" action=\"/ui/approvals/{id}/{action}\" class=\"{action}\" \
                 data-action=\"{action}\" data-id=\"{id}\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <label>Comment <textarea name=\"comment\" maxlength=\"2000\"></textarea></label>\
                 <button type=\"submit\">{label}</button></form>",
                id = esc(&a.id),
                csrf = esc(csrf),
            );
        }
    }
    html.push_str("</article>");
}

fn login_page(problem: Option<&str>) -> Response<ResponseBody> {
    let mut html = String::from("<h1>Approvals: sign in</h1>");
    if let Some(problem) = problem {
        let _ = write!(
            html,
            "<p id=\"problem\" role=\"alert\">{}</p>",
            esc(problem)
        );
    }
    html.push_str(
        "<form method=\"post\" action=\"/ui/login\" id=\"login\">\
         <label>Approver token <input type=\"password\" name=\"token\" autocomplete=\"off\" required></label>\
         <button type=\"submit\">Sign in</button></form>",
    );
    document("Approvals: sign in", &html)
}

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:2em;max-width:70em}\
article{border:1px solid #bbb;border-radius:6px;padding:0 1em 1em;margin:1em 0}\
pre{background:#f4f4f4;padding:.5em;overflow:auto}form{display:inline-block;margin-right:1em}\
form.inline{display:inline}textarea{display:block;width:22em;height:3em}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}\
.approve button{background:#2a7;color:#fff}.deny button{background:#c33;color:#fff}";

/// A complete page with the security headers every page gets.
fn document(title: &str, body: &str) -> Response<ResponseBody> {
    let nonce = super::new_id().unwrap_or_default();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style nonce=\"{nonce}\">{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    );
    let mut response = respond(StatusCode::OK, html);
    if let Ok(csp) = HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    )) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

fn respond(status: StatusCode, html: String) -> Response<ResponseBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(html))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: under it browsers send `Origin: null` on form posts, which the
    // same-origin check must refuse.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn page_error(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let mut response = document(
        "Approvals",
        &format!("<p role=\"alert\">{}</p>", esc(message)),
    );
    *response.status_mut() = status;
    response
}

fn forbidden(message: &str) -> Response<ResponseBody> {
    page_error(StatusCode::FORBIDDEN, message)
}

/// `303 See Other` (post/redirect/get), optionally setting a cookie.
fn redirect(location: &str, cookie: Option<String>) -> Response<ResponseBody> {
    let mut response = respond(StatusCode::SEE_OTHER, String::new());
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// A browser tells where a form post came from; anything but this origin is refused.
/// Clients that send neither header (curl) still need the session and its CSRF token.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        if site.as_bytes() != b"same-origin" {
            return false;
        }
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
            host.is_some_and(|host| {
                origin == format!("http://{host}") || origin == format!("https://{host}")
            })
        }
    }
}

fn form_value(form: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(form.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }

    #[test]
    fn origin_checks() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:15002"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:15002"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
    }
}
