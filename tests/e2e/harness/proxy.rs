//! The proxy under test: the real binary, started with a config, policy directory and
//! secrets written into a fresh temporary directory, on ports the OS picks.

use super::client::{self, HttpClient, Reply};
use super::config::{Setup, TRACE_FILE};
use super::metrics::Metrics;
use super::{eventually, expect_status, jwt, policies, ADMIN_TOKEN, APPROVERS, UPSTREAM_TOKEN};
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tempfile::TempDir;
use tokio::sync::oneshot;

const BINARY: &str = env!("CARGO_BIN_EXE_lastmile-e2e");
const READY_LIMIT: Duration = Duration::from_secs(20);

/// A temporary directory holding secrets, a policy directory and, once started, the
/// config and trace file.
pub struct Workspace {
    dir: TempDir,
}

impl Workspace {
    /// Secrets written, `policies/` created but empty.
    pub fn new() -> Result<Workspace> {
        let workspace = Workspace {
            dir: tempfile::Builder::new().prefix("lastmile-e2e-").tempdir()?,
        };
        workspace.write("secrets/upstream-token", &format!("{UPSTREAM_TOKEN}\n"))?;
        workspace.write("secrets/identity-hs256", &format!("{}\n", jwt::SECRET))?;
        workspace.write("secrets/admin-token", &format!("{ADMIN_TOKEN}\n"))?;
        let approvers: String = APPROVERS
            .iter()
            .map(|(name, token)| format!("{name} {token}\n"))
            .collect();
        workspace.write("secrets/approvers", &format!("# name token\n{approvers}"))?;
        std::fs::create_dir_all(workspace.path("policies"))?;
        Ok(workspace)
    }

    /// With `policy` as `policies/lastmile.rego`.
    pub fn with_policy(policy: &str) -> Result<Workspace> {
        let workspace = Workspace::new()?;
        workspace.write("policies/lastmile.rego", policy)?;
        Ok(workspace)
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Replaces a file atomically (write a hidden sibling, then rename over), so the
    /// proxy never reads a half-written file.
    pub fn write(&self, relative: &str, contents: &str) -> Result<()> {
        let path = self.path(relative);
        let parent = path.parent().context("no parent")?;
        std::fs::create_dir_all(parent)?;
        let name = path.file_name().context("no file name")?.to_string_lossy();
        let temp = parent.join(format!(".{name}.tmp"));
        std::fs::write(&temp, contents)?;
        std::fs::rename(&temp, &path).with_context(|| format!("replacing {}", path.display()))
    }

    /// `lastmile run` on `config_text`, written as `lastmile.yaml` in the workspace, with
    /// `env` added to the environment it inherits.
    fn command(&self, config_text: &str, env: &[(String, String)]) -> Result<Command> {
        let config = self.path("lastmile.yaml");
        std::fs::write(&config, config_text)?;
        let mut command = Command::new(BINARY);
        command
            .arg("run")
            .arg("--config")
            .arg(&config)
            .current_dir(self.dir.path())
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(command)
    }

    /// Starts the proxy and waits for its ready line.
    pub async fn start(self, setup: &Setup) -> Result<Proxy> {
        let config_text = setup.yaml()?;
        self.launch(&config_text, &setup.env).await
    }

    /// Starts the proxy on a config written elsewhere (a rendered Helm chart, say) rather
    /// than generated from a [`Setup`], and waits for its ready line. The config must
    /// listen on port 0 for both ports; the ports are read from the ready line.
    pub async fn start_with_config_text(self, config_text: &str) -> Result<Proxy> {
        self.launch(config_text, &[]).await
    }

    async fn launch(self, config_text: &str, env: &[(String, String)]) -> Result<Proxy> {
        let mut child = ChildGuard(
            self.command(config_text, env)?
                .spawn()
                .context("spawning the proxy")?,
        );
        let stderr = child.0.stderr.take().context("no stderr pipe")?;
        let stdout = child.0.stdout.take().context("no stdout pipe")?;
        let log = Arc::new(Mutex::new(String::new()));
        let out = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = oneshot::channel();
        let thread_log = log.clone();
        std::thread::spawn(move || collect_stderr(stderr, &thread_log, ready_tx));
        let thread_out = out.clone();
        // Drained always, so a proxy writing to stdout never blocks on a full pipe.
        std::thread::spawn(move || collect(stdout, &thread_out));
        let ready = tokio::time::timeout(READY_LIMIT, ready_rx).await;
        let stderr_text = || log.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let (data, admin) = match ready {
            Ok(Ok(addrs)) => addrs?,
            Ok(Err(_)) => bail!(
                "the proxy exited before it was ready; stderr:\n{}",
                stderr_text()
            ),
            Err(_) => bail!(
                "the proxy was not ready within {READY_LIMIT:?}; stderr:\n{}",
                stderr_text()
            ),
        };
        Ok(Proxy {
            data,
            admin,
            running: Running::Child(child),
            stderr: log,
            stdout: out,
            workspace: self,
            client: client::http_client(),
        })
    }

    /// Serves the proxy inside the test process, through the library's real start-up
    /// path, with `clock` as its wall clock: expiry is then tested without sleeping.
    pub async fn start_in_process(
        self,
        setup: &Setup,
        clock: std::sync::Arc<dyn lastmile::dedup::clock::Clock>,
    ) -> Result<Proxy> {
        let config_path = self.path("lastmile.yaml");
        std::fs::write(&config_path, setup.yaml()?)?;
        let config = lastmile::config::Config::load(&config_path)?;
        let data = tokio::net::TcpListener::bind(config.listen).await?;
        let admin = tokio::net::TcpListener::bind(config.admin_listen).await?;
        let (data_addr, admin_addr) = (data.local_addr()?, admin.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = lastmile::serve_with_clock(config, data, admin, shutdown, clock).await {
                eprintln!("in-process lastmile failed: {e:#}");
            }
        });
        let proxy = Proxy {
            data: data_addr,
            admin: admin_addr,
            running: Running::Task(task, Some(stop)),
            stderr: Arc::new(Mutex::new(String::new())),
            stdout: Arc::new(Mutex::new(String::new())),
            workspace: self,
            client: client::http_client(),
        };
        eventually(
            "the in-process proxy to be ready",
            READY_LIMIT,
            Duration::from_millis(20),
            || async {
                Ok(proxy
                    .admin_get("/readyz")
                    .await
                    .ok()
                    .filter(|r| r.status == 200))
            },
        )
        .await?;
        Ok(proxy)
    }

