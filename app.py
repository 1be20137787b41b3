"""Web UI for staff, and the HTTP API, in one process: `python app.py [--host H] [--port P] [--config FILE]`.

Layout and wiring only: `rag.ui.Callbacks` handles the events, `rag.service.Service` answers and changes the
index, `rag.auth.Gate` decides who may, `rag.http` serves `/v1/*`. The gradio app is mounted into that API.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from rag import render
from rag.auth import Gate, ServiceError, gate_for, refuse_to_serve
from rag.http import create_api, proxy_user
from rag.pipeline import Pipeline
from rag.server import Server, listen_address
from rag.service import UPLOAD_TYPES, Service
from rag.settings import Settings, load_settings
from rag.ui import LABELLED, N_FEEDBACK, Callbacks, new_session
from rag.websecurity import SecurityMiddleware

__all__ = ["LABELLED", "N_FEEDBACK", "Callbacks", "build_app", "main", "new_session", "serve"]

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


def build_app(service: Service, gate: Gate) -> gr.Blocks:
    """The UI and the `/ask` API on one service. `app.callbacks` holds the handlers (for tests)."""
    cb = Callbacks(service, gate)
    settings = service.settings
    lang = "en"
    t = render.t
    with gr.Blocks(title="Newsletter Q&A · 新闻简报问答", analytics_enabled=False) as app:
        session = gr.State(new_session(lang))
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
                    visible=bool(settings.admin_password or gate.admin_configured()),
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

        def stream_answer(question, k, language, issue, date_from, date_to, sess, request: gr.Request):  # type: ignore
            yield from cb.ask(question, k, language, issue, date_from, date_to, sess, who=request)

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
        rate_out = [feedback_status, session, c["up"], c["down"]]
        for rating in ("up", "down"):
            c[rating].click(partial(cb.rate, rating), [c["comment"], session], rate_out, **hidden)
        for trigger in (c["send_comment"].click, c["comment"].submit):
            trigger(cb.send_comment, [c["comment"], session], [feedback_status, c["comment"]], **hidden)

        def upload(files, password, sess, request: gr.Request, progress=gr.Progress()):  # type: ignore[no-untyped-def]  # noqa: B008
            return cb.upload(files, password, sess, progress, who=request)

        def remove(doc_id, password, sess, request: gr.Request):  # type: ignore[no-untyped-def]
            return (*cb.remove(doc_id, password, sess, who=request), sess)

        admin_out = [admin_status, c["documents"], c["remove_choice"], c["issue"]]
        c["upload"].click(upload, [c["files"], c["password"], session], admin_out, **hidden)
        c["remove"].click(remove, [c["remove_choice"], c["password"], session], [*admin_out, session], **hidden)
        app.load(cb.on_load, session, [c["issue"], c["remove_choice"], c["documents"]], **hidden)

        def api_ask(
            question: str,
            request: gr.Request,
            k: int = settings.k,
            language: str = "",
            issue: str = "",
            date_from: str = "",
            date_to: str = "",
        ) -> dict:
            """Answer a question from the newsletters; returns the JSON of `newsletter-qa ask --json`."""
            try:
                return cb.api_ask(question, k, language, issue, date_from, date_to, who=request)
            except ServiceError as exc:
                raise gr.Error(str(exc)) from exc

        gr.api(api_ask, api_name="ask")
    app.callbacks = cb  # type: ignore[attr-defined]
    return app


def asgi_app(blocks: gr.Blocks, service: Service, gate: Gate) -> Any:
    """The whole server: `/v1/*` and the UI at `/`, behind the origin checks and security headers."""
    api = create_api(service, gate)
    login: dict[str, Any] = {
        "proxy": {"auth_dependency": lambda request: proxy_user(gate, request) or None},
        "login": {"auth": gate.ui_login, "auth_message": "Sign in with an API key as the password."},
        "none": {},
    }[gate.ui_auth()]
    gr.mount_gradio_app(
        api,
        blocks,
        path="/",
        footer_links=["api", "settings"],
        max_file_size=f"{service.settings.max_upload_mb}mb",
        ssr_mode=False,
        pwa=False,
        mcp_server=False,
        enable_monitoring=False,
        theme=THEME,
        css=render.STYLE,
        js=render.PAGE_JS,
        show_error=True,
        **login,
    )
    return SecurityMiddleware(api, gate.policy.allowed_origins)


def serve(blocks: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, quiet: bool = False) -> Server:
    """Start the server on a background thread; `.close()` stops it."""
    cb = blocks.callbacks  # type: ignore[attr-defined]
    return Server(asgi_app(blocks, cb.service, cb.gate), host, port, quiet).start()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Serve the newsletter-qa web UI and HTTP API.")
    p.add_argument("--host", help="listen address (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default: $GRADIO_SERVER_PORT or 7860)")
    p.add_argument("--config", type=Path, help="TOML settings file (default: $RAG_CONFIG)")
    p.add_argument("--insecure-open", action="store_true", help="serve off-loopback without any admin credential")
    p.add_argument("--trusted-proxy-header", help="user header set by an SSO reverse proxy, e.g. X-Forwarded-User")
    args = p.parse_args(argv)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no telemetry and no version check from this process
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings: Settings = load_settings(args.config)
    if args.trusted_proxy_header:
        settings = settings.replace(trusted_proxy_header=args.trusted_proxy_header)
    host, port = listen_address(args.host, args.port)
    gate = gate_for(settings, host, args.insecure_open)
    refusal = refuse_to_serve(gate)
    if refusal:
        print(f"error: {refusal}", flush=True)
        return 2
    print(f"Loading models and index {settings.index_name!r} (the first start builds it)…", flush=True)
    service = Service(Pipeline(settings))
    service.pipeline.warm_up()
    blocks = build_app(service, gate)
    print(f"Serving on http://{host}:{port} (UI at /, API at /v1, docs at /v1/docs)", flush=True)
    Server(asgi_app(blocks, service, gate), host, port).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
