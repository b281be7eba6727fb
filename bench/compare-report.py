#!/usr/bin/env python3
"""Summarises a bench/compare output directory as Markdown (stdout).

Reads OUT/{live.txt,open-relays.txt,campus.env} (ground truth) and every TOOL.ROUND.{time,rc,...}
written by bench/compare; prints one row per run, averages and ratios, and every host on which a
tool disagrees with the ground truth.
"""
import glob
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from statistics import mean

out = sys.argv[1]
live = {l.split()[0]: l.split()[1] for l in open(f"{out}/live.txt") if l.strip()}
relays = {l.strip() for l in open(f"{out}/open-relays.txt") if l.strip()}
env = dict(l.strip().split("=", 1) for l in open(f"{out}/campus.env") if "=" in l)


def timing(path):
    t = open(path).read()
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", t)
    h, m, s = wall.groups()
    wall_s = int(h or 0) * 3600 + int(m) * 60 + float(s)
    cpu = float(re.search(r"User time \(seconds\): ([\d.]+)", t)[1]) + float(
        re.search(r"System time \(seconds\): ([\d.]+)", t)[1])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t)[1]) / 1024
    return wall_s, cpu, rss


def parse(tool, rnd):
    """-> (open hosts, relay-flagged hosts or None, notes)"""
    base = f"{out}/{tool}.{rnd}"
    if tool.startswith("relayguard"):
        doc = json.load(open(f"{base}.json"))
        hosts = doc["hosts"]
        found = {h["address"] for h in hosts if h["state"] == "open"}
        flagged = {h["address"] for h in hosts if any(f["kind"] == "open-relay" for f in h["findings"])}
        errs = {h["address"]: h["error"] for h in hosts if h.get("error")}
        slow = max((h["elapsed_ms"] for h in hosts), default=0)
        note = f"summary {doc['summary']}; audit errors: {len(errs)}; slowest audit {slow} ms"
        if errs:
            note += "; e.g. " + "; ".join(f"{a}: {e}" for a, e in list(errs.items())[:3])
        if tool == "relayguard-disc":  # --discover-only: no verdicts to compare
            return found, None, f"summary {doc['summary']}"
        return found, flagged, note
    if tool in ("nmap-disc", "nmap-relay", "nmap-relay-tuned"):
        root = ET.parse(f"{base}.xml").getroot()
        found, flagged, undecided = set(), set(), {}
        for h in root.iter("host"):
            addr = h.find("address").get("addr")
            for p in h.iter("port"):
                if p.find("state").get("state") != "open":
                    continue
                found.add(addr)
                for s in p.iter("script"):
                    if s.get("id") == "smtp-open-relay":
                        o = s.get("output", "")
                        if "Server is an open relay" in o:
                            flagged.add(addr)
                        elif "doesn't seem to be an open relay" not in o:
                            undecided[addr] = o.strip().splitlines()[0][:80] if o.strip() else "(empty)"
        if tool == "nmap-disc":
            return found, None, ""
        note = f"hosts without a verdict: {len(undecided)}"
        if undecided:
            note += " (" + "; ".join(f"{a} [{live.get(a, '?')}]: {o}" for a, o in list(undecided.items())[:4]) + ")"
        return found, flagged, note
    if tool == "masscan":
        found = {l.split()[3] for l in open(f"{base}.list") if l.startswith("open ")}
        return found, None, ""
    raise ValueError(tool)


runs = []
for tf in sorted(glob.glob(f"{out}/*.time")):
    tool, rnd = os.path.basename(tf)[:-5].rsplit(".", 1)
    if not os.path.exists(f"{out}/{tool}.{rnd}.rc"):  # still running
        continue
    wall, cpu, rss = timing(tf)
    rc = open(f"{out}/{tool}.{rnd}.rc").read().strip()
    try:
        found, flagged, note = parse(tool, rnd)
    except Exception as e:  # noqa: BLE001 - report, do not crash the summary
        found, flagged, note = set(), None, f"unparsable output: {e}"
    runs.append(dict(tool=tool, round=int(rnd), wall=wall, cpu=cpu, rss=rss, rc=rc,
                     found=found, flagged=flagged, note=note))
runs.sort(key=lambda r: (r["round"], r["tool"]))

print(f"Campus: {env.get('CAMPUS_BLOCK')}, {len(live)} live Postfix addresses "
      f"({env.get('CAMPUS_PERSONALITIES')}; {len(relays)} open relays), ~{env.get('CAMPUS_CLOSED_PCT')}% RST, "
      f"rest filtered; loss {env.get('CAMPUS_LOSS_PERMILLE')}/1000 each way, delay {env.get('CAMPUS_DELAY_MS')} ms "
      f"each way (ping RTT {env.get('CAMPUS_RTT_MS')} ms); tarpit: {env.get('CAMPUS_TARPIT', '?')}; "
      f"Postfix in_flow_delay {env.get('CAMPUS_IN_FLOW_DELAY', '1s (stock)')}\n")
