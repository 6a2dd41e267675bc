//! Open-loop, constant-rate HTTP/1.1 load with latency measured from the intended send
//! time (no coordinated omission), for "added latency at a fixed rate" figures.
//!
//! Usage: `loadgen --target http://127.0.0.1:PORT --spec SPEC.json --rate 2000
//! --duration 10 [--connections 32] [--warmup 2]`; prints one JSON object on stdout.
//!
//! Like wrk2, every connection owns a fixed schedule (connection k sends request j at
//! `(k + j * connections) / rate` seconds), so a slow response delays the following sends
//! of that connection and that delay is charged to the server. Unlike wrk2's millisecond
//! timers, the generator's own timer slack is not charged: when the connection was idle
//! before the intended time, latency runs from the actual send (see [`Slot::start`]).
//!
//! The spec is `{"requests": [{"method", "path", "headers": {name: value}, "body_file",
//! "weight"}]}`; requests are sent in a fixed cycle where each appears `weight` times.
//! A `{{N}}` in a body becomes a number no other request of the run uses: the run's
//! `--seq-base` (three digits) then the request's sequence number (seven digits).

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    /// Scheme, host and port; request paths come from the spec.
    #[arg(long)]
    target: String,
    #[arg(long)]
    spec: PathBuf,
    /// Requests per second, over all connections.
    #[arg(long)]
    rate: f64,
    /// Measured seconds, after the warm-up.
    #[arg(long)]
    duration: f64,
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds sent at the same rate before recording starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// The first three digits of every `{{N}}` number.
    #[arg(long, default_value_t = 0)]
    seq_base: u64,
}

const SEQ: &[u8] = b"{{N}}";

/// One request of the cycle, ready to send.
struct Template {
    method: hyper::Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Bytes,
    /// The body split around its `{{N}}`, when it has one.
    numbered: Option<(Bytes, Bytes)>,
}

impl Template {
    fn body(&self, base: u64, sequence: usize) -> Bytes {
        let Some((before, after)) = &self.numbered else {
            return self.body.clone();
        };
        let number = format!("{:03}{:07}", base % 1000, sequence % 10_000_000);
        [before, number.as_bytes(), after].concat().into()
    }
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    /// Microseconds from the scheduled (or idle-connection send) time to the full response.
    latencies_us: Vec<u32>,
    /// How late the generator itself sent, in microseconds, when the connection was idle:
    /// a check that the generator kept up.
    send_lag_us: Vec<u32>,
    status: BTreeMap<u16, u64>,
    errors: u64,
    /// Requests due before the end that were never sent: the peer could not keep up.
    unsent: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.rate <= 0.0 || args.duration <= 0.0 || args.connections == 0 {
        bail!("--rate, --duration and --connections must be positive");
    }
    let cycle = Rc::new(load_spec(&args.spec)?);
    let authority = args
        .target
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("--target must be http://HOST:PORT"))?
        .trim_end_matches('/')
        .to_string();
    // One thread, like `wrk -t1`: the generator must leave the other core to the servers.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let tallies = local.block_on(&runtime, run(&args, &authority, cycle))?;
    println!("{}", summarise(&args, tallies));
    Ok(())
}

fn load_spec(path: &Path) -> Result<Vec<Rc<Template>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path:?}"))?;
    let spec: Value = serde_json::from_str(&text).with_context(|| format!("parsing {path:?}"))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut cycle = Vec::new();
    let requests = spec["requests"]
        .as_array()
        .ok_or_else(|| anyhow!("{path:?}: no \"requests\" array"))?;
    for request in requests {
        let text = |key: &str| request[key].as_str().map(str::to_string);
        let body = match text("body_file") {
            Some(file) => std::fs::read(base.join(&file))
                .with_context(|| format!("reading body {file}"))?
                .into(),
            None => Bytes::new(),
        };
        let mut headers = Vec::new();
        if let Some(map) = request["headers"].as_object() {
            for (name, value) in map {
                let value = value.as_str().ok_or_else(|| anyhow!("header {name}"))?;
                headers.push((name.clone(), value.to_string()));
            }
        }
        let numbered = body
            .windows(SEQ.len())
            .position(|w| w == SEQ)
            .map(|at| (body.slice(..at), body.slice(at + SEQ.len()..)));
        let template = Rc::new(Template {
            method: text("method").unwrap_or_else(|| "GET".into()).parse()?,
            path: text("path").ok_or_else(|| anyhow!("a request without \"path\""))?,
            headers,
            body,
            numbered,
        });
        for _ in 0..request["weight"].as_u64().unwrap_or(1) {
            cycle.push(template.clone());
        }
    }
    if cycle.is_empty() {
        bail!("{path:?}: no requests");
    }
    Ok(cycle)
}

