"""Processes the harness starts, and what /proc says about them.

Every process is started here and remembered by PID; `stop_all` ends exactly those (and
nothing found by name), first politely, then with SIGKILL after a grace period.
"""

import os
import signal
import socket
import subprocess
import time
import urllib.request

_started = []  # Popen objects, in start order
CLK_TCK = os.sysconf("SC_CLK_TCK")


def start(name, argv, log_dir, env=None):
    """Starts `argv` in the background, its output in log_dir/<name>.log."""
    log = open(os.path.join(log_dir, f"{name}.log"), "wb")
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                            stdin=subprocess.DEVNULL)
    proc.bench_name = name
    _started.append(proc)
    return proc


def stop(proc, grace=5.0):
    """Ends one started process by its PID (nginx's master ends its own worker)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc in _started:
        _started.remove(proc)


def stop_all():
    for proc in reversed(list(_started)):
        stop(proc)


def port_free(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def wait_http(url, headers=None, timeout=20.0, expect=None, proc=None):
    """Waits until `url` answers (any status, or `expect`); returns the last status."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.bench_name} exited with {proc.returncode}")
        status = http_status(url, headers)
        if status is not None and (expect is None or status == expect):
            return status
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer {expect or 'at all'} within {timeout}s "
                       f"(last: {status})")


def http_status(url, headers=None, method="GET", body=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def tree(pid):
    """The PID and its descendants (nginx's worker, Envoy's and OPA's threads are in-PID)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids):
    """User + system CPU of the processes and their descendants, in seconds."""
    ticks = 0
    for root in pids:
        for p in tree(root):
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
            except (OSError, IndexError, ValueError):
                pass
    return ticks / CLK_TCK


def rss_mb(pids):
    """Resident memory (VmRSS) of the processes and their descendants, in MB."""
    kb = 0
    for root in pids:
        for p in tree(root):
            try:
                with open(f"/proc/{p}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            kb += int(line.split()[1])
            except (OSError, ValueError):
                pass
    return round(kb / 1024, 1)
