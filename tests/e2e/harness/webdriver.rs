//! A headless Chromium for page tests, driven through chromedriver's W3C WebDriver HTTP
//! API with the same hyper client the other tests use (no browser-automation crate).
//!
//! Debian's `chromium` and `chromium-driver` packages provide the binaries (`.ci/run`
//! installs them); `LASTMILE_CHROMIUM` / `LASTMILE_CHROMEDRIVER` override the paths.
//! Without them a test skips with a note locally, and fails when `CI` is set.

use super::client::{self, HttpClient};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const WAIT: Duration = Duration::from_secs(10);

fn find_binary(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            PathBuf::from("/usr/bin"),
            PathBuf::from("/usr/lib/chromium"),
        ])
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// One browser session; [`Browser::quit`] ends it (dropping kills chromedriver).
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: HttpClient,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or `None` (with a note)
    /// when they are not installed and `CI` is not set.
    pub async fn start() -> Result<Option<Browser>> {
        let chromium = find_binary("LASTMILE_CHROMIUM", &["chromium", "chromium-browser"]);
        let driver = find_binary("LASTMILE_CHROMEDRIVER", &["chromedriver"]);
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            if std::env::var_os("CI").is_some() {
                bail!("chromium and chromedriver are required under CI (apt-get install chromium chromium-driver)");
            }
            eprintln!("note: chromium/chromedriver not found; skipping the browser test (apt-get install chromium chromium-driver)");
            return Ok(None);
        };
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            listener.local_addr()?.port()
        };
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?;
        let profile = tempfile::Builder::new()
            .prefix("lastmile-chromium-")
            .tempdir()?;
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            client: client::http_client(),
            _profile: profile,
        };
        let deadline = Instant::now() + WAIT;
        while browser.call(Method::GET, "/status", None).await.is_err() {
            if Instant::now() > deadline {
                bail!("chromedriver did not start");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--no-first-run".into(),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let created = browser
            .call(
                Method::POST,
                "/session",
                Some(json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": chromium.to_string_lossy(), "args": args},
                }}})),
            )
            .await
            .context("creating a browser session")?;
        browser.session = created["sessionId"]
            .as_str()
            .context("no session id")?
            .to_string();
        Ok(Some(browser))
    }

    /// One WebDriver command; returns its `value`.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let reply = client::send(&self.client, request).await?;
        let value: Value = reply.json()?;
        if reply.status != 200 {
            bail!("webdriver {path}: {} {}", reply.status, value["value"]);
        }
        Ok(value["value"].clone())
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub async fn open(&self, url: &str) -> Result<()> {
        self.call(
            Method::POST,
            &self.session_path("/url"),
            Some(json!({ "url": url })),
        )
        .await
        .map(|_| ())
    }

    /// The element matching a CSS selector, once it exists.
    pub async fn find(&self, css: &str) -> Result<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let found = self
                .call(
                    Method::POST,
                    &self.session_path("/element"),
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            match found {
                Ok(value) => {
                    return value[ELEMENT]
                        .as_str()
                        .map(str::to_string)
                        .with_context(|| format!("no element reference for {css}"))
                }
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context(format!("finding {css}")))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Waits for `css` to match; on failure the error carries the page's URL and source.
    pub async fn wait_for(&self, css: &str) -> Result<()> {
        match self.find(css).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let url = self
                    .call(Method::GET, &self.session_path("/url"), None)
                    .await
                    .unwrap_or_default();
                let source = self
                    .call(Method::GET, &self.session_path("/source"), None)
                    .await
                    .unwrap_or_default();
                Err(e.context(format!("page {url}: {source}")))
            }
        }
    }

    pub async fn type_into(&self, element: &str, text: &str) -> Result<()> {
        self.call(
            Method::POST,
            &self.session_path(&format!("/element/{element}/value")),
            Some(json!({ "text": text })),
        )
        .await
        .map(|_| ())
    }

    pub async fn click(&self, element: &str) -> Result<()> {
        self.call(
            Method::POST,
            &self.session_path(&format!("/element/{element}/click")),
            Some(json!({})),
        )
        .await
        .map(|_| ())
    }

    /// The rendered text of the element matching `css`.
    pub async fn text(&self, css: &str) -> Result<String> {
        let element = self.find(css).await?;
        let value = self
            .call(
                Method::GET,
                &self.session_path(&format!("/element/{element}/text")),
                None,
            )
            .await?;
        value
            .as_str()
            .map(str::to_string)
            .context("text is not a string")
    }

    /// Runs a script in the page (through the driver, which CSP does not govern).
    pub async fn script(&self, source: &str) -> Result<Value> {
        self.call(
            Method::POST,
            &self.session_path("/execute/sync"),
            Some(json!({"script": source, "args": []})),
        )
        .await
    }

    pub async fn quit(&mut self) {
        let _ = self
            .call(Method::DELETE, &self.session_path(""), None)
            .await;
    }
}
