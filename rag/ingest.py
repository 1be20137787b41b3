"""Read newsletter files (txt, md, html, pdf, docx) into `RawDocument`s: decoded text plus metadata."""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

from rag import markup
from rag.types import Meta, RawDocument

SUPPORTED = (".txt", ".md", ".html", ".htm", ".pdf", ".docx")

_FMT = {".txt": "txt", ".md": "md", ".html": "html", ".htm": "html", ".pdf": "pdf", ".docx": "docx"}
_META_KEYS = frozenset(f.name for f in fields(Meta))
_SIDECAR_KEYS = _META_KEYS | {"doc_id"}
_TITLE_MAX = 120
_DOC_ID_MAX = 200
MAX_DOCUMENT_BYTES = 32 * 2**20  # default of the max_document_mb setting


class IngestError(Exception):
    """A file that could not be read, with a reason a person can act on."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(path, reason)  # both in args, so the error pickles across processes
        self.path = Path(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class Source:
    """A file to read and the folder it was found under: its doc_id is its path relative to `root`."""

    path: Path
    root: Path


def doc_id_for(path: Path, root: Path | None = None) -> str:
    """The default doc_id: the path relative to the ingested root (its parent for a file given alone),
    '/'-separated, without the extension: `2023/issue-1.txt` → `2023/issue-1`, `x.zh.md` → `x.zh`.
    """
    path = Path(path)
    try:
        rel = path.relative_to(root) if root is not None else Path(path.name)
    except ValueError:
        rel = Path(path.name)
    return rel.with_suffix("").as_posix()


def read(path: Path, root: Path | None = None, max_bytes: int = MAX_DOCUMENT_BYTES) -> RawDocument:
    """Read one supported file into a `RawDocument`; raise `IngestError` saying why when it can't.

    The doc_id is `doc_id` from the front matter or sidecar when given, else `doc_id_for(path, root)`.
    Files (or, for PDF and DOCX, extracted text) over `max_bytes` are refused (setting max_document_mb).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        supported = ", ".join(SUPPORTED)
        raise IngestError(path, f"unsupported file type {suffix or '(none)'}; supported: {supported}")
    if not path.exists():
        raise IngestError(path, "file not found")
    if not path.is_file():
        raise IngestError(path, "not a regular file")
    fmt = _FMT[suffix]
    encoding = "utf-8"
    front: dict[str, str] = {}
    links: tuple[tuple[str, str], ...] = ()
    if fmt in ("pdf", "docx"):
        text = _pdf_text(path) if fmt == "pdf" else _docx_text(path)
        _check_size(path, len(text.encode("utf-8", "surrogatepass")), max_bytes, "of text")
    else:
        _check_size(path, path.stat().st_size, max_bytes, "")
        text, encoding = decode(_read_bytes(path), path, html=fmt == "html")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if fmt == "md":
            front, text = split_front_matter(text)
        if fmt in ("md", "html"):  # rendered text is the stored text: quote offsets index it directly
            rendered = markup.markdown(text) if fmt == "md" else markup.html(text)
            text, links = rendered.text, rendered.links
    if not text.strip():
        raise IngestError(path, "empty document")
    values = {**front, **_sidecar(path)}
    doc_id = _explicit_doc_id(path, values.get("doc_id", "")) or doc_id_for(path, root)
    meta = _meta(path, text, values)
    return RawDocument(doc_id=doc_id, path=str(path), text=text, meta=meta, fmt=fmt, encoding=encoding, links=links)


def _check_size(path: Path, size: int, limit: int, what: str) -> None:
    if size > limit:
        raise IngestError(
            path,
            f"too large: {size / 2**20:.1f} MB{' ' + what if what else ''}; the limit is {limit / 2**20:.0f} MB "
            "per document (setting max_document_mb); split it into issues",
        )


def _explicit_doc_id(path: Path, value: str) -> str:
    """A doc_id given in front matter or a sidecar, checked: printable, no surrounding spaces, not too long."""
    value = value.strip()
    if not value:
        return ""
    if len(value) > _DOC_ID_MAX or not value.isprintable() or value.startswith("/") or "#" in value:
        raise IngestError(path, f"bad doc_id {value[:_DOC_ID_MAX]!r}: printable, at most {_DOC_ID_MAX} chars, no '#'")
    return value


