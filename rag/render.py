"""HTML for the web UI: answers with linked [n] markers, source cards, the newsletter viewer, UI strings.

Pure Python (no gradio), so every piece of markup is unit-testable. Everything that comes from a
newsletter, a question or a file name passes through `escape` before it reaches HTML: the UI shows text,
it never renders a document's markup.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence

from rag.lang import base, detect
from rag.types import Answer, Citation, Document

UI_LANGUAGES = {"English": "en", "简体中文": "zh"}  # toggle label -> UI language
UI_CHOICE = {v: k for k, v in UI_LANGUAGES.items()}

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Newsletter Q&A",
        "subtitle": "Ask in English or Chinese. Every answer quotes the newsletters it rests on.",
        "tab_ask": "Ask",
        "tab_admin": "Admin",
        "question": "Your question",
        "question_placeholder": "e.g. Where was the Seminar on Migrant Integration held?",
        "send": "Ask",
        "clear": "New chat",
        "examples": "Examples",
        "filters": "Filters",
        "filter_issue": "Newsletter issue",
        "all_issues": "All issues",
        "filter_language": "Newsletter language",
        "all_languages": "All",
        "date_from": "Covering from",
        "date_to": "Covering to",
        "date_placeholder": "YYYY-MM-DD",
        "k": "Passages to search",
        "sources": "Sources",
        "sources_empty": "Sources of the answer appear here.",
        "sources_abstain": "No source: nothing in the indexed newsletters answers this question.",
        "open_doc": "Open the newsletter",
        "close_doc": "Close",
        "issue": "Issue",
        "section": "Section",
        "relevance": "Relevance",
        "language": "Language",
        "also_in": "Also in",
        "period": "Period",
        "passage": "Passage",
        "you": "You",
        "assistant": "Assistant",
        "thinking": "Searching the newsletters…",
        "welcome": "Ask a question about the newsletters. Answers cite their sources: click a marker "
        "such as [1] to see the quoted sentence in its passage.",
        "abstained": "Not in the newsletters",
        "closest": "Closest passages — they may not answer the question",
        "quoted_in": "Quoted from the {language} edition; see the sources for the sentence in your language.",
        "confidence": "Confidence",
        "mode_generated": "Written by the language model from the cited passages",
        "mode_dropped": "{n} sentence(s) not supported by the passages removed",
        "read_as": "Read as: {question}",
        "aligned": "In the {language} edition",
        "feedback_prompt": "Was this answer helpful?",
        "thumbs_up": "👍 Helpful",
        "thumbs_down": "👎 Not helpful",
        "comment": "Comment (optional)",
        "comment_placeholder": "Optional comment: what was right or wrong with the answer?",
        "send_comment": "Send comment",
        "feedback_saved": "Thank you: your feedback was saved.",
        "feedback_nothing": "Ask a question first: feedback refers to an answer.",
        "feedback_empty": "Choose 👍 or 👎, or write a comment, before sending.",
        "bad_date": "{field} must be an ISO date such as 2023-01-31, not “{value}”.",
        "bad_range": "The start date {date_from} is after the end date {date_to}.",
        "admin_intro": "Add a newsletter (.txt .md .html .pdf .docx, up to {mb} MB) or remove one.",
        "password": "Admin password",
        "password_placeholder": "required to change the index",
        "upload": "Newsletter files",
        "upload_button": "Upload and index",
        "documents": "Indexed newsletters",
        "remove_choice": "Newsletter to remove",
        "remove_button": "Remove",
        "wrong_password": "Wrong admin password: nothing was changed.",
        "no_files": "Choose a file to upload first.",
        "no_doc": "Choose a newsletter to remove first.",
        "bad_type": "{name}: unsupported file type {ext}; upload .txt, .md, .html, .pdf or .docx.",
        "too_big": "{name} is {size:.1f} MB; the limit is {mb} MB.",
        "unreadable": "{name} was refused: {reason}.",
        "ingested": "Indexed {name}: {added} added, {updated} updated, {unchanged} unchanged "
        "({chunks} passages in the index, {seconds:.1f} s).",
        "removed": "Removed {doc_id}; the index now has {chunks} passages.",
        "confirm_remove": "Remove {doc_id}? Press Remove again within a minute to confirm.",
        "not_allowed": "Not allowed: {reason}",
        "too_many": "Too many attempts from this address: wait {seconds} s and try again.",
        "comment_too_long": "The comment is {n} characters long; the limit is {limit}.",
        "bad_language": "Unknown language filter “{value}”.",
        "col_id": "ID",
        "col_title": "Title",
        "col_issue": "Issue",
        "col_period": "Period",
        "col_language": "Language",
        "col_chars": "Characters",
        "no_documents": "The index holds no newsletters.",
        "api_hint": "API",
    },
    "zh": {
        "title": "新闻简报问答",
        "subtitle": "可用中文或英文提问。每个回答都引用其所依据的新闻简报原文。",
        "tab_ask": "提问",
        "tab_admin": "管理",
        "question": "您的问题",
        "question_placeholder": "例如：移民融合研讨会在哪里举行？",
        "send": "提问",
        "clear": "新对话",
        "examples": "示例",
        "filters": "筛选",
        "filter_issue": "简报期号",
        "all_issues": "全部期号",
        "filter_language": "简报语言",
        "all_languages": "全部",
        "date_from": "起始日期",
        "date_to": "截止日期",
        "date_placeholder": "YYYY-MM-DD",
        "k": "检索段落数",
        "sources": "来源",
        "sources_empty": "回答的来源将显示在这里。",
        "sources_abstain": "没有来源：已索引的新闻简报中没有能回答这个问题的内容。",
        "open_doc": "打开简报全文",
        "close_doc": "关闭",
        "issue": "期号",
        "section": "栏目",
        "relevance": "相关度",
        "language": "语言",
        "also_in": "另见于",
        "period": "时段",
        "passage": "段落",
        "you": "您",
        "assistant": "助手",
        "thinking": "正在检索新闻简报…",
        "welcome": "请就新闻简报提问。回答会注明出处：点击 [1] 等标记即可查看所引用的句子及其段落。",
        "abstained": "简报中没有提到",
        "closest": "最相关的段落——未必能回答这个问题",
        "quoted_in": "引自{language}版本；您所用语言的对应句子见来源卡片。",
        "confidence": "置信度",
        "mode_generated": "由语言模型根据引用段落撰写",
        "mode_dropped": "已删除 {n} 个没有段落支持的句子",
        "read_as": "理解为：{question}",
        "aligned": "{language}版本中的对应句子",
        "feedback_prompt": "这个回答有帮助吗？",
        "thumbs_up": "👍 有帮助",
        "thumbs_down": "👎 没帮助",
        "comment": "意见（可选）",
        "comment_placeholder": "可选意见：回答哪里好，哪里不对？",
        "send_comment": "提交意见",
        "feedback_saved": "谢谢！您的反馈已保存。",
        "feedback_nothing": "请先提问：反馈针对的是某个回答。",
        "feedback_empty": "提交前请选择 👍 或 👎，或填写意见。",
        "bad_date": "{field}必须是 ISO 日期，例如 2023-01-31，而不是“{value}”。",
        "bad_range": "起始日期 {date_from} 晚于截止日期 {date_to}。",
        "admin_intro": "添加新闻简报（.txt .md .html .pdf .docx，不超过 {mb} MB）或删除简报。",
        "password": "管理员密码",
        "password_placeholder": "修改索引需要密码",
        "upload": "简报文件",
        "upload_button": "上传并索引",
        "documents": "已索引的简报",
        "remove_choice": "要删除的简报",
        "remove_button": "删除",
        "wrong_password": "管理员密码错误：未做任何更改。",
        "no_files": "请先选择要上传的文件。",
        "no_doc": "请先选择要删除的简报。",
        "bad_type": "{name}：不支持的文件类型 {ext}；请上传 .txt、.md、.html、.pdf 或 .docx 文件。",
        "too_big": "{name} 大小为 {size:.1f} MB，超过上限 {mb} MB。",
        "unreadable": "{name} 被拒绝：{reason}。",
        "ingested": "已索引 {name}：新增 {added}，更新 {updated}，未变 {unchanged}"
        "（索引共 {chunks} 个段落，用时 {seconds:.1f} 秒）。",
        "removed": "已删除 {doc_id}；索引现有 {chunks} 个段落。",
        "confirm_remove": "删除 {doc_id}？请在一分钟内再次点击“删除”以确认。",
        "not_allowed": "不允许：{reason}",
        "too_many": "此地址尝试次数过多：请等待 {seconds} 秒后重试。",
        "comment_too_long": "意见长度为 {n} 个字符，上限为 {limit}。",
        "bad_language": "未知的语言筛选“{value}”。",
        "col_id": "编号",
        "col_title": "标题",
        "col_issue": "期号",
        "col_period": "时段",
        "col_language": "语言",
        "col_chars": "字数",
        "no_documents": "索引中没有新闻简报。",
        "api_hint": "API",
    },
}

LANGUAGE_NAMES = {
    "en": {"en": "English", "zh": "Chinese", "zh-hant": "Chinese (Traditional)"},
    "zh": {"en": "英文", "zh": "中文", "zh-hant": "繁体中文"},
}

EXAMPLES = (
    "Where was the Seminar on Migrant Integration held?",
    "移民融合研讨会在哪里举行？",
    "Which policies did the NIA resume after 8 January 2023?",
    "国际移民组织总干事何时访华？",
)

_MARKER = re.compile(r"\[(\d{1,3})\]")
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")


NOTICES = {
    "unavailable": {"en": "The language model could not be reached", "zh": "无法连接语言模型"},
    "timeout": {"en": "The language model took too long", "zh": "语言模型响应超时"},
    "http_error": {"en": "The language model server returned an error", "zh": "语言模型服务器返回错误"},
    "malformed": {"en": "The language model sent an unreadable reply", "zh": "语言模型的回复无法读取"},
    "interrupted": {"en": "The language model's reply broke off", "zh": "语言模型的回复中断"},
    "empty": {"en": "The language model sent no text", "zh": "语言模型没有返回文字"},
    "wrong_language": {"en": "The language model answered in another language", "zh": "语言模型用了其他语言回答"},
    "unsupported": {
        "en": "No sentence the language model wrote was supported by the passages",
        "zh": "语言模型写出的句子都没有得到引用段落的支持",
    },
}
FALLBACK = {"en": "{reason}; these are the quoted sentences.", "zh": "{reason}；以下是引用的原句。"}


def notice_text(code: str, language: str) -> str:
    """Why a generated answer fell back to the quoted sentences (`Answer.notice`), in `language`."""
    lang = base(language)
    lang = lang if lang in FALLBACK else "en"
    reason = NOTICES.get(code, NOTICES["http_error"])[lang]
    text = FALLBACK[lang].format(reason=reason)
    if language == "zh-hant":
        from rag.lang import to_traditional

        return to_traditional(text)
    return text


def escape(text: object) -> str:
    """HTML-escape any value (quotes too), so it is shown as text and never parsed as markup."""
    return html.escape(str(text), quote=True)


def t(lang: str, key: str, **values: object) -> str:
    """The UI string `key` in UI language `lang` ("en" or "zh"), formatted with `values`."""
    table = STRINGS.get(base(lang), STRINGS["en"])
    text = table.get(key, STRINGS["en"][key])
    return text.format(**values) if values else text


def ui_language(question: str, current: str, locked: bool) -> str:
    """The UI language after asking `question`: follows the question unless the user picked one."""
    if locked or not question.strip():
        return current
    return base(detect(question))


def base_language(code: str) -> str:
    """The UI language for a detected language code: "zh" for any Chinese, else "en"."""
    return "zh" if base(code) == "zh" else "en"


def language_name(code: str, ui_lang: str) -> str:
    return LANGUAGE_NAMES.get(base(ui_lang), LANGUAGE_NAMES["en"]).get(code, code or "—")


def html_lang(code: str) -> str:
    """The BCP 47 tag for a `lang` attribute, so browsers pick a proper font for Chinese."""
    return {"zh": "zh-CN", "zh-hant": "zh-TW"}.get(code, "en")


# --------------------------------------------------------------------------- answers


def link_markers(escaped: str, valid: Iterable[int], turn: int = 0) -> str:
    """Turn `[n]` in already-escaped text into links to source card n (only for cited n)."""
    ok = set(valid)

    def link(m: re.Match[str]) -> str:
        n = int(m.group(1))
        if n not in ok:
            return m.group(0)
        return f'<a class="cite-marker" href="#cite-{n}" data-n="{n}" data-turn="{turn}" title="[{n}]">[{n}]</a>'

    return _MARKER.sub(link, escaped)


def stream_prefixes(text: str, max_steps: int = 12) -> list[str]:
    """Growing prefixes of `text` for streaming; the last is `text`, none cuts a [n] marker in two."""
    if not text:
        return [""]
    inside: set[int] = set()
    for m in _MARKER.finditer(text):
        inside.update(range(m.start() + 1, m.end()))
    cuts = [
        i
        for i in range(1, len(text))
        if i not in inside and (text[i - 1].isspace() or _CJK.match(text[i - 1]) or text[i - 1] == "]")
    ]
    if len(cuts) >= max_steps:
        step = len(cuts) / (max_steps - 1)
        cuts = [cuts[int(j * step)] for j in range(max_steps - 1)]
    return [text[:i] for i in dict.fromkeys(cuts)] + [text]


def answer_html(text: str, cited: Iterable[int], turn: int = 0, language: str = "en") -> str:
    """The body of an answer bubble: escaped text with linked [n] markers, line breaks kept."""
    body = link_markers(escape(text), cited, turn)
    return f'<div class="answer-text" lang="{html_lang(language)}">{body.replace(chr(10), "<br>")}</div>'


def conversation_html(
    turns: Sequence[Mapping[str, object]],
    ui_lang: str,
    current: int | None = None,
    partial: str | None = None,
) -> str:
    """The whole chat: each turn is {"question", "answer": Answer | None}; `partial` is the streaming text.

    The last turn shows `partial` (when given) instead of its full answer, with a typing caret.
    """
    if not turns:
        return (
            '<div class="qa-chat" role="log" aria-live="polite">'
            f'<div class="qa-welcome">{escape(t(ui_lang, "welcome"))}</div></div>'
        )
    parts = ['<div class="qa-chat" role="log" aria-live="polite">']
    for i, turn in enumerate(turns):
        question = str(turn.get("question", ""))
        answer = turn.get("answer")
        last = i == len(turns) - 1
        parts.append(f'<div class="qa-turn{" current" if i == current else ""}" data-turn="{i}">')
        parts.append(
            f'<div class="qa-msg qa-user"><div class="qa-who">{escape(t(ui_lang, "you"))}</div>'
            f'<div class="qa-bubble" lang="{html_lang(detect(question))}">{escape(question)}</div></div>'
        )
        if isinstance(answer, Answer):
            text = partial if last and partial is not None else answer.answer
            streaming = last and partial is not None and partial != answer.answer
            classes = (
                "qa-msg qa-bot" + (" qa-abstain" if answer.abstained else "") + (" streaming" if streaming else "")
            )
            badge = ""
            if answer.abstained:
                badge = f'<div class="qa-abstain-label">ⓘ {escape(t(ui_lang, "abstained"))}</div>'
            elif answer.verdict == "closest":
                badge = f'<div class="qa-abstain-label qa-closest">ⓘ {escape(t(ui_lang, "closest"))}</div>'
            foreign = sorted({c.language for c in answer.citations if base(c.language) != base(answer.language)})
            if foreign and not streaming:
                names = "、".join(language_name(x, ui_lang) for x in foreign)
                badge += f'<div class="qa-confidence">{escape(t(ui_lang, "quoted_in", language=names))}</div>'
            if answer.confidence and not streaming:
                badge += f'<div class="qa-confidence">{escape(t(ui_lang, "confidence"))} {answer.confidence:.0%}</div>'
            if not streaming:
                badge += mode_html(answer, ui_lang)
            body = answer_html(text, [c.n for c in answer.citations], i, answer.language)
            parts.append(
                f'<div class="{classes}" data-turn="{i}">'
                f'<div class="qa-who">{escape(t(ui_lang, "assistant"))}</div>'
                f'<div class="qa-bubble">{badge}{body}</div></div>'
            )
        elif last:
            parts.append(
                '<div class="qa-msg qa-bot pending"><div class="qa-bubble">'
                f'<span class="qa-thinking">{escape(t(ui_lang, "thinking"))}</span></div></div>'
            )
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def mode_html(answer: Answer, ui_lang: str) -> str:
    """Which mode answered: written by the LLM (and what verification removed), or why it fell back; and the
    standalone question a follow-up was read as. Nothing for a plain extractive answer."""
    out = []
    if answer.resolved_question and answer.resolved_question != answer.question:
        read_as = escape(t(ui_lang, "read_as", question=answer.resolved_question))
        out.append(f'<div class="qa-confidence qa-read-as">{read_as}</div>')
    if answer.mode == "generated":
        text = t(ui_lang, "mode_generated")
        dropped = sum(not s.supported for s in answer.sentences)
        if dropped:
            text += " · " + t(ui_lang, "mode_dropped", n=dropped)
        out.append(f'<div class="qa-confidence qa-mode" data-mode="generated">✎ {escape(text)}</div>')
    elif answer.notice:
        text = notice_text(answer.notice, ui_lang)
        out.append(f'<div class="qa-confidence qa-mode" data-mode="extractive">ⓘ {escape(text)}</div>')
    return "".join(out)


# --------------------------------------------------------------------------- sources


def highlight(text: str, start: int, end: int, mark_id: str = "") -> str:
    """Escaped `text` with `text[start:end]` wrapped in <mark> (clipped to the text; empty span: no mark)."""
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    if end <= start:
        return escape(text)
    ident = f' id="{escape(mark_id)}"' if mark_id else ""
    return f"{escape(text[:start])}<mark{ident}>{escape(text[start:end])}</mark>{escape(text[end:])}"


def card_passage(c: Citation, doc: Document | None = None) -> tuple[str, int]:
    """The passage to show on the card and its offset in the document, widened to contain the quote.

    A quoted sentence can straddle a passage boundary; with the document at hand the card shows it whole.
    """
    passage, p_start = c.passage, c.passage_start
    p_end = p_start + len(passage)
    if doc is not None and (c.start < p_start or c.end > p_end) and doc.text[p_start:p_end] == passage:
        p_start, p_end = min(p_start, c.start), max(p_end, c.end)
        passage = doc.text[p_start:p_end]
    return passage, p_start


def quote_span(c: Citation, passage: str, p_start: int) -> tuple[int, int]:
    """Offsets of the quote inside `passage`: from the citation's document offsets, else by search."""
    a, b = c.start - p_start, c.end - p_start
    if 0 <= a <= b <= len(passage) and passage[a:b] == c.quote:
        return a, b
    found = passage.find(c.quote) if c.quote else -1
    if found >= 0:
        return found, found + len(c.quote)
    return max(0, a), min(len(passage), b)  # the part of the quote that lies inside the passage