async fn run(args: &Args, authority: &str, cycle: Rc<Vec<Rc<Template>>>) -> Result<Vec<Tally>> {
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let start = Instant::now() + Duration::from_millis(50);
    let record_from = start + Duration::from_secs_f64(args.warmup);
    let end = record_from + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::new();
    for k in 0..args.connections {
        let plan = Plan {
            authority: authority.to_string(),
            first: start + interval * k as u32,
            step: interval * args.connections as u32,
            record_from,
            end,
            cycle: cycle.clone(),
            offset: k,
            stride: args.connections,
            seq_base: args.seq_base,
        };
        tasks.push(tokio::task::spawn_local(plan.run()));
    }
    let mut tallies = Vec::new();
    for task in tasks {
        tallies.push(task.await?);
    }
    Ok(tallies)
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// One connection's schedule.
struct Plan {
    authority: String,
    first: Instant,
    step: Duration,
    record_from: Instant,
    end: Instant,
    cycle: Rc<Vec<Rc<Template>>>,
    /// This connection's place in the global sequence, and the number of connections:
    /// request j of connection k is the global request `k + j * stride`, so a 9:1 mix
    /// stays 9:1 overall.
    offset: usize,
    stride: usize,
    seq_base: u64,
}

/// When a request was due, and whether the connection was still busy then.
struct Slot {
    intended: Instant,
    busy_until: Instant,
}

impl Slot {
    /// The latency clock's start: the intended time when the previous response arrived
    /// after it (the server's delay, charged to the server), else the actual send time
    /// (the generator's own timer slack, not the server's).
    fn start(&self, sent: Instant) -> Instant {
        if self.busy_until > self.intended {
            self.intended
        } else {
            sent
        }
    }
}

impl Plan {
    async fn run(self) -> Tally {
        let mut tally = Tally::default();
        let mut sender: Option<SendRequest<Full<Bytes>>> = None;
        let mut busy_until = self.first;
        for j in 0usize.. {
            let intended = self.first + self.step * j as u32;
            if intended >= self.end {
                break;
            }
            // A peer slower than the rate would otherwise keep the run going long after
            // its end; requests still unsent then are counted, not waited for.
            // Each is recorded with the time it had waited when the run ended: a lower
            // bound, so a saturated peer's percentiles are not taken from the few
            // requests it did answer.
            let now = Instant::now();
            if now >= self.end {
                let mut due = intended;
                while due < self.end {
                    if due >= self.record_from {
                        tally.unsent += 1;
                        tally.latencies_us.push(micros(now.duration_since(due)));
                    }
                    due += self.step;
                }
                break;
            }
            tokio::time::sleep_until(intended.into()).await;
            let slot = Slot {
                intended,
                busy_until,
            };
            let sequence = self.offset + j * self.stride;
            let template = &self.cycle[sequence % self.cycle.len()];
            let body = template.body(self.seq_base, sequence);
            let sent = Instant::now();
            let outcome = self.send(&mut sender, template, body).await;
            let done = Instant::now();
            busy_until = done;
            if intended < self.record_from {
                continue;
            }
            match outcome {
                Ok(status) => *tally.status.entry(status).or_default() += 1,
                Err(_) => tally.errors += 1,
            }
            tally
                .latencies_us
                .push(micros(done.duration_since(slot.start(sent))));
            if slot.busy_until <= intended {
                tally
                    .send_lag_us
                    .push(micros(sent.duration_since(intended)));
            }
        }
        tally
    }

    /// Sends one request on the connection, opening it first if needed; a failed
    /// connection is dropped so the next request reconnects.
    async fn send(
        &self,
        sender: &mut Option<SendRequest<Full<Bytes>>>,
        template: &Template,
        body: Bytes,
    ) -> Result<u16> {
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            *sender = Some(connect(&self.authority).await?);
        }
        let Some(open) = sender.as_mut() else {
            bail!("no connection");
        };
        let mut request = hyper::Request::builder()
            .method(template.method.clone())
            .uri(&template.path)
            .header("host", &self.authority);
        for (name, value) in &template.headers {
            request = request.header(name, value);
        }
        let request = request.body(Full::new(body))?;
        let result = async {
            open.ready().await?;
            let response = open.send_request(request).await?;
            let status = response.status().as_u16();
            response.into_body().collect().await?;
            anyhow::Ok(status)
        }
        .await;
        if result.is_err() {
            *sender = None;
        }
        result
    }
}

async fn connect(authority: &str) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::task::spawn_local(connection);
    Ok(sender)
}

fn summarise(args: &Args, tallies: Vec<Tally>) -> Value {
    let mut all = Tally::default();
    for tally in tallies {
        all.latencies_us.extend(tally.latencies_us);
        all.send_lag_us.extend(tally.send_lag_us);
        all.errors += tally.errors;
        all.unsent += tally.unsent;
        for (status, n) in tally.status {
            *all.status.entry(status).or_default() += n;
        }
    }
    let completed: u64 = all.status.values().sum();
    let non_2xx: u64 = all
        .status
        .iter()
        .filter(|(status, _)| !(200..300).contains(*status))
        .map(|(_, n)| n)
        .sum();
    json!({
        "rate": args.rate,
        "duration_s": args.duration,
        "connections": args.connections,
        "completed": completed,
        "errors": all.errors,
        "unsent": all.unsent,
        "non_2xx": non_2xx,
        "status": all.status.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "achieved_rps": completed as f64 / args.duration,
        "latency_ms": percentiles(&mut all.latencies_us),
        "send_lag_ms": percentiles(&mut all.send_lag_us),
    })
}

fn percentiles(samples: &mut [u32]) -> Value {
    samples.sort_unstable();
    let at = |q: f64| -> Value {
        if samples.is_empty() {
            return Value::Null;
        }
        let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
        json!(f64::from(samples[rank - 1]) / 1000.0)
    };
    json!({"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "p99.9": at(0.999), "max": at(1.0)})
}
