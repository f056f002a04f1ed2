"""Driving the game page in headless Chromium (Debian's ``chromium`` and ``chromium-driver``, with
``selenium`` from PyPI): what the browser test and ``scripts/screenshot_game.py`` share.

:func:`start_chromium` starts a headless browser with the flags these machines need (as root
``--no-sandbox``; no background networking, which a closed network refuses) and a fresh profile.
:class:`BrowserPlayer` plays a game the way a person does: it types a name, clicks the map at a
latitude/longitude, types countries into the picker, presses Guess and Next.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["CHROMIUM_FLAGS", "chromium_paths", "start_chromium", "RoundPlay", "BrowserPlayer"]

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1")


def chromium_paths() -> Optional[tuple[str, str]]:
    """``(chromium, chromedriver)`` executables, or None when either is missing.

    ``$GEOCELL_CHROMIUM`` / ``$GEOCELL_CHROMEDRIVER`` override the search of ``PATH``.
    """
    browser = os.environ.get("GEOCELL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("GEOCELL_CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver:
        return None
    return browser, driver


def start_chromium(user_data_dir: str | os.PathLike, width: int = 1400, height: int = 1000):
    """A selenium ``webdriver.Chrome`` on headless Chromium with a new profile in ``user_data_dir``.

    Raises:
        RuntimeError: Chromium or ChromeDriver is not installed.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = chromium_paths()
    if paths is None:
        raise RuntimeError("chromium and chromedriver are needed: apt-get install chromium chromium-driver")
    os.environ.setdefault("SE_AVOID_STATS", "true")
    opts = webdriver.ChromeOptions()
    opts.binary_location = paths[0]
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={Path(user_data_dir).resolve()}")
    opts.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=paths[1]))
    driver.set_page_load_timeout(30)
    return driver


@dataclass(frozen=True)
class RoundPlay:
    """What the player does in one round: a pin (``lat``, ``lon``; None for none) and countries typed in order."""

    lat: Optional[float] = None
    lon: Optional[float] = None
    countries: Sequence[str] = ()


class BrowserPlayer:
    """Plays the page at ``url`` in ``driver`` like a person (clicks and typing, no API calls).

    Args:
        driver: a selenium WebDriver (see :func:`start_chromium`).
        url: the game server's address.
        screenshots: a folder for a screenshot after each step, or None.
        timeout: seconds to wait for the page at each step.
    """

    def __init__(self, driver, url: str, screenshots: Optional[Path] = None, timeout: float = 20):
        self.driver, self.url, self.timeout = driver, url, timeout
        self.screenshots = None if screenshots is None else Path(screenshots)
        self.shots: list[Path] = []

    def _wait(self, condition, what: str):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, self.timeout, poll_frequency=0.05).until(condition, message=what)

    def shot(self, name: str) -> Optional[Path]:
        """Save a screenshot of the window as ``NAME.png`` in the screenshot folder."""
        if self.screenshots is None:
            return None
        self.screenshots.mkdir(parents=True, exist_ok=True)
        self.driver.execute_script("window.scrollTo(0, 0);")  # the top of the page, as a player first sees it
        path = self.screenshots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        self.shots.append(path)
        return path

    def start(self, player: str) -> None:
        """Open the page, type the name, start a game, wait for round 1's image."""
        from selenium.webdriver.common.by import By

        d = self.driver
        d.get(self.url)
        self._wait(lambda drv: drv.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1", "page ready")
        d.find_element(By.ID, "player-name").send_keys(player)
        self.shot("00-start")
        d.find_element(By.ID, "start-button").click()
        self._wait_round(1)

    def _wait_round(self, k: int) -> None:
        from selenium.webdriver.common.by import By

        def ready(drv):
            game = drv.find_element(By.ID, "game")
            if game.get_attribute("data-round") != str(k) or game.get_attribute("data-phase") != "guess":
                return False
            return bool(drv.execute_script("const i = document.getElementById('round-image');"
                                           "return i.complete && i.naturalWidth > 0;"))

        self._wait(ready, f"round {k} shown")

    def click_map(self, lat: float, lon: float) -> None:
        """Click the map at ``lat``, ``lon`` (degrees; the map is not zoomed), scrolled into view first."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        svg = self.driver.find_element(By.CSS_SELECTOR, "#map svg")
        rect = self.driver.execute_script(
            "const s = arguments[0]; s.scrollIntoView({block: 'center', behavior: 'instant'});"
            "const r = s.getBoundingClientRect(); return [r.left, r.top, r.width, r.height];", svg)
        left, top, w, h = (float(v) for v in rect)
        x = left + (lon + 180.0) / 360.0 * w
        y = top + (90.0 - lat) / 180.0 * h
        chain = ActionChains(self.driver)
        chain.w3c_actions.pointer_action.move_to_location(int(round(x)), int(round(y)))
        chain.w3c_actions.pointer_action.click()
        chain.perform()

    def pick(self, code_or_name: str) -> None:
        """Type a country (code or name) into the picker and press Enter."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        box = self.driver.find_element(By.ID, "country-input")
        before = len(self.driver.find_elements(By.CSS_SELECTOR, "#picks li"))
        box.send_keys(code_or_name, Keys.ENTER)
        self._wait(lambda drv: len(drv.find_elements(By.CSS_SELECTOR, "#picks li")) == before + 1,
                   f"{code_or_name} picked")

    def play_round(self, k: int, play: RoundPlay, last: bool) -> dict:
        """Do one round and press Next; returns what the page showed (texts and the round's points)."""
        from selenium.webdriver.common.by import By

        d = self.driver
        for c in play.countries:
            self.pick(c)
        if play.lat is not None:
            self.click_map(play.lat, play.lon)
            self._wait(lambda drv: drv.find_elements(By.ID, "mark-pin"), "pin shown")
        self.shot(f"{k:02d}-a-guess")
        d.find_element(By.ID, "guess-button").click()
        self._wait(lambda drv: drv.find_element(By.ID, "game").get_attribute("data-phase") == "result", f"round {k} result")
        shown = {"result": d.find_element(By.ID, "result").text,
                 "score": int(d.find_element(By.ID, "round-score").get_attribute("data-score")),
                 "picks": [li.get_attribute("data-code") for li in d.find_elements(By.CSS_SELECTOR, "#picks li")]}
        self.shot(f"{k:02d}-b-result")
        d.find_element(By.ID, "next-button").click()
        if not last:
            self._wait_round(k + 1)
        return shown

    def play(self, player: str, rounds: Sequence[RoundPlay]) -> dict:
        """A whole game; returns ``{"rounds": [...], "total": int, "report": [[cells], ...], "final": text}``."""
        from selenium.webdriver.common.by import By

        self.start(player)
        shown = [self.play_round(k, p, last=k == len(rounds)) for k, p in enumerate(rounds, start=1)]
        self._wait(lambda drv: drv.find_element(By.ID, "summary").get_attribute("data-done") == "1", "summary")
        self.shot(f"{len(rounds) + 1:02d}-summary")
        d = self.driver
        report = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                  for tr in d.find_elements(By.CSS_SELECTOR, "#report-table tbody tr")]
        return {"rounds": shown, "total": int(d.find_element(By.ID, "final-line").get_attribute("data-total")),
                "report": report, "final": d.find_element(By.ID, "final-line").text,
                "status": d.find_element(By.ID, "status").text}
