"""`make bench`: intake beside its floor, end to end, matching at scale, worker memory, and the
lead list and its export over 200,000 leads.
Prints one line per figure with its ratio or target and records them in bench/RESULTS.md.

    python -m bench [--profile auto|all|none] [--only intake|end_to_end|matching|lead_list ...]

`auto` (the default) profiles the figures that missed their targets, after the measured runs
and apart from them: py-spy on the gunicorn workers under load, py-spy and per-task times on
the workers draining a smaller batch, pyinstrument over the matches."""

import argparse
import os
import platform
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import end_to_end, intake, lead_list, matching
from bench.support import ROOT, bench_lock, ensure_requirements, ensure_wrk

RESULTS = ROOT / "bench" / "RESULTS.md"
FIGURES = ("<!-- figures:start -->", "<!-- figures:end -->")
PROFILES = ("<!-- profiles:start -->", "<!-- profiles:end -->")
TARGETS = {"ratio": 0.6, "half_p99": 50, "done": 60, "match_p95": 20, "growth": 10}


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    cpu = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    memory = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
    postgres = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc",
                               "SHOW server_version"], capture_output=True, text=True)
    return (f"{cpu.group(1) if cpu else platform.processor()}, "
            f"{len(re.findall(r'^processor', cpuinfo, re.M))} cores, "
            f"{int(memory.group(1)) // 1024 // 1024} GiB RAM; {platform.system()} "
            f"{platform.release()}; Python {platform.python_version()}; "
            f"PostgreSQL {postgres.stdout.strip() or 'unknown'}")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def growth(e: dict) -> float:
    return (e["late_rss"] - e["early_rss"]) / e["early_rss"] * 100


def intake_lines(i: dict) -> list[str]:
    return [
        f"intake      rps={i['app']['rps']:.0f} p50={i['app']['p50']:.1f}ms "
        f"p99={i['app']['p99']:.1f}ms  floor rps={i['floor']['rps']:.0f} "
        f"p99={i['floor']['p99']:.1f}ms  ratio={i['ratio']:.2f} (target >= 0.6; by turn "
        f"{' '.join(f'{r:.2f}' for r in i['turn_ratios'])})",
        f"intake/2    offered ~{i['half_target']:.0f} req/s (half the top rate), took "
        f"{i['half']['rps']:.0f}: p50={i['half']['p50']:.1f}ms p99={i['half']['p99']:.1f}ms "
        f"(target p99 < 50 ms)",
    ]


def mix_text(mix: dict) -> str:
    return ", ".join(f"{name} {count}" for name, count in mix.items())


def end_to_end_lines(e: dict) -> list[str]:
    alerts = e["review_alerts"]
    return [
        f"end-to-end  {e['leads']} leads routed+acknowledged in {e['done_s']:.1f}s (target < 60 s):"
        f" routed {e['routed_s']:.1f}s, acked {e['acknowledged_s']:.1f}s; all {e['messages']} "
        f"mails {e['all_mail_s']:.1f}s, floor {e['floor']:.1f}s, "
        f"ratio={e['all_mail_s'] / e['floor']:.1f}x; Message-IDs twice={e['twice']}, acks "
        f"{e['acknowledged']}/{e['leads']}, twice={e['acknowledged_twice']}",
        f"outcomes    {mix_text(e['mix'])}; {e['referrals']} referrals; review alerts "
        f"{alerts['raised']}, {alerts['mailed']} mailed in {alerts['in_mails']}, "
        f"{alerts['waiting_for_digest']} waiting for their digest",
        f"memory      worker RSS {e['early_rss'] / 1024:.0f} MiB after {end_to_end.EARLY} "
        f"leads, {e['late_rss'] / 1024:.0f} MiB after {e['leads']}: {growth(e):+.1f}% "
        f"(target within 10 %)",
    ]


def matching_lines(m: dict) -> list[str]:
    return [
        f"matching    p95={m['p95']:.1f}ms p50={m['p50']:.1f}ms (target p95 < 20 ms)  floor "
        f"query p95={m['floor_p95']:.1f}ms  ratio={m['p95'] / m['floor_p95']:.1f}x the floor",
    ]


def lead_list_lines(r: dict) -> list[str]:
    listed, exported = r["list"], r["export"]
    return [
        f"lead list   {listed['requests']} requests over {r['leads']} leads: "
        f"p95={listed['p95']:.1f}ms p50={listed['p50']:.1f}ms (target p95 < 30 ms)  floor "
        f"query p95={listed['floor_p95']:.1f}ms p50={listed['floor_p50']:.1f}ms  "
        f"ratio={listed['p95'] / listed['floor_p95']:.1f}x the floor",
        f"export      {exported['rows']} rows{'' if exported['complete'] else ' (CUT OFF)'} "
        f"({exported['mib']:.0f} MiB of CSV) in "
        f"{exported['seconds']:.1f}s: serving worker peak RSS {exported['peak_rss_mib']:.0f} MiB"
        f" (target < 200 MB), {exported['before_rss_mib']:.0f} MiB before",
    ]


LINES = {"intake": intake_lines, "end_to_end": end_to_end_lines, "matching": matching_lines,
         "lead_list": lead_list_lines}