print("| tool | round | wall s | CPU s | peak RSS MiB | exit | live found | extra | relays flagged | relay verdicts wrong |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in runs:
    f = r["found"]
    if r["tool"] in ("nmap-relay", "nmap-relay-tuned"):  # ran on nmap's discovered list only
        live_col = f"{len(f & set(live))} of its list"
    else:
        live_col = f"{len(f & set(live))}/{len(live)}"
    if r["flagged"] is None:
        rel, wrong = "–", "–"
    else:
        rel = f"{len(r['flagged'] & relays)}/{len(relays)}"
        wrong = str(len(r["flagged"] - relays))
    print(f"| {r['tool']} | {r['round']} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['rss']:.1f} | {r['rc']} | "
          f"{live_col} | {len(f - set(live))} | {rel} | {wrong} |")

by = {}
for r in runs:
    by.setdefault(r["tool"], []).append(r)
avg = {t: {k: mean(x[k] for x in rs) for k in ("wall", "cpu", "rss")} for t, rs in by.items()}
print("\nMeans over rounds:\n")
print("| tool | wall s | CPU s | peak RSS MiB | live hosts found (all rounds) |")
print("|---|---|---|---|---|")
for t, a in avg.items():
    founds = ", ".join(f"{len(x['found'] & set(live))}" for x in by[t])
    print(f"| {t} | {a['wall']:.2f} | {a['cpu']:.2f} | {a['rss']:.1f} | {founds} |")
if "nmap-disc" in avg and "nmap-relay" in avg:
    full = {k: avg["nmap-disc"][k] + avg["nmap-relay"][k] for k in ("wall", "cpu")}
    full["rss"] = max(avg["nmap-disc"]["rss"], avg["nmap-relay"]["rss"])
    print(f"| nmap full audit (disc + relay) | {full['wall']:.2f} | {full['cpu']:.2f} | {full['rss']:.1f} | |")
    avg["nmap-full"] = full
if "nmap-disc" in avg and "nmap-relay-tuned" in avg:
    full = {k: avg["nmap-disc"][k] + avg["nmap-relay-tuned"][k] for k in ("wall", "cpu")}
    full["rss"] = max(avg["nmap-disc"]["rss"], avg["nmap-relay-tuned"]["rss"])
    print(f"| nmap full audit, tuned (disc + relay --max-parallelism 256) | {full['wall']:.2f} | {full['cpu']:.2f} | {full['rss']:.1f} | |")
    avg["nmap-full-tuned"] = full
if "relayguard" in avg:
    rg = avg["relayguard"]
    print("\nRatios (other tool / relayguard; > 1 means relayguard is better):\n")
    print("| compared with | wall | CPU | peak RSS |")
    print("|---|---|---|---|")
    for t in ("nmap-full", "nmap-full-tuned", "nmap-disc", "nmap-relay", "nmap-relay-tuned", "masscan", "relayguard-alt"):
        if t in avg:
            a = avg[t]
            print(f"| {t} | {a['wall'] / rg['wall']:.2f}× | {a['cpu'] / max(rg['cpu'], 1e-9):.2f}× | "
                  f"{a['rss'] / rg['rss']:.2f}× |")
if "relayguard-disc" in avg:
    rd = avg["relayguard-disc"]
    print("\nDiscovery alone (other tool / relayguard --discover-only; > 1 means relayguard is better):\n")
    print("| compared with | wall | CPU | peak RSS |")
    print("|---|---|---|---|")
    for t in ("masscan", "nmap-disc"):
        if t in avg:
            a = avg[t]
            print(f"| {t} | {a['wall'] / rd['wall']:.2f}× | {a['cpu'] / max(rd['cpu'], 1e-9):.2f}× | "
                  f"{a['rss'] / rd['rss']:.2f}× |")


def findings_by_host(tool, rnd):
    doc = json.load(open(f"{out}/{tool}.{rnd}.json"))
    return {h["address"]: sorted((f["kind"], f["severity"]) for f in h["findings"])
            for h in doc["hosts"] if h["state"] == "open"}


if "relayguard" in by and "relayguard-alt" in by:
    print("\nFindings on hosts that are not open relays, relayguard against relayguard-alt "
          "(e.g. --all-vectors), round by round:\n")
    for a in by["relayguard"]:
        b = next((x for x in by["relayguard-alt"] if x["round"] == a["round"]), None)
        if b is None:
            continue
        fa, fb = findings_by_host("relayguard", a["round"]), findings_by_host("relayguard-alt", b["round"])
        hosts = sorted((set(fa) | set(fb)) - relays)
        differ = [h for h in hosts if fa.get(h) != fb.get(h)]
        print(f"- round {a['round']}: {len(hosts) - len(differ)} of {len(hosts)} hosts have the same findings"
              + (": differ on " + "; ".join(f"{h} [{live.get(h, '?')}] {fa.get(h)} vs {fb.get(h)}"
                                               for h in differ[:5]) if differ else ""))

print("\nDisagreements with the ground truth, host by host:\n")
any_dis = False
for r in runs:
    on_list = r["tool"] in ("nmap-relay", "nmap-relay-tuned")
    scope = r["found"] if on_list else set(live)
    missed = sorted(set(live) - r["found"]) if not on_list else []
    extra = sorted(r["found"] - set(live))
    lines = []
    if missed:
        lines.append("missed live: " + ", ".join(f"{a} [{live[a]}]" for a in missed))
    if extra:
        lines.append("extra open: " + ", ".join(extra))
    if r["flagged"] is not None:
        m = sorted((relays & scope) - r["flagged"])
        w = sorted(r["flagged"] - relays)
        if m:
            lines.append("open relays not flagged: " + ", ".join(m))
        if w:
            lines.append("flagged but not open relays: " + ", ".join(f"{a} [{live.get(a, '?')}]" for a in w))
    if lines or r["note"]:
        any_dis = any_dis or bool(lines)
        print(f"- {r['tool']} round {r['round']}: " + ("; ".join(lines) if lines else "none") +
              (f" ({r['note']})" if r["note"] else ""))
if not any_dis:
    print("- none")
