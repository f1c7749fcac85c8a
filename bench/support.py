"""What the benchmarks share: processes they start and always stop, databases of their own,
Redis db 9 flushed before and after, wrk, py-spy, and reading a process tree's memory."""

import collections
import fcntl
import importlib.metadata
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_SERVER = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = "redis://127.0.0.1:6379/9"
OUT = ROOT / "bench" / "out"
REQUIREMENTS = ROOT / "bench" / "requirements.txt"
LOCK = Path("/tmp/leads-bench.lock")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


class Processes:
    """Every process a benchmark starts, each in its own group, stopped on the way out."""

    def __init__(self):
        self.started: list[subprocess.Popen] = []
        OUT.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        log = open(OUT / f"{name}.log", "wb")  # noqa: SIM115  (the child holds it; this run's only)
        process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.started.append(process)
        return process

    def stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def stop_all(self) -> None:
        for process in reversed(self.started):
            self.stop(process)


@contextmanager
def processes():
    running = Processes()
    try:
        yield running
    finally:
        running.stop_all()


def gunicorn(running: Processes, name: str, app: str, env: dict, workers: int = 2) -> str:
    port = free_port()
    running.start(name, [str(BIN / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
                         "--log-level", "warning", app], env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(base + "/healthz", timeout=1)
            return base
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{name} did not start; see bench/out/{name}.log")


def rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(child) for child in children)
        except (FileNotFoundError, ProcessLookupError, AttributeError):
            continue
    return total


@contextmanager
def database(purpose: str):
    """A fresh PostgreSQL database of the benchmark's own, dropped afterwards."""
    name = f"leads_bench_{purpose}_{os.getpid()}_{secrets.token_hex(2)}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlalchemy_url(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+psycopg://", 1)


def flask_command(env: dict, *args: str) -> str:
    done = subprocess.run([str(BIN / "flask"), "--app", "wsgi", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return done.stdout


def ensure_wrk() -> str:
    if shutil.which("wrk") is None:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        print("bench: installing wrk from Debian's packages", flush=True)
        subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("wrk")


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * UNITS[unit]


def wrk(url: str, seconds: int, connections: int, run: str, delay_ms: float = 0) -> dict:
    """Load `url` with distinct valid inquiries; requests/s, p50 and p99 in ms."""
    cpu_before = cpu_times()
    done = subprocess.run(
        [ensure_wrk(), "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency",
         "-s", str(ROOT / "bench" / "intake.lua"), url],
        capture_output=True, text=True, check=True,
        env={**os.environ, "BENCH_RUN": run, "BENCH_DELAY_MS": str(int(delay_ms))})
    out = done.stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)$", out, re.M)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _ms(latency["50"]), "p99": _ms(latency["99"]),
        "failed": int(failed.group(1)) if failed else 0,
        "socket_errors": errors.group(1) if errors else "",
        "cpu_busy": busy_share(cpu_before, cpu_times()),
    }


@contextmanager
def bench_lock():
    """One benchmark at a time on this machine: two runs would share Redis db 9 (and the two
    cores), and each would spoil the other's figures."""
    with open(LOCK, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"bench: another run holds {LOCK}; waiting for it", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def clean_redis():
    """Redis db 9 empty before a benchmark and again after it."""
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


def ensure_requirements() -> bool:
    """Install bench/requirements.txt (pinned, bench-only: the profilers) into this
    environment if missing; False when that failed."""
    wanted = [line.split("#")[0].strip() for line in REQUIREMENTS.read_text().splitlines()]
    missing = []
    for requirement in filter(None, wanted):
        name, _, version = requirement.partition("==")
        try:
            if importlib.metadata.version(name) == version:
                continue
        except importlib.metadata.PackageNotFoundError:
            pass
        missing.append(requirement)
    if missing:
        print(f"bench: installing {', '.join(missing)}", flush=True)
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *missing])
        return done.returncode == 0
    return True


