"""Summaries of a run: medians, added latency and ratios to nginx; the Markdown table and
the PNG plots."""

import os
import statistics


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 4) if values else None


def summarise(results):
    """Adds to every (peer, workload) entry the medians over its repetitions, its
    latency added over direct, and its ratios to nginx on the same workload."""
    for workload, by_peer in results.items():
        for entry in by_peer.values():
            sat, fixed = entry.get("saturation", []), entry.get("fixed_rate", [])
            sustained = [r["achieved_rps"] / r["rate"] for r in fixed]
            entry["summary"] = {
                "rps": _median([r["rps"] for r in sat]),
                "cpu_s_per_10k": _median([r["cpu_s_per_10k"] for r in sat]),
                "cpu_s_per_10k_fixed": _median([r["cpu_s_per_10k"] for r in fixed]),
                "rss_mb_load": max([r["rss_mb_peak"] for r in sat + fixed], default=None),
                "fixed_ms": {p: _median([r["latency_ms"][p] for r in fixed])
                             for p in ("p50", "p90", "p99", "p99.9")} if fixed else None,
                "errors": sum(r.get("socket_errors", 0) for r in sat)
                + sum(r.get("errors", 0) for r in fixed),
                "non_2xx": sum(r.get("non_2xx", 0) for r in sat + fixed),
                "requests": sum(r.get("requests", 0) for r in sat)
                + sum(r.get("completed", 0) for r in fixed),
                "unsent": sum(r.get("unsent", 0) for r in fixed),
                # Below 95% of the fixed rate the peer was saturated: its latency is
                # queueing for the whole run, not the cost of one request.
                "sustained_rate": min(sustained) >= 0.95 if sustained else None,
            }
    for workload, by_peer in results.items():
        # The TLS workload's floor is the plain upstream: the client never speaks TLS.
        floor = by_peer.get("direct") or results.get("post-allow", {}).get("direct")
        base = (floor or {}).get("summary", {}).get("fixed_ms")
        nginx = by_peer.get("nginx", {}).get("summary")
        for peer, entry in by_peer.items():
            s = entry["summary"]
            if base and s["fixed_ms"] and peer != "direct":
                s["added_ms"] = {p: round(s["fixed_ms"][p] - base[p], 3)
                                 for p in ("p50", "p90", "p99")}
            if nginx and nginx.get("rps") and s["rps"]:
                s["rps_vs_nginx"] = round(s["rps"] / nginx["rps"], 3)
                if nginx.get("cpu_s_per_10k") and s["cpu_s_per_10k"]:
                    s["cpu_vs_nginx"] = round(s["cpu_s_per_10k"] / nginx["cpu_s_per_10k"], 3)
    return results


def _fmt(value, digits=2):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}" if isinstance(value, float) else str(value)


def markdown(doc):
    meta = doc["meta"]
    out = [f"# lastmile benchmark, {meta['date']}", "",
           f"`{meta['command']}` on {meta['machine']}. "
           f"Saturation: `wrk -t1 -c{meta['connections']} -d{meta['sat_seconds']}s`, "
           f"median of {meta['repeats']}. Fixed rate: {meta['rate']} req/s for "
           f"{meta['fixed_seconds']} s with bench's loadgen (open loop, latency from the "
           f"intended send time), median of {meta['repeats']}. Every server runs one "
           "worker; load generator, upstream and peer share the machine's cores, so "
           "compare rows of the same run only.", ""]
    for workload, by_peer in doc["results"].items():
        out += [f"## {workload}: {doc['workloads'].get(workload, '')}", "",
                "| peer | req/s | vs nginx | CPU-s /10k req | vs nginx | added p50 / p90 / p99 ms "
                "@ fixed rate | p50 / p90 / p99 / p99.9 ms | RSS idle / load MB | non-2xx | errors |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for peer, entry in by_peer.items():
            s = entry["summary"]
            added = s.get("added_ms")
            fixed = s.get("fixed_ms")
            if entry.get("failed"):
                out.append(f"| {peer} | failed: {entry['failed'][:120]} |" + " |" * 8)
                continue
            saturated = " (saturated)" if s.get("sustained_rate") is False else ""
            out.append("| " + " | ".join([
                peer, _fmt(s["rps"], 0), _fmt(s.get("rps_vs_nginx")),
                _fmt(s["cpu_s_per_10k"], 3), _fmt(s.get("cpu_vs_nginx")),
                (" / ".join(_fmt(added[p], 3) for p in ("p50", "p90", "p99")) + saturated)
                if added else "–",
                " / ".join(_fmt(fixed[p], 3) for p in ("p50", "p90", "p99", "p99.9"))
                if fixed else "–",
                f"{_fmt(entry.get('rss_mb_idle'), 1)} / {_fmt(s['rss_mb_load'], 1)}",
                str(s["non_2xx"]), str(s["errors"])]) + " |")
        out.append("")
    for name, section in doc.get("extra", {}).items():
        out += [f"## {name}", ""]
        for peer, entry in section.items():
            out.append(f"- **{peer}**: " + ", ".join(
                f"{k} {_fmt(v, 3) if isinstance(v, float) else v}"
                for k, v in entry.items() if not isinstance(v, (list, dict))))
        out.append("")
    return "\n".join(out)


def plots(doc, stem):
    """Two PNGs: saturation req/s and fixed-rate latency percentiles, per peer and
    workload. Returns the files written, or [] when matplotlib is unavailable."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.lines
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    results = doc["results"]
    workloads = list(results)
    peers = list(dict.fromkeys(p for w in workloads for p in results[w]))
    # One colour per peer in every panel, whichever peers a panel has.
    colour = {peer: f"C{i}" for i, peer in enumerate(peers)}
    written = []
    fig, ax = plt.subplots(figsize=(12, 5))
    width = 0.8 / max(len(peers), 1)
    for i, peer in enumerate(peers):
        values = [(results[w].get(peer) or {}).get("summary", {}).get("rps") or 0
                  for w in workloads]
        ax.bar([x + i * width for x in range(len(workloads))], values, width, label=peer,
               color=colour[peer])
    ax.set_xticks([x + width * (len(peers) - 1) / 2 for x in range(len(workloads))])
    ax.set_xticklabels(workloads)
    ax.set_ylabel("req/s at saturation (median)")
    ax.set_title("Throughput per peer (wrk -t1 -c32, one worker each)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(f"{stem}-throughput.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(1, len(workloads), figsize=(3.2 * len(workloads), 4.5),
                             sharey=True, squeeze=False)
    for ax, workload in zip(axes[0], workloads):
        for peer in peers:
            fixed = (results[workload].get(peer) or {}).get("summary", {}).get("fixed_ms")
            if fixed:
                ax.plot(["p50", "p90", "p99", "p99.9"],
                        [fixed[p] for p in ("p50", "p90", "p99", "p99.9")], marker="o",
                        label=peer, color=colour[peer])
        ax.set_title(workload, fontsize=9)
        ax.set_yscale("log")
    axes[0][0].set_ylabel(f"latency ms at {doc['meta']['rate']} req/s (median of runs)")
    handles = [matplotlib.lines.Line2D([], [], color=colour[p], marker="o", label=p)
               for p in peers]
    fig.legend(handles=handles, loc="lower center", ncol=len(peers), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    written.append(f"{stem}-latency.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return [os.path.basename(p) for p in written]
