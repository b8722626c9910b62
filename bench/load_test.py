"""Bounded load test: one Streamlit server on loopback, N concurrent browser sessions (Playwright, one
Chromium, one context each) asking the Inspect page for different methods, classes and sample photos.

Usage: python bench/load_test.py [--sessions 8] [--requests 25] [--timeout 1500] [--max-rss-mib 3072]
       [--url http://127.0.0.1:PORT --pid SERVER_PID]   (connect to a running server instead of starting one)
Each request opens ``/?image=S&method=M&class=C`` in a fresh page load (a new Streamlit session), waits for
the map, checks the explained class, downloads the heat map .npy and, after the timed phase, compares it
with ``cam_core.explain`` run alone in this process on the same model, image, method and class.
Reports errors, mismatches, p50/p95 latency, peak RSS of the server and its RSS after all requests;
exits 1 on any error, mismatch or RSS over the bound. Stops by itself (fixed request count, global timeout).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.appserver import CHROMIUM, CHROMIUM_ARGS, serve  # noqa: E402  (the browser tests' server, too)

#: Every method that answers in well under a second on CPU (occlusion and SmoothGrad are timed in bench_methods).
METHODS = ["gradcam", "gradcam++", "cam", "saliency", "guided_backprop", "deconvnet", "guided_gradcam"]
SAMPLES = ["chelsea", "coffee", "rocket", "astronaut", "stereo_motorcycle"]
DONE = 'button:has-text("Heat map .npy")'
FAILED = '[data-testid="stException"], [data-testid="stAlertContentError"]'
RUNNING = '[data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"]'


@dataclass
class Request:
    session: int
    index: int
    image: str
    method: str
    cls: int
    latency_s: float = 0.0
    error: str | None = None
    npy: Path | None = None
    retries: int = 0


def plan(sessions: int, per_session: int) -> list[list[Request]]:
    """A deterministic request list per session: methods, photos and classes all differ between sessions."""
    out = []
    for s in range(sessions):
        reqs = []
        for r in range(per_session):
            reqs.append(Request(s, r, SAMPLES[(s + 2 * r) % len(SAMPLES)], METHODS[(s + r) % len(METHODS)],
                                (s * 125 + r * 37 + 1) % 1000))
        out.append(reqs)
    return out


# --------------------------------------------------------------------------- server memory and CPU


def _status_kib(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` memory field (VmRSS, VmHWM) in KiB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) the process has used so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssMonitor(threading.Thread):
    """Samples the server's RSS every 0.25 s and keeps the peak (VmHWM is read as well at the end)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kib, self.stop = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak_kib = max(self.peak_kib, _status_kib(self.pid, "VmRSS"))
            except (OSError, KeyError):
                return
            self.stop.wait(0.25)


# --------------------------------------------------------------------------- browser sessions


async def one_request(page, base: str, req: Request, folder: Path) -> None:
    query = urlencode({"image": req.image, "method": req.method, "class": req.cls})
    started = time.perf_counter()
    try:
        await page.goto(f"{base}/?{query}", wait_until="domcontentloaded")
        await page.wait_for_selector(f"{DONE}, {FAILED}", timeout=240_000)
        if await page.locator(FAILED).count():
            req.error = (await page.locator(FAILED).first.inner_text()).strip().splitlines()[0][:200]
            return
        req.latency_s = time.perf_counter() - started
        details = await page.locator('[data-testid="stMarkdownContainer"]:has-text("Explained class")').first.inner_text()
        match = re.search(r"Explained class:\s*.*\((\d+)\)", details)
        if not match or int(match.group(1)) != req.cls:
            req.error = f"explained class is not {req.cls}: {details[:120]!r}"
            return
        req.npy = folder / f"s{req.session}_r{req.index}.npy"
        for attempt in range(2):
            # Click when the session is idle: a click during a rerun holds a download id that the rerun revokes.
            await page.wait_for_selector(RUNNING, state="detached", timeout=120_000)
            try:
                async with page.expect_download(timeout=120_000) as info:
                    await page.locator(DONE).first.click()
                await (await info.value).save_as(str(req.npy))
                break
            except Exception as exc:
                if attempt or "canceled" not in str(exc):
                    raise
                req.retries += 1  # counted and reported; the second click must succeed
    except Exception as exc:  # a timeout or a crashed page counts as an error of this request
        req.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


