//! Bodies the policy must read as the upstream will: form-urlencoded bodies parsed into
//! `input.request.body` (bracket keys as Stripe and the big form-encoded APIs use them),
//! bodies it cannot read refused unless the route forwards them opaque (and says so), and
//! method overrides seen as the method the upstream performs. The official Stripe SDK
//! drives `stripe_sdk.rs`, as an agent would.

use crate::harness::{
    assert_refusal, expect_status, Behaviour, Proxy, Reply, RouteSpec, Setup, Upstream, Workspace,
};
use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

/// Denies an `amount` over 100000 (compared as a number: form values are strings) and
/// tells the upstream what the policy saw.
pub(crate) const SEEING_POLICY: &str = r#"package lastmile

body := input.request.body if is_object(input.request.body)

default body := {}

decision := {"deny": deny, "add_headers": seen}

deny contains {"code": "amount_over_limit", "message": msg} if {
	to_number(body.amount) > 100000
	msg := sprintf("amount %v is over the limit of 100000", [body.amount])
}

seen := {
	"x-seen-body": json.marshal(input.request.body),
	"x-seen-method": input.request.method,
	"x-seen-opaque": json.marshal(object.get(input.request, "body_opaque", null)),
	"x-seen-amount-type": type_name(object.get(body, "amount", null)),
}
"#;

const FORM: &str = "application/x-www-form-urlencoded";

pub(crate) async fn start(
    routes: impl FnOnce(String) -> Vec<RouteSpec>,
) -> Result<(Upstream, Proxy)> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = Workspace::with_policy(SEEING_POLICY)?
        .start(&Setup::new(routes(upstream.url())))
        .await?;
    Ok((upstream, proxy))
}

async fn post(proxy: &Proxy, path: &str, headers: &[(&str, &str)], body: &str) -> Result<Reply> {
    proxy
        .request(Method::POST, path, headers, Bytes::from(body.to_string()))
        .await
}

/// What the policy saw, as the last upstream request's `x-seen-*` headers tell it.
pub(crate) fn seen(upstream: &Upstream, what: &str) -> Result<String> {
    let received = upstream.received();
    let last = received.last().context("nothing reached the upstream")?;
    last.header(&format!("x-seen-{what}"))
        .with_context(|| format!("no x-seen-{what} header: {last:?}"))
}

#[tokio::test]
async fn form_bodies_are_parsed_for_the_policy_and_forwarded_intact() -> Result<()> {
    let (upstream, proxy) = start(|u| vec![RouteSpec::new("pay", "/pay", u)]).await?;
    let body = "amount=250&metadata%5Border%5D=7&expand[]=a&expand[]=b\
                &items%5B0%5D%5Bprice%5D=p&items%5B1%5D%5Bprice%5D=q&note=au+lait%21";
    let reply = post(&proxy, "/pay/v1/refunds", &[("content-type", FORM)], body).await?;
    expect_status(&reply, 201)?;
    let sent = upstream.only_request()?;
    ensure!(sent.body == body.as_bytes());
    ensure!(sent.header("content-type").as_deref() == Some(FORM));
    let parsed: Value = serde_json::from_str(&seen(&upstream, "body")?)?;
    let expected = json!({
        "amount": "250",
        "metadata": {"order": "7"},
        "expand": ["a", "b"],
        "items": [{"price": "p"}, {"price": "q"}],
        "note": "au lait!",
    });
    ensure!(parsed == expected, "the policy saw {parsed}");
    ensure!(seen(&upstream, "amount-type")? == "string");
    ensure!(seen(&upstream, "opaque")? == "false");

    // The same rule applies to a form as to JSON: over the limit is denied.
    let reply = post(
        &proxy,
        "/pay/v1/refunds",
        &[("content-type", FORM)],
        "amount=250000",
    )
    .await?;
    let refusal = assert_refusal(&reply, 403, "denied")?;
    ensure!(
        refusal["error"]["reasons"][0]["code"] == "amount_over_limit",
        "{refusal}"
    );

    // Indices must run from 0 without a gap; a value cannot also be an object.
    for bad in [
        "items[1][price]=q",
        "items[0]=a&items[2]=b",
        "a[]=1&a[x]=2",
        "a[b=1",
        "=x",
    ] {
        let reply = post(&proxy, "/pay/v1/refunds", &[("content-type", FORM)], bad).await?;
        assert_refusal(&reply, 400, "invalid_form").map_err(|e| e.context(bad))?;
    }
    upstream
        .only_request()
        .context("a refused form reached the upstream")?;
    Ok(())
}

