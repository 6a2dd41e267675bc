//! The proxy's config file, generated per test: listeners on port 0, the policy
//! directory, identity verification, routes and a trace file.

use super::jwt;
use anyhow::Result;
use std::fmt::Write as _;

/// The trace file, relative to the config file.
pub const TRACE_FILE: &str = "trace.jsonl";

/// One route of the generated config.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub name: &'static str,
    pub prefix: Option<&'static str>,
    pub hosts: Vec<String>,
    pub upstream: String,
    pub dry_run: bool,
    pub require_user: bool,
    pub credential: bool,
    /// The route's `credential:` block as YAML flow text, in place of the test's static
    /// credential.
    pub credential_yaml: Option<String>,
    pub timeout_ms: Option<u64>,
    pub max_body_bytes: Option<usize>,
    /// The route's `dedup:` block, as YAML flow text.
    pub dedup: Option<String>,
    pub approval_expire_after_seconds: Option<u64>,
    /// `opaque_content_types`: bodies of these types are forwarded unread.
    pub opaque_content_types: Vec<String>,
    /// `allow_method_override`.
    pub allow_method_override: bool,
}

impl RouteSpec {
    /// An enforcing route at `prefix` that injects the test credential.
    pub fn new(name: &'static str, prefix: &'static str, upstream: impl Into<String>) -> RouteSpec {
        RouteSpec {
            name,
            prefix: Some(prefix),
            hosts: Vec::new(),
            upstream: upstream.into(),
            dry_run: false,
            require_user: false,
            credential: true,
            credential_yaml: None,
            timeout_ms: None,
            max_body_bytes: None,
            dedup: None,
            approval_expire_after_seconds: None,
            opaque_content_types: Vec::new(),
            allow_method_override: false,
        }
    }

    /// Lists content types whose bodies the route forwards without the policy reading them.
    pub fn opaque_content_types(mut self, types: &[&str]) -> Self {
        self.opaque_content_types = types.iter().map(|t| t.to_string()).collect();
        self
    }

    /// Sets the route's `credential:` block (YAML flow text, e.g. `{mode: per_user, dir: d}`).
    pub fn credential(mut self, yaml: &str) -> Self {
        self.credential_yaml = Some(yaml.to_string());
        self
    }

    /// Lets the agent override the method with `X-HTTP-Method-Override` and its kin.
    pub fn allow_method_override(mut self) -> Self {
        self.allow_method_override = true;
        self
    }

    /// Sets `approval_expire_after_seconds`.
    pub fn approval_expiry(mut self, seconds: u64) -> Self {
        self.approval_expire_after_seconds = Some(seconds);
        self
    }