def source_card(
    c: Citation,
    ui_lang: str,
    turn: int = 0,
    doc: Document | None = None,
    titles: Mapping[str, str] | None = None,
) -> str:
    """One source card: title, issue, section, score, language, other editions, quote marked in passage."""
    passage, p_start = card_passage(c, doc)
    a, b = quote_span(c, passage, p_start)
    meta = [
        (t(ui_lang, "issue"), c.issue),
        (t(ui_lang, "section"), c.section),
        (t(ui_lang, "relevance"), f"{c.score:.2f}"),
        (t(ui_lang, "language"), language_name(c.language, ui_lang)),
    ]
    if c.also_in:
        names = [(titles or {}).get(d, d) for d in c.also_in]
        meta.append((t(ui_lang, "also_in"), " · ".join(names)))
    rows = "".join(f'<div class="meta-item"><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>' for k, v in meta if v)
    aligned = ""
    if c.aligned is not None:
        label = t(ui_lang, "aligned", language=language_name(c.aligned.language, ui_lang))
        aligned = (
            f'<div class="source-aligned"><span class="aligned-label">{escape(label)}</span>'
            f'<q lang="{html_lang(c.aligned.language)}">{escape(c.aligned.quote)}</q></div>'
        )
    return (
        f'<article class="source-card" id="cite-{c.n}" data-n="{c.n}" data-turn="{turn}" '
        f'data-doc="{escape(c.doc_id)}">'
        f'<header><span class="cite-n">[{c.n}]</span>'
        f'<span class="source-title">{escape(c.title)}</span></header>'
        f'<dl class="source-meta">{rows}</dl>'
        f'<blockquote class="source-passage" lang="{html_lang(c.language)}">'
        f"{highlight(passage, a, b)}</blockquote>{aligned}"
        f'<footer><span class="doc-id">{escape(c.doc_id)} · {c.start}–{c.end}</span>'
        f'<button type="button" class="open-doc" data-n="{c.n}" data-turn="{turn}">'
        f"{escape(t(ui_lang, 'open_doc'))} ↗</button></footer>"
        "</article>"
    )


