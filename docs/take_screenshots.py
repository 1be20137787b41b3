"""Screenshots of the English and Chinese interface with an answer and its sources, for the docs.

Start the app on the real models first (`python app.py`), then:
    .venv/bin/python docs/take_screenshots.py [--url http://127.0.0.1:7860] [--latency 5]
Writes docs/screenshot-en.png and docs/screenshot-zh.png with Debian's headless Chromium; with --latency N it
also asks N questions after a warm-up one and prints the median time from pressing send to the first answer text.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

DOCS = Path(__file__).resolve().parent
SHOTS = {
    "en": ("Where was the Seminar on Migrant Integration held?", "Ask"),
    "zh": ("移民融合研讨会在哪里举行？", "提问"),
}


def shoot(page: Page, url: str, question: str, send_label: str, out: Path) -> None:
    page.goto(url)
    page.wait_for_selector("#question textarea", timeout=60_000)
    page.fill("#question textarea", question)
    page.click("#send")
    page.wait_for_selector('.qa-turn[data-turn="0"] .qa-bot:not(.pending):not(.streaming)', timeout=60_000)
    page.wait_for_selector('#qa-sources .qa-sources[data-turn="0"]', timeout=60_000)
    page.wait_for_function(f"document.querySelector('#send').innerText.trim() === {send_label!r}")
    page.locator('.qa-turn[data-turn="0"] a.cite-marker').first.click()  # highlights card [1]
    page.mouse.move(0, 0)
    page.wait_for_timeout(400)
    page.screenshot(path=str(out), full_page=True)
    print(f"wrote {out}")


QUESTIONS = (
    "移民融合研讨会在哪里举行？",
    "Which policies did the NIA resume after 8 January 2023?",
    "国际移民组织总干事何时访华？",
    "Who attended the seminar in Hangzhou?",
    "What did the border management seminar cover?",
)

# Same measurement as tests/test_browser.py: click on #send → first answer text of that turn, in the page.
TIMER_JS = """() => {
  window.__qaTimes = {};
  document.addEventListener('click', (e) => {
    if (e.target.closest('#send')) window.__qaSend = performance.now();
  }, true);
  new MutationObserver(() => document.querySelectorAll('.qa-turn').forEach((t) => {
    const a = t.querySelector('.qa-bot:not(.pending) .answer-text');
    if (a && a.textContent.trim() && !(t.dataset.turn in window.__qaTimes))
      window.__qaTimes[t.dataset.turn] = performance.now() - window.__qaSend;
  })).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def measure(page: Page, url: str, n: int) -> list[float]:
    page.goto(url)
    page.wait_for_selector("#question textarea", timeout=60_000)
    page.evaluate(TIMER_JS)
    questions = ["Where was the Seminar on Migrant Integration held?"] + [
        QUESTIONS[i % len(QUESTIONS)] for i in range(n)
    ]
    for turn, q in enumerate(questions):
        page.fill("#question textarea", q)
        page.click("#send")
        page.wait_for_selector(f'#qa-sources .qa-sources[data-turn="{turn}"]', timeout=60_000)
    times = page.evaluate("window.__qaTimes")
    return [times[str(t)] for t in range(1, len(questions))]  # turn 0 is the warm-up


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", default="http://127.0.0.1:7860")
    p.add_argument(
        "--latency", type=int, default=0, metavar="N", help="also measure first-text latency over N questions"
    )
    args = p.parse_args()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        for lang, (question, send_label) in SHOTS.items():
            page = browser.new_page(viewport={"width": 1360, "height": 900}, device_scale_factor=1)
            shoot(page, args.url, question, send_label, DOCS / f"screenshot-{lang}.png")
            page.close()
        if args.latency:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            warm = measure(page, args.url, args.latency)
            print(f"first text ms: {[round(x) for x in warm]}, median {statistics.median(warm):.0f} (n={len(warm)})")
        browser.close()


if __name__ == "__main__":
    main()
