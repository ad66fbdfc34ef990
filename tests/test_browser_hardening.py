"""The hostile-user findings that live in the browser: a killed worker, a refused upload, concurrent launches
against the hosted caps, and two accounts on one server. Real `python app.py`, headless Chromium."""

from __future__ import annotations

import os
import signal
import time

import pytest

from mia_app.service.store import JobStore
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, REPO, _running_app

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} missing: apt-get install -y chromium"),
]


def _page(p, url: str):
    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(url)
    return browser, page


def _login(page, user: str, password: str) -> None:
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("text=hosted (login", timeout=60_000)


def test_a_killed_worker_is_seen_within_a_poll_and_the_job_retried(tmp_path):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    store = JobStore(tmp_path / "runs" / "jobs.sqlite")
    with _running_app(tmp_path) as url, sync_playwright() as p:
        browser, page = _page(p, url)
        page.wait_for_selector("#launch", timeout=60_000)
        page.fill("#targets textarea", "0")
        page.get_by_label("stage1 steps").fill("400")  # long enough to be killed mid-run
        page.click("#launch")
        page.wait_for_selector("#progress:has-text('running')", timeout=90_000)
        page.wait_for_function("() => /step [1-9]/.test(document.querySelector('#progress').innerText)",
                               timeout=90_000)
        [worker] = store.live_workers()
        os.kill(worker.pid, signal.SIGKILL)
        killed = time.time()
        page.wait_for_selector("#progress:has-text('interrupted')", timeout=15_000)
        seen_after = time.time() - killed
        page.screenshot(path=str(ARTIFACTS / "worker-killed.png"), full_page=True)
        assert "died while running this job" in page.inner_text("#progress")
        assert seen_after < 10, f"the page took {seen_after:.1f}s to show the dead worker"

        # Retry from the Jobs tab: the same job is queued again, and a new worker (started by this instance's
        # poll) runs it to the end.
        page.get_by_role("tab", name="Jobs").click()
        page.wait_for_selector("#jobs-table:has-text('interrupted')", timeout=15_000)
        page.locator("#job-select input").click()
        page.get_by_role("option", name="job 1 · tiny · targets 0").click()
        store.conn.execute("UPDATE jobs SET config = json_set(config, '$.stage1.steps', 4) WHERE id = 1")
        page.click("#retry")
        page.wait_for_selector("text=job 1 queued again", timeout=15_000)
        page.wait_for_selector("#jobs-table:has-text('done')", timeout=120_000)
        page.screenshot(path=str(ARTIFACTS / "worker-retried.png"), full_page=True)
        assert store.get(1).status == "done" and store.live_workers()
        browser.close()


def test_a_refused_upload_blocks_launch_with_its_reason(tmp_path):
    from playwright.sync_api import sync_playwright

    pickle = tmp_path / "target.pt"
    pickle.write_bytes(b"\x80\x04not a checkpoint")
    store = JobStore(tmp_path / "runs" / "jobs.sqlite")
    with _running_app(tmp_path, MIA_START_WORKER="0") as url, sync_playwright() as p:
        browser, page = _page(p, url)
        page.wait_for_selector("#launch", timeout=60_000)
        page.locator("#upload input[type=file]").set_input_files(str(pickle))
        page.wait_for_selector("#launch-status:has-text('must be a .safetensors file')", timeout=30_000)
        page.click("#launch")
        page.wait_for_timeout(2000)
        status = page.inner_text("#launch-status")
        page.screenshot(path=str(ARTIFACTS / "upload-refused.png"), full_page=True)
        assert "must be a .safetensors file" in status and "queued" not in status
        assert store.jobs() == []  # nothing queued with the preset's T in its place
        browser.close()