def sources_html(answer: Answer | None, ui_lang: str, turn: int = 0, docs: Mapping[str, Document] | None = None) -> str:
    """The sources panel for one answer: a card per citation, or a plain note."""
    head = f'<h3 class="sources-head">{escape(t(ui_lang, "sources"))}</h3>'
    if answer is None:
        note = escape(t(ui_lang, "sources_empty"))
        return f'<div class="qa-sources" data-turn="">{head}<p class="sources-note">{note}</p></div>'
    if answer.abstained or not answer.citations:
        note = escape(t(ui_lang, "sources_abstain"))
        return f'<div class="qa-sources" data-turn="{turn}">{head}<p class="sources-note">{note}</p></div>'
    docs = docs or {}
    titles = {d: _edition_label(doc, ui_lang) for d, doc in docs.items()}
    cards = "".join(source_card(c, ui_lang, turn, docs.get(c.doc_id), titles) for c in answer.citations)
    return f'<div class="qa-sources" data-turn="{turn}">{head}{cards}</div>'


def _edition_label(doc: Document, ui_lang: str) -> str:
    return f"{doc.meta.title} ({language_name(doc.language, ui_lang)})"


def document_html(doc: Document, c: Citation | None, ui_lang: str) -> str:
    """The whole cleaned newsletter as text, the cited passage marked and given id `doc-passage`."""
    meta = [
        (t(ui_lang, "issue"), doc.meta.issue),
        (
            t(ui_lang, "period"),
            doc.meta.period or " – ".join(x for x in (doc.meta.date_start, doc.meta.date_end) if x),
        ),
        (t(ui_lang, "language"), language_name(doc.language, ui_lang)),
        ("ID", doc.doc_id),
    ]
    rows = "".join(f'<div class="meta-item"><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>' for k, v in meta if v)
    text = doc.text
    if c is None:
        body = escape(text)
    else:
        passage, p_start = card_passage(c, doc)
        p_end = p_start + len(passage)
        q_start, q_end = quote_span(c, passage, p_start)
        body = (
            f"{escape(text[:p_start])}"
            f'<span class="doc-passage" id="doc-passage">'
            f"{highlight(passage, q_start, q_end, 'doc-quote')}</span>"
            f"{escape(text[p_end:])}"
        )
    return (
        f'<div class="doc-view" data-doc="{escape(doc.doc_id)}">'
        f'<h2 class="doc-title">{escape(doc.meta.title)}</h2><dl class="source-meta">{rows}</dl>'
        f'<div class="doc-text" lang="{html_lang(doc.language)}">{body}</div></div>'
    )


