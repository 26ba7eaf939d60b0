#!/usr/bin/env python
"""Screenshots of the browser app's main views (start, record card with highlights, progress with the stop panel,
conflicts) on the demo search, for the README. It serves `run_screening.py app` on 127.0.0.1 and a free port and
drives Debian's chromium (/usr/bin/chromium) with playwright; the browser tests share `serve_app` and the page
helpers below.

    python scripts/screenshots.py --output_dir docs/screenshots
"""

import contextlib
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

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
DEMO_SEARCH = REPO / "data/demo/search.ris"
DEMO_TRUTH = REPO / "data/demo/train.csv"
# the README's demo settings with the fast ranker: the hypergeometric rule certifies recall 0.9 after ~350 records
SCREENSHOT_ARGS = ["--ranker", "tfidf_lr", "--batch_size", "10", "--target_recall", "0.9"]
FAST = ["--ranker", "tfidf_lr", "--batch_size", "5", "--consecutive_excludes", "5", "--target_recall", "0.9"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """`run_screening.py app ARGS` as a child process on 127.0.0.1:port."""

    def __init__(self, args, port=None, log=None):
        self.args, self.port = list(args), port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = log or tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False).name
        self.process = None

    def start(self, timeout=90):
        """Start it and wait until the page answers (polled, no fixed sleep)."""
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, str(REPO / "run_screening.py"), "app", *self.args, "--port", str(self.port)]
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited with {self.process.returncode}:\n{Path(self.log).read_text()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the app did not answer on {self.url} in {timeout} s:\n{Path(self.log).read_text()}")

    def kill(self):
        """SIGKILL by its PID: no clean-up of any kind."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def serve_app(args, port=None):
    server = AppServer(args, port).start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def open_page(chromium, url, reviewer=None, login=None):
    """A new page on the app: logged in as `login` (user, password) where given, else named `reviewer`."""
    page = chromium.new_page(viewport={"width": 1100, "height": 1000})
    page.set_default_timeout(30000)
    page.goto(url)
    if login:
        page.locator("input[type=text]").fill(login[0])
        page.locator("input[type=password]").fill(login[1])
        page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#status")
    if reviewer:
        set_reviewer(page, reviewer)
    return page


def set_reviewer(page, name):
    box = page.locator("#reviewer textarea, #reviewer input").first
    box.fill(name)
    box.press("Enter")
    page.wait_for_function("!document.querySelector('#status').innerText.includes('Loading')")


def text_of(page, selector):
    return page.locator(selector).first.inner_text()


def wait_text(page, selector, fragment, timeout=30000):
    page.wait_for_function(
        "([s, f]) => { const e = document.querySelector(s); return e && e.innerText.includes(f); }",
        arg=[selector, fragment],
        timeout=timeout,
    )


def tab(page, name):
    page.get_by_role("tab", name=name).click()


def upload(page, path):
    page.locator("#upload input[type=file]").set_input_files(str(path))


def search(page, words):
    page.locator("#search-box textarea, #search-box input").first.fill(words)
    page.click("#search-btn")
    wait_text(page, "#priors-message", "found")


def pick(page, selector, record_id):
    """Choose the radio option of `record_id` in a gr.Radio (labels end with [id])."""
    page.locator(selector).get_by_text(f"[{record_id}]").click()


def card_id(page):
    return page.locator("#card .record").first.get_attribute("data-record-id")


def wait_card_change(page, old_id):
    page.wait_for_function(
        "(old) => { const e = document.querySelector('#card .record');"
        " return e && e.getAttribute('data-record-id') !== old; }",
        arg=old_id,
    )
    return card_id(page)


def demo_truth():
    """{title: 0/1} of the demo's known judgements (the pretend reviewer of scripts/label_demo_batch.py)."""
    import pandas as pd

    truth = pd.read_csv(DEMO_TRUTH, dtype=str, keep_default_na=False)
    return dict(zip(truth.title, truth.judgement.astype(int)))


def main():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default=str(REPO / "docs/screenshots"), help="Where the PNGs go.")
    args = parser.parse_args()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    take_screenshots(out)