    /// Runs the proxy expecting it to exit on its own; returns its status and stderr.
    pub async fn run_to_exit(&self, setup: &Setup) -> Result<(ExitStatus, String)> {
        let mut child = ChildGuard(
            self.command(&setup.yaml()?, &setup.env)?
                .stdout(Stdio::null())
                .spawn()
                .context("spawning the proxy")?,
        );
        let mut stderr = child.0.stderr.take().context("no stderr pipe")?;
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut stderr, &mut text).map(|_| text)
        });
        let status = eventually(
            "the proxy to exit",
            READY_LIMIT,
            Duration::from_millis(50),
            || std::future::ready(child.0.try_wait().map_err(anyhow::Error::from)),
        )
        .await?;
        let text = reader
            .join()
            .map_err(|_| anyhow!("stderr reader panicked"))??;
        Ok((status, text))
    }
}

/// How the proxy under test runs.
enum Running {
    Child(ChildGuard),
    /// In this process; dropping the sender stops it, and the task is aborted.
    Task(tokio::task::JoinHandle<()>, Option<oneshot::Sender<()>>),
}

impl Drop for Running {
    fn drop(&mut self) {
        match self {
            // The guard reaps it too; killing here first makes the intent plain.
            Running::Child(guard) => {
                let _ = guard.0.kill();
            }
            Running::Task(task, stop) => {
                drop(stop.take());
                task.abort();
            }
        }
    }
}

/// Kills and reaps the child when dropped, whatever happened in the test.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Addrs = Result<(SocketAddr, SocketAddr)>;

/// Copies stderr into `log` until it closes, reporting the ports from the ready line.
fn collect_stderr(
    stderr: std::process::ChildStderr,
    log: &Mutex<String>,
    ready: oneshot::Sender<Addrs>,
) {
    let mut ready = Some(ready);
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if line.contains("lastmile ready") {
            if let Some(tx) = ready.take() {
                let _ = tx.send(parse_ready(&line));
            }
        }
        let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
        log.push_str(&line);
        log.push('\n');
    }
}

/// Copies `from` into `into` until it closes.
fn collect(from: impl std::io::Read, into: &Mutex<String>) {
    for line in BufReader::new(from).lines() {
        let Ok(line) = line else { break };
        let mut text = into.lock().unwrap_or_else(PoisonError::into_inner);
        text.push_str(&line);
        text.push('\n');
    }
}