# --------------------------------------------------------------------------- admin


def documents_table(docs: Mapping[str, Document], ui_lang: str) -> str:
    """The indexed newsletters as an escaped HTML table."""
    if not docs:
        return f'<p class="sources-note">{escape(t(ui_lang, "no_documents"))}</p>'
    cols = ("col_id", "col_title", "col_issue", "col_period", "col_language", "col_chars")
    head = "".join(f"<th>{escape(t(ui_lang, c))}</th>" for c in cols)
    rows = []
    for doc_id in sorted(docs):
        d = docs[doc_id]
        cells = (
            doc_id,
            d.meta.title,
            d.meta.issue,
            d.meta.period,
            language_name(d.language, ui_lang),
            f"{len(d.text):,}",
        )
        rows.append("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in cells) + "</tr>")
    return f'<table class="doc-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def notice_html(message: str, kind: str = "info") -> str:
    """A short status line ("info", "ok" or "warn"); empty message, empty markup."""
    if not message:
        return ""
    return f'<div class="qa-notice {escape(kind)}" role="status">{escape(message)}</div>'


def text_html(css_class: str, text: str) -> str:
    """A <div> of escaped text with a class."""
    return f'<div class="{escape(css_class)}">{escape(text)}</div>'


def header_html(ui_lang: str) -> str:
    return f'<div class="qa-header"><h1>{escape(t(ui_lang, "title"))}</h1><p>{escape(t(ui_lang, "subtitle"))}</p></div>'


# --------------------------------------------------------------------------- page glue (CSS and JS)

# Click handling for the chat: a marker of the answer whose sources are shown scrolls to its card; a
# marker of an earlier answer asks the server to show that answer's sources first.
CHAT_JS = """
if (!element.dataset.qaBound) {
  element.dataset.qaBound = '1';
  element.addEventListener('click', (e) => {
    const a = e.target.closest('a.cite-marker');
    if (!a) return;
    e.preventDefault();
    const n = a.dataset.n, turn = a.dataset.turn;
    window.__qaCard = n;
    const panel = document.querySelector('#qa-sources .qa-sources');
    if (panel && panel.dataset.turn === turn) {
      const card = document.getElementById('cite-' + n);
      if (card) {
        card.scrollIntoView({block: 'nearest', behavior: 'smooth'});
        card.classList.remove('flash'); void card.offsetWidth; card.classList.add('flash');
      }
    } else {
      trigger('click', {turn: Number(turn), n: Number(n)});
    }
  });
  watch('value', () => {
    const log = element.querySelector('.qa-chat');
    if (log) log.scrollTop = log.scrollHeight;
  });
}
"""

SOURCES_JS = """
if (!element.dataset.qaBound) {
  element.dataset.qaBound = '1';
  element.addEventListener('click', (e) => {
    const b = e.target.closest('button.open-doc');
    if (b) trigger('click', {n: Number(b.dataset.n), turn: Number(b.dataset.turn)});
  });
  // A long passage scrolls inside its card: bring the quoted sentence into view.
  watch('value', () => {
    element.querySelectorAll('.source-passage').forEach((box) => {
      const m = box.querySelector('mark');
      if (m) box.scrollTop = Math.max(0, m.offsetTop - 28);
    });
  });
}
"""

SCROLL_TO_CARD_JS = """() => {
  const go = (tries) => {
    const card = document.getElementById('cite-' + (window.__qaCard || '1'));
    if (card) { card.scrollIntoView({block: 'nearest'}); card.classList.add('flash'); }
    else if (tries > 0) setTimeout(() => go(tries - 1), 50);
  };
  go(20);
}"""

SCROLL_TO_PASSAGE_JS = """() => {
  const go = (tries) => {
    const m = document.querySelector('#doc-viewer #doc-passage');
    if (m && m.offsetParent !== null) m.scrollIntoView({block: 'center'});
    else if (tries > 0) setTimeout(() => go(tries - 1), 50);
  };
  go(40);
}"""

# Run once on page load: the newsletter viewer closes with Esc and with a click outside it.
PAGE_JS = """() => {
  const modal = () => document.querySelector('#doc-modal');
  const shown = (m) => m && m.getClientRects().length > 0 && getComputedStyle(m).display !== 'none';
  const close = () => { const b = document.querySelector('#close-doc'); if (shown(modal()) && b) b.click(); };
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') close(); });
  document.addEventListener('mousedown', (e) => {
    const m = modal();
    if (shown(m) && !m.contains(e.target) && !e.target.closest('#close-doc, button.open-doc')) close();
  });
}"""

STYLE = """
.gradio-container { max-width: 1320px !important; margin: 0 auto !important; }
#qa-top { align-items: center; border-bottom: 1px solid var(--border-color-primary);
  padding-bottom: 10px; }
.qa-header h1 { font-size: 1.45rem; font-weight: 650; margin: 0; letter-spacing: -0.01em; }
.qa-header p { margin: 4px 0 0; color: var(--body-text-color-subdued); font-size: .92rem; }
#ui-language { justify-content: flex-end; }
#qa-chat .qa-chat {
  border: 1px solid var(--border-color-primary); border-radius: 12px;
  background: var(--background-fill-secondary);
  padding: 18px; min-height: 320px; max-height: 58vh; overflow-y: auto; display: flex;
  flex-direction: column; gap: 14px;
}
.qa-turn { display: flex; flex-direction: column; gap: 10px; }
.qa-msg { display: flex; flex-direction: column; max-width: 88%; }
.qa-user { align-self: flex-end; align-items: flex-end; }
.qa-bot { align-self: flex-start; }
.qa-who { font-size: .72rem; text-transform: uppercase; letter-spacing: .04em;
  color: var(--body-text-color-subdued);
  margin: 0 6px 3px; }
.qa-bubble { padding: 10px 14px; border-radius: 14px; line-height: 1.65; overflow-wrap: anywhere;
  font-size: .97rem; }
.qa-user .qa-bubble { background: var(--color-accent); color: #fff; border-bottom-right-radius: 4px; }
.qa-bot .qa-bubble { background: var(--background-fill-primary);
  border: 1px solid var(--border-color-primary);
  border-bottom-left-radius: 4px; color: var(--body-text-color); }
.qa-turn.current .qa-bot .qa-bubble { border-color: var(--color-accent-soft);
  box-shadow: 0 1px 3px rgba(15,23,42,.08); }
.qa-abstain .qa-bubble { border-style: dashed; }
.qa-confidence { font-size: .72rem; color: var(--body-text-color-subdued); margin-bottom: .25rem; }
.source-aligned { margin: .4rem 0; padding: .3rem .5rem; border-left: 3px solid var(--color-accent-soft); }
.source-aligned .aligned-label { display: block; font-size: .72rem; color: var(--body-text-color-subdued); }
.qa-abstain-label { font-size: .78rem; font-weight: 600; color: var(--body-text-color-subdued);
  margin-bottom: 3px; }
a.cite-marker { font-weight: 600; text-decoration: none; color: var(--color-accent);
  background: var(--color-accent-soft);
  border-radius: 4px; padding: 0 4px; margin: 0 1px; font-size: .82em; cursor: pointer; }
a.cite-marker:hover { text-decoration: underline; }
.streaming .answer-text::after { content: "\\258D"; color: var(--body-text-color-subdued);
  margin-left: 1px; }
.qa-thinking { color: var(--body-text-color-subdued); font-style: italic; }
.qa-welcome { margin: auto; text-align: center; color: var(--body-text-color-subdued); max-width: 460px;
  line-height: 1.7; }
#qa-ask-row { margin-top: 4px; align-items: stretch; }
#qa-ask-row button { white-space: nowrap; }
#qa-examples { align-items: center; gap: 6px; flex-wrap: wrap !important; }
#qa-examples > .block { flex: 0 0 auto !important; width: auto !important; min-width: 0 !important; }
#qa-examples button.qa-example { min-width: 0 !important; flex: 0 1 auto !important; white-space: nowrap;
  border-radius: 999px; padding: 3px 12px; font-size: .82rem; }
#qa-notice:has(.html-container > div:empty), #feedback-status:has(.html-container > div:empty),
#admin-status:has(.html-container > div:empty) { display: none; }
.qa-examples-label, .qa-feedback-prompt { font-size: .85rem; color: var(--body-text-color-subdued);
  white-space: nowrap;
  padding: 0 4px; }
.qa-example { font-weight: 400 !important; }
#qa-feedback { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 10px 12px;
  gap: 8px; background: var(--background-fill-primary); }
#qa-feedback-top { align-items: center; gap: 8px; flex-wrap: nowrap !important; }
#qa-feedback-top > .block { flex: 1 1 auto !important; }
#qa-feedback-top button { flex: 0 0 auto !important; min-width: 0 !important; }
#qa-feedback-comment { align-items: flex-end; gap: 8px; }
#qa-feedback-comment button { flex: 0 0 auto !important; min-width: 0 !important; }
.qa-notice { margin: 6px 0; padding: 8px 12px; border-radius: 8px; font-size: .9rem;
  white-space: pre-line;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-secondary); }
.qa-notice.warn { border-color: #f2c94c; background: #fffbeb; color: #7c4a03; }
.qa-notice.ok { border-color: #86d0a0; background: #f0faf3; color: #1f5f36; }
.qa-sources { position: sticky; top: 8px; }
.sources-head { font-size: 1rem; font-weight: 650; margin: 2px 0 10px; }
.sources-note { color: var(--body-text-color-subdued); font-size: .92rem; line-height: 1.6; }
.source-card { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 12px 14px;
  margin-bottom: 12px;
  background: var(--background-fill-primary); scroll-margin-top: 12px; transition: box-shadow .4s; }
.source-card.flash { box-shadow: 0 0 0 3px var(--color-accent-soft); }
.source-card header { display: flex; gap: 8px; align-items: baseline; font-weight: 600;
  line-height: 1.4; }
.cite-n { color: var(--color-accent); font-variant-numeric: tabular-nums; }
.source-meta { display: flex; flex-wrap: wrap; gap: 2px 14px; margin: 6px 0 8px; font-size: .8rem; }
.meta-item { display: flex; gap: 4px; }
.meta-item dt { color: var(--body-text-color-subdued); }
.meta-item dd { margin: 0; }
.source-passage { position: relative; margin: 0; padding: 8px 12px; border-left: 3px solid var(--color-accent-soft);
  background: var(--background-fill-secondary); font-size: .9rem; line-height: 1.65;
  white-space: pre-wrap;
  max-height: 240px; overflow: auto; border-radius: 0 6px 6px 0; }
.qa-sources mark, .doc-view mark { background: #fde68a; color: #1f2937; padding: 1px 2px;
  border-radius: 3px; }
.source-card footer { display: flex; justify-content: space-between; align-items: center; gap: 8px;
  margin-top: 8px;
  font-size: .75rem; color: var(--body-text-color-subdued); }
button.open-doc { border: 1px solid var(--border-color-primary);
  background: var(--button-secondary-background-fill);
  border-radius: 6px; padding: 4px 10px; cursor: pointer; font-size: .8rem;
  color: var(--body-text-color); }
button.open-doc:hover { border-color: var(--color-accent); }
/* No transform on the modal: a transformed box would become the containing block of the fixed Close button.
   The modal itself scrolls (wheel, keyboard, scrollIntoView) and the Close button stays fixed in view. */
#doc-modal { position: fixed !important; top: 4vh; left: 0; right: 0; margin: 0 auto !important; height: 92vh;
  width: min(1040px, 92vw) !important;
  max-width: none !important; z-index: 1000; background: var(--background-fill-primary); border-radius: 12px;
  padding: 52px 26px 18px; box-shadow: 0 0 0 100vmax rgba(15,23,42,.45), 0 20px 60px rgba(0,0,0,.3);
  display: flex; flex-direction: column; flex-wrap: nowrap; overflow-y: auto; overscroll-behavior: contain; }
#close-doc { position: fixed !important; top: calc(4vh + 10px); right: calc((100vw - min(1040px, 92vw)) / 2 + 18px);
  z-index: 1001; width: auto !important; min-width: 0 !important; flex: 0 0 auto; }
#doc-viewer { flex: 1 0 auto; }
.doc-title { font-size: 1.2rem; font-weight: 650; margin: 0 0 4px; }
.doc-text { white-space: pre-wrap; line-height: 1.75; font-size: .95rem; }
.doc-passage { background: var(--color-accent-soft); border-radius: 3px; padding: 2px 0; }
.doc-table { border-collapse: collapse; width: 100%; font-size: .88rem; }
.doc-table th, .doc-table td { text-align: left; padding: 6px 10px;
  border-bottom: 1px solid var(--border-color-primary); }
.doc-table th { color: var(--body-text-color-subdued); font-weight: 600; }
.qa-admin-intro { color: var(--body-text-color-subdued); }
"""
