"""The demo page in a real headless browser (Debian's chromium + chromium-driver through selenium): load it, type
sentences and a word, submit, read the cosine tables and the tagger's entities from the page, save a screenshot.
A missing browser is a failure, not a skip: CI installs it (.ci/run), docs/serving.md says how elsewhere."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from serve_util import Server
from tasks_util import fixture_config

from elmo_tasks.training import trainer

CHROMIUM = os.environ.get("ELMO_TASKS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ELMO_TASKS_CHROMEDRIVER", "/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "ner"
    config = fixture_config("wnut16_elmo", tmp_path_factory.mktemp("elmo-cache"), **{
        "dataset.max_examples": 40, "trainer.epochs": 1, "trainer.patience": 5})
    trainer.run(config, run, progress=False, echo=False)
    server = Server("--model", "fixture", "--task", f"ner={run}")
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    for path in (CHROMIUM, CHROMEDRIVER):
        assert shutil.which(path), (f"{path} is missing: install Debian's chromium and chromium-driver "
                                    "(apt-get install -y chromium chromium-driver), or set ELMO_TASKS_CHROMIUM / "
                                    "ELMO_TASKS_CHROMEDRIVER")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1100,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_the_page_compares_a_word_across_sentences_and_marks_entities(server, browser, tmp_path):
    browser.get(server.url + "/")
    assert "elmo-tasks" in browser.title
    box = browser.find_element(By.ID, "sentences")
    box.clear()
    box.send_keys("The bank raised its rates .\nWe sat on the bank of the river .\nJohn visited the bank in Paris .")
    word = browser.find_element(By.ID, "word")
    word.clear()
    word.send_keys("bank")
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "status").text.startswith(("done", "error")))
    assert browser.find_element(By.ID, "status").text.startswith("done"), browser.find_element(By.ID, "status").text
    tables = browser.find_elements(By.CSS_SELECTOR, "#cosines table")
    assert [t.find_element(By.TAG_NAME, "caption").text for t in tables] == ["layer 0", "layer 1", "layer 2"]
    cells = [[float(td.text) for td in row.find_elements(By.TAG_NAME, "td")]
             for row in tables[0].find_elements(By.TAG_NAME, "tr")[1:]]
    assert len(cells) == 3 and all(abs(cells[i][i] - 1) < 1e-3 for i in range(3))
    # layer 0 is the character CNN: the same word has the same vector in every sentence
    assert all(abs(c - 1) < 1e-3 for row in cells for c in row)
    upper = [float(td.text) for td in tables[2].find_elements(By.TAG_NAME, "td")]
    assert any(c < 0.999 for c in upper)  # the top layer depends on the sentence
    lines = browser.find_elements(By.CSS_SELECTOR, "#entities .sentence")
    assert [line.text.replace("\n", " ") for line in lines][0].startswith("The bank")
    assert len(lines) == 3
    # the marks are the tagger's spans, cut from the text at their character offsets
    texts = ["The bank raised its rates .", "We sat on the bank of the river .", "John visited the bank in Paris ."]
    answer = httpx.post(server.url + "/v1/models/ner:predict", json={"instances": [{"text": t} for t in texts]},
                        timeout=30).json()["predictions"]
    expected = [(t[s["start"]:s["end"]], s["label"]) for t, p in zip(texts, answer) for s in p["spans"]]
    marks = browser.find_elements(By.CSS_SELECTOR, "#entities mark")
    shown = [(m.get_attribute("textContent")[:-len(m.find_element(By.TAG_NAME, "span").text)] if m else "",
              m.find_element(By.TAG_NAME, "span").get_attribute("textContent")) for m in marks]
    assert shown == expected
    shot = Path(os.environ.get("ELMO_TASKS_SCREENSHOT", tmp_path / "serve-page.png"))
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 1000
