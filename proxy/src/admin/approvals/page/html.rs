//! Rendering: every value escaped, and the headers every page carries.

use super::session::COOKIE;
use crate::approval::auth::Approver;
use crate::approval::rfc3339;
use crate::approval::store::Approval;
use crate::response::{self, ResponseBody};
use http::{header, HeaderValue, Response, StatusCode};
use std::fmt::Write as _;
use std::time::Duration;

pub fn pending_card(html: &mut String, a: &Approval, now: u64, csrf: &str, approver: &Approver) {
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

pub fn login_page(problem: Option<&str>) -> Response<ResponseBody> {
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
pub fn document(title: &str, body: &str) -> Response<ResponseBody> {
    let nonce = crate::approval::new_id().unwrap_or_default();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style nonce=\"{nonce}\">{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    );
    let mut response = response::html(StatusCode::OK, html);
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

pub fn page_error(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let mut response = document(
        "Approvals",
        &format!("<p role=\"alert\">{}</p>", esc(message)),
    );
    *response.status_mut() = status;
    response
}

pub fn forbidden(message: &str) -> Response<ResponseBody> {
    page_error(StatusCode::FORBIDDEN, message)
}

/// `303 See Other` (post/redirect/get), optionally setting a cookie.
pub fn redirect(location: &str, cookie: Option<String>) -> Response<ResponseBody> {
    let mut response = response::html(StatusCode::SEE_OTHER, String::new());
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0")
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
}