def discover(paths: Iterable[Path]) -> list[Path]:
    """Expand folders to their supported files (sorted); keep explicit files for `read` to judge."""
    return [s.path for s in discover_sources(paths)]


def discover_sources(paths: Iterable[Path]) -> list[Source]:
    """Like `discover`, each file with the root its doc_id is relative to (the folder given, or its parent)."""
    out: dict[Path, Source] = {}
    for p in map(Path, paths):
        found = [Source(f, p) for f in _walk(p)] if p.is_dir() else [Source(p, p.parent)]
        for s in found:
            out.setdefault(s.path, s)  # a file named twice (folder + explicitly) is read once
    return list(out.values())


def read_many(
    paths: Iterable[Path | Source], max_bytes: int = MAX_DOCUMENT_BYTES
) -> tuple[list[RawDocument], list[IngestError]]:
    """Read every path, collecting errors instead of stopping, so one bad file doesn't sink a batch.

    Two files with one doc_id (`x.docx` and `x.pdf`): the second is refused, naming the first.
    """
    docs: list[RawDocument] = []
    errors: list[IngestError] = []
    seen: dict[str, str] = {}
    for item in paths:
        src = item if isinstance(item, Source) else Source(Path(item), Path(item).parent)
        p = src.path
        try:
            doc = read(p, src.root, max_bytes)
        except IngestError as e:
            errors.append(e)
            continue
        if doc.doc_id in seen:
            reason = (
                f"doc_id {doc.doc_id!r} is also the id of {seen[doc.doc_id]}; not indexed, so neither overwrites "
                "the other: rename one, or give it a doc_id in front matter or a .meta.json sidecar"
            )
            errors.append(IngestError(p, reason))
            continue
        seen[doc.doc_id] = doc.path
        docs.append(doc)
    return docs, errors


def _walk(root: Path) -> list[Path]:
    """Supported, non-hidden files under `root`, sorted (hidden folders such as .git are not entered)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            # "~$x.docx" is Word's lock file, not a document
            if name.startswith((".", "~$")) or name.endswith(".meta.json"):
                continue
            if Path(name).suffix.lower() in SUPPORTED:
                found.append(Path(dirpath) / name)
    return sorted(found)


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, with OS errors turned into `IngestError`."""
    try:
        return path.read_bytes()
    except OSError as e:
        raise IngestError(path, f"cannot read file: {e.strerror or e}") from e


# --------------------------------------------------------------------------- metadata


