"""The dashboard end to end in headless Chromium: launch tiny attacks, watch them, compare two runs.

Runs the real `python app.py` (which starts its own worker) on a free port, with a temp job store and a tiny
preset (tests/helpers.py) offered through MIA_PRESETS_DIR. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from mia_app.service.store import JobStore
from tests.helpers import save_tiny_eval, tiny_attack_config

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: apt-get install -y chromium"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"app not up after {timeout}s:\n{log.read_text()[-3000:]}")


@contextmanager
def _running_app(tmp_path: Path, with_ablation: bool = False, **extra_env: str):
    presets = tmp_path / "presets"
    presets.mkdir()
    if with_ablation:  # the committed scoreboard's tables and figure, as the Ablation tab finds them
        board = tmp_path / "results" / "ablation-scoreboard"
        board.mkdir(parents=True)
        for name in ("summary.json", "table.md", "acc1.png"):
            shutil.copy(REPO / "results" / "ablation-scoreboard" / name, board / name)
    cfg = tiny_attack_config(tmp_path, stage1={"steps": 6, "lr": 0.05, "image_every": 2,
                                               "weights": {"prior": 0.3, "id": 1.0, "perc": 0.5, "cls": 1.0}})
    (presets / "tiny.yaml").write_text(cfg.to_yaml())
    orl = tiny_attack_config(tmp_path, data={"kind": "orl", "n_private": 3, "resolution": 32})  # the selector's
    (presets / "orl-tiny.yaml").write_text(orl.to_yaml())
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "MIA_PRESETS_DIR": str(presets),
           "MIA_DEFAULT_PRESET": "tiny", "MIA_RUNS_DIR": str(tmp_path / "runs"),
           "MIA_RESULTS_DIR": str(tmp_path / "results"), "MIA_PORT": str(port), "MIA_THREADS": "1",
           "MIA_EVAL_MODEL": str(save_tiny_eval(tmp_path / "eval.safetensors")),
           "OMP_NUM_THREADS": "1", **extra_env}
    log = tmp_path / "app.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_http(url, proc, log)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)  # the app stops the worker it started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # ... and the worker it started is gone too (it deregisters on the way out)
    store = JobStore(tmp_path / "runs" / "jobs.sqlite")
    deadline = time.time() + 20
    while store.live_workers() and time.time() < deadline:
        time.sleep(0.5)
    assert not store.live_workers(), "the app's worker outlived it"


@pytest.fixture
def app_url(tmp_path):
    with _running_app(tmp_path, with_ablation=True) as url:
        yield url


@pytest.fixture
def hosted_url(tmp_path):
    with _running_app(tmp_path, MIA_AUTH="ann:secret", MIA_MAX_STEPS="50") as url:
        yield url, tmp_path / "runs"


# The elements under a selector that scroll inside their own box (content larger than the box, overflow auto).
SCROLLS_INSIDE = """sel => Array.from(document.querySelectorAll(sel + ' *')).filter(e => {
    const cs = getComputedStyle(e);
    const scrolls = v => v === 'auto' || v === 'scroll';
    return (scrolls(cs.overflowY) && e.scrollHeight > e.clientHeight + 2)
        || (scrolls(cs.overflowX) && e.scrollWidth > e.clientWidth + 2);
}).map(e => e.className.toString().slice(0, 40) + ' ' + e.scrollWidth + 'x' + e.scrollHeight + ' in '
        + e.clientWidth + 'x' + e.clientHeight)"""


def _launch_and_wait(page, job_no: int, shot: str) -> float:
    """Click Launch; return the seconds until the first generated image shows; wait for the job to finish."""
    started = time.time()
    page.click("#launch")
    page.wait_for_selector("#launch-status:has-text('queued')", timeout=30_000)
    page.wait_for_selector(f"#progress:has-text('job {job_no}')", timeout=30_000)
    page.wait_for_function(
        "n => document.querySelectorAll('#live-gallery img').length > 0 && "
        "document.querySelector('#progress').innerText.includes('job ' + n)", arg=job_no, timeout=90_000)
    first_image = time.time() - started
    page.screenshot(path=str(ARTIFACTS / f"{shot}-running.png"), full_page=True)
    page.wait_for_selector("#progress:has-text('done')", timeout=90_000)
    page.wait_for_timeout(1500)  # one more poll: final images and the last curve points
    page.screenshot(path=str(ARTIFACTS / f"{shot}-done.png"), full_page=True)
    return first_image


def test_launch_watch_and_compare_in_the_browser(app_url):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        page.goto(app_url)
        page.wait_for_selector("#picker img", timeout=60_000)  # demo mode: one private image per class
        page.wait_for_selector("#references :text('class 0')", timeout=15_000)  # references of the default target
        page.locator("#picker img").nth(1).click()  # the picker fills the targets and shows the references
        page.wait_for_selector("#references :text('class 1')", timeout=15_000)
        assert page.input_value("#targets textarea") == "1"
        page.screenshot(path=str(ARTIFACTS / "attack-start.png"), full_page=True)
        page.fill("#targets textarea", "0")  # typing a target moves the references too
        page.wait_for_selector("#references :text('class 0')", timeout=15_000)

        # Bad input: a clear message, nothing queued, the app stays up.
        steps = page.get_by_label("stage1 steps")
        steps.fill("-3")
        page.click("#launch")
        page.wait_for_selector("#launch-status:has-text('stage1.steps')", timeout=30_000)
        assert "greater than or equal to 0" in page.inner_text("#launch-status")
        steps.fill("6")

        # Launch stays in view at the bottom of the long form (a sticky bar)
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_timeout(300)
        box = page.locator("#launch").bounding_box()
        assert box is not None and 0 <= box["y"] <= 1300 - box["height"], box
        page.evaluate("window.scrollTo(0, 0)")

        first_image_s = _launch_and_wait(page, 1, "attack-1")
        print(f"\nLaunch -> first image: {first_image_s:.1f}s (includes worker start-up)")
        # The verdict: E judged the run as it ended; each final image beside the private references
        page.wait_for_selector("#verdict :text('E recognises the target in')", timeout=30_000)
        verdict = page.inner_text("#verdict")
        assert "E top-5:" in verdict and ("1 of 1" in verdict or "0 of 1" in verdict)
        assert page.locator("#verdict img.ref").count() == 2 and page.locator("#verdict img.face").count() == 3
        assert not page.locator("#cancel-watched").is_enabled()  # nothing to cancel once it ended
        page.locator("#verdict").screenshot(path=str(ARTIFACTS / "verdict.png"))
        assert page.locator("#loss-plot .scatterlayer .trace").count() >= 4  # L_* terms and the total
        assert page.locator("#conf-plot .scatterlayer .trace").count() == 1
        assert "scheme D is off" in page.inner_text("#weights-plot")
        assert "PASS" in page.inner_text("#doctor")
        assert page.locator("#live-gallery img").count() >= 2  # final pick + grids

        # A second run with scheme D on: its learned weights get a curve.
        page.get_by_label("D: uncertainty weighting").check()
        page.get_by_label("Run name").fill("tiny-D")
        second_s = _launch_and_wait(page, 2, "attack-2")
        print(f"Launch -> first image (warm worker): {second_s:.1f}s")
        assert page.locator("#weights-plot .scatterlayer .trace").count() >= 2

        # A peer from the same tab: PPA on the public generator, same T and identities; its settings replace
        # our schemes in the form.
        page.get_by_label("PPA: Plug & Play Attack on the public generator").check()
        ppa = page.locator("#peer-ppa").first  # Gradio repeats a group's elem_id on its inner block
        ppa.wait_for(state="visible", timeout=15_000)
        assert not page.get_by_label("D: uncertainty weighting").is_visible()
        ppa.get_by_label("search_space", exact=True).fill("32")
        ppa.get_by_label("steps", exact=True).fill("4")
        ppa.get_by_label("image_every", exact=True).fill("1")
        ppa.get_by_label("final.iterations", exact=True).fill("2")
        page.get_by_label("Run name").fill("")
        ppa_s = _launch_and_wait(page, 3, "attack-ppa")
        print(f"Launch -> first image (PPA): {ppa_s:.1f}s")
        assert page.locator("#conf-plot .scatterlayer .trace").count() == 1

        page.get_by_role("tab", name="Compare").click()
        page.locator("#compare-runs input").click()
        for name in ("job-000001-tiny", "job-000002-tiny-D", "job-000003-ppa"):
            page.get_by_role("option", name=name).click()
        page.click("#compare-btn")
        page.wait_for_selector("#compare-gallery-1 img", timeout=30_000)
        page.wait_for_selector("#compare-curves .scatterlayer .trace", timeout=30_000)
        metrics = page.inner_text("#compare-metrics")
        assert "E acc@1 %" in metrics and "[" in metrics and "D" in metrics and "ppa" in metrics
        assert "evaluated with E" in metrics and "no: press Evaluate" not in metrics
        assert "schemes.D" in page.inner_text("#compare-diff")  # what differs between the runs' configs
        assert page.evaluate(SCROLLS_INSIDE, "#compare-metrics") == []
        page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)
        page.click("#compare-export")
        page.wait_for_selector("#compare-report :text('report-job-000001-tiny')", timeout=30_000)

        # The Ablation tab: the compact table and the figure show at once, no scrolling inside a box
        page.get_by_role("tab", name="Ablation").click()
        page.wait_for_selector("#ablation-compact :text('floor')", timeout=15_000)
        compact = page.inner_text("#ablation-compact")
        assert "84.5 [79.0, 89.0]" in compact and "Δ E acc@1 vs floor" in compact
        page.wait_for_function("() => { const i = document.querySelector('#ablation-figure img');"
                               " return i && i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().height"
                               " > 200; }", timeout=15_000)
        assert page.evaluate(SCROLLS_INSIDE, "#ablation-compact") == []  # every row and column in view
        page.screenshot(path=str(ARTIFACTS / "ablation.png"), full_page=True)
        page.click("#ablation-export")
        page.wait_for_selector("#ablation-report :text('report-ablation-scoreboard')", timeout=30_000)

        page.get_by_role("tab", name="Jobs").click()
        page.wait_for_selector("#jobs-table:has-text('tiny-D')", timeout=15_000)
        assert page.inner_text("#jobs-table").count("done") >= 3
        assert "T target · D" in page.inner_text("#jobs-table")  # the settings column
        assert "heartbeat" in page.inner_text("#worker-status")
        page.screenshot(path=str(ARTIFACTS / "jobs.png"), full_page=True)

        # The benchmark selector: ORL brings its presets, identities and shipped targets; Compare its runs (none).
        page.get_by_role("tab", name="Attack").click()
        page.get_by_label("AT&T/ORL (real faces)").check()
        page.wait_for_function("document.querySelector('#preset input').value === 'orl-tiny'", timeout=15_000)
        page.wait_for_selector("#picker-note:has-text('3 identities')", timeout=30_000)
        page.locator("#target-model input").click()
        assert page.get_by_role("option", name="orl/softmax", exact=False).count() == 1
        assert page.get_by_role("option", name="target-negls", exact=False).count() == 0
        page.keyboard.press("Escape")
        page.screenshot(path=str(ARTIFACTS / "benchmark-orl.png"), full_page=True)
        page.get_by_role("tab", name="Compare").click()
        page.click("#compare-runs input")
        assert page.get_by_role("option", name="job-000001-tiny").count() == 0  # a SynthID run
        browser.close()


def test_hosted_mode_shows_images_without_serving_run_folders(hosted_url):
    """Behind a login, images reach the page as Gradio's hashed copies; the run folder itself is not served."""
    from playwright.sync_api import sync_playwright

    url, runs = hosted_url
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        page.goto(url)
        page.get_by_label("username").fill("ann")
        page.get_by_label("password").fill("secret")
        page.get_by_role("button", name="Login").click()
        page.wait_for_selector("text=hosted (login", timeout=60_000)
        page.fill("#targets textarea", "0")
        _launch_and_wait(page, 1, "hosted")
        sources = page.eval_on_selector_all("#live-gallery img", "imgs => imgs.map(i => i.src)")
        assert sources and not any(str(runs) in s for s in sources), sources
        final = next(runs.glob("job-000001-*/final/class0000_rank0.png"))
        assert page.request.get(f"{url}gradio_api/file={final}").status == 403  # logged in, still refused
        browser.close()
