//! The approvers' web page on the admin port: server-rendered HTML, no script at all.
//!
//! - Sign-in exchanges an approver token for a session cookie (`HttpOnly`,
//!   `SameSite=Strict`, path `/ui`); sessions live in memory, so a restart signs out,
//!   and every request checks the session's credential again, so revoking it signs out.
//! - Every value from a request or the store is HTML-escaped; the CSP forbids scripts
//!   outright, so even an escaping mistake could not run one.
//! - Every form post must carry the session's CSRF token, and a browser's `Origin` /
//!   `Sec-Fetch-Site` must say same-origin.
//! - `frame-ancestors 'none'` and `X-Frame-Options: DENY` stop clickjacking.

mod html;
mod list;
mod session;

use super::api::{self, check_comment};
use super::ApproverSide;
use crate::approval::auth::Approver;
use crate::approval::store::{Filter, State};
use crate::response::ResponseBody;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use subtle::ConstantTimeEq;

use html::{clear_cookie, document, forbidden, login_page, page_error, redirect};
pub use session::Sessions;
use session::{form_value, same_origin, SignedIn, COOKIE, SESSION_TTL};

impl ApproverSide {
    pub(super) async fn page(&self, request: Request<Incoming>) -> Response<ResponseBody> {
        let path = request.uri().path().to_string();
        let method = request.method().clone();
        match (method, path.as_str()) {
            (Method::GET, "/ui" | "/ui/") => redirect("/ui/approvals", None),
            (Method::GET, "/ui/approvals") => {
                let notice = form_value(request.uri().query().unwrap_or(""), "notice");
                match self.signed_in(request.headers()) {
                    Some(session) => {
                        self.page_list(&session.approver, &session.csrf, notice)
                            .await
                    }
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

    /// The request's live session, its credential checked again: a session whose
    /// credential no longer passes (or now names someone else) is ended here.
    fn signed_in(&self, headers: &http::HeaderMap) -> Option<SignedIn> {
        let session = self.sessions.find(headers)?;
        match self.auth.check(&session.credential) {
            Ok(now) if now.name == session.approver.name => Some(SignedIn {
                approver: now,
                ..session
            }),
            _ => {
                self.sessions.remove(headers);
                None
            }
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
            Ok(approver) => match self.sessions.create(approver, token.trim()) {
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
        let Some(SignedIn { approver, csrf, .. }) = self.signed_in(request.headers()) else {
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
        if !bool::from(sent.as_bytes().ct_eq(csrf.as_bytes())) {
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
        let Some(lists) = self.lists().await else {
            return page_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "The approval store is unavailable.",
            );
        };
        let html = list::render(&lists, approver, csrf, notice.as_deref());
        document("Pending approvals", &html)
    }

    /// Up to 200 pending approvals and the 100 most recent; `None` when the store
    /// cannot answer.
    async fn lists(&self) -> Option<list::Lists> {
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
        Some(list::Lists {
            pending: pending.ok()?,
            recent: recent.ok()?,
            now_ms: self.approvals.now_ms(),
        })
    }
}
