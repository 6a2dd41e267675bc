//! A real Redis: `redis-server` started per test on a free loopback port, persisting
//! to an append-only file in its own directory, killed when dropped. Under `CI` a missing `redis-server` is an error;
//! elsewhere the test says so and skips.

use anyhow::{bail, Context, Result};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    /// The append-only file lives here, so a restart keeps every window.
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server, or returns `None` (outside CI) when `redis-server` is missing.
    pub async fn start() -> Result<Option<RedisServer>> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = tempfile::Builder::new()
            .prefix("lastmile-redis-")
            .tempdir()?;
        let mut server = RedisServer {
            port,
            child: None,
            dir,
        };
        match server.spawn() {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if std::env::var_os("CI").is_some() {
                    bail!("redis-server is not installed, and CI is set: .ci/run installs it");
                }
                eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server)");
                return Ok(None);
            }
            Err(e) => return Err(e).context("starting redis-server"),
        }
        server.wait_ready().await?;
        Ok(Some(server))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server abruptly (SIGKILL); every acknowledged write is in its
    /// append-only file.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn().context("restarting redis-server")?;
        self.wait_ready().await
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_ready(&self) -> Result<()> {
        for _ in 0..200 {
            if self.ping().await.unwrap_or(false) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("redis-server on port {} did not answer PING", self.port)
    }

    async fn ping(&self) -> Result<bool> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await?;
        Ok(&reply == b"+PONG\r\n")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