#[tokio::test]
async fn opaque_bodies_are_refused_unless_the_route_forwards_their_type() -> Result<()> {
    let (upstream, proxy) = start(|u| {
        vec![
            RouteSpec::new("crm", "/crm", u.clone()),
            RouteSpec::new("files", "/files", u.clone()).opaque_content_types(&["Text/Plain"]),
            RouteSpec::new("watch", "/watch", u).dry_run(),
        ]
    })
    .await?;
    for headers in [&[("content-type", "text/plain")][..], &[]] {
        let reply = post(&proxy, "/crm/v1/notes", headers, r#"{"forbidden": true}"#).await?;
        assert_refusal(&reply, 415, "unsupported_media_type")?;
    }
    // A body with no content type has no type to be listed.
    let reply = post(&proxy, "/files/v1/notes", &[], "hello").await?;
    assert_refusal(&reply, 415, "unsupported_media_type")?;
    upstream.nothing_received()?;

    // A listed type (matched on its essence, case-insensitively) goes through, flagged.
    let text = [("content-type", "text/plain; charset=utf-8")];
    let reply = post(&proxy, "/files/v1/notes", &text, "hello").await?;
    expect_status(&reply, 201)?;
    ensure!(seen(&upstream, "opaque")? == "true" && seen(&upstream, "body")? == "null");
    ensure!(upstream.received()[0].body == "hello".as_bytes());
    let octets = [("content-type", "application/octet-stream")];
    let reply = post(&proxy, "/files/v1/blobs", &octets, "\u{1}\u{2}").await?;
    assert_refusal(&reply, 415, "unsupported_media_type")?;

    // Dry-run routes observe: the body goes through, and the policy is told it is opaque.
    let reply = post(&proxy, "/watch/v1/notes", &octets, "\u{1}\u{2}").await?;
    expect_status(&reply, 201)?;
    ensure!(seen(&upstream, "opaque")? == "true");
    upstream.expect_requests(2)?;
    Ok(())
}

#[tokio::test]
async fn a_method_override_is_what_the_policy_judges_where_the_route_allows_one() -> Result<()> {
    let (upstream, proxy) = start(|u| {
        vec![
            RouteSpec::new("crm", "/crm", u.clone()),
            RouteSpec::new("legacy", "/legacy", u).allow_method_override(),
        ]
    })
    .await?;
    let json = ("content-type", "application/json");
    let reply = post(
        &proxy,
        "/crm/v1/x",
        &[json, ("x-http-method-override", "DELETE")],
        "{}",
    )
    .await?;
    assert_refusal(&reply, 400, "method_override")?;
    upstream.nothing_received()?;

    let reply = post(
        &proxy,
        "/legacy/v1/x",
        &[json, ("x-http-method-override", "DELETE")],
        "{}",
    )
    .await?;
    expect_status(&reply, 201)?;
    ensure!(seen(&upstream, "method")? == "DELETE");
    let received = upstream.received();
    ensure!(received[0].method == Method::POST);
    ensure!(received[0].header("x-http-method-override").as_deref() == Some("DELETE"));

    for overrides in [
        &[("x-http-method", "DELETE"), ("x-method-override", "DELETE")][..],
        &[
            ("x-http-method-override", "DELETE"),
            ("x-http-method-override", "PUT"),
        ],
        &[("x-http-method-override", "delete")],
        &[("x-http-method-override", "DELETE, PUT")],
    ] {
        let mut headers = vec![json];
        headers.extend_from_slice(overrides);
        let reply = post(&proxy, "/legacy/v1/x", &headers, "{}").await?;
        assert_refusal(&reply, 400, "method_override")
            .map_err(|e| e.context(format!("{overrides:?}")))?;
    }

    // The dedup fingerprint is the effective method's: a key reused for another one is refused.
    let key = ("idempotency-key", "override-1");
    let first = post(
        &proxy,
        "/legacy/v1/y",
        &[json, key, ("x-http-method-override", "PUT")],
        "{}",
    )
    .await?;
    expect_status(&first, 201)?;
    let other = post(
        &proxy,
        "/legacy/v1/y",
        &[json, key, ("x-http-method-override", "DELETE")],
        "{}",
    )
    .await?;
    assert_refusal(&other, 422, "idempotency_key_mismatch")?;
    upstream.expect_requests(2)?;
    Ok(())
}

/// Over 1000 needs approval; on the approved execution the policy must still read the
/// form (a body it cannot read is denied then), and tells the upstream what it saw.
const FORM_APPROVAL_POLICY: &str = r#"package lastmile

body := input.request.body if is_object(input.request.body)

default body := {}

decision := {"deny": deny, "approval": approval, "add_headers": {"x-seen-body": json.marshal(input.request.body)}}

approval contains {"code": "amount_over_limit", "message": "over 1000"} if to_number(body.amount) > 1000

deny contains {"code": "unread", "message": "the approved execution did not read the form"} if {
	input.approval != null
	not is_object(input.request.body)
}
"#;

#[tokio::test]
async fn an_approved_form_request_is_judged_on_the_same_reading() -> Result<()> {
    use crate::harness::approvals;
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = Workspace::with_policy(FORM_APPROVAL_POLICY)?
        .start(&approvals::setup(&upstream, |r| r))
        .await?;
    let body = "invoice=INV-1&amount=5000&metadata%5Border%5D=7";
    let reply = post(&proxy, "/crm/v1/refunds", &[("content-type", FORM)], body).await?;
    expect_status(&reply, 202)?;
    let id = reply.json()?["approval_id"]
        .as_str()
        .context("approval_id")?
        .to_string();
    upstream.nothing_received()?;

    let approved = approvals::decide(&proxy, "alice", &id, "approve", None).await?;
    expect_status(&approved, 200)?;
    ensure!(
        approved.json()?["state"] == "succeeded",
        "{}",
        approved.text()
    );
    let sent = upstream.only_request()?;
    ensure!(sent.body == body.as_bytes());
    let parsed: Value = serde_json::from_str(&seen(&upstream, "body")?)?;
    ensure!(
        parsed == json!({"invoice": "INV-1", "amount": "5000", "metadata": {"order": "7"}}),
        "{parsed}"
    );
    Ok(())
}
