#!/usr/bin/env python3
"""Per-host timeline of one relayguard sweep: where the time goes.

    bench/timeline.py SWEEP.json [--live live.txt] [--csv OUT.csv] [--svg OUT.svg]
    bench/timeline.py TIMELINE.csv --svg OUT.svg     # plot again from a kept CSV

Reads a `relayguard sweep --format json` report (each host's `timeline`: discovered, audit
started, first reply, done, in ms since the sweep started) and writes
- a CSV, one row per open port: address, personality (from bench/campus's live.txt), the four
  times, the verdict (open-relay or not);
- an SVG (no plotting library needed): one row per audited host, in order of discovery, a thin
  line from discovery to the start of its audit (waiting for an audit slot), a light bar from
  then to the first reply (connect and greeting) and a dark bar to the verdict; open relays are
  marked with a cross at the verdict. Readable in black and white.
Prints a short summary (last discovery, last verdict, slowest audits) to stdout.
"""
import argparse
import csv
import json
import sys
from xml.sax.saxutils import escape

ROW = 4  # px per host
LEFT, TOP, RIGHT, BOTTOM = 70, 30, 20, 50
WIDTH = 900


def load_csv(path):
    """The rows of a CSV this script wrote (the reports themselves are not kept in git)."""
    rows = []
    for r in csv.DictReader(open(path)):
        for key in ("discovered_ms", "audit_started_ms", "done_ms"):
            r[key] = int(r[key])
        r["first_reply_ms"] = int(r["first_reply_ms"]) if r["first_reply_ms"] else ""
        r["open_relay"] = r["open_relay"] == "True"
        rows.append(r)
    return rows


def load(path, live_path):
    if path.endswith(".csv"):
        return load_csv(path)
    doc = json.load(open(path))
    live = {}
    if live_path:
        for line in open(live_path):
            parts = line.split()
            if len(parts) >= 2:
                live[parts[0]] = parts[1]
    rows = []
    for h in doc["hosts"]:
        t = h.get("timeline")
        if h["state"] != "open" or not t:
            continue
        rows.append({
            "address": h["address"],
            "personality": live.get(h["address"], ""),
            "discovered_ms": t["discovered_ms"],
            "audit_started_ms": t["audit_started_ms"],
            "first_reply_ms": t.get("first_reply_ms", ""),
            "done_ms": t["done_ms"],
            "open_relay": any(f["kind"] == "open-relay" for f in h["findings"]),
        })
    rows.sort(key=lambda r: (r["discovered_ms"], r["address"]))
    return rows


def svg(rows):
    end = max((r["done_ms"] for r in rows), default=1) or 1
    height = TOP + BOTTOM + ROW * max(len(rows), 1)
    plot_w = WIDTH - LEFT - RIGHT
    x = lambda ms: LEFT + plot_w * ms / end  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<text x="{LEFT}" y="16">relayguard sweep: {len(rows)} open ports, one row each, '
           f'by discovery (line: waiting for a slot; light: connect and greeting; dark: audit; '
           f'x: open relay)</text>']
    for i, r in enumerate(rows):
        y = TOP + i * ROW
        d, a, done = r["discovered_ms"], r["audit_started_ms"], r["done_ms"]
        f = r["first_reply_ms"] if r["first_reply_ms"] != "" else done
        out.append(f'<line x1="{x(d):.1f}" y1="{y + ROW / 2:.1f}" x2="{x(a):.1f}" '
                   f'y2="{y + ROW / 2:.1f}" stroke="#999" stroke-width="1"/>')
        out.append(f'<rect x="{x(a):.1f}" y="{y}" width="{max(x(f) - x(a), 0.5):.1f}" '
                   f'height="{ROW - 1}" fill="#bbb"/>')
        out.append(f'<rect x="{x(f):.1f}" y="{y}" width="{max(x(done) - x(f), 0.5):.1f}" '
                   f'height="{ROW - 1}" fill="#333"><title>{escape(r["address"])} '
                   f'{escape(r["personality"])}: {done - d} ms</title></rect>')
        if r["open_relay"]:
            cx, cy = x(done) + 4, y + ROW / 2
            out.append(f'<path d="M{cx - 2:.1f},{cy - 2:.1f}l4,4m0,-4l-4,4" stroke="#000"/>')
    axis_y = TOP + ROW * max(len(rows), 1) + 6
    out.append(f'<line x1="{LEFT}" y1="{axis_y}" x2="{WIDTH - RIGHT}" y2="{axis_y}" stroke="#000"/>')
    step = nice_step(end / 1000) * 1000
    t = 0
    while t <= end:
        out.append(f'<line x1="{x(t):.1f}" y1="{axis_y}" x2="{x(t):.1f}" y2="{axis_y + 4}" stroke="#000"/>')
        out.append(f'<text x="{x(t):.1f}" y="{axis_y + 16}" text-anchor="middle">{t / 1000:g} s</text>')
        t += step
    out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{axis_y + 34}" text-anchor="middle">'
               f'time since the sweep started</text>')
    out.append('</svg>')
    return "\n".join(out) + "\n"


def nice_step(seconds):
    """A tick spacing of 1, 2 or 5 × 10^k seconds giving at most ~12 ticks."""
    for s in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500):
        if seconds / s <= 12:
            return s
    return 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep")
    ap.add_argument("--live")
    ap.add_argument("--csv")
    ap.add_argument("--svg")
    args = ap.parse_args()
    rows = load(args.sweep, args.live)
    if not rows:
        sys.exit(f"{args.sweep}: no open port with a timeline (a sweep report of this version?)")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    if args.svg:
        open(args.svg, "w").write(svg(rows))
    last_found = max(r["discovered_ms"] for r in rows)
    last_done = max(r["done_ms"] for r in rows)
    slow = sorted(rows, key=lambda r: r["done_ms"] - r["audit_started_ms"], reverse=True)[:3]
    print(f"{len(rows)} open ports; last discovered at {last_found} ms; last verdict at "
          f"{last_done} ms; slowest audits: " + ", ".join(
              f"{r['address']} {r['personality']} {r['done_ms'] - r['audit_started_ms']} ms"
              for r in slow))


if __name__ == "__main__":
    main()