def split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """Split leading `---` … `---` front matter of simple `key: value` lines from Markdown text."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, text
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            break
    else:
        return {}, text  # no closing fence: a horizontal rule, not front matter
    front: dict[str, str] = {}
    for line in lines[1:end]:
        key, sep, value = line.partition(":")
        if not sep or line.lstrip().startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        front[key.strip().lower()] = value
    return front, "\n".join(lines[end + 1 :]).lstrip("\n")


def _sidecar(path: Path) -> dict[str, str]:
    """Metadata from `<stem>.meta.json` beside `path` ({} when there is none)."""
    side = path.with_name(path.stem + ".meta.json")
    if not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IngestError(path, f"bad sidecar {side.name}: {e}") from e
    if not isinstance(data, dict):
        raise IngestError(path, f"bad sidecar {side.name}: expected a JSON object")
    out: dict[str, str] = {}
    for key, value in data.items():
        if key not in _SIDECAR_KEYS or value is None:
            continue
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise IngestError(path, f"bad sidecar {side.name}: {key!r} must be a string or number")
        out[key] = str(value)
    return out


def _meta(path: Path, text: str, values: dict[str, str]) -> Meta:
    """Build `Meta` from known keys; a missing title falls back to the first line of text, then the stem."""
    known = {k: v.strip() for k, v in values.items() if k in _META_KEYS}
    if not known.get("title"):
        first = next((ln.strip() for ln in text.split("\n") if ln.strip()), "")
        known["title"] = first.lstrip("#").strip()[:_TITLE_MAX].rstrip() or path.stem
    return Meta(**known)


# --------------------------------------------------------------------------- encodings

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: its BOM starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_BAD_CHARS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ue000-\uf8ff\ufffd]")
# ASCII, Latin-1 symbols, general punctuation and symbols, CJK punctuation, bopomofo, Han, fullwidth forms
_PLAUSIBLE = re.compile(
    r"[\t\n\r\f\x20-\x7e\xa0-\xbf\xd7\xf7\u2000-\u206f\u2100-\u26ff\u3000-\u303f\u3100-\u312f"
    r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff01-\uff60\uffe0-\uffe6]"
)
_ACCENTED = re.compile(r"[\xc0-\xd6\xd8-\xf6\xf8-\u024f]")
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_MIN_PLAUSIBLE = 0.95
_MAX_ACCENTED = 0.3  # share of letters; CJK bytes misread as Latin-1 are nearly all accented letters
# the corpus languages' legacy encodings come first, so they win ties (over Shift-JIS, EUC-KR, …)
_PREFERRED = ("gb18030", "big5", "cp1252")
_NO_HAN_SCORE = 0.9  # a Latin reading beats a CJK reading full of rare characters, but not real Chinese
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "hz": "gb18030", "cp936": "gb18030"}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def decode(data: bytes, path: Path | str = "", *, html: bool = False) -> tuple[str, str]:
    """Decode a text file's bytes, returning (text, encoding name); raise `IngestError` for binary data.

    Order: BOM; UTF-16 without BOM (NUL-byte pattern; any other NUL means binary); strict UTF-8; an HTML
    `<meta charset>`; then legacy encodings (GB18030, Big5, cp1252 and charset-normalizer's guesses), kept
    only if the result looks like text, the one with the most everyday Han characters winning.
    """
    for bom, name in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(name), name
            except UnicodeDecodeError as e:
                raise IngestError(path, f"binary or corrupt file: invalid {name} at byte {e.start}") from e
    if b"\x00" in data:
        utf16 = _utf16_without_bom(data)
        text = _try_decode(data, utf16) if utf16 else None
        if utf16 is None or text is None or not _looks_like_text(text):
            raise IngestError(path, "binary or corrupt file: contains NUL bytes and is not UTF-16 text")
        return text, utf16
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as e:
        utf8_error = e
    if _mostly_utf8(data):
        # guessing a legacy encoding here would turn the valid part into mojibake
        raise IngestError(path, f"binary or corrupt file: invalid UTF-8 at byte {utf8_error.start}")
    declared = _declared_charset(data) if html else None
    if declared and (text := _try_decode(data, declared)) is not None and _looks_like_text(text):
        return text, declared
    best: tuple[float, str, str] | None = None
    for name in _legacy_candidates(data):
        text = _try_decode(data, name)
        if text is None or not _looks_like_text(text):
            continue
        score = _han_score(text)
        if best is None or score > best[0]:  # a tie keeps the earlier candidate
            best = (score, text, name)
    if best is None:
        raise IngestError(path, "binary or corrupt file: no text encoding fits (UTF-8, GB18030, Big5, …)")
    return best[1], best[2]


def _codec_name(name: str) -> str | None:
    """Python's name for an encoding label, widened to a superset (GBK → GB18030); None if unknown."""
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        return None
    return _SUPERSETS.get(canonical, canonical)


def _try_decode(data: bytes, name: str) -> str | None:
    """`data` strictly decoded with `name`, or None if it doesn't decode."""
    try:
        return data.decode(name)
    except (UnicodeDecodeError, LookupError):
        return None


def _utf16_without_bom(data: bytes) -> str | None:
    """The UTF-16 codec when NUL bytes sit mostly at one byte parity (ASCII in UTF-16), else None."""
    if len(data) < 2 or len(data) % 2:
        return None
    half = len(data) // 2
    even, odd = data[0::2].count(0), data[1::2].count(0)
    if odd >= 0.1 * half and even * 10 <= odd:
        return "utf-16-le"
    if even >= 0.1 * half and odd * 10 <= even:
        return "utf-16-be"
    return None


def _mostly_utf8(data: bytes) -> bool:
    """True when the bytes are overwhelmingly valid UTF-8 multi-byte text with a few broken bytes."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    good = sum(1 for ch in text if ch > "\x7f") - bad
    return good >= 8 and good >= 20 * bad


def _declared_charset(data: bytes) -> str | None:
    """The encoding an HTML page declares in `<meta charset>` near its start, if any."""
    m = _META_CHARSET.search(data[:4096])
    return _codec_name(m.group(1).decode("ascii")) if m else None


def _legacy_candidates(data: bytes) -> list[str]:
    """Encodings to try for non-UTF-8 bytes: GB18030, Big5 and cp1252, then charset-normalizer's guesses."""
    from charset_normalizer import from_bytes  # lazy: only legacy-encoded files need it

    names = [*_PREFERRED, *(_codec_name(m.encoding) for m in from_bytes(data))]
    return [n for n in dict.fromkeys(names) if n]


def _looks_like_text(text: str) -> bool:
    """Sanity check for a decoding: no control/private-use/replacement chars; mostly ASCII or CJK.

    Accented Latin letters count as plausible only while they stay a minority of the letters.
    """
    if not text or _BAD_CHARS.search(text):
        return False
    accented = len(_ACCENTED.findall(text))
    if accented > _MAX_ACCENTED * (accented + len(_ASCII_LETTER.findall(text))):
        return False
    return len(_PLAUSIBLE.findall(text)) + accented >= _MIN_PLAUSIBLE * len(text)


def _han_score(text: str) -> float:
    """Share of the Han characters that are everyday ones (a wrong CJK codec yields rare ones)."""
    han = [ch for ch in text[:20000] if "\u4e00" <= ch <= "\u9fff"]
    return sum(map(_is_common_han, han)) / len(han) if han else _NO_HAN_SCORE


@lru_cache(maxsize=8192)
def _is_common_han(ch: str) -> bool:
    """True for GB2312 level-1 (B0A1–D7F9) or Big5 frequent (A440–C67E) characters."""
    for codec, lo, hi in (("gb2312", 0xB0A1, 0xD7F9), ("big5", 0xA440, 0xC67E)):
        try:
            b = ch.encode(codec)
        except UnicodeEncodeError:
            continue
        if len(b) == 2 and lo <= (b[0] << 8 | b[1]) <= hi:
            return True
    return False


# --------------------------------------------------------------------------- pdf / docx


def _pdf_text(path: Path) -> str:
    """Text layer of a PDF, page by page, pages separated by a blank line."""
    from pypdf import PdfReader  # lazy: heavy, and only PDFs need it

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(path, "PDF is encrypted and needs a password")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except IngestError:
        raise
    except Exception as e:  # pypdf raises many exception types on damaged files; all mean "unreadable"
        raise IngestError(path, f"unreadable PDF: {type(e).__name__}: {e}") from e
    text = "\n\n".join(p for p in pages if p)
    if not text:
        raise IngestError(path, "PDF has no text layer (scanned image?) — run OCR first")
    return text


def _docx_text(path: Path) -> str:
    """Paragraphs and table cells of a .docx in order; Title/Heading 1/2 → "## ", Heading 3+ → "### "."""
    import docx  # lazy: heavy, and only .docx files need it

    try:
        document = docx.Document(str(path))
        blocks = list(_docx_blocks(document))
    except Exception as e:  # zipfile, lxml and python-docx all raise their own types on damaged files
        raise IngestError(path, f"unreadable DOCX: {type(e).__name__}: {e}") from e
    return "\n\n".join(blocks)


def _docx_blocks(container: object) -> Iterable[str]:
    """Text blocks of a document or table cell: one per paragraph, recursing into tables cell by cell."""
    from docx.table import Table

    for item in container.iter_inner_content():  # type: ignore[attr-defined]
        if isinstance(item, Table):
            seen: set[object] = set()  # holds the elements themselves, so their identity can't be reused
            for row in item.rows:
                for cell in row.cells:
                    if cell._tc in seen:  # a merged cell appears once per grid column it spans
                        continue
                    seen.add(cell._tc)
                    yield from _docx_blocks(cell)
        elif text := item.text.strip():
            yield _docx_prefix(item) + text


def _docx_prefix(paragraph: object) -> str:
    """Markdown heading marker for a paragraph's style ("" for body text)."""
    style = getattr(paragraph, "style", None)
    name = (getattr(style, "name", "") or "").lower()
    if name in ("title", "heading 1", "heading 2"):
        return "## "
    if name.startswith("heading ") and name[8:].isdigit():
        return "### "
    return ""
