//! The approvers' web page: its security headers, sign-in, CSRF and origin checks over
//! plain HTTP, and the whole flow in a real headless Chromium driven over WebDriver.

use crate::harness::approvals::{form, page_send as send, park, poll, start, token, AGENT_USER};
use crate::harness::upstream::CREATED_BODY;
use crate::harness::webdriver::Browser;
use crate::harness::{eventually, expect_status, jwt, Behaviour, Proxy, Upstream};
use anyhow::{ensure, Context, Result};
use http::Method;
use serde_json::json;
use std::time::Duration;

const XSS: &str = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">";

/// Parks a refund whose body carries markup, as `AGENT_USER`.
async fn park_with_markup(proxy: &Proxy) -> Result<String> {
    let token = jwt::token(AGENT_USER, "crm.read crm.write")?;
    let reply = proxy
        .post_json(
            "/crm/v1/refunds",
            &[("x-lastmile-user", &token)],
            &json!({"invoice": "INV-00000077", "amount": 4200, "note": XSS}),
        )
        .await?;
    expect_status(&reply, 202)?;
    Ok(reply.json()?["approval_id"]
        .as_str()
        .context("id")?
        .to_string())
}

#[tokio::test]
async fn the_approval_page_is_escaped_framed_never_and_guarded_against_csrf() -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&upstream).await?;
    let id = park_with_markup(&proxy).await?;

    let login = send(&proxy, Method::GET, "/ui/approvals", &[], "").await?;
    expect_status(&login, 200)?;
    ensure!(login.text().contains("name=\"token\""));
    let csp = login.header("content-security-policy").unwrap_or_default();
    ensure!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    ensure!(csp.contains("default-src 'none'"), "{csp}");
    ensure!(login.header("x-frame-options").as_deref() == Some("DENY"));
    ensure!(login.header("x-content-type-options").as_deref() == Some("nosniff"));

    let wrong = send(
        &proxy,
        Method::POST,
        "/ui/login",
        &[],
        &form(&[("token", "nope")]),
    )
    .await?;
    expect_status(&wrong, 401)?;
    let alice = token("alice")?;
    let cross = send(
        &proxy,
        Method::POST,
        "/ui/login",
        &[("origin", "http://evil.example")],
        &form(&[("token", alice)]),
    )
    .await?;
    expect_status(&cross, 403).context("cross-origin sign-in")?;
    let signed_in = send(
        &proxy,
        Method::POST,
        "/ui/login",
        &[],
        &form(&[("token", alice)]),
    )
    .await?;
    expect_status(&signed_in, 303)?;
    let set_cookie = signed_in
        .header("set-cookie")
        .context("no session cookie")?;
    ensure!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap_or("").to_string();

    let page = send(
        &proxy,
        Method::GET,
        "/ui/approvals",
        &[("cookie", &cookie)],
        "",
    )
    .await?;
    let html = page.text();
    expect_status(&page, 200)?;
    ensure!(html.contains(&format!("id=\"approval-{id}\"")), "{html}");
    ensure!(
        !html.contains("<script") && !html.contains("<img"),
        "unescaped markup: {html}"
    );
    ensure!(
        html.contains("&lt;script&gt;window.__xss=1&lt;/script&gt;"),
        "{html}"
    );
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no csrf field")?
        .to_string();

    let path = format!("/ui/approvals/{id}/approve");
    let no_csrf = send(
        &proxy,
        Method::POST,
        &path,
        &[("cookie", &cookie)],
        &form(&[("comment", "x")]),
    )
    .await?;
    expect_status(&no_csrf, 403).context("without the CSRF token")?;
    let cross_site = send(
        &proxy,
        Method::POST,
        &path,
        &[("cookie", &cookie), ("sec-fetch-site", "cross-site")],
        &form(&[("csrf", &csrf)]),
    )
    .await?;
    expect_status(&cross_site, 403).context("cross-site post")?;
    upstream.nothing_received()?;

    let approved = send(
        &proxy,
        Method::POST,
        &path,
        &[
            ("cookie", &cookie),
            ("origin", &format!("http://{}", proxy.admin)),
        ],
        &form(&[("csrf", &csrf), ("comment", "ok <b>bold</b>")]),
    )
    .await?;
    expect_status(&approved, 303)?;
    upstream.only_request()?;
    let history = send(
        &proxy,
        Method::GET,
        "/ui/approvals",
        &[("cookie", &cookie)],
        "",
    )
    .await?;
    ensure!(
        history.text().contains("ok &lt;b&gt;bold&lt;/b&gt;"),
        "{}",
        history.text()
    );
    Ok(())
}

#[tokio::test]
async fn an_approver_approves_in_a_real_browser() -> Result<()> {
    let Some(mut browser) = Browser::start().await? else {
        return Ok(()); // no Chromium here; Browser::start printed why (and fails under CI)
    };
    let result = browser_flow(&mut browser).await;
    browser.quit().await;
    result
}

async fn browser_flow(browser: &mut Browser) -> Result<()> {
    let upstream = Upstream::start(Behaviour::created()).await?;
    let proxy = start(&upstream).await?;
    let id = park_with_markup(&proxy).await?;
    let plain = park(&proxy, "INV-00000078").await?;

    browser
        .open(&format!("http://{}/ui/approvals", proxy.admin))
        .await?;
    let token_field = browser.find("input[name=token]").await?;
    browser.type_into(&token_field, token("bob")?).await?;
    browser
        .click(&browser.find("#login button[type=submit]").await?)
        .await?;
    browser.wait_for(&format!("#approval-{id}")).await?;

    // The markup in the request body is shown as text and never became elements.
    let shown = browser.text(&format!("#approval-{id} pre.request")).await?;
    ensure!(shown.contains("<script>window.__xss=1</script>"), "{shown}");
    let injected = browser
        .script("return [document.querySelectorAll('article script, article img').length, typeof window.__xss]")
        .await?;
    ensure!(
        injected == json!([0, "undefined"]),
        "markup became live: {injected}"
    );

    let comment = browser
        .find(&format!(
            "form[data-action=approve][data-id=\"{id}\"] textarea"
        ))
        .await?;
    browser
        .type_into(&comment, "checked with the customer")
        .await?;
    browser
        .click(
            &browser
                .find(&format!(
                    "form[data-action=approve][data-id=\"{id}\"] button"
                ))
                .await?,
        )
        .await?;
    browser
        .wait_for(&format!("#history-{id}[data-state=succeeded]"))
        .await?;
    let notice = browser.text("#notice").await?;
    ensure!(notice.contains("succeeded"), "{notice}");
    ensure!(
        browser.text(&format!("#approval-{plain}")).await.is_ok(),
        "the other one is still pending"
    );
    upstream.only_request().context("one upstream call")?;
    let done = poll(&proxy, AGENT_USER, &id, "").await?;
    expect_status(&done, 201)?;
    ensure!(done.text() == CREATED_BODY);

    // The browser then denies the other one.
    browser
        .click(
            &browser
                .find(&format!(
                    "form[data-action=deny][data-id=\"{plain}\"] button"
                ))
                .await?,
        )
        .await?;
    browser
        .wait_for(&format!("#history-{plain}[data-state=denied]"))
        .await?;
    eventually(
        "denied",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || async { Ok((poll(&proxy, AGENT_USER, &plain, "").await?.status == 403).then_some(())) },
    )
    .await?;
    upstream.only_request()?;
    Ok(())
}
