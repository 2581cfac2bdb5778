"""A real headless browser (Debian's Chromium through Selenium and the system chromedriver) completes a whole
batch of each task through the page, keyboard first, including a repeated image and inputs the page refuses;
the server refuses a bad answer sent past the page; the exported CSV then builds labels with export-labels.

Chromium comes from tests/browser/install-chromium.sh (run by the README test command). Screenshots of each
task page are kept under the test's tmp dir and copied to $SOFTLABELS_ARTEFACTS when that is set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from elicit.fixtures import call, fake_cifar10, mixing_study, soft_study  # noqa: E402

from softlabels.elicit.export import export_table  # noqa: E402
from softlabels.elicit.server import start_server  # noqa: E402
from softlabels.elicit.store import Store  # noqa: E402
from softlabels.elicit.study import load_study  # noqa: E402

CHROMEDRIVER = "/usr/bin/chromedriver"


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Chromium is not installed: run tests/browser/install-chromium.sh (the README test command does)")


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not Path(CHROMEDRIVER).exists():
        pytest.fail(f"{CHROMEDRIVER} missing: run tests/browser/install-chromium.sh (the README test command does)")
    options = webdriver.ChromeOptions()
    options.binary_location = _chromium()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1000,1200"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    browser.implicitly_wait(0)
    yield browser
    browser.quit()


@pytest.fixture
def artefacts(tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    yield shots
    target = os.environ.get("SOFTLABELS_ARTEFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for png in shots.glob("*.png"):
            shutil.copy(png, Path(target) / png.name)


def wait_for(browser, css, timeout=10):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def wait_text(browser, css, text, timeout=10):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))


def image_loaded(browser):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 10).until(
        lambda b: b.execute_script("const i=document.getElementById('stimulus'); return i && i.complete && i.naturalWidth > 0")
    )


def keys(browser, text):
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).send_keys(text).perform()


def server_for(study_path, db):
    study = load_study(study_path)
    store = Store(db, study)
    server = start_server(store, "secret-token", quiet=True)
    return study, store, server


def test_soft_label_batch_in_browser(driver, tmp_path, artefacts, monkeypatch):
    from selenium.webdriver.common.keys import Keys

    source = fake_cifar10(tmp_path / "cifar.npz")
    study, store, server = server_for(soft_study(tmp_path, source, [10, 21, 32, 43, 54, 65]), tmp_path / "soft.sqlite")
    try:
        driver.get(f"{server.url}/?PROLIFIC_PID=browser1")
        wait_for(driver, "#start")
        keys(driver, Keys.ENTER)
        n_trials = study["trials_per_participant"]
        for number in range(1, n_trials + 1):
            wait_text(driver, "#progress", f"Trial {number} of {n_trials}")
            image_loaded(driver)
            if number == 1:
                driver.save_screenshot(str(artefacts / "soft_label_empty.png"))
                # refused by the page: probability over 100, then two probabilities over 100 in sum
                keys(driver, "1")
                keys(driver, "150" + Keys.ENTER)
                wait_text(driver, "#error", "between 0 and 100")
                driver.save_screenshot(str(artefacts / "soft_label_refused.png"))
                top_prob = driver.find_element("id", "top-prob")
                top_prob.clear()  # (clearing moves the focus away: type into the field again)
                top_prob.send_keys("70" + Keys.ENTER)
                keys(driver, "2")
                keys(driver, "40" + Keys.ENTER)
                wait_text(driver, "#error", "at most 100")
                second_prob = driver.find_element("id", "second-prob")
                second_prob.clear()
                second_prob.send_keys("20" + Keys.ENTER)
                keys(driver, "45")
                driver.save_screenshot(str(artefacts / "soft_label_filled.png"))
                keys(driver, Keys.ENTER)
            else:  # keyboard only: top class, probability, second class (or N), probability, exclusions, submit
                second = "N" if number % 2 else "3"
                keys(driver, "1" + "80" + Keys.ENTER + second)
                if second != "N":
                    keys(driver, "10" + Keys.ENTER)
                keys(driver, "6" + Keys.ENTER)
        wait_for(driver, "#done")
        assert driver.find_element("id", "code").text == "ABC123"
        driver.save_screenshot(str(artefacts / "soft_label_done.png"))
        # the server refuses what the page would not send: nothing is stored
        before = len(store.responses())
        status = driver.execute_script(
            "const r = await fetch('/api/response', {method: 'POST', headers: {'Content-Type': 'application/json'}, "
            "body: JSON.stringify({submission_id: 'bad-input-1', participant: 'browser1', batch: 1, position: 0, "
            "answer: {top_class: 'unicorn', top_prob: 50}, rt_ms: 5})}); return [r.status, (await r.json()).error];"
        )
        assert status[0] == 400 and "unicorn" in status[1]
        assert len(store.responses()) == before
    finally:
        server.stop()
    responses = store.responses()
    assert len(responses) == 5 and sum(r["is_repeat"] for r in responses) == 1
    first = responses[0]["answer"]
    assert (first["top_prob"], first["second_prob"]) == (70.0, 20.0) and len(first["impossible"]) == 2
    assert all(r["rt_ms"] > 0 for r in responses)
    out = tmp_path / "responses.csv"
    export_table(store).to_csv(out, index=False)
    table = pd.read_csv(out)
    assert list(table.columns) == ["image", "subject", "task", "trial", "top_class", "top_prob", "second_class",
                                   "second_prob", "impossible", "rt_ms"]  # fmt: skip
    assert set(table["task"]) == {"spec_conf", "rerun_spec_conf"}
    labels = tmp_path / "labels.json"
    done = subprocess.run(
        [sys.executable, "-m", "softlabels", "export-labels", "--responses", str(out), "--variety", "t2_clamp",
         "--gamma", "0.1", "--out", str(labels)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(labels.read_text())
    assert sum(map(len, data.values())) == 5
    assert all(abs(sum(v) - 1) < 1e-6 for vs in data.values() for v in vs)


def test_mixing_batch_in_browser(driver, tmp_path, artefacts):
    from selenium.webdriver.common.keys import Keys

    source = fake_cifar10(tmp_path / "cifar.npz")
    study, store, server = server_for(mixing_study(tmp_path, source, [(3, 8), (5, 11)]), tmp_path / "mix.sqlite")
    try:
        driver.get(f"{server.url}/?PROLIFIC_PID=browser2")
        wait_for(driver, "#start").click()
        for number in range(1, 5):
            wait_text(driver, "#progress", f"Trial {number} of 4")
            image_loaded(driver)
            presses = Keys.ARROW_RIGHT * 3 if number % 2 else Keys.PAGE_DOWN * 2
            keys(driver, presses)
            if number == 1:
                driver.save_screenshot(str(artefacts / "mixing_trial.png"))
            keys(driver, Keys.ENTER + Keys.PAGE_UP + Keys.ENTER)
        wait_for(driver, "#done")
        driver.save_screenshot(str(artefacts / "mixing_done.png"))
    finally:
        server.stop()
    judgments = export_table(store)
    assert len(judgments) == 4 and judgments["stimulus"].str.startswith("mixed_").all()
    # the slider answers land as shares of image 1, whichever side the page showed it on
    assert set(judgments["confidence"]) == {0.6}
    shares = {53, 30}
    for _, row in judgments.iterrows():
        assert round((1 - row["lambda_h"]) * 100) in shares or round(row["lambda_h"] * 100) in shares
