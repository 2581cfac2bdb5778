"""A real headless browser (Debian's Chromium through Selenium and the system chromedriver) completes a whole
batch of each task through the page, keyboard first, including a repeated image and inputs the page refuses
(an untouched slider, an answer before the image has loaded); Enter on a button focused with Tab presses it;
the server refuses a bad answer sent past the page; the exported CSV then builds labels with export-labels.
Each task runs twice: against the app directly, and through nginx under /study/ (tests/elicit/proxy.py).

Chromium and nginx come from tests/browser/install-chromium.sh (run by the README test command). Screenshots of
each task page are kept under the test's tmp dir and copied to $SOFTLABELS_ARTEFACTS when that is set.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from elicit.fixtures import ADMIN_TOKEN, fake_cifar10, mixing_study, soft_study  # noqa: E402
from elicit.proxy import PROXY_SOURCE, nginx_in_front  # noqa: E402

from softlabels.elicit.export import export_table  # noqa: E402
from softlabels.elicit.server import start_server  # noqa: E402
from softlabels.elicit.store import Store  # noqa: E402
from softlabels.elicit.study import load_study  # noqa: E402

CHROMEDRIVER = "/usr/bin/chromedriver"
pytestmark = pytest.mark.browser
VIA = pytest.mark.parametrize("via", ["direct", "nginx"])


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


@contextlib.contextmanager
def site(study_path, db, via, root):
    """(study, store, server, base URL of the page): the app alone, or behind nginx under /study/."""
    study = load_study(study_path)
    store = Store(db, study)
    server = start_server(store, ADMIN_TOKEN, quiet=True, trusted_proxies=[PROXY_SOURCE] if via == "nginx" else [])
    try:
        if via == "nginx":
            with nginx_in_front(f"127.0.0.1:{server.address[1]}", root / "nginx") as public:
                yield study, store, server, public
        else:
            yield study, store, server, server.url + "/"
    finally:
        server.stop()


def link(server, base, participant):
    return f"{base}?PROLIFIC_PID={participant}&sig={server.sign(participant)}"


@VIA
def test_soft_label_batch_in_browser(driver, tmp_path, artefacts, via):
    from selenium.webdriver.common.keys import Keys

    source = fake_cifar10(tmp_path / "cifar.npz")
    study_path = soft_study(tmp_path, source, [10, 21, 32, 43, 54, 65], limits={"min_answer_ms": 0})  # fast keys
    with site(study_path, tmp_path / "soft.sqlite", via, tmp_path) as (study, store, server, base):
        driver.get(f"{base}?PROLIFIC_PID=browser1")  # no signature: the page says so and nothing is reserved
        wait_text(driver, "#fatal", "no signature")
        driver.get(f"{base}?PROLIFIC_PID=browser1&sig={server.sign('someone-else')}")
        wait_for(driver, "#start")
        keys(driver, Keys.ENTER)
        wait_text(driver, "#fatal", "not valid")
        assert store.batches() == []
        driver.get(link(server, base, "browser1"))
        wait_for(driver, "#start")
        keys(driver, Keys.ENTER)
        n_trials = study["trials_per_participant"]
        for number in range(1, n_trials + 1):
            wait_text(driver, "#progress", f"Trial {number} of {n_trials}")
            image_loaded(driver)
            if number == 1:
                driver.save_screenshot(str(artefacts / f"soft_label_empty_{via}.png"))
                # refused by the page: probability over 100, then two probabilities over 100 in sum
                keys(driver, "1")
                keys(driver, "150" + Keys.ENTER)
                wait_text(driver, "#error", "between 0 and 100")
                driver.save_screenshot(str(artefacts / f"soft_label_refused_{via}.png"))
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
                driver.save_screenshot(str(artefacts / f"soft_label_filled_{via}.png"))
                keys(driver, Keys.ENTER)
            else:  # keyboard only: top class, probability, second class (or N), probability, exclusions, submit
                second = "N" if number % 2 else "3"
                if number == 2:  # Tab focuses the first class button; Enter presses it (not the page's Enter)
                    keys(driver, Keys.TAB)
                    focused = driver.switch_to.active_element
                    first_class = driver.find_element("css selector", "#top-classes button")
                    assert focused == first_class
                    keys(driver, Keys.ENTER)
                    assert "chosen" in first_class.get_attribute("class")
                    assert driver.find_element("id", "error").text == ""
                    assert driver.switch_to.active_element.get_attribute("id") == "top-prob"
                    keys(driver, "80" + Keys.ENTER + second)
                else:
                    keys(driver, "1" + "80" + Keys.ENTER + second)
                if second != "N":
                    keys(driver, "10" + Keys.ENTER)
                keys(driver, "6" + Keys.ENTER)
        wait_for(driver, "#done")
        assert driver.find_element("id", "code").text == "ABC123"
        driver.save_screenshot(str(artefacts / f"soft_label_done_{via}.png"))
        # the server refuses what the page would not send: nothing is stored
        before = len(store.responses())
        status = driver.execute_script(
            "const r = await fetch('api/response', {method: 'POST', headers: {'Content-Type': 'application/json'}, "
            "body: JSON.stringify({submission_id: 'bad-input-1', participant: 'browser1', sig: arguments[0], batch: 1, "
            "position: 0, answer: {top_class: 'unicorn', top_prob: 50}, rt_ms: 5})}); "
            "return [r.status, (await r.json()).error];", server.sign("browser1"),
        )  # fmt: skip
        assert status[0] == 400 and "unicorn" in status[1]
        assert len(store.responses()) == before
    responses = store.responses()
    assert len(responses) == 5 and sum(r["is_repeat"] for r in responses) == 1
    assert [r["flag"] for r in responses] == [""] * 5  # the page fetched each image, and its rt_ms fits the server's
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


@VIA
def test_mixing_batch_in_browser(driver, tmp_path, artefacts, via):
    from selenium.webdriver.common.keys import Keys

    source = fake_cifar10(tmp_path / "cifar.npz")
    study_path = mixing_study(tmp_path, source, [(3, 8), (5, 11)], limits={"min_answer_ms": 0})
    left_class = {}  # trial number -> the class the page showed on the left end of the slider
    with site(study_path, tmp_path / "mix.sqlite", via, tmp_path) as (study, store, server, base):
        # images blocked: an answer before the image has loaded is refused on the page
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*api/image*"]})
        driver.get(link(server, base, "browser2"))
        wait_for(driver, "#start").click()
        wait_text(driver, "#progress", "Trial 1 of 4")
        keys(driver, Keys.ARROW_RIGHT + Keys.ENTER)
        wait_text(driver, "#error", "wait until the image has loaded")
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
        driver.get(link(server, base, "browser2"))  # a reload resumes the same batch
        wait_for(driver, "#start").click()
        for number in range(1, 5):
            wait_text(driver, "#progress", f"Trial {number} of 4")
            image_loaded(driver)
            left_class[number] = driver.find_element("css selector", "#s-share .end").text
            if number == 1:  # untouched sliders are refused: the share first, then the confidence
                keys(driver, Keys.ENTER)
                wait_text(driver, "#error", "Move the upper slider")
            presses = Keys.ARROW_RIGHT * 3 if number % 2 else Keys.PAGE_DOWN * 2
            keys(driver, presses)
            if number == 1:
                driver.save_screenshot(str(artefacts / f"mixing_trial_{via}.png"))
                keys(driver, Keys.ENTER + Keys.ENTER)
                wait_text(driver, "#error", "Set your confidence")
                keys(driver, Keys.PAGE_UP + Keys.ENTER)
            else:
                keys(driver, Keys.ENTER + Keys.PAGE_UP + Keys.ENTER)
        wait_for(driver, "#done")
        driver.save_screenshot(str(artefacts / f"mixing_done_{via}.png"))
    judgments = export_table(store)
    assert len(judgments) == 4 and judgments["stimulus"].str.startswith("mixed_").all()
    assert set(judgments["confidence"]) == {0.6}
    assert (store.responses()[0]["rt_ms"] > 1) and all(r["rt_ms"] > 0 for r in store.responses())
    assert [r["flag"] for r in store.responses()] == [""] * 4
    # the slider gives the share of the class on the right; λ_h is the share of image 1 (class1): exactly one
    # value is right for the orientation the page showed on each trial
    for _, row in judgments.iterrows():
        number = int(row["trial"]) + 1
        share = 53 if number % 2 else 30  # % of the right-hand class
        assert left_class[number] in (row["class1"], row["class2"])
        expected = 1 - share / 100 if left_class[number] == row["class1"] else share / 100
        assert row["lambda_h"] == pytest.approx(expected), (number, left_class[number], row.to_dict())


def test_full_study_tells_the_participant_what_to_do(driver, tmp_path):
    """When every image is out, the page says so and links the return URL instead of a bare 'Thank you'."""
    source = fake_cifar10(tmp_path / "cifar.npz")
    study_path = soft_study(tmp_path, source, range(4), trials_per_participant=4, repeats=0, responses_per_image=1,
                            completion={"url": "https://example.org/done?cc=X1", "code": "X1",
                                        "return_url": "https://example.org/return"})  # fmt: skip
    with site(study_path, tmp_path / "full.sqlite", "direct", tmp_path) as (study, store, server, base):
        assert store.batch_for("early-bird", address="10.0.0.1")["status"] == "active"  # takes all four images
        driver.get(link(server, base, "late"))
        wait_for(driver, "#start").click()
        wait_text(driver, "#full", "return your submission")
        assert driver.find_element("id", "return").get_attribute("href") == "https://example.org/return"
        assert not driver.find_elements("id", "code")  # no completion code for work not done