/// `... lastmile ready data_addr=127.0.0.1:P admin_addr=127.0.0.1:Q`
fn parse_ready(line: &str) -> Addrs {
    let field = |key: &str| -> Result<SocketAddr> {
        let start = line
            .find(key)
            .with_context(|| format!("no {key} in ready line {line:?}"))?
            + key.len();
        let value: String = line[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        value
            .parse()
            .with_context(|| format!("{key}{value} in {line:?}"))
    };
    Ok((field("data_addr=")?, field("admin_addr=")?))
}

/// A running proxy. Dropping it kills the process and removes its directory.
pub struct Proxy {
    pub data: SocketAddr,
    pub admin: SocketAddr,
    running: Running,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    workspace: Workspace,
    client: HttpClient,
}

impl Proxy {
    /// The standard test policy, and `setup`.
    pub async fn start(setup: &Setup) -> Result<Proxy> {
        Workspace::with_policy(policies::TEST_POLICY)?
            .start(setup)
            .await
    }

    /// The proxy's process id (this test process's, for a proxy served in-process).
    pub fn pid(&self) -> u32 {
        match &self.running {
            Running::Child(guard) => guard.0.id(),
            Running::Task(..) => std::process::id(),
        }
    }

    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    /// Waits up to `limit` for the proxy process to exit on its own (after a signal, say)
    /// and returns its exit status.
    pub async fn exit_status(&mut self, limit: Duration) -> Result<ExitStatus> {
        let Running::Child(guard) = &mut self.running else {
            bail!("the proxy runs in this process: it has no exit status of its own");
        };
        eventually(
            "the proxy to exit",
            limit,
            Duration::from_millis(50),
            || std::future::ready(guard.0.try_wait().map_err(anyhow::Error::from)),
        )
        .await
    }

    /// Stops the proxy as an operator does (SIGTERM: drain, flush the trace, exit 0),
    /// fails unless it exits cleanly, and hands back its workspace, so a test can read
    /// the files it left or start it again on them.
    pub async fn stop(mut self) -> Result<Workspace> {
        if let Running::Task(..) = self.running {
            bail!("the proxy runs in this process: it takes no signal of its own");
        }
        let pid = self.pid().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status()?;
        if !sent.success() {
            bail!("kill -TERM {pid}: {sent}");
        }
        let status = self.exit_status(Duration::from_secs(15)).await?;
        if !status.success() {
            bail!("the proxy exited with {status}:\n{}", self.stderr());
        }
        Ok(self.kill())
    }

    /// Kills the proxy at once (SIGKILL: no drain, as in a crash) and hands back its
    /// workspace, so a test can start it again on the same files.
    pub fn kill(self) -> Workspace {
        let Proxy {
            running, workspace, ..
        } = self;
        drop(running);
        workspace
    }

    /// A request on the admin port, with an optional bearer token and JSON body.
    pub async fn admin_call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.admin));
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(body) => {
                builder = builder.header("content-type", "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        client::send(&self.client, builder.body(Full::new(body))?).await
    }

    /// Everything the proxy logged so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Everything the proxy wrote to standard output so far.
    pub fn stdout(&self) -> String {
        self.stdout
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sends a request to the data port.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.data));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        client::send(&self.client, builder.body(Full::new(body))?).await
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Reply> {
        self.request(Method::GET, path, headers, Bytes::new()).await
    }

    /// POSTs `body` as `application/json`.
    pub async fn post_json(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> Result<Reply> {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.request(Method::POST, path, &all, Bytes::from(body.to_string()))
            .await
    }

    /// Writes `request` verbatim to the data port.
    pub async fn raw(&self, request: &str) -> Result<Reply> {
        client::raw(self.data, request).await
    }

    /// GET on the admin port.
    pub async fn admin_get(&self, path: &str) -> Result<Reply> {
        let request =
            Request::get(format!("http://{}{path}", self.admin)).body(Full::new(Bytes::new()))?;
        client::send(&self.client, request).await
    }

    /// GET on the admin port with the operator's token ([`super::ADMIN_TOKEN`]).
    pub async fn admin_operator_get(&self, path: &str) -> Result<Reply> {
        self.admin_call(Method::GET, path, Some(ADMIN_TOKEN), None)
            .await
    }

    /// POST on the admin port, with `token` as the bearer token if given.
    pub async fn admin_post(&self, path: &str, token: Option<&str>) -> Result<Reply> {
        let mut builder = Request::post(format!("http://{}{path}", self.admin));
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        client::send(&self.client, builder.body(Full::new(Bytes::new()))?).await
    }

    pub async fn metrics(&self) -> Result<Metrics> {
        let reply = self.admin_get("/metrics").await?;
        expect_status(&reply, 200).context("/metrics")?;
        Metrics::parse(reply.text())
    }

    /// The trace file as written so far (empty before the first line).
    pub fn trace_text(&self) -> Result<String> {
        match std::fs::read_to_string(self.workspace.path(TRACE_FILE)) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until the trace file holds a record of `trace_id` and returns it.
    pub async fn trace_record(&self, trace_id: &str) -> Result<serde_json::Value> {
        eventually(
            &format!("trace record {trace_id}"),
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                let found = self.trace_text().and_then(|text| {
                    for line in text.lines().filter(|l| l.contains(trace_id)) {
                        let record: serde_json::Value = serde_json::from_str(line)?;
                        if record["trace_id"] == trace_id {
                            return Ok(Some(record));
                        }
                    }
                    Ok(None)
                });
                std::future::ready(found)
            },
        )
        .await
    }
}