def shoot(page, path, full_page=False):
    """A screenshot as a small PNG (palette of 128 colours)."""
    from PIL import Image

    page.wait_for_function("!document.body.innerText.includes('processing')")
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(800)  # the fade-in after an update
    page.screenshot(path=str(path), full_page=full_page)
    Image.open(path).convert("RGB").quantize(128).save(path, optimize=True)


def screen_until_stop(page, review, truth, limit=400, panel="#stop-banner"):
    """Decide every record shown with its known judgement (keys i / e) until the stop panel shows (`panel`: a
    selector inside it, e.g. '#stop-banner .stop' for a certified rule)."""
    import pandas as pd

    titles = pd.read_csv(review / "search.csv", dtype=str, keep_default_na=False).set_index("id").title
    for _ in range(limit):
        if page.locator(panel).count() and page.locator(panel).first.inner_text().strip():
            return
        rid = card_id(page)
        page.keyboard.press("i" if truth.get(titles[rid], 0) else "e")
        wait_card_change(page, rid)
    raise RuntimeError(f"no rule said stop after {limit} records")


def take_screenshots(out):
    """start.png, card.png, progress.png (one reviewer screening the demo search to a stop) and conflicts.png (two
    reviewers, one planted disagreement)."""
    import pandas as pd

    truth = demo_truth()
    with tempfile.TemporaryDirectory() as tmp, browser() as chromium:
        review = Path(tmp) / "single"
        with serve_app(["--output_dir", str(review), *SCREENSHOT_ARGS]) as server:
            page = open_page(chromium, server.url)
            start_demo(page)
            shoot(page, out / "start.png")
            page.click("#start-btn")
            wait_text(page, "#upload-message", "Review started")
            tab(page, "Screen")
            page.wait_for_selector("#card .record[data-record-id^='r']")
            for selector, words, mark in (("#include-terms", "Wilson, penicillamine, zinc, trientine", "include"),
                                          ("#exclude-terms", "case, child, rats, mice", "exclude")):  # fmt: skip
                box = page.locator(f"{selector} textarea, {selector} input").first
                box.fill(words)
                box.press("Enter")
                page.wait_for_selector(f"#card mark.{mark}")
            page.evaluate("document.activeElement.blur()")  # the keys go to the page, not the field
            shoot(page, out / "card.png")
            screen_until_stop(page, review, truth, panel="#stop-banner .stop")
            tab(page, "Progress")
            page.wait_for_selector("#curve img")
            shoot(page, out / "progress.png", full_page=True)
        review = Path(tmp) / "dual"
        with serve_app(["--output_dir", str(review), "--dual_screening", *FAST]) as server:
            alice = open_page(chromium, server.url, reviewer="alice")
            start_demo(alice)
            alice.click("#start-btn")
            wait_text(alice, "#upload-message", "Review started")
            bob = open_page(chromium, server.url, reviewer="bob")
            titles = pd.read_csv(review / "search.csv", dtype=str, keep_default_na=False).set_index("id").title
            batch = json.loads((review / "state.json").read_text())["batches"][-1]["ids"]
            for page in (alice, bob):
                tab(page, "Screen")
                page.wait_for_selector("#card .record[data-record-id^='r']")
                for n, rid in enumerate(batch):
                    label = truth.get(titles[rid], 0)
                    label = 1 - label if page is bob and n in (1, 3) else label  # planted disagreements
                    page.click("#include-btn" if label else "#exclude-btn")
                    if n + 1 < len(batch):
                        wait_card_change(page, rid)
                    else:
                        wait_text(page, "#screen-message", "Batch done")
            tab(bob, "Conflicts")
            bob.wait_for_selector("#conflicts label")
            shoot(bob, out / "conflicts.png")
    print(f"screenshots in {out}")


def start_demo(page):
    """Upload the demo search, find one known include and one exclude by keywords (prior knowledge)."""
    upload(page, DEMO_SEARCH)
    wait_text(page, "#upload-message", "records")
    for words, button in (("tetrathiomolybdate crystallographic", "#prior-exclude-btn"),
                          ("penicillamine zinc", "#prior-include-btn")):  # fmt: skip
        search(page, words)
        page.locator("#search-results label").first.click()
        page.click(button)
        wait_text(page, "#priors-message", "Prior " + button.split("-")[1])


if __name__ == "__main__":
    main()