def stack_lines(stacks: dict) -> list[str]:
    def joined(pairs):
        return ", ".join(f"{name} {share}%" for name, share in pairs)

    return [f"  samples inside: {stacks['samples']}",
            f"  time by innermost package: {joined(stacks['self_by_package'])}",
            "  project functions, inclusive:",
            *(f"    {share:5.1f}%  {name}" for name, share in stacks["project_functions"])]


def profile_lines(profiles: dict) -> list[str]:
    out = []
    if "intake" in profiles:
        p = profiles["intake"]
        out += [f"intake: py-spy on both gunicorn workers, {intake.PROFILE_SECONDS} s at full "
                f"load ({p['under_profiler']['rps']:.0f} req/s under the profiler); share of "
                f"the samples inside Flask.wsgi_app", *stack_lines(p)]
    if "end_to_end" in profiles:
        p = profiles["end_to_end"]
        out += [f"end to end: {p['leads']} leads ({mix_text(p['mix'])}), done in "
                f"{p['done_s']:.1f}s, all mail in {p['all_mail_s']:.1f}s, with the "
                f"workers logging each task and py-spy on both pool processes; share of the "
                f"samples inside a task", "  tasks (count, mean, total):",
                *(f"    {name:22} {t['count']:6} {t['mean_ms']:7.2f} ms {t['total_s']:7.1f} s"
                  for name, t in p["tasks"].items()),
                *stack_lines(p["stacks"])]
    if profiles.get("matching"):
        out += [f"matching: pyinstrument over the 200 matches, in {profiles['matching']}"]
    return out


def replace_block(text: str, markers: tuple[str, str], body: list[str]) -> str:
    start, end = markers
    block = "\n".join([start, *body, end])
    if start not in text:
        return text.rstrip("\n") + "\n\n" + block + "\n"
    return re.sub(f"{re.escape(start)}.*?{re.escape(end)}", lambda _: block, text, flags=re.S)


def record(figures: list[str], details: dict, profiles: dict, started: float,
           load_before: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [f"Latest run: {stamp}, {time.monotonic() - started:.0f} s in all (`make bench`).",
            f"Machine: {machine()}.",
            f"Load average before the run: {load_before}; after: {load()}.",
            "", "```", *figures, "```", "", "Raw figures:", "", "```",
            *(f"{name}: {value}" for name, value in details.items()), "```"]
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    text = replace_block(text, FIGURES, body)
    profile_body = ["Profiles of the latest run (figures that missed their targets):", "",
                    "```", *profile_lines(profiles), "```"] if profiles else [
        "No profile in the latest run: every target was met."]
    RESULTS.write_text(replace_block(text, PROFILES, profile_body))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--profile", choices=("auto", "all", "none"), default="auto",
                        help="profile the figures that missed their targets (auto), every "
                             "figure (all) or none")
    parser.add_argument("--only", choices=tuple(LINES), action="append",
                        help="run this part alone (repeatable); its figures are printed, and "
                             "bench/RESULTS.md is rewritten only by a run of every part")
    args = parser.parse_args()
    parts = args.only or list(LINES)
    os.chdir(ROOT)
    # Stopped from outside (make interrupted, a CI timeout): unwind through every `finally`,
    # so that the servers, workers and databases the run started go with it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with bench_lock():
        started = time.monotonic()
        load_before = load()
        if not ensure_requirements() and args.profile != "none":
            print("bench: the profilers could not be installed; no profiles this run")
            args.profile = "none"
        ensure_wrk()
        run_id = str(int(time.time()))
        results = {}
        if "intake" in parts:
            print(f"bench: intake (about 90 s; load average {load_before})", flush=True)
            results["intake"] = intake.run(run_id)
        if "end_to_end" in parts:
            print("bench: end to end (2 to 3 minutes)", flush=True)
            results["end_to_end"] = end_to_end.run(run_id)
        if "matching" in parts:
            print("bench: matching at scale (under a minute)", flush=True)
            results["matching"] = matching.run(args.profile)
        if "lead_list" in parts:
            print(f"bench: lead list and export over {lead_list.LEADS} leads (2 to 3 minutes)",
                  flush=True)
            results["lead_list"] = lead_list.run()
        figures = [line for name, result in results.items() for line in LINES[name](result)]
        print("\n".join(figures), flush=True)

        profiles = {}
        every = args.profile == "all"
        i, e, m = (results.get(name) for name in ("intake", "end_to_end", "matching"))
        if args.profile != "none":
            if i and (every or i["ratio"] < TARGETS["ratio"]
                      or i["half"]["p99"] >= TARGETS["half_p99"]):
                print("bench: profiling intake (about 30 s)", flush=True)
                profiles["intake"] = intake.profile(run_id)
            if e and (every or e["done_s"] >= TARGETS["done"]):
                print(f"bench: profiling end to end ({end_to_end.PROFILE_LEADS} leads, about "
                      f"1 minute)", flush=True)
                profiles["end_to_end"] = end_to_end.profile(run_id)
            if m and m["profile"]:
                profiles["matching"] = m["profile"]
        if profiles:
            print("\n".join(profile_lines(profiles)))
        if args.only:
            print(f"bench: {time.monotonic() - started:.0f} s in all; load average after: "
                  f"{load()}; raw figures: {results}")
            return
        record(figures, results, profiles, started, load_before)
        print(f"bench: {time.monotonic() - started:.0f} s in all; figures in "
              f"{RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
