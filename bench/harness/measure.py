"""One measured run: saturation with wrk, or a fixed rate with bench's loadgen, with the
peer's CPU time and resident memory read from /proc around it."""

import json
import re
import subprocess
import threading

from . import procs, workloads

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _sampling_rss(pids, stop, peak):
    while not stop.wait(0.5):
        peak[0] = max(peak[0], procs.rss_mb(pids))


def _with_cost(pids, argv, timeout):
    """Runs a load tool, returning (stdout, CPU-seconds used by the peer, peak RSS MB)."""
    before = procs.cpu_seconds(pids)
    stop, peak = threading.Event(), [procs.rss_mb(pids)]
    sampler = threading.Thread(target=_sampling_rss, args=(pids, stop, peak), daemon=True)
    sampler.start()
    try:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if run.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {run.stderr.strip()}")
        out = run.stdout
    finally:
        stop.set()
        sampler.join()
    return out, procs.cpu_seconds(pids) - before, peak[0]


def saturation(pids, url, lua, seconds, connections=32):
    """`wrk -t1 -cN`: closed loop, as many requests as the peer can take."""
    seconds = max(1, round(seconds))  # wrk takes whole seconds
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", lua, url,
            "--", str(workloads.sequence_base())]
    out, cpu, rss = _with_cost(pids, argv, seconds + 30)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)
    latency = {}
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        latency[f"p{pct}"] = round(float(m.group(1)) * _UNITS[m.group(2)], 3) if m else None
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": requests,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(g) for g in socket.groups()) if socket else 0,
        "latency_ms": latency,
        "cpu_s_per_10k": round(cpu / max(requests, 1) * 1e4, 4),
        "rss_mb_peak": rss,
    }


def fixed_rate(pids, loadgen, url, spec, rate, seconds, warmup, connections=32):
    """bench's loadgen: open loop at `rate`, latency from the intended send time."""
    argv = [loadgen, "--target", url, "--spec", spec, "--rate", str(rate), "--duration",
            str(seconds), "--warmup", str(warmup), "--connections", str(connections),
            "--seq-base", str(workloads.sequence_base())]
    out, cpu, rss = _with_cost(pids, argv, seconds + warmup + 60)
    result = json.loads(out)
    sent = result["completed"] + result["errors"]
    # The CPU window includes the warm-up, so divide by everything sent in it.
    total = sent * (seconds + warmup) / seconds
    result["cpu_s_per_10k"] = round(cpu / max(total, 1) * 1e4, 4)
    result["rss_mb_peak"] = rss
    return result
