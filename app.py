"""Web UI for staff: `python app.py [--host 127.0.0.1] [--port 7860] [--config FILE]`.

Thin by design: one `Pipeline` answers, `rag.render` writes every piece of HTML (escaped), `rag.feedback`
stores ratings. This module lays out the gradio components and wires their events.
"""

from __future__ import annotations

import argparse
import hmac
import os
import re
import shutil
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import gradio as gr

from rag import feedback, render
from rag.ingest import IngestError, read
from rag.pipeline import Pipeline, QuestionError
from rag.retrieve import Filters
from rag.settings import Settings, load_settings
from rag.store import StoreError

UPLOAD_TYPES = (".txt", ".md", ".html", ".htm", ".pdf", ".docx")

THEME = gr.themes.Default(
    primary_hue="blue",
    neutral_hue="slate",
    # System fonts only: the page must not fetch fonts (or anything else) from outside the intranet.
    font=[
        "system-ui",
        "-apple-system",
        "Segoe UI",
        "Noto Sans",
        "Noto Sans CJK SC",
        "PingFang SC",
        "Microsoft YaHei",
        "sans-serif",
    ],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
)

# Components whose labels follow the interface language, in the order `Callbacks.labels` returns updates.
LABELLED = (
    "ui_choice",
    "header",
    "tab_ask",
    "tab_admin",
    "question",
    "send",
    "examples_label",
    "filters",
    "issue",
    "language",
    "date_from",
    "date_to",
    "k",
    "feedback_prompt",
    "up",
    "down",
    "comment",
    "send_comment",
    "clear",
    "close_doc",
    "admin_intro",
    "password",
    "files",
    "upload",
    "documents",
    "remove_choice",
    "remove",
)


N_FEEDBACK = 4  # feedback status, 👍, 👎, comment: reset by every new answer


def _new_session(ui_lang: str = "en") -> dict[str, Any]:
    return {"turns": [], "current": None, "ui_lang": ui_lang, "locked": False, "rating": None}