async def run_sessions(base: str, plans: list[list[Request]], folder: Path) -> float:
    """All sessions at once (one Chromium, one context per session); returns the wall time in seconds."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            # Warm-up, alone and not counted: loads the model into the server's cache_resource.
            ctx = await browser.new_context(accept_downloads=True)
            warm = Request(-1, 0, "chelsea", "gradcam", 281)
            await one_request(await ctx.new_page(), base, warm, folder)
            await ctx.close()
            if warm.error:
                raise RuntimeError(f"warm-up request failed: {warm.error}")

            async def session(reqs: list[Request]) -> None:
                context = await browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
                page = await context.new_page()
                try:
                    for req in reqs:
                        await one_request(page, base, req, folder)
                finally:
                    await context.close()

            started = time.perf_counter()
            await asyncio.gather(*(session(reqs) for reqs in plans))
            return time.perf_counter() - started
        finally:
            await browser.close()


# --------------------------------------------------------------------------- reference, alone, in-process


def compare(requests: list[Request]) -> tuple[int, float]:
    """Recompute each request alone with ``cam_core.explain``; returns (bit-identical count, max |diff|)."""
    import numpy as np

    import models
    from cam_core.explain import explain
    from cam_core.imaging import load_image
    from cam_core.registry import METHODS as REGISTRY
    from cam_core.render import heatmap_at_image_size
    from ui.samples import sample_png

    backbone = models.load(models.DEFAULT_MODEL, device="cpu")
    images = {name: load_image(sample_png(name), name=f"{name}.png") for name in SAMPLES}
    identical, worst = 0, 0.0
    for req in requests:
        layer = backbone.spec.default_layer if REGISTRY[req.method].needs_layer else None
        exp = explain(backbone.model, backbone.preprocess(images[req.image]), req.method, layer, req.cls)
        ref = heatmap_at_image_size(exp.heatmap, images[req.image])
        got = np.load(io.BytesIO(req.npy.read_bytes()))
        if got.shape != ref.shape:
            req.error = f"heat map shape {got.shape} != {ref.shape} computed alone"
            continue
        diff = float(np.abs(got.astype(np.float64) - ref).max())
        worst = max(worst, diff)
        identical += bool(np.array_equal(got, ref))
        if diff > 1e-5:
            req.error = f"heat map differs from the same request made alone by {diff:.2e}"
    return identical, worst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--requests", type=int, default=25, help="requests per session (default 25: 200 in all)")
    p.add_argument("--timeout", type=float, default=1500, help="global limit in seconds")
    p.add_argument("--max-rss-mib", type=float, default=3072, help="bound on the server's RSS after the run")
    p.add_argument("--url", default=None, help="a running server (loopback) instead of starting one")
    p.add_argument("--pid", type=int, default=None, help="with --url: the server's process id, for RSS")
    args = p.parse_args(argv)
    if args.url and not re.match(r"^http://(127\.0\.0\.1|localhost)(:\d+)?/?$", args.url):
        p.error("--url must be a loopback address")

    work = Path(tempfile.mkdtemp(prefix="cam_load_"))
    plans = plan(args.sessions, args.requests)
    flat = [r for reqs in plans for r in reqs]
    with contextlib.ExitStack() as stack:
        server = None if args.url else stack.enter_context(serve(work))
        base, pid = (args.url.rstrip("/"), args.pid) if server is None else (server.url, server.pid)
        monitor = RssMonitor(pid) if pid else None
        if monitor:
            monitor.start()
            stack.callback(monitor.stop.set)
        cpu_before = _cpu_s(pid) if pid else None
        wall = asyncio.run(asyncio.wait_for(run_sessions(base, plans, work), timeout=args.timeout))
        rss_after_kib = _status_kib(pid, "VmRSS") if pid else None
        server_cpu = _cpu_s(pid) - cpu_before if pid else None
        hwm_kib = _status_kib(pid, "VmHWM") if pid else None
        server_alive = server is None or server.alive()

    done = [r for r in flat if r.error is None and r.npy is not None]
    identical, worst = compare(done)
    errors = [r for r in flat if r.error is not None]
    lat = sorted(r.latency_s for r in flat if r.error is None)
    p50 = statistics.median(lat) if lat else float("nan")
    p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))] if lat else float("nan")
    peak_mib = max(monitor.peak_kib, hwm_kib or 0) / 1024 if monitor else None
    after_mib = rss_after_kib / 1024 if rss_after_kib else None
    summary = {
        "driver": "Playwright, one Chromium, one browser context per session (a fresh page load per request)",
        "sessions": args.sessions, "requests": len(flat), "distinct_requests": len({(r.image, r.method, r.cls) for r in flat}),
        "errors": len(errors), "download_retries": sum(r.retries for r in flat), "identical_to_alone": identical, "max_abs_diff": worst,
        "p50_s": round(p50, 2), "p95_s": round(p95, 2), "wall_s": round(wall, 1),
        "throughput_per_s": round(len(done) / wall, 2) if wall else None,
        # Includes the warm-up request; the rest of the machine's CPU went to Chromium rendering the pages.
        "server_cpu_s": round(server_cpu, 1) if server_cpu is not None else None,
        "server_cpu_s_per_request": round(server_cpu / len(flat), 2) if server_cpu is not None else None,
        "server_peak_rss_mib": round(peak_mib) if peak_mib else None,
        "server_rss_after_mib": round(after_mib) if after_mib else None,
        "rss_bound_mib": args.max_rss_mib, "server_alive": server_alive, "cpus": os.cpu_count(),
    }
    print(json.dumps(summary, indent=2))
    for r in errors[:10]:
        print(f"error: session {r.session} request {r.index} ({r.image}, {r.method}, class {r.cls}): {r.error}",
              file=sys.stderr)
    ok = not errors and server_alive and worst <= 1e-5
    if after_mib is not None and after_mib > args.max_rss_mib:
        print(f"error: server RSS {after_mib:.0f} MiB is over the {args.max_rss_mib:.0f} MiB bound", file=sys.stderr)
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
