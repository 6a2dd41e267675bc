//! The list page's HTML: who is signed in, the pending cards, and the history table.

use super::html::{esc, pending_card};
use crate::approval::auth::Approver;
use crate::approval::rfc3339;
use crate::approval::store::{Approval, State};
use std::fmt::Write as _;

/// The two lists the page shows, read from the store together.
pub struct Lists {
    pub pending: Vec<Approval>,
    pub recent: Vec<Approval>,
    pub now_ms: u64,
}

/// The page body: the pending approvals as cards to decide on, then the decided ones.
pub fn render(lists: &Lists, approver: &Approver, csrf: &str, notice: Option<&str>) -> String {
    let mut html = String::new();
    header(&mut html, approver, notice);
    if lists.pending.is_empty() {
        html.push_str("<p id=\"empty\">Nothing is waiting for a decision.</p>");
    }
    for a in &lists.pending {
        pending_card(&mut html, a, lists.now_ms, csrf, approver);
    }
    history(&mut html, &lists.recent);
    html
}

/// Names the signed-in approver (with a way out) and shows the last action's notice.
fn header(html: &mut String, approver: &Approver, notice: Option<&str>) {
    let _ = write!(
        html,
        "<header><h1>Pending approvals</h1><p>Signed in as <b id=\"approver\">{}</b>. \
         <form method=\"post\" action=\"/ui/logout\" class=\"inline\">\
         <button type=\"submit\">Sign out</button></form></p></header>",
        esc(&approver.name)
    );
    if let Some(notice) = notice {
        let _ = write!(html, "<p id=\"notice\" role=\"status\">{}</p>", esc(notice));
    }
}

/// The decided approvals among the recent ones, a row each.
fn history(html: &mut String, recent: &[Approval]) {
    html.push_str(
        "<h2>History</h2><table id=\"history\"><thead><tr><th>created</th><th>id</th>\
         <th>route</th><th>user</th><th>state</th><th>decided by</th><th>comment</th>\
         <th>upstream</th></tr></thead><tbody>",
    );
    for a in recent.iter().filter(|a| a.state != State::Pending) {
        history_row(html, a);
    }
    html.push_str("</tbody></table>");
}

fn history_row(html: &mut String, a: &Approval) {
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
