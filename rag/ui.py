"""The web UI's event handlers, on the service; gradio-free (updates are the plain dicts gradio reads).

`app.py` lays out the components and wires their events to `Callbacks`; tests call `Callbacks` directly.
Admin handlers take the caller (`who`: anything with `.headers` and `.client.host`, i.e. a gradio request)
and leave every decision to `rag.auth.Gate` and `rag.service.Service`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rag import render
from rag.auth import Gate, Principal, RateLimited, ServiceError
from rag.http import authenticate
from rag.retrieve import Filters
from rag.service import BadRequest, InvalidFilter, InvalidQuestion, Service, Upload, parse_filters
from rag.types import Answer, Draft, Token, Turn

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
CONFIRM_SECONDS = 60.0
HISTORY = 3  # earlier turns a follow-up question is read with
LOCAL = SimpleNamespace(headers={}, client=SimpleNamespace(host="127.0.0.1"))  # an in-process caller


def update(**changes: Any) -> dict[str, Any]:
    """What `gr.update(**changes)` returns; `update()` is `gr.skip()`."""
    return {"__type__": "update", **changes}


def new_session(ui_lang: str = "en") -> dict[str, Any]:
    return {"turns": [], "current": None, "ui_lang": ui_lang, "locked": False, "rating": None, "confirm": None}


class Callbacks:
    """The event handlers, callable directly (tests) or from gradio events (the UI)."""

    def __init__(self, service: Service, gate: Gate, stream_delay: float = 0.03) -> None:
        self.service = service
        self.gate = gate
        self.settings = service.settings
        self.stream_delay = stream_delay
        self.pending_after = 0.15  # seconds before a "searching" bubble is worth showing
        self._worker = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ask")

    # -- helpers ------------------------------------------------------------------------------------
    def documents(self) -> dict:
        return self.service.documents()

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
            return update(label=t(ui_lang, key), **({"placeholder": t(ui_lang, ph)} if ph else {}))

        updates = {
            "ui_choice": update(value=render.UI_CHOICE[render.base_language(ui_lang)]),
            "header": render.header_html(ui_lang),
            "tab_ask": update(label=t(ui_lang, "tab_ask")),
            "tab_admin": update(label=t(ui_lang, "tab_admin")),
            "question": lbl("question", "question_placeholder"),
            "send": update(value=t(ui_lang, "send")),
            "examples_label": render.text_html("qa-examples-label", t(ui_lang, "examples")),
            "filters": update(label=t(ui_lang, "filters")),
            "issue": update(label=t(ui_lang, "filter_issue"), choices=self.issue_choices(ui_lang)),
            "language": update(label=t(ui_lang, "filter_language"), choices=self.language_choices(ui_lang)),
            "date_from": lbl("date_from", "date_placeholder"),
            "date_to": lbl("date_to", "date_placeholder"),
            "k": lbl("k"),
            "feedback_prompt": render.text_html("qa-feedback-prompt", t(ui_lang, "feedback_prompt")),
            "up": update(value=t(ui_lang, "thumbs_up")),
            "down": update(value=t(ui_lang, "thumbs_down")),
            "comment": lbl("comment", "comment_placeholder"),
            "send_comment": update(value=t(ui_lang, "send_comment")),
            "clear": update(value=t(ui_lang, "clear")),
            "close_doc": update(value=t(ui_lang, "close_doc")),
            "admin_intro": self.admin_intro(ui_lang),
            "password": lbl("password", "password_placeholder"),
            "files": lbl("upload"),
            "upload": update(value=t(ui_lang, "upload_button")),
            "documents": render.documents_table(self.documents(), ui_lang),
            "remove_choice": lbl("remove_choice"),
            "remove": update(value=t(ui_lang, "remove_button")),
        }
        return [updates[name] for name in LABELLED]

    @staticmethod
    def language_choices(ui_lang: str) -> list[tuple[str, str]]:
        return [(render.t(ui_lang, "all_languages"), ""), ("English", "en"), ("中文", "zh")]

    def admin_intro(self, ui_lang: str) -> str:
        return render.text_html("qa-admin-intro", render.t(ui_lang, "admin_intro", mb=self.settings.max_upload_mb))

    def filters(self, language: str, issue: str, date_from: str, date_to: str, ui_lang: str) -> Filters:
        """Filters from the form; raises ValueError with a message in the UI language for bad values."""
        try:
            return parse_filters(language, issue, date_from, date_to)
        except InvalidFilter as exc:
            values = dict(exc.values)
            if "field" in values:
                values["field"] = render.t(ui_lang, values["field"])
            raise ValueError(render.t(ui_lang, exc.key, **values)) from None

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
        who: Any = LOCAL,
    ) -> Iterator[tuple[Any, ...]]:
        """Stream one answer.

        Yields (chat, sources, notice, question box, session, feedback status, 👍, 👎, comment, *labels).
        The answer takes tens of milliseconds, so the first yield normally already carries its first words;
        a "searching" bubble is shown first only when the pipeline is slow.
        """
        session = session or new_session()
        skip = update()
        rest = [skip] * (N_FEEDBACK + len(LABELLED))
        ui_lang = session["ui_lang"]
        try:
            q = self.service.check_question(question)
            filters = self.filters(language, issue, date_from, date_to, ui_lang)
            self.gate.count_ask(self._caller(who))
        except RateLimited as exc:
            yield (
                skip,
                skip,
                render.notice_html(render.t(ui_lang, "too_many", seconds=exc.retry_after), "warn"),
                skip,
                session,
                *rest,
            )
            return
        except (InvalidQuestion, ValueError) as exc:
            yield (skip, skip, render.notice_html(str(exc), "warn"), skip, session, *rest)
            return
        new_lang = render.ui_language(q, ui_lang, session["locked"])
        labels = self.labels(new_lang) if new_lang != ui_lang else [skip] * len(LABELLED)
        session["ui_lang"] = ui_lang = new_lang
        session["rating"] = None
        k = int(k or self.settings.k)
        turns = session["turns"]
        history = tuple(
            Turn(t["question"], t["answer"].answer if t["answer"] is not None else "") for t in turns[-HISTORY:]
        )
        turns.append({"id": uuid.uuid4().hex, "question": q, "answer": None, "k": k, "filters": asdict(filters)})
        idx = len(turns) - 1
        first = ["", "", session, *self.reset_feedback(), *labels]  # notice, question box, ... labels
        if self.settings.llm_enabled:
            yield from self._ask_generated(q, k, filters, history, session, idx, first, rest)
            return
        future = self._worker.submit(self.service.ask, q, k, filters, history)
        try:
            try:
                answer = future.result(timeout=self.pending_after)
            except FutureTimeout:
                yield (render.conversation_html(turns, ui_lang), skip, *first)
                first = [skip, skip, session, *rest]
                answer = future.result()
        except ServiceError as exc:
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

    def _ask_generated(
        self,
        q: str,
        k: int,
        filters: Filters,
        history: tuple[Turn, ...],
        session: dict[str, Any],
        idx: int,
        first: list[Any],
        rest: list[Any],
    ) -> Iterator[tuple[Any, ...]]:
        """Stream an answer an LLM writes: the extractive draft's bubble fills with the LLM's text as it arrives
        (at most every `stream_delay` seconds), then shows the verified answer and its sources."""
        skip = update()
        turns, ui_lang = session["turns"], session["ui_lang"]
        final: Answer | None = None
        text, shown = "", 0.0
        try:
            for event in self.service.events(q, k, filters, history):
                if isinstance(event, Draft):
                    turns[idx]["answer"] = event.answer
                elif isinstance(event, Token):
                    text += event.text
                    if time.monotonic() - shown >= self.stream_delay and turns[idx]["answer"] is not None:
                        yield (render.conversation_html(turns, ui_lang, idx, partial=text), skip, *first)
                        first = [skip, skip, skip, *rest]
                        shown = time.monotonic()
                else:
                    final = event
        except ServiceError as exc:
            turns.pop()
            chat = render.conversation_html(turns, ui_lang, session["current"])
            yield (chat, skip, render.notice_html(str(exc), "warn"), q, session, *rest)
            return
        assert final is not None
        turns[idx]["answer"] = final
        session["current"] = idx
        chat = render.conversation_html(turns, ui_lang, idx)
        yield (chat, self.sources(session, idx), *first[:2], session, *first[3:])

    def _caller(self, who: Any, password: str = "") -> Principal:
        return authenticate(self.gate, who or LOCAL, password)

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
            return "", update(visible=False)
        return render.document_html(doc, cite, session["ui_lang"]), update(visible=True)

    def set_language(self, choice: str, session: dict[str, Any]) -> tuple[Any, ...]:
        """The user picked an interface language: use it from now on, whatever the questions' language."""
        session["ui_lang"] = render.UI_LANGUAGES.get(choice, "en")
        session["locked"] = True
        chat = render.conversation_html(session["turns"], session["ui_lang"], session["current"])
        return (chat, self.sources(session, session["current"]), session, *self.labels(session["ui_lang"]))

    def clear(self, session: dict[str, Any]) -> tuple[Any, ...]:
        fresh = {**new_session(session["ui_lang"]), "locked": session["locked"]}
        return (render.conversation_html([], fresh["ui_lang"]), render.sources_html(None, fresh["ui_lang"]), "", fresh)

    def on_load(self, session: dict[str, Any]) -> tuple[Any, ...]:
        """Fresh choices on page load: another process may have changed the index."""
        ui_lang = session["ui_lang"]
        return (
            update(choices=self.issue_choices(ui_lang)),
            update(choices=self.doc_choices()),
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
            update(variant="primary" if rating == "up" else "secondary"),
            update(variant="primary" if rating == "down" else "secondary"),
        )

    def send_comment(self, comment: str, session: dict[str, Any]) -> tuple[Any, ...]:
        """A comment, stored with this answer's rating (if any); returns (status, comment box)."""
        if not (comment or "").strip() and not session.get("rating"):
            return render.notice_html(render.t(session["ui_lang"], "feedback_empty"), "warn"), update()
        status = self._store_feedback(session.get("rating"), comment, session)
        return status, ("" if "ok" in status else update())

    def reset_feedback(self) -> tuple[Any, ...]:
        return "", update(variant="secondary"), update(variant="secondary"), ""

    def _store_feedback(self, rating: str | None, comment: str, session: dict[str, Any]) -> str:
        ui_lang = session["ui_lang"]
        cur = session.get("current")
        if cur is None or session["turns"][cur]["answer"] is None:
            return render.notice_html(render.t(ui_lang, "feedback_nothing"), "warn")
        comment = (comment or "").strip()
        if len(comment) > self.settings.max_comment_chars:
            msg = render.t(ui_lang, "comment_too_long", n=len(comment), limit=self.settings.max_comment_chars)
            return render.notice_html(msg, "warn")
        turn = session["turns"][cur]
        answer = turn["answer"].to_dict()
        self.service.feedback(
            {
                "answer_id": turn["id"],
                "rating": rating,
                "comment": comment,
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
                    "filters": {k: v for k, v in turn["filters"].items() if k not in ("doc_ids", "exclude")},
                },
            }
        )
        return render.notice_html(render.t(ui_lang, "feedback_saved"), "ok")

    # -- admin ----------------------------------------------------------------------------------------
    def _admin_outputs(self, message: str, kind: str, ui_lang: str) -> tuple[Any, ...]:
        return (
            render.notice_html(message, kind),
            render.documents_table(self.documents(), ui_lang),
            update(choices=self.doc_choices(), value=None),
            update(choices=self.issue_choices(ui_lang)),
        )

    def _admin(self, who: Any, password: str, ui_lang: str) -> Principal | str:
        """The admin principal, or the message saying why not (wrong password, rate limited, not allowed)."""
        try:
            principal = self._caller(who, password)
            principal.require("admin")
            return principal
        except RateLimited as exc:
            return render.t(ui_lang, "too_many", seconds=exc.retry_after)
        except ServiceError as exc:
            if password or self.settings.admin_password:
                return render.t(ui_lang, "wrong_password")
            return render.t(ui_lang, "not_allowed", reason=str(exc))

    def upload(
        self,
        files: Sequence[Any] | None,
        password: str,
        session: dict[str, Any] | None,
        progress: Callable[..., Any] | None = None,
        who: Any = LOCAL,
    ) -> tuple[Any, ...]:
        """Check, copy to `<data_dir>/uploads/` and index uploaded newsletters.

        Returns (status, documents table, remove choices, issue choices).
        """
        ui_lang = (session or {}).get("ui_lang", "en")
        principal = self._admin(who, password, ui_lang)
        if isinstance(principal, str):
            return self._admin_outputs(principal, "warn", ui_lang)
        paths = [Path(getattr(f, "name", f)) for f in (files or []) if f]
        if not paths:
            return self._admin_outputs(render.t(ui_lang, "no_files"), "warn", ui_lang)

        def report(stage: str, done: int, total: int) -> None:
            if progress is not None:
                progress((done, max(total, 1)), desc=stage)

        try:
            res = self.service.add(principal, [Upload(p, p.name) for p in paths], progress=report)
        except BadRequest as exc:
            return self._admin_outputs(str(exc), "warn", ui_lang)
        messages = [render.t(ui_lang, r.key, **r.values) for r in res.refused]
        rep = res.report
        if rep is not None and (rep.added or rep.updated or rep.unchanged):
            messages.insert(
                0,
                render.t(
                    ui_lang,
                    "ingested",
                    name=", ".join(res.accepted),
                    added=len(rep.added),
                    updated=len(rep.updated),
                    unchanged=len(rep.unchanged),
                    chunks=rep.chunks,
                    seconds=rep.seconds,
                ),
            )
        ok = bool(res.accepted) and not res.refused
        return self._admin_outputs("\n".join(messages), "ok" if ok else "warn", ui_lang)

    def remove(self, doc_id: str, password: str, session: dict[str, Any] | None, who: Any = LOCAL) -> tuple[Any, ...]:
        """Remove one newsletter: the first press asks for confirmation, a second within a minute removes."""
        session = session if session is not None else new_session()
        ui_lang = session.get("ui_lang", "en")
        principal = self._admin(who, password, ui_lang)
        if isinstance(principal, str):
            return self._admin_outputs(principal, "warn", ui_lang)
        if not doc_id:
            return self._admin_outputs(render.t(ui_lang, "no_doc"), "warn", ui_lang)
        armed = session.get("confirm")
        if not armed or armed[0] != doc_id or time.monotonic() - armed[1] > CONFIRM_SECONDS:
            session["confirm"] = (doc_id, time.monotonic())
            out = self._admin_outputs(render.t(ui_lang, "confirm_remove", doc_id=doc_id), "warn", ui_lang)
            return (out[0], out[1], update(), out[3])  # keep the choice selected
        session["confirm"] = None
        try:
            rep = self.service.remove(principal, doc_id)
        except ServiceError as exc:
            return self._admin_outputs(str(exc), "warn", ui_lang)
        return self._admin_outputs(render.t(ui_lang, "removed", doc_id=doc_id, chunks=rep.chunks), "ok", ui_lang)

    # -- API ----------------------------------------------------------------------------------------
    def api_ask(
        self,
        question: str,
        k: int = 5,
        language: str = "",
        issue: str = "",
        date_from: str = "",
        date_to: str = "",
        who: Any = LOCAL,
    ) -> dict:
        """Answer a question; returns the JSON contract. ServiceError (with a message) when it can't."""
        principal = self._caller(who)
        principal.require("ask")
        self.gate.count_ask(principal)
        filters = parse_filters(language, issue, date_from, date_to)
        return self.service.ask(question, int(k) if k else None, filters).to_dict()
