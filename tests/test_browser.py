"""The web UI in a real browser (Debian's headless Chromium driven by Playwright).

One journey through the app on the hash embedder: English and Chinese questions, citations and the whole
newsletter, feedback, a hostile newsletter that must stay inert text, no request leaving the app's own
server, and the warm time from pressing send to the first answer text (written to docs/ui-latency.json).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import write_corpus
from test_app import free_port, load_app_module

from rag import feedback
from rag.auth import gate_for
from rag.embed import HashEmbedder
from rag.pipeline import Pipeline
from rag.service import Service
from rag.settings import Settings

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
LATENCY_FILE = ROOT / "docs" / "ui-latency.json"
LATENCY_BUDGET_MS = 1000
ADMIN_PASSWORD = "s3cret-admin"

HOSTILE_TEXT = """HOSTILE BULLETIN

Malicious payloads: <script>alert(1)</script> and <img src=x onerror=alert(1)> sit in this evil bulletin.

The evil bulletin also carries <img src=x onerror="window.__xss=1"> and <svg onload="window.__xss=2"></svg> and
${window.__xss=3} and {{constructor.constructor('window.__xss=4')()}} and <a href="javascript:window.__xss=5">x</a>.
"""

# Records the moment the send button is pressed and the moment the first answer text of a turn appears.
TIMER_JS = """() => {
  window.__qaTimes = {};
  document.addEventListener('click', (e) => {
    if (e.target.closest('#send')) window.__qaSend = performance.now();
  }, true);
  new MutationObserver(() => {
    document.querySelectorAll('.qa-turn').forEach((t) => {
      const n = t.dataset.turn;
      const a = t.querySelector('.qa-bot:not(.pending) .answer-text');
      if (a && a.textContent.trim() && !(n in window.__qaTimes)) {
        window.__qaTimes[n] = performance.now() - window.__qaSend;
      }
    });
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (run `make browser`)")
    tmp = tmp_path_factory.mktemp("browser")
    corpus = write_corpus(tmp / "corpus")
    (corpus / "hostile.txt").write_text(HOSTILE_TEXT, "utf-8")
    (corpus / "hostile.meta.json").write_text(
        json.dumps({"title": "Hostile <img src=x onerror=alert(1)> Bulletin", "issue": "66", "language": "en"}),
        "utf-8",
    )
    filler = "\n\n".join(f"Paragraph {i} reports routine project meetings and training sessions." for i in range(400))
    (corpus / "long.txt").write_text(
        f"LONG BULLETIN\n\n{filler}\n\nThe quokka census of Rottnest Island counted 12,000 animals.\n", "utf-8"
    )
    page_port = free_port()  # a second origin, for the widget: allowed on 127.0.0.1, not on localhost
    settings = Settings(
        corpus=corpus,
        index_root=tmp / "index",
        data_dir=tmp / "var",
        embedders=("hash",),
        abstain_threshold=0.0,  # mechanics under test, not the answer model (hash vectors)
        confident_threshold=0.0,  # every answer stands alone: no follow-up carrying between unrelated turns
        admin_password=ADMIN_PASSWORD,
        allowed_origins=(f"http://127.0.0.1:{page_port}",),
    )
    pipe = Pipeline(settings, {"hash": HashEmbedder()})
    pipe.warm_up()
    appmod = load_app_module()
    app = appmod.build_app(Service(pipe), gate_for(settings, "127.0.0.1"))
    port = free_port()
    server = appmod.serve(app, "127.0.0.1", port, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}", settings, page_port
    finally:
        server.close()


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (run `make browser`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield b
        finally:
            b.close()


def ask(page, question: str, turn: int) -> str:  # type: ignore[no-untyped-def]
    """Type a question, press send, wait for the whole answer and its sources; return the answer text."""
    page.fill("#question textarea", question)
    page.click("#send")
    page.wait_for_selector(
        f'.qa-turn[data-turn="{turn}"] .qa-bot:not(.pending):not(.streaming) .answer-text', timeout=15_000
    )
    page.wait_for_selector(f'#qa-sources .qa-sources[data-turn="{turn}"]', timeout=15_000)
    return page.inner_text(f'.qa-turn[data-turn="{turn}"] .qa-bot .answer-text')


def close_viewer_with_the_mouse(page) -> None:  # type: ignore[no-untyped-def]
    """What a user does: the Close button is on screen where the mouse clicks (no scrolling into view)."""
    modal = page.locator("#doc-modal")
    box = page.locator("#close-doc").bounding_box()
    view = page.viewport_size
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= view["height"], box
    assert box["x"] >= 0 and box["x"] + box["width"] <= view["width"], box
    # The wheel scrolls the newsletter (the modal or its viewer), not nothing.
    before = page.evaluate("document.querySelector('#doc-modal').scrollTop")
    page.mouse.move(view["width"] / 2, view["height"] / 2)
    page.mouse.wheel(0, -400)
    page.wait_for_timeout(200)
    after = page.evaluate("document.querySelector('#doc-modal').scrollTop")
    assert after < before or before == 0
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    modal.wait_for(state="hidden", timeout=5_000)


def test_journey_in_a_real_browser(served, browser) -> None:  # type: ignore[no-untyped-def]
    url, settings, _page_port = served
    host = urlparse(url).netloc
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url)
    page.wait_for_selector("#question textarea", timeout=30_000)
    page.evaluate(TIMER_JS)

    # English question: streamed answer with a linked marker, a card with the quote highlighted.
    answer = ask(page, "Where was the Seminar on Migrant Integration held?", 0)
    assert "Hangzhou" in answer and "[1]" in answer
    assert page.inner_text("#send") == "Ask"
    marker = page.locator('.qa-turn[data-turn="0"] a.cite-marker').first
    assert marker.get_attribute("href") == "#cite-1"
    marker.click()
    card = page.locator("#cite-1")
    assert card.is_visible() and "Test Newsletter" in card.inner_text()
    assert "Hangzhou" in card.locator("mark").inner_text()
    page.wait_for_function("document.getElementById('cite-1').classList.contains('flash')", timeout=5_000)

    # The whole newsletter, the passage highlighted and scrolled into view.
    card.locator("button.open-doc").click()
    passage = page.locator("#doc-viewer #doc-passage")
    passage.wait_for(state="visible", timeout=10_000)
    assert "Hangzhou" in page.locator("#doc-viewer mark").inner_text()
    assert "This issue covers the period" in page.inner_text("#doc-viewer")
    page.wait_for_function(
        """() => { const m = document.querySelector('#doc-viewer #doc-passage').getBoundingClientRect();
                   const v = document.querySelector('#doc-viewer').getBoundingClientRect();
                   return m.top >= v.top - 1 && m.top < v.bottom; }""",
        timeout=5_000,
    )
    close_viewer_with_the_mouse(page)
    card.locator("button.open-doc").click()  # again: Esc closes it
    page.locator("#doc-viewer #doc-passage").wait_for(state="visible", timeout=10_000)
    page.keyboard.press("Escape")
    page.locator("#doc-modal").wait_for(state="hidden", timeout=5_000)
    card.locator("button.open-doc").click()  # and a click outside it
    page.locator("#doc-viewer #doc-passage").wait_for(state="visible", timeout=10_000)
    page.mouse.click(8, 500)
    page.locator("#doc-modal").wait_for(state="hidden", timeout=5_000)

    # Feedback: thumbs up, then a comment; both land in feedback.jsonl.
    page.click("#thumbs-up")
    page.wait_for_selector("#feedback-status .qa-notice.ok", timeout=10_000)
    page.fill("#feedback-comment textarea", "Right place, thanks.")
    page.click("#send-comment")
    deadline = time.time() + 10
    while len(feedback.read_all(settings.data_dir)) < 2 and time.time() < deadline:
        time.sleep(0.1)
    rows = feedback.read_all(settings.data_dir)
    assert [r["rating"] for r in rows] == ["up", "up"] and rows[1]["comment"] == "Right place, thanks."
    assert rows[0]["question"].startswith("Where was the Seminar") and rows[0]["citations"]
    assert rows[0]["ui_language"] == "en" and rows[0]["settings"]["embedders"] == ["hash"]

    # A long newsletter opened at its end: the Close button is still on screen, under the mouse.
    ask(page, "How many animals did the quokka census of Rottnest Island count?", 1)
    page.locator('#qa-sources .source-card[data-doc="long"] button.open-doc').first.click()
    page.locator("#doc-viewer #doc-passage").wait_for(state="visible", timeout=10_000)
    page.wait_for_timeout(400)  # the passage is scrolled into view
    close_viewer_with_the_mouse(page)

    # Chinese question: Chinese answer, and the interface follows into Chinese.
    answer = ask(page, "边境管理研讨会在哪里举行？", 2)
    assert "北京" in answer
    page.wait_for_function("document.querySelector('#send').innerText.trim() === '提问'", timeout=5_000)
    assert "来源" in page.inner_text("#qa-sources")
    assert page.locator("#ui-language input[value='简体中文']").is_checked()

    # The hostile newsletter: its markup is shown as text and nothing in it runs.
    ask(page, "<img src=x onerror=alert(1)> malicious payloads evil bulletin", 3)
    sources = page.inner_text("#qa-sources")
    assert "<script>alert(1)</script>" in sources and "<img src=x onerror=alert(1)>" in sources
    assert "Hostile <img src=x onerror=alert(1)> Bulletin" in sources
    assert "<img src=x onerror=alert(1)> malicious" in page.inner_text(".qa-turn[data-turn='3'] .qa-user")
    page.locator('#qa-sources .source-card[data-doc="hostile"] button.open-doc').first.click()
    page.locator("#doc-viewer #doc-passage").wait_for(state="visible", timeout=10_000)
    page.wait_for_function(
        "document.querySelector('#doc-viewer').innerText.includes('HOSTILE') || "
        "document.querySelector('#doc-viewer').innerText.includes('Malicious')",
        timeout=5_000,
    )
    viewer = page.inner_text("#doc-viewer")
    for literal in (
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<img src=x onerror="window.__xss=1">',
        "${window.__xss=3}",
        "{{constructor.constructor('window.__xss=4')()}}",
    ):
        assert literal in viewer
    time.sleep(0.5)  # give any injected handler (img onerror, svg onload) time to fire
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.locator("#doc-viewer img, #doc-viewer script, #doc-viewer svg, #qa-sources img").count() == 0
    close_viewer_with_the_mouse(page)

    # An abstention reads as a plain answer, not an error.
    ask(page, "zebra walrus?", 4)  # words the hash embedder finds nowhere in the corpus
    assert page.locator(".qa-turn[data-turn='4'] .qa-bot.qa-abstain").is_visible()
    assert "The newsletters don't say" in page.inner_text(".qa-turn[data-turn='4'] .qa-bot")
    assert page.locator("#qa-notice .qa-notice").count() == 0 and page.locator("#qa-sources .source-card").count() == 0

    # Warm latency: press send → first answer text on screen, over five more questions.
    questions = [
        "Where was the Seminar on Migrant Integration held?",
        "Which policies did the NIA resume?",
        "移民融合研讨会在哪里举行？",
        "port visas 144-hour transit",
        "When was the border management seminar held?",
    ]
    for i, q in enumerate(questions, start=5):
        ask(page, q, i)
    times = page.evaluate("window.__qaTimes")
    warm = [times[str(i)] for i in range(5, 5 + len(questions))]
    p50 = statistics.median(warm)
    LATENCY_FILE.parent.mkdir(parents=True, exist_ok=True)
    LATENCY_FILE.write_text(
        json.dumps(
            {
                "first_text_ms_p50": round(p50, 1),
                "first_text_ms": [round(x, 1) for x in warm],
                "n": len(warm),
                "measured_by": "pytest -q tests/test_browser.py (hash embedder, headless Chromium, performance.now())",
            },
            indent=2,
        )
        + "\n",
        "utf-8",
    )
    assert p50 <= LATENCY_BUDGET_MS, f"median first-text latency {p50:.0f} ms > {LATENCY_BUDGET_MS} ms"

    # Nothing ran, and the page asked nothing of any server but its own.
    assert dialogs == []
    outside = [u for u in requests if urlparse(u).scheme not in ("data", "blob") and urlparse(u).netloc != host]
    assert outside == [], f"requests outside {host}: {outside}"
    assert any(urlparse(u).netloc == host for u in requests)
    page.close()


def test_admin_tab_uploads_lists_and_removes(served, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, settings, _page_port = served
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_selector("#question textarea", timeout=30_000)
    page.get_by_role("tab", name="Admin").click()
    page.fill("#admin-password input", ADMIN_PASSWORD)
    table = page.locator("#admin-documents table")
    table.wait_for(state="visible", timeout=10_000)
    text = table.inner_text()
    assert "news-en" in text and "news-zh" in text and "Hostile <img src=x onerror=alert(1)> Bulletin" in text
    assert page.locator("#admin-documents img").count() == 0

    good = tmp_path / "infobites.txt"
    good.write_text("INFOBITES\n\nThe Director General of IOM visited China in April 2023.\n", "utf-8")
    page.locator("#admin-files input[type=file]").set_input_files(str(good))
    page.wait_for_selector("#admin-files :text('infobites.txt')", timeout=30_000)
    page.click("#admin-upload")
    page.wait_for_selector("#admin-status .qa-notice.ok", timeout=30_000)
    assert "Indexed infobites.txt: 1 added" in page.inner_text("#admin-status")
    assert "infobites" in page.inner_text("#admin-documents")
    assert (settings.data_dir / "uploads" / "infobites.txt").exists()

    bad = tmp_path / "fake.pdf"
    bad.write_text("not a pdf", "utf-8")
    page.locator("#admin-files input[type=file]").set_input_files(str(bad))
    page.wait_for_selector("#admin-files :text('fake.pdf')", timeout=30_000)  # slow under load (CI)
    page.click("#admin-upload")
    page.wait_for_selector("#admin-status .qa-notice.warn", timeout=30_000)
    assert "fake.pdf was refused: the file is not a PDF" in page.inner_text("#admin-status")

    page.click("#admin-remove-choice input")
    page.get_by_role("option", name="infobites · INFOBITES").click()
    page.click("#admin-remove")
    page.wait_for_function(
        "document.querySelector('#admin-status').innerText.includes('Press Remove again')", timeout=30_000
    )
    assert "infobites" in page.inner_text("#admin-documents")  # nothing removed on one click
    page.click("#admin-remove")
    page.wait_for_function(
        "document.querySelector('#admin-status').innerText.includes('Removed infobites')", timeout=30_000
    )
    assert "infobites" not in page.inner_text("#admin-documents")
    page.close()


@pytest.fixture
def second_origin(served, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A static intranet page on another port that embeds the widget with one script tag (no key in it)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    url, _settings, page_port = served
    (tmp_path / "index.html").write_text(
        f'<!doctype html><html><body><h1>Intranet</h1><script src="{url}/widget.js"></script>'
        "<newsletter-qa></newsletter-qa></body></html>",
        "utf-8",
    )
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    httpd = ThreadingHTTPServer(("127.0.0.1", page_port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield page_port
    finally:
        httpd.shutdown()
        httpd.server_close()


def widget_ask(page, question: str) -> None:  # type: ignore[no-untyped-def]
    page.click("newsletter-qa >> button.toggle")
    page.fill("newsletter-qa >> input", question)
    page.press("newsletter-qa >> input", "Enter")


def test_widget_from_an_allowed_and_a_refused_origin(served, browser, second_origin) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    requests: list[tuple[str, dict]] = []
    page.on("request", lambda r: requests.append((r.url, r.headers)))
    page.goto(f"http://127.0.0.1:{second_origin}/")  # allowed in `allowed_origins`
    assert "nqa_" not in page.content()  # no API key in the page
    widget_ask(page, "Where was the Seminar on Migrant Integration held?")
    page.wait_for_function(
        "document.querySelector('newsletter-qa').shadowRoot.querySelector('.answer').textContent.includes('Hangzhou')",
        timeout=15_000,
    )
    assert "Test Newsletter" in page.inner_text("newsletter-qa >> .sources")
    auth = [h.get("authorization", "") for u, h in requests if u.endswith("/v1/ask")]
    assert auth and all(a.startswith("Bearer nqw_") for a in auth)  # a short-lived widget token, not a key
    page.close()

    page = browser.new_page()
    page.goto(f"http://localhost:{second_origin}/")  # the same page on an origin not allowed
    widget_ask(page, "Where was the Seminar on Migrant Integration held?")
    page.wait_for_function(
        "document.querySelector('newsletter-qa').shadowRoot.querySelector('.answer.error') !== null",
        timeout=15_000,
    )
    assert "Hangzhou" not in page.inner_text("newsletter-qa >> .answer")
    page.close()
