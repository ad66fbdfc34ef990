"""Launch -> first image -> finished attack, measured in a real browser on the real dashboard.

Starts ``python app.py`` exactly as ``make demo`` does (embedded assets, default preset ``cpu-quick``), with a
temporary job store, then drives headless Chromium: pick a target in the thumbnail picker, Launch, and time the
first generated image and the ``done`` status. Two launches: the first includes the worker's start-up and model
loading (what a new user waits for), the second finds the worker warm.

    python benchmarks/dashboard_latency.py --targets 0 --shots results/dashboard

Needs Debian's Chromium (``apt-get install chromium``) and the ``playwright`` package (requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(url: str, proc: subprocess.Popen, timeout: float) -> float:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"app exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.time() - t0
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"app not up after {timeout}s")


def _launch(page, job_no: int, shots: Path | None, tag: str, timeout_ms: int) -> dict:
    t0 = time.time()
    page.click("#launch")
    page.wait_for_function(
        "n => document.querySelectorAll('#live-gallery img').length > 0 && "
        "document.querySelector('#progress').innerText.includes('job ' + n)", arg=job_no, timeout=timeout_ms)
    first = time.time() - t0
    if shots:
        page.screenshot(path=str(shots / f"{tag}-running.png"), full_page=True)
    page.wait_for_selector(f"#progress:has-text('job {job_no}'):has-text('done')", timeout=timeout_ms)
    done = time.time() - t0
    if shots:
        page.wait_for_timeout(1500)  # one more poll so the final images are on the page
        page.screenshot(path=str(shots / f"{tag}-done.png"), full_page=True)
    return {"launch_to_first_image_s": round(first, 1), "launch_to_done_s": round(done, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default="0", help="target classes typed into the form (default: 0)")
    ap.add_argument("--shots", type=Path, default=None, help="folder for screenshots (none by default)")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--timeout", type=float, default=600, help="seconds allowed per launch")
    args = ap.parse_args()
    if not Path(args.chromium).exists():
        raise SystemExit(f"{args.chromium} missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    if args.shots:
        args.shots.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="mia-dash-bench-"))
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "MIA_RUNS_DIR": str(tmp / "runs"),
           "MIA_DB": str(tmp / "runs" / "jobs.sqlite"), "MIA_RESULTS_DIR": str(tmp / "results"),
           "MIA_PORT": str(port)}
    log = open(tmp / "app.log", "w")
    t_start = time.time()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    out: dict = {"preset": "cpu-quick (the dashboard's default)", "targets": args.targets, "runs": str(tmp)}
    try:
        url = f"http://127.0.0.1:{port}/"
        out["app_start_to_http_s"] = round(_wait_up(url, proc, 180), 1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1300})
            page.goto(url)
            page.wait_for_selector("#picker img", timeout=120_000)
            out["page_ready_s"] = round(time.time() - t_start, 1)
            page.locator("#picker img").first.click()
            page.fill("#targets textarea", args.targets)
            if args.shots:
                page.screenshot(path=str(args.shots / "first-start.png"), full_page=True)
            ms = int(args.timeout * 1000)
            out["cold_worker"] = _launch(page, 1, args.shots, "cold", ms)
            out["warm_worker"] = _launch(page, 2, args.shots, "warm", ms)
            browser.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