    /// Sets the route's `dedup:` block (YAML flow text, e.g. `{wait_ms: 100}`).
    pub fn dedup(mut self, yaml: &str) -> Self {
        self.dedup = Some(yaml.to_string());
        self
    }

    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    pub fn require_user(mut self) -> Self {
        self.require_user = true;
        self
    }

    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = Some(bytes);
        self
    }

    /// Matched by host for absolute-form requests, with no path prefix.
    pub fn by_host(mut self, host: &str) -> Self {
        self.prefix = None;
        self.hosts.push(host.to_string());
        self
    }

    fn yaml(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "  - name: {}", q(self.name))?;
        if let Some(prefix) = self.prefix {
            writeln!(out, "    prefix: {}", q(prefix))?;
        }
        if !self.hosts.is_empty() {
            let hosts: Vec<String> = self.hosts.iter().map(|h| q(h)).collect();
            writeln!(out, "    hosts: [{}]", hosts.join(", "))?;
        }
        writeln!(out, "    upstream: {}", q(&self.upstream))?;
        writeln!(
            out,
            "    mode: {}",
            if self.dry_run { "dry-run" } else { "enforce" }
        )?;
        writeln!(out, "    require_user: {}", self.require_user)?;
        if let Some(credential) = &self.credential_yaml {
            writeln!(out, "    credential: {credential}")?;
        } else if self.credential {
            writeln!(
                out,
                "    credential: {{header: authorization, value_file: secrets/upstream-token, prefix: \"Bearer \"}}"
            )?;
        }
        if let Some(ms) = self.timeout_ms {
            writeln!(out, "    timeout_ms: {ms}")?;
        }
        if let Some(bytes) = self.max_body_bytes {
            writeln!(out, "    max_body_bytes: {bytes}")?;
        }
        if let Some(dedup) = &self.dedup {
            writeln!(out, "    dedup: {dedup}")?;
        }
        if let Some(seconds) = self.approval_expire_after_seconds {
            writeln!(out, "    approval_expire_after_seconds: {seconds}")?;
        }
        if !self.opaque_content_types.is_empty() {
            let types: Vec<String> = self.opaque_content_types.iter().map(|t| q(t)).collect();
            writeln!(out, "    opaque_content_types: [{}]", types.join(", "))?;
        }
        if self.allow_method_override {
            writeln!(out, "    allow_method_override: true")?;
        }
        Ok(())
    }
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn q(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The whole generated config.
#[derive(Debug, Clone)]
pub struct Setup {
    pub routes: Vec<RouteSpec>,
    /// Verify `x-lastmile-user` tokens (HS256, issuer and audience checked).
    pub identity: bool,
    /// More `identity:` settings, one `key: value` per line (e.g. `keys_file: keys.json`).
    pub identity_settings: Vec<String>,
    /// `trace.include_body`.
    pub include_body: bool,
    /// Further `trace:` settings, as `key: value` lines.
    pub trace_settings: Vec<String>,
    /// Load `library/` as a policy library directory.
    pub library: bool,
    /// The top-level `dedup:` block, as YAML flow text.
    pub dedup: Option<String>,
    /// Enable the admin API's state-changing endpoints with [`super::ADMIN_TOKEN`].
    pub admin_token: bool,
    /// The `server:` block, as YAML flow text.
    pub server: Option<String>,
    /// `policies.eval_timeout_ms`, when not the default.
    pub eval_timeout_ms: Option<u64>,
    /// The `approvals:` block, as YAML flow text.
    pub approvals: Option<String>,
    /// `trace.otlp`, as YAML flow text.
    pub otlp: Option<String>,
    /// Environment variables set for the proxy (on top of the test's own).
    pub env: Vec<(String, String)>,
}

impl Setup {
    pub fn new(routes: Vec<RouteSpec>) -> Setup {
        Setup {
            routes,
            identity: true,
            identity_settings: Vec::new(),
            include_body: false,
            trace_settings: Vec::new(),
            library: false,
            dedup: None,
            admin_token: false,
            server: None,
            eval_timeout_ms: None,
            approvals: None,
            otlp: None,
            env: Vec::new(),
        }
    }

    /// Sets `trace.otlp` (YAML flow text, e.g. `{endpoint: "http://..."}`).
    pub fn otlp(mut self, yaml: &str) -> Self {
        self.otlp = Some(yaml.to_string());
        self
    }

    /// Sets an environment variable for the proxy.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds `key: value` (YAML) to the `identity:` block, next to the HS256 secret.
    pub fn identity_setting(mut self, key: &str, value: &str) -> Self {
        self.identity_settings.push(format!("{key}: {value}"));
        self
    }

    pub fn eval_timeout_ms(mut self, ms: u64) -> Self {
        self.eval_timeout_ms = Some(ms);
        self
    }

    /// Sets the `server:` block (YAML flow text, e.g. `{max_in_flight: 4}`).
    pub fn server(mut self, yaml: &str) -> Self {
        self.server = Some(yaml.to_string());
        self
    }

    /// Enables approvals: the queue in `state/approvals.db`, approvers from
    /// `secrets/approvers`, plus `extra` (YAML mapping entries, e.g. `max_wait_seconds: 5`).
    pub fn approvals(self, extra: &str) -> Self {
        self.approvals_at("state/approvals.db", extra)
    }

    /// Enables approvals with the queue in `store_path` (another proxy's, to share it).
    pub fn approvals_at(mut self, store_path: &str, extra: &str) -> Self {
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(", {extra}")
        };
        self.approvals = Some(format!(
            "{{store_path: {}, approvers_file: secrets/approvers{extra}}}",
            q(store_path)
        ));
        self
    }

    /// Sets the top-level `dedup:` block (YAML flow text).
    pub fn dedup(mut self, yaml: &str) -> Self {
        self.dedup = Some(yaml.to_string());
        self
    }

    /// Keeps dedup windows in the Redis at `url`.
    pub fn redis(self, url: &str) -> Self {
        self.dedup(&format!("{{store: redis, redis: {{url: {}}}}}", q(url)))
    }

    pub fn admin_token(mut self) -> Self {
        self.admin_token = true;
        self
    }

    /// Adds `key: value` (YAML) to the `trace:` block.
    pub fn trace_setting(mut self, key: &str, value: &str) -> Self {
        self.trace_settings.push(format!("{key}: {value}"));
        self
    }

    pub fn include_body(mut self) -> Self {
        self.include_body = true;
        self
    }

    pub fn with_library(mut self) -> Self {
        self.library = true;
        self
    }

    pub fn yaml(&self) -> Result<String> {
        let mut y = String::new();
        writeln!(y, "listen: \"127.0.0.1:0\"")?;
        writeln!(y, "admin_listen: \"127.0.0.1:0\"")?;
        // The poll interval keeps its 30 s default: reload tests prove the watcher.
        writeln!(y, "policies:\n  dir: policies\n  reload_debounce_ms: 100")?;
        if self.library {
            writeln!(y, "  library_dirs: [library]")?;
        }
        if let Some(ms) = self.eval_timeout_ms {
            writeln!(y, "  eval_timeout_ms: {ms}")?;
        }
        if self.identity {
            writeln!(
                y,
                "identity:\n  header: x-lastmile-user\n  hs256_secret_file: secrets/identity-hs256"
            )?;
            writeln!(
                y,
                "  issuer: {}\n  audience: {}",
                q(jwt::ISSUER),
                q(jwt::AUDIENCE)
            )?;
            for setting in &self.identity_settings {
                writeln!(y, "  {setting}")?;
            }
        }
        if let Some(dedup) = &self.dedup {
            writeln!(y, "dedup: {dedup}")?;
        }
        if let Some(approvals) = &self.approvals {
            writeln!(y, "approvals: {approvals}")?;
        }
        if self.admin_token {
            writeln!(y, "admin: {{token_file: secrets/admin-token}}")?;
        }
        if let Some(server) = &self.server {
            writeln!(y, "server: {server}")?;
        }
        writeln!(y, "routes:")?;
        for route in &self.routes {
            route.yaml(&mut y)?;
        }
        writeln!(
            y,
            "trace:\n  output: {}\n  include_body: {}",
            q(TRACE_FILE),
            self.include_body
        )?;
        for setting in &self.trace_settings {
            writeln!(y, "  {setting}")?;
        }
        if let Some(otlp) = &self.otlp {
            writeln!(y, "  otlp: {otlp}")?;
        }
        Ok(y)
    }
}
