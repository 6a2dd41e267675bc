//! Shared by the approval tests: a policy that asks for approval, a config with the
//! queue on, and the agent's and approvers' calls.

use super::{expect_status, jwt, Proxy, Reply, RouteSpec, Setup, Upstream, Workspace, APPROVERS};
use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{json, Value};

/// Over 1000 needs approval; a paid invoice (in `data.billing.paid`) is denied; an
/// approved execution tells the upstream who approved it (from `input.approval`); the
/// invoice and amount are the dedup intent (shared across users when the body says
/// `"shared": true`).
pub const APPROVAL_POLICY: &str = r#"package lastmile

body := input.request.body if is_object(input.request.body)

default body := {}

decision := object.union({"deny": deny, "approval": approval, "add_headers": add_headers}, dedup)

deny contains {"code": "invoice_paid", "message": msg} if {
	body.invoice in data.billing.paid
	msg := sprintf("invoice %v is already paid", [body.invoice])
}

approval contains {"code": "amount_over_limit", "message": msg} if {
	body.amount > 1000
	msg := sprintf("amount %v is over the limit of 1000", [body.amount])
}

add_headers["x-approved-by"] := input.approval.approved_by if input.approval != null

add_headers["x-approval-id"] := input.approval.approval_id if input.approval != null

dedup := {"dedup": {"key": {"invoice": body.invoice, "amount": body.amount}, "window_seconds": 3600, "shared": object.get(body, "shared", false) == true}} if {
	input.request.method == "POST"
	is_string(body.invoice)
}

default dedup := {}
"#;

const UNPAID: &str = r#"{"billing": {"paid": []}}"#;

pub const AGENT_USER: &str = "u_agent_user";

pub fn token(name: &str) -> Result<&'static str> {
    APPROVERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .with_context(|| format!("no approver {name}"))
}

pub fn workspace() -> Result<Workspace> {
    let workspace = Workspace::with_policy(APPROVAL_POLICY)?;
    workspace.write("policies/data.json", UNPAID)?;
    Ok(workspace)
}

pub fn setup(upstream: &Upstream, route: impl FnOnce(RouteSpec) -> RouteSpec) -> Setup {
    base(upstream, route).approvals("")
}

/// One route to `upstream`, without the approvals block. The policy gets a generous
/// evaluation time: on a loaded machine the 100 ms default can run out, and a policy
/// error on re-evaluation would fail an approval these tests expect to execute.
pub fn base(upstream: &Upstream, route: impl FnOnce(RouteSpec) -> RouteSpec) -> Setup {
    Setup::new(vec![route(RouteSpec::new("crm", "/crm", upstream.url()))]).eval_timeout_ms(5_000)
}

pub async fn start(upstream: &Upstream) -> Result<Proxy> {
    workspace()?.start(&setup(upstream, |r| r)).await
}

/// The agent's refund request, as `user`.
pub async fn refund(proxy: &Proxy, user: &str, invoice: &str, amount: u64) -> Result<Reply> {
    let token = jwt::token(user, "crm.read crm.write")?;
    proxy
        .post_json(
            "/crm/v1/refunds",
            &[
                ("x-lastmile-user", &token),
                ("authorization", "Bearer agent-secret"),
            ],
            &json!({"invoice": invoice, "amount": amount, "note": "customer asked"}),
        )
        .await
}

/// Parks a refund and returns its approval id.
pub async fn park(proxy: &Proxy, invoice: &str) -> Result<String> {
    let reply = refund(proxy, AGENT_USER, invoice, 5000).await?;
    expect_status(&reply, 202)?;
    let body = reply.json()?;
    body["approval_id"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no approval_id in {body}"))
}

pub async fn poll(proxy: &Proxy, user: &str, id: &str, wait: &str) -> Result<Reply> {
    let token = jwt::token(user, "crm.read crm.write")?;
    proxy
        .get(
            &format!("/_lastmile/approvals/{id}{wait}"),
            &[("x-lastmile-user", &token)],
        )
        .await
}

pub async fn decide(
    proxy: &Proxy,
    approver: &str,
    id: &str,
    action: &str,
    comment: Option<&str>,
) -> Result<Reply> {
    let body = comment.map(|c| json!({ "comment": c }));
    proxy
        .admin_call(
            Method::POST,
            &format!("/approvals/{id}/{action}"),
            Some(token(approver)?),
            body.as_ref(),
        )
        .await
}

pub async fn show(proxy: &Proxy, id: &str) -> Result<Value> {
    let reply = proxy
        .admin_call(
            Method::GET,
            &format!("/approvals/{id}"),
            Some(token("alice")?),
            None,
        )
        .await?;
    expect_status(&reply, 200).context("show")?;
    reply.json()
}

/// A request on the admin port's approvals page, with a form body when `form` is
/// not empty.
pub async fn page_send(
    proxy: &Proxy,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    form: &str,
) -> Result<Reply> {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", proxy.admin));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    if !form.is_empty() {
        builder = builder.header("content-type", "application/x-www-form-urlencoded");
    }
    super::client::send(
        &super::client::http_client(),
        builder.body(Full::new(Bytes::from(form.to_string())))?,
    )
    .await
}

/// `pairs` as an `application/x-www-form-urlencoded` body.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}
