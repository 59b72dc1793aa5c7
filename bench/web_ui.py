"""Web UI page render time under load: a simulated daemon, and a second process that sends
concurrent requests for the citizen screens over loopback (bounded in count and time).

`python -m bench --only "web UI"` for the figures; `python -m bench.web_ui URL` runs one load
and prints its JSON (what the figures call in a child process).
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import statistics
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from typing import Any

from bench.registry import BenchError, figure

# Screens a citizen opens first in each flow, and the help and technician screens. A flow that
# is out of service renders its out-of-service screen, which is a page render too.
PAGES = ("/", "/help", "/a/", "/b/", "/c/", "/d/", "/e/", "/f/", "/technician/")
REQUESTS = 600
CONCURRENCY = 8
MAX_S = 30.0

_stack: ExitStack | None = None
_daemon: Any = None
_last: dict[str, Any] | None = None


def load(base: str, *, requests: int, concurrency: int, max_s: float) -> dict[str, Any]:
    """`concurrency` clients, each with its own keep-alive connection and session cookie, share
    `requests` page loads; stops early at max_s. Times are from request sent to body read."""
    host, port = base.removeprefix("http://").split(":")
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    deadline = time.monotonic() + max_s

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        cookie = ""
        while time.monotonic() < deadline:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            path = PAGES[n % len(PAGES)]
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as err:
                with lock:
                    errors.append(f"{path}: {err}")
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
                continue
            elapsed = (time.perf_counter() - started) * 1000
            cookie = (response.getheader("Set-Cookie") or cookie).split(";")[0]
            with lock:
                if (response.status >= 500 and response.status != 503) or b"<html" not in body:
                    errors.append(f"{path}: HTTP {response.status}")
                else:
                    times.append(elapsed)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max_s + 15)
    times.sort()
    return {
        "requests": len(times),
        "errors": errors[:5],
        "error_count": len(errors),
        "seconds": round(time.monotonic() - started, 2),
        "p50_ms": statistics.median(times) if times else None,
        "p95_ms": times[max(0, round(0.95 * len(times)) - 1)] if times else None,
    }


def _base() -> str:
    global _stack, _daemon
    if _daemon is None:
        from bench.daemon import simulated_daemon

        _stack = ExitStack()
        atexit.register(_stack.close)
        _daemon = _stack.enter_context(simulated_daemon())
    return f"http://127.0.0.1:{_daemon.port}"


def _run_load() -> dict[str, Any]:
    """One load from a second process, so client and server do not share an interpreter."""
    global _last
    command = [sys.executable, "-m", "bench.web_ui", _base(), "--requests", str(REQUESTS)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=MAX_S + 30, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise BenchError("the load process did not finish in time") from err
    if done.returncode != 0:
        raise BenchError(f"load process failed: {done.stderr.strip()[-500:]}")
    result = json.loads(done.stdout)
    if result["error_count"] or not result["requests"]:
        raise BenchError(f"{result['error_count']} failed requests, e.g. {result['errors']}")
    _last = result
    return result


@figure(f"web UI page p50, {CONCURRENCY} concurrent clients", unit="ms")
def page_p50() -> float:
    return _run_load()["p50_ms"]


@figure(f"web UI page p95, {CONCURRENCY} concurrent clients", unit="ms", below=100.0)
def page_p95() -> float:
    # The p50 figure's load just ran; each p95 sample takes the next run of its own.
    global _last
    result, _last = (_last, None) if _last is not None else (_run_load(), None)
    return result["p95_ms"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web_ui", description=__doc__)
    parser.add_argument("base", help="e.g. http://127.0.0.1:8080")
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--max-s", type=float, default=MAX_S)
    args = parser.parse_args(argv)
    if not args.base.startswith("http://127.0.0.1:"):
        parser.error("the load goes to the kiosk's loopback address only")
    result = load(args.base, requests=args.requests, concurrency=args.concurrency, max_s=args.max_s)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