class Callbacks:
    """The event handlers, callable directly (tests) or from gradio events (the UI)."""

    def __init__(self, pipeline: Pipeline, settings: Settings, stream_delay: float = 0.03) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.stream_delay = stream_delay
        self.pending_after = 0.15  # seconds before a "searching" bubble is worth showing
        self._lock = threading.Lock()  # one model call at a time: embedders are not known to be thread-safe
        self._worker = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ask")

    # -- helpers ------------------------------------------------------------------------------------
    def documents(self) -> dict:
        return self.pipeline.index().documents

    def issue_choices(self, ui_lang: str) -> list[tuple[str, str]]:
        titles: dict[str, list[str]] = {}
        for d in self.documents().values():
            if d.meta.issue:
                titles.setdefault(str(d.meta.issue), [])
                if d.meta.title not in titles[str(d.meta.issue)]:
                    titles[str(d.meta.issue)].append(d.meta.title)

        def key(issue: str) -> tuple[int, str]:
            return (int(issue), "") if issue.isdigit() else (1 << 30, issue)

        return [(render.t(ui_lang, "all_issues"), "")] + [
            (f"{issue} · {' / '.join(titles[issue])}", issue) for issue in sorted(titles, key=key)
        ]

    def doc_choices(self) -> list[tuple[str, str]]:
        return [
            (f"{d.doc_id} · {d.meta.title}", d.doc_id)
            for d in sorted(self.documents().values(), key=lambda d: d.doc_id)
        ]

    def labels(self, ui_lang: str) -> list[Any]:
        """Updates for every component in LABELLED, in UI language `ui_lang`."""
        t = render.t

        def lbl(key: str, ph: str | None = None) -> Any:
            return gr.update(label=t(ui_lang, key), **({"placeholder": t(ui_lang, ph)} if ph else {}))

        updates = {
            "ui_choice": gr.update(value=render.UI_CHOICE[render.base_language(ui_lang)]),
            "header": render.header_html(ui_lang),
            "tab_ask": gr.update(label=t(ui_lang, "tab_ask")),
            "tab_admin": gr.update(label=t(ui_lang, "tab_admin")),
            "question": lbl("question", "question_placeholder"),
            "send": gr.update(value=t(ui_lang, "send")),
            "examples_label": render.text_html("qa-examples-label", t(ui_lang, "examples")),
            "filters": gr.update(label=t(ui_lang, "filters")),
            "issue": gr.update(label=t(ui_lang, "filter_issue"), choices=self.issue_choices(ui_lang)),
            "language": gr.update(label=t(ui_lang, "filter_language"), choices=self.language_choices(ui_lang)),
            "date_from": lbl("date_from", "date_placeholder"),
            "date_to": lbl("date_to", "date_placeholder"),
            "k": lbl("k"),
            "feedback_prompt": render.text_html("qa-feedback-prompt", t(ui_lang, "feedback_prompt")),
            "up": gr.update(value=t(ui_lang, "thumbs_up")),
            "down": gr.update(value=t(ui_lang, "thumbs_down")),
            "comment": lbl("comment", "comment_placeholder"),
            "send_comment": gr.update(value=t(ui_lang, "send_comment")),
            "clear": gr.update(value=t(ui_lang, "clear")),
            "close_doc": gr.update(value=t(ui_lang, "close_doc")),
            "admin_intro": self.admin_intro(ui_lang),
            "password": lbl("password", "password_placeholder"),
            "files": lbl("upload"),
            "upload": gr.update(value=t(ui_lang, "upload_button")),
            "documents": render.documents_table(self.documents(), ui_lang),
            "remove_choice": lbl("remove_choice"),
            "remove": gr.update(value=t(ui_lang, "remove_button")),
        }
        return [updates[name] for name in LABELLED]

    @staticmethod
    def language_choices(ui_lang: str) -> list[tuple[str, str]]:
        return [(render.t(ui_lang, "all_languages"), ""), ("English", "en"), ("中文", "zh")]

    def admin_intro(self, ui_lang: str) -> str:
        return render.text_html("qa-admin-intro", render.t(ui_lang, "admin_intro", mb=self.settings.max_upload_mb))

    def filters(self, language: str, issue: str, date_from: str, date_to: str, ui_lang: str) -> Filters:
        """Filters from the form; raises ValueError with a message in the UI language for bad dates."""
        dates = []
        for key, value in (("date_from", date_from), ("date_to", date_to)):
            value = (value or "").strip()
            if value:
                try:
                    date.fromisoformat(value)
                except ValueError:
                    raise ValueError(render.t(ui_lang, "bad_date", field=render.t(ui_lang, key), value=value)) from None
            dates.append(value)
        if dates[0] and dates[1] and dates[0] > dates[1]:
            raise ValueError(render.t(ui_lang, "bad_range", date_from=dates[0], date_to=dates[1]))
        return Filters(language=language or "", issue=str(issue or ""), date_from=dates[0], date_to=dates[1])

    # -- asking ---------------------------------------------------------------------------------------
    def ask(
        self,
        question: str,
        k: float,
        language: str,
        issue: str,
        date_from: str,
        date_to: str,
        session: dict[str, Any] | None,
    ) -> Iterator[tuple[Any, ...]]:
        """Stream one answer.

        Yields (chat, sources, notice, question box, session, feedback status, 👍, 👎, comment, *labels).
        The answer takes tens of milliseconds, so the first yield normally already carries its first words;
        a "searching" bubble is shown first only when the pipeline is slow.
        """
        session = session or _new_session()
        skip = gr.skip()
        rest = [skip] * (N_FEEDBACK + len(LABELLED))
        ui_lang = session["ui_lang"]
        try:
            q = self.pipeline.check_question(question)
            filters = self.filters(language, issue, date_from, date_to, ui_lang)
        except (QuestionError, ValueError) as exc:
            yield (skip, skip, render.notice_html(str(exc), "warn"), skip, session, *rest)
            return
        new_lang = render.ui_language(q, ui_lang, session["locked"])
        labels = self.labels(new_lang) if new_lang != ui_lang else [skip] * len(LABELLED)
        session["ui_lang"] = ui_lang = new_lang
        session["rating"] = None
        k = int(k or self.settings.k)
        turns = session["turns"]
        turns.append({"id": uuid.uuid4().hex, "question": q, "answer": None, "k": k, "filters": asdict(filters)})
        idx = len(turns) - 1
        first = ["", "", session, *self.reset_feedback(), *labels]  # notice, question box, ... labels
        future = self._worker.submit(self._answer, q, k, filters)
        try:
            try:
                answer = future.result(timeout=self.pending_after)
            except FutureTimeout:
                yield (render.conversation_html(turns, ui_lang), skip, *first)
                first = [skip, skip, session, *rest]
                answer = future.result()
        except StoreError as exc:
            turns.pop()
            chat = render.conversation_html(turns, ui_lang, session["current"])
            yield (chat, skip, render.notice_html(str(exc), "warn"), q, session, *rest)
            return
        turns[idx]["answer"] = answer
        session["current"] = idx
        for prefix in render.stream_prefixes(answer.answer)[:-1]:
            yield (render.conversation_html(turns, ui_lang, idx, partial=prefix), skip, *first)
            first = [skip, skip, skip, *rest]
            time.sleep(self.stream_delay)
        chat = render.conversation_html(turns, ui_lang, idx)
        yield (chat, self.sources(session, idx), *first[:2], session, *first[3:])

    def _answer(self, question: str, k: int, filters: Filters) -> Any:
        with self._lock:
            return self.pipeline.ask(question, k=k, filters=filters)

    def sources(self, session: dict[str, Any], idx: int | None) -> str:
        if idx is None or not session["turns"]:
            return render.sources_html(None, session["ui_lang"])
        answer = session["turns"][idx]["answer"]
        return render.sources_html(answer, session["ui_lang"], idx, self.documents())

    def show_turn(self, turn: int, session: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """Show the sources of an earlier answer (a marker of that answer was clicked)."""
        if 0 <= turn < len(session["turns"]) and session["turns"][turn]["answer"] is not None:
            session["current"] = turn
        cur = session["current"]
        return (
            render.conversation_html(session["turns"], session["ui_lang"], cur),
            self.sources(session, cur),
            session,
        )

    def open_doc(self, n: int, session: dict[str, Any]) -> tuple[str, Any]:
        """The whole newsletter of citation n of the shown answer, passage highlighted; shows the viewer."""
        cur = session.get("current")
        answer = session["turns"][cur]["answer"] if cur is not None else None
        cite = next((c for c in answer.citations if c.n == int(n)), None) if answer else None
        doc = self.documents().get(cite.doc_id) if cite else None
        if doc is None:
            return "", gr.update(visible=False)
        return render.document_html(doc, cite, session["ui_lang"]), gr.update(visible=True)

    def set_language(self, choice: str, session: dict[str, Any]) -> tuple[Any, ...]:
        """The user picked an interface language: use it from now on, whatever the questions' language."""
        session["ui_lang"] = render.UI_LANGUAGES.get(choice, "en")
        session["locked"] = True
        chat = render.conversation_html(session["turns"], session["ui_lang"], session["current"])
        return (chat, self.sources(session, session["current"]), session, *self.labels(session["ui_lang"]))

    def clear(self, session: dict[str, Any]) -> tuple[Any, ...]:
        fresh = {**_new_session(session["ui_lang"]), "locked": session["locked"]}
        return (render.conversation_html([], fresh["ui_lang"]), render.sources_html(None, fresh["ui_lang"]), "", fresh)

    def on_load(self, session: dict[str, Any]) -> tuple[Any, ...]:
        """Fresh choices on page load: another process may have changed the index."""
        ui_lang = session["ui_lang"]
        return (
            gr.update(choices=self.issue_choices(ui_lang)),
            gr.update(choices=self.doc_choices()),
            render.documents_table(self.documents(), ui_lang),
        )

    # -- feedback -----------------------------------------------------------------------------------
    def rate(self, rating: str, comment: str, session: dict[str, Any]) -> tuple[Any, ...]:
        """👍/👎: stored at once (with the comment typed so far); returns (status, session, up, down)."""
        session["rating"] = rating
        status = self._store_feedback(rating, comment, session)
        return (
            status,
            session,
            gr.update(variant="primary" if rating == "up" else "secondary"),
            gr.update(variant="primary" if rating == "down" else "secondary"),
        )

    def send_comment(self, comment: str, session: dict[str, Any]) -> tuple[Any, ...]:
        """A comment, stored with this answer's rating (if any); returns (status, comment box)."""
        if not (comment or "").strip() and not session.get("rating"):
            return render.notice_html(render.t(session["ui_lang"], "feedback_empty"), "warn"), gr.skip()
        status = self._store_feedback(session.get("rating"), comment, session)
        return status, ("" if "ok" in status else gr.skip())

    def reset_feedback(self) -> tuple[Any, ...]:
        return "", gr.update(variant="secondary"), gr.update(variant="secondary"), ""

    def _store_feedback(self, rating: str | None, comment: str, session: dict[str, Any]) -> str:
        ui_lang = session["ui_lang"]
        cur = session.get("current")
        if cur is None or session["turns"][cur]["answer"] is None:
            return render.notice_html(render.t(ui_lang, "feedback_nothing"), "warn")
        turn = session["turns"][cur]
        answer = turn["answer"].to_dict()
        feedback.record(
            self.settings.data_dir,
            {
                "answer_id": turn["id"],
                "rating": rating,
                "comment": (comment or "").strip(),
                "question": answer["question"],
                "language": answer["language"],
                "abstained": answer["abstained"],
                "answer": answer["answer"],
                "citations": answer["citations"],
                "ui_language": ui_lang,
                "settings": {
                    "index_name": self.settings.index_name,
                    "embedders": list(self.settings.embedders),
                    "k": turn["k"],
                    "filters": {k: v for k, v in turn["filters"].items() if k != "doc_ids"},
                },
            },
        )
        return render.notice_html(render.t(ui_lang, "feedback_saved"), "ok")

    # -- admin ----------------------------------------------------------------------------------------
    def _authorised(self, password: str) -> bool:
        want = self.settings.admin_password
        return not want or hmac.compare_digest((password or "").encode(), want.encode())

    def _admin_outputs(self, message: str, kind: str, ui_lang: str) -> tuple[Any, ...]:
        return (
            render.notice_html(message, kind),
            render.documents_table(self.documents(), ui_lang),
            gr.update(choices=self.doc_choices(), value=None),
            gr.update(choices=self.issue_choices(ui_lang)),
        )

    def upload(
        self,
        files: Sequence[Any] | None,
        password: str,
        session: dict[str, Any] | None,
        progress: gr.Progress | None = None,
    ) -> tuple[Any, ...]:
        """Check, copy to `<data_dir>/uploads/` and index uploaded newsletters.

        Returns (status, documents table, remove choices, issue choices).
        """
        ui_lang = (session or {}).get("ui_lang", "en")
        if not self._authorised(password):
            return self._admin_outputs(render.t(ui_lang, "wrong_password"), "warn", ui_lang)
        paths = [Path(getattr(f, "name", f)) for f in (files or []) if f]
        if not paths:
            return self._admin_outputs(render.t(ui_lang, "no_files"), "warn", ui_lang)
        uploads = Path(self.settings.data_dir) / "uploads"
        staging = uploads / f".staging-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True, exist_ok=True)
        messages, accepted = [], []
        try:
            for src in paths:
                name = _safe_name(src.name)
                refused = self._check_upload(src, name, staging, ui_lang)
                if refused:
                    messages.append(refused)
                    continue
                dest = uploads / name
                os.replace(staging / name, dest)
                accepted.append(dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if accepted:

            def report(stage: str, done: int, total: int) -> None:
                if progress is not None:
                    progress((done, max(total, 1)), desc=stage)

            with self._lock:
                rep = self.pipeline.ingest(accepted, progress=report)
            for err in rep.errors:
                messages.append(render.t(ui_lang, "unreadable", name=err.path.name, reason=err.reason))
            if rep.added or rep.updated or rep.unchanged:
                messages.insert(
                    0,
                    render.t(
                        ui_lang,
                        "ingested",
                        name=", ".join(p.name for p in accepted),
                        added=len(rep.added),
                        updated=len(rep.updated),
                        unchanged=len(rep.unchanged),
                        chunks=rep.chunks,
                        seconds=rep.seconds,
                    ),
                )
        ok = bool(accepted) and len(messages) == 1
        return self._admin_outputs("\n".join(messages), "ok" if ok else "warn", ui_lang)

    def _check_upload(self, src: Path, name: str, staging: Path, ui_lang: str) -> str:
        """ "" when `src` may be indexed (it is then copied to staging/name), else why not."""
        ext = Path(name).suffix.lower()
        if ext not in UPLOAD_TYPES or name.lower().endswith(".meta.json"):
            return render.t(ui_lang, "bad_type", name=name, ext=ext or "(none)")
        size = src.stat().st_size
        if size > self.settings.max_upload_mb * 1024 * 1024:
            return render.t(ui_lang, "too_big", name=name, size=size / 1024 / 1024, mb=self.settings.max_upload_mb)
        sniffed = _sniff(src, ext)
        if sniffed:
            return render.t(ui_lang, "unreadable", name=name, reason=sniffed)
        shutil.copyfile(src, staging / name)
        try:
            read(staging / name)  # decodes and parses: binary or corrupt files raise IngestError
        except IngestError as exc:
            return render.t(ui_lang, "unreadable", name=name, reason=exc.reason)
        return ""

    def remove(self, doc_id: str, password: str, session: dict[str, Any] | None) -> tuple[Any, ...]:
        """Remove one newsletter from the index. Returns like `upload`."""
        ui_lang = (session or {}).get("ui_lang", "en")
        if not self._authorised(password):
            return self._admin_outputs(render.t(ui_lang, "wrong_password"), "warn", ui_lang)
        if not doc_id:
            return self._admin_outputs(render.t(ui_lang, "no_doc"), "warn", ui_lang)
        try:
            with self._lock:
                rep = self.pipeline.remove([doc_id])
        except (KeyError, StoreError) as exc:
            return self._admin_outputs(str(exc.args[0] if exc.args else exc), "warn", ui_lang)
        return self._admin_outputs(render.t(ui_lang, "removed", doc_id=doc_id, chunks=rep.chunks), "ok", ui_lang)

    # -- API ----------------------------------------------------------------------------------------
    def api_ask(
        self, question: str, k: int = 5, language: str = "", issue: str = "", date_from: str = "", date_to: str = ""
    ) -> dict:
        """Answer a question; returns the JSON contract of `newsletter-qa ask --json`."""
        try:
            filters = self.filters(language, issue, date_from, date_to, "en")
            with self._lock:
                return self.pipeline.ask(question, k=int(k) if k else None, filters=filters).to_dict()
        except (QuestionError, ValueError, StoreError) as exc:
            raise gr.Error(str(exc)) from exc


def _safe_name(name: str) -> str:
    """A file name safe to store: no folders, no leading dots, only word characters, dots and dashes."""
    stem = re.sub(r"[^\w.\-]+", "_", Path(name).name).lstrip("._")
    return stem or "upload.txt"


def _sniff(path: Path, ext: str) -> str:
    """ "" when the bytes fit the extension (PDF header, Word zip); text formats are judged by `read`."""
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if ext == ".pdf" and not head.lstrip().startswith(b"%PDF-"):
        return "the file is not a PDF (no %PDF header)"
    if ext == ".docx":
        try:
            with zipfile.ZipFile(path) as z:
                if "word/document.xml" not in z.namelist():
                    return "the file is not a Word .docx document"
        except zipfile.BadZipFile:
            return "the file is not a Word .docx document (not a zip archive)"
    return ""


def build_app(pipeline: Pipeline, settings: Settings) -> gr.Blocks:
    """The UI and the `/ask` API on one pipeline. `app.callbacks` holds the handlers (for tests)."""
    cb = Callbacks(pipeline, settings)
    lang = "en"
    t = render.t
    with gr.Blocks(title="Newsletter Q&A · 新闻简报问答", analytics_enabled=False) as app:
        session = gr.State(_new_session(lang))
        c: dict[str, Any] = {}
        with gr.Row(elem_id="qa-top", equal_height=True):
            c["header"] = gr.HTML(
                render.header_html(lang), elem_id="qa-header", apply_default_css=False, js_on_load=None
            )
            c["ui_choice"] = ui_choice = gr.Radio(
                list(render.UI_LANGUAGES),
                value=render.UI_CHOICE[lang],
                show_label=False,
                label="Interface language / 界面语言",
                elem_id="ui-language",
                scale=0,
                min_width=230,
                container=False,
            )
        with gr.Tabs():
            with gr.Tab(t(lang, "tab_ask"), id="ask") as c["tab_ask"]:
                with gr.Row(equal_height=False):
                    with gr.Column(scale=7, min_width=440):
                        chat = gr.HTML(
                            render.conversation_html([], lang),
                            elem_id="qa-chat",
                            apply_default_css=False,
                            js_on_load=render.CHAT_JS,
                        )
                        with gr.Row(elem_id="qa-ask-row", equal_height=True):
                            c["question"] = gr.Textbox(
                                label=t(lang, "question"),
                                show_label=False,
                                placeholder=t(lang, "question_placeholder"),
                                lines=1,
                                max_lines=4,
                                scale=8,
                                elem_id="question",
                                autofocus=True,
                                container=False,
                            )
                            c["send"] = gr.Button(
                                t(lang, "send"), variant="primary", scale=1, min_width=90, elem_id="send"
                            )
                            c["clear"] = gr.Button(
                                t(lang, "clear"), variant="secondary", elem_id="clear", scale=0, min_width=130
                            )
                        notice = gr.HTML("", elem_id="qa-notice", apply_default_css=False, js_on_load=None)
                        with gr.Row(elem_id="qa-examples", equal_height=True):
                            c["examples_label"] = gr.HTML(
                                render.text_html("qa-examples-label", t(lang, "examples")),
                                apply_default_css=False,
                                js_on_load=None,
                            )
                            examples = [
                                gr.Button(q, size="sm", variant="secondary", elem_classes="qa-example", scale=0)
                                for q in render.EXAMPLES
                            ]
                        with gr.Accordion(t(lang, "filters"), open=False, elem_id="qa-filters") as c["filters"]:
                            with gr.Row():
                                c["issue"] = gr.Dropdown(
                                    cb.issue_choices(lang),
                                    value="",
                                    label=t(lang, "filter_issue"),
                                    elem_id="filter-issue",
                                )
                                c["language"] = gr.Radio(
                                    cb.language_choices(lang),
                                    value="",
                                    label=t(lang, "filter_language"),
                                    elem_id="filter-language",
                                )
                            with gr.Row():
                                c["date_from"] = gr.Textbox(
                                    label=t(lang, "date_from"),
                                    elem_id="filter-date-from",
                                    placeholder=t(lang, "date_placeholder"),
                                )
                                c["date_to"] = gr.Textbox(
                                    label=t(lang, "date_to"),
                                    elem_id="filter-date-to",
                                    placeholder=t(lang, "date_placeholder"),
                                )
                                c["k"] = gr.Slider(
                                    1, 10, value=settings.k, step=1, label=t(lang, "k"), elem_id="filter-k"
                                )
                        with gr.Column(elem_id="qa-feedback"):
                            with gr.Row(equal_height=True, elem_id="qa-feedback-top"):
                                c["feedback_prompt"] = gr.HTML(
                                    render.text_html("qa-feedback-prompt", t(lang, "feedback_prompt")),
                                    apply_default_css=False,
                                    js_on_load=None,
                                )
                                c["up"] = gr.Button(
                                    t(lang, "thumbs_up"), size="sm", elem_id="thumbs-up", scale=0, min_width=110
                                )
                                c["down"] = gr.Button(
                                    t(lang, "thumbs_down"), size="sm", elem_id="thumbs-down", scale=0, min_width=120
                                )
                            with gr.Row(equal_height=True, elem_id="qa-feedback-comment"):
                                c["comment"] = gr.Textbox(
                                    label=t(lang, "comment"),
                                    show_label=False,
                                    container=False,
                                    elem_id="feedback-comment",
                                    placeholder=t(lang, "comment_placeholder"),
                                    scale=5,
                                    lines=1,
                                    max_lines=4,
                                )
                                c["send_comment"] = gr.Button(
                                    t(lang, "send_comment"), size="sm", scale=1, elem_id="send-comment", min_width=110
                                )
                            feedback_status = gr.HTML(
                                "", elem_id="feedback-status", apply_default_css=False, js_on_load=None
                            )
                    with gr.Column(scale=5, min_width=360, elem_id="qa-sources-col"):
                        sources = gr.HTML(
                            render.sources_html(None, lang),
                            elem_id="qa-sources",
                            apply_default_css=False,
                            js_on_load=render.SOURCES_JS,
                        )
                with gr.Column(visible=False, elem_id="doc-modal") as modal:
                    c["close_doc"] = gr.Button(t(lang, "close_doc"), size="sm", elem_id="close-doc")
                    viewer = gr.HTML("", elem_id="doc-viewer", apply_default_css=False, js_on_load=None)
            with gr.Tab(t(lang, "tab_admin"), id="admin") as c["tab_admin"]:
                c["admin_intro"] = gr.HTML(cb.admin_intro(lang), apply_default_css=False, js_on_load=None)
                c["password"] = gr.Textbox(
                    label=t(lang, "password"),
                    type="password",
                    elem_id="admin-password",
                    placeholder=t(lang, "password_placeholder"),
                    visible=bool(settings.admin_password),
                )
                with gr.Row():
                    with gr.Column(scale=3):
                        c["files"] = gr.File(
                            label=t(lang, "upload"),
                            file_count="multiple",
                            type="filepath",
                            file_types=list(UPLOAD_TYPES),
                            elem_id="admin-files",
                        )
                        c["upload"] = gr.Button(t(lang, "upload_button"), variant="primary", elem_id="admin-upload")
                    with gr.Column(scale=2):
                        c["remove_choice"] = gr.Dropdown(
                            cb.doc_choices(), value=None, label=t(lang, "remove_choice"), elem_id="admin-remove-choice"
                        )
                        c["remove"] = gr.Button(t(lang, "remove_button"), variant="stop", elem_id="admin-remove")
                admin_status = gr.HTML("", elem_id="admin-status", apply_default_css=False, js_on_load=None)
                c["documents"] = gr.HTML(
                    render.documents_table(cb.documents(), lang),
                    elem_id="admin-documents",
                    apply_default_css=False,
                    js_on_load=None,
                )

        labelled = [c[name] for name in LABELLED]
        filters_in = [c["k"], c["language"], c["issue"], c["date_from"], c["date_to"]]
        feedback_reset = [feedback_status, c["up"], c["down"], c["comment"]]
        ask_out = [chat, sources, notice, c["question"], session, *feedback_reset, *labelled]
        hidden = {"api_visibility": "private"}
        ask_opts = {"concurrency_limit": 8, "show_progress": "hidden", **hidden}

        def stream_answer(question, k, language, issue, date_from, date_to, sess):  # type: ignore[no-untyped-def]
            yield from cb.ask(question, k, language, issue, date_from, date_to, sess)

        for trigger in (c["send"].click, c["question"].submit):
            trigger(stream_answer, [c["question"], *filters_in, session], ask_out, **ask_opts)
        for button in examples:
            button.click(stream_answer, [button, *filters_in, session], ask_out, **ask_opts)

        def on_chat_click(sess, evt: gr.EventData):  # type: ignore[no-untyped-def]
            return cb.show_turn(int(evt._data.get("turn", -1)), sess)

        chat.click(on_chat_click, session, [chat, sources, session], **hidden).then(
            None, js=render.SCROLL_TO_CARD_JS, **hidden
        )

        def on_sources_click(sess, evt: gr.EventData):  # type: ignore[no-untyped-def]
            return cb.open_doc(int(evt._data.get("n", 0)), sess)

        sources.click(on_sources_click, session, [viewer, modal], **hidden).then(
            None, js=render.SCROLL_TO_PASSAGE_JS, **hidden
        )
        c["close_doc"].click(lambda: gr.update(visible=False), None, modal, queue=False, **hidden)

        ui_choice.input(cb.set_language, [ui_choice, session], [chat, sources, session, *labelled], **hidden)
        c["clear"].click(cb.clear, session, [chat, sources, notice, session], **hidden)

        c["up"].click(
            lambda comment, sess: cb.rate("up", comment, sess),
            [c["comment"], session],
            [feedback_status, session, c["up"], c["down"]],
            **hidden,
        )
        c["down"].click(
            lambda comment, sess: cb.rate("down", comment, sess),
            [c["comment"], session],
            [feedback_status, session, c["up"], c["down"]],
            **hidden,
        )
        c["send_comment"].click(cb.send_comment, [c["comment"], session], [feedback_status, c["comment"]], **hidden)
        c["comment"].submit(cb.send_comment, [c["comment"], session], [feedback_status, c["comment"]], **hidden)

        def upload(files, password, sess, progress=gr.Progress()):  # type: ignore[no-untyped-def]  # noqa: B008
            return cb.upload(files, password, sess, progress)

        admin_out = [admin_status, c["documents"], c["remove_choice"], c["issue"]]
        c["upload"].click(upload, [c["files"], c["password"], session], admin_out, **hidden)
        c["remove"].click(cb.remove, [c["remove_choice"], c["password"], session], admin_out, **hidden)
        app.load(cb.on_load, session, [c["issue"], c["remove_choice"], c["documents"]], **hidden)

        def api_ask(
            question: str,
            k: int = settings.k,
            language: str = "",
            issue: str = "",
            date_from: str = "",
            date_to: str = "",
        ) -> dict:
            """Answer a question from the newsletters; returns the JSON of `newsletter-qa ask --json`."""
            return cb.api_ask(question, k, language, issue, date_from, date_to)

        gr.api(api_ask, api_name="ask")
    app.callbacks = cb  # type: ignore[attr-defined]
    return app


def serve(
    app: gr.Blocks,
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 7860,
    prevent_thread_lock: bool = False,
    quiet: bool = False,
) -> tuple[Any, str, str]:
    """Launch `app` for an offline intranet: local assets only, no share link, no telemetry, no SSR."""
    return app.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=prevent_thread_lock,
        share=False,
        quiet=quiet,
        show_error=True,
        theme=THEME,
        css=render.STYLE,
        footer_links=["api", "settings"],
        max_file_size=f"{settings.max_upload_mb}mb",
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Serve the newsletter-qa web UI.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--config", type=Path, help="TOML settings file (default: $RAG_CONFIG)")
    args = p.parse_args(argv)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no telemetry and no version check from this process
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = load_settings(args.config)
    pipeline = Pipeline(settings)
    print(f"Loading models and index {settings.index_name!r} (the first start builds it)…", flush=True)
    pipeline.warm_up()
    serve(build_app(pipeline, settings), settings, args.host, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