def test_hosted_caps_hold_under_concurrent_launches_and_accounts_see_their_own_jobs(tmp_path):
    from playwright.sync_api import sync_playwright

    store = JobStore(tmp_path / "runs" / "jobs.sqlite")
    env = {"MIA_AUTH": "ann:pw-a,bob:pw-b", "MIA_MAX_QUEUED": "2", "MIA_START_WORKER": "0"}
    with _running_app(tmp_path, **env) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        anns = []
        for _ in range(3):  # three tabs of one user, each clicking Launch twice as fast as it can
            page = browser.new_context().new_page()
            page.goto(url)
            _login(page, "ann", "pw-a")
            page.fill("#targets textarea", "0")
            anns.append(page)
        for page in anns:
            page.click("#launch", no_wait_after=True)
            page.click("#launch", no_wait_after=True)
        for page in anns:
            page.wait_for_selector("#launch-status:has-text('job')", timeout=30_000)
        time.sleep(2)
        assert len(store.jobs(session="ann")) == 2, [j.id for j in store.jobs()]
        for page in anns:  # no server paths on a hosted page
            body = page.inner_text("body")
            assert str(tmp_path) not in body and str(REPO) not in body, body

        bob = browser.new_context().new_page()
        bob.goto(url)
        _login(bob, "bob", "pw-b")
        assert not bob.locator("#picker img").count()  # private faces hidden when hosted
        bob.fill("#targets textarea", "1")
        bob.click("#launch")
        bob.wait_for_selector("#launch-status:has-text('queued')", timeout=30_000)
        bob.get_by_role("tab", name="Jobs").click()
        bob.wait_for_selector("#jobs-table:has-text('queued')", timeout=15_000)
        table = bob.inner_text("#jobs-table")
        bob.screenshot(path=str(ARTIFACTS / "hosted-bob-jobs.png"), full_page=True)
        bob_job = store.jobs(session="bob")[0].id
        assert table.count("queued") == 1 and str(bob_job) in table
        anns[0].get_by_role("tab", name="Jobs").click()
        anns[0].wait_for_selector("#jobs-table:has-text('queued')", timeout=15_000)
        assert anns[0].inner_text("#jobs-table").count("queued") == 2
        browser.close()


def test_a_second_app_instance_takes_over_when_the_first_stops(tmp_path):
    """Two dashboards on one job store, a page open on the second: stopping the first (and the worker it
    started) leaves that page's next poll to start a worker, with no reload, instead of "a worker: none"."""
    from playwright.sync_api import sync_playwright

    from mia_app.attack.config import AttackConfig

    runs = tmp_path / "shared-runs"
    store = JobStore(runs / "jobs.sqlite")
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir(), second_dir.mkdir()
    first = _running_app(first_dir, MIA_RUNS_DIR=str(runs))
    first.__enter__()  # the first instance starts, and its worker with it
    try:
        deadline = time.time() + 60
        while not store.live_workers() and time.time() < deadline:
            time.sleep(0.5)
        [before] = store.live_workers()
        with _running_app(second_dir, MIA_RUNS_DIR=str(runs)) as second_url, sync_playwright() as p:
            browser, page = _page(p, second_url)
            page.get_by_role("tab", name="Jobs").click()
            page.wait_for_selector("#worker-status:has-text('heartbeat')", timeout=60_000)
            assert [w.pid for w in store.live_workers()] == [before.pid]  # the second found one alive
            first.__exit__(None, None, None)  # stops the first app and the worker it started
            first = None
            # A job queued from elsewhere (the CLI, another instance) runs: the open page's poll starts a worker.
            cfg = AttackConfig.from_yaml(second_dir / "presets" / "tiny.yaml")
            store.submit("attack", "from-elsewhere", cfg.model_dump(mode="json"), [0])
            page.wait_for_selector("#jobs-table:has-text('done')", timeout=120_000)
            [after] = store.live_workers()
            assert after.pid != before.pid
            page.screenshot(path=str(ARTIFACTS / "second-instance-took-over.png"), full_page=True)
            browser.close()
    finally:
        if first is not None:
            first.__exit__(None, None, None)
    assert [j.status for j in store.jobs()] == ["done"]