def children(pid: int) -> list[int]:
    try:
        return [int(child) for child in
                Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def py_spy(running: "Processes", name: str, pids: list[int],
           seconds: int) -> tuple[list[subprocess.Popen], list[Path]]:
    """Start py-spy on each pid (200 samples/s, not pausing it, collapsed stacks). Returns
    the py-spy processes and their output files, complete once those processes have ended."""
    spies, outputs = [], []
    for pid in pids:
        output = OUT / f"{name}-{pid}.txt"
        output.unlink(missing_ok=True)
        spies.append(running.start(
            f"{name}-py-spy", [str(BIN / "py-spy"), "record", "--nonblocking", "--rate", "200",
                               "--duration", str(seconds), "--format", "raw",
                               "--output", str(output), "--pid", str(pid)], {}))
        outputs.append(output)
    return spies, outputs


def stop_spies(spies: list[subprocess.Popen]) -> None:
    """Stop py-spy early: on SIGINT it writes what it sampled so far."""
    for spy in spies:
        if spy.poll() is None:
            os.kill(spy.pid, signal.SIGINT)
    for spy in spies:
        spy.wait(timeout=60)


def _frame_package(frame: str) -> str:
    where = frame.rpartition(" (")[2].rstrip(")")
    path = where.rpartition(":")[0] if ":" in where else where
    if path.startswith(("leads/", "workers/", "bench/")):
        return path.split("/")[0] + "/"
    top = path.split("/")[0].removesuffix(".py")
    return top or "?"


def summarize_stacks(paths: list[Path], root: str, top: int = 12) -> dict:
    """What py-spy saw inside `root` (a frame naming a request or a task): where its time
    went, by the package of the innermost frame (self time), and the project's own functions
    by inclusive time, as shares of the samples under `root`."""
    by_package: collections.Counter = collections.Counter()
    functions: collections.Counter = collections.Counter()
    inside = 0
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            frames = stack.split(";")
            start = next((i for i, frame in enumerate(frames) if root in frame), None)
            if start is None:
                continue
            n = int(count)
            inside += n
            by_package[_frame_package(frames[-1])] += n
            seen = set()
            for frame in frames[start:]:
                if _frame_package(frame) in ("leads/", "workers/"):
                    function = re.sub(r":\d+\)$", ")", frame)
                    if function not in seen:
                        seen.add(function)
                        functions[function] += n

    def share(counter):
        return [(name, round(100 * n / inside, 1)) for name, n in counter.most_common(top)]

    if not inside:  # py-spy could not attach (no ptrace here?): see bench/out/*py-spy.log
        return {"samples": 0, "self_by_package": [], "project_functions": []}

    return {"samples": inside, "self_by_package": share(by_package),
            "project_functions": share(functions)}


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Percent of the machine's CPU time (all cores) that was busy between two cpu_times()."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return round(100 * busy / total, 1) if total else 0.0


def process_cpu() -> dict[int, tuple[str, int, int]]:
    """Every process's (name, parent, CPU jiffies so far), from /proc/<pid>/stat."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(entry.name)] = (name, int(fields[1]), int(fields[11]) + int(fields[12]))
    return found


def cpu_by_group(before: dict, after: dict, groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds spent between two process_cpu() snapshots, by group: each named group is
    a process and its descendants; then postgres, redis and everything else. Processes that
    began and ended between the snapshots are not seen."""
    tick = os.sysconf("SC_CLK_TCK")
    owner = {root: name for name, roots in groups.items() for root in roots}
    spent: collections.Counter = collections.Counter()
    for pid, (name, parent, jiffies) in after.items():
        used = jiffies - before.get(pid, (name, parent, 0))[2]
        if used <= 0:
            continue
        group, current, hops = None, pid, 0
        while current in after and hops < 20:
            if current in owner:
                group = owner[current]
                break
            current, hops = after[current][1], hops + 1
        if group is None:
            group = ("postgres" if name == "postgres" else
                     "redis" if name.startswith("redis") else "other")
        spent[group] += used / tick
    return {name: round(seconds, 1) for name, seconds in spent.most_common()}
