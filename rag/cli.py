"""`newsletter-qa`: parse arguments, call the pipeline, print results. Nothing more."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rag.settings import Settings, load_settings

EXIT_USAGE = 2
MAX_K = 50  # passages a question may ask for
EXIT_PARTIAL = 3  # ingest: some files were skipped (each one printed with its reason); the others are indexed


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="newsletter-qa", description="Bilingual question answering over newsletters.")
    p.add_argument("--config", type=Path, help="TOML settings file (default: $RAG_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--index", dest="index_name", help="index name under index/ (default: default)")
        sp.add_argument("--embedders", help="comma-separated dense channels: use,e5,st:<model> (default: use,e5)")
        sp.add_argument("--no-lexical", action="store_true", help="build/query without the BM25 channel")
        backend_argument(sp)

    ing = sub.add_parser("ingest", help="add or update newsletters in an index")
    ing.add_argument("paths", nargs="+", type=Path)
    ing.add_argument(
        "--rebuild", action="store_true", help="re-index every newsletter the index holds, plus the files given"
    )
    ing.add_argument(
        "--prune", action="store_true", help="make the index equal these files: remove the newsletters not given"
    )
    ing.add_argument("--yes", action="store_true", help="go ahead when the command removes newsletters")
    ing.add_argument("--json", action="store_true", help="print the outcome of every file as one JSON object")
    common(ing)

    ask = sub.add_parser("ask", help="ask a question (or a file of questions with --batch)")
    ask.add_argument("question", nargs="?")
    ask.add_argument("--batch", type=Path, help="file with one question per line ('-' for stdin)")
    ask.add_argument("--json", action="store_true", help="print the JSON contract")
    ask.add_argument("--k", type=int, help="passages to retrieve (default 5)")
    ask.add_argument("--language", default="", choices=("en", "zh"), help="only newsletters in this language")
    ask.add_argument("--issue", default="", help="only this issue number")
    ask.add_argument("--date-from", default="", help="only issues covering dates on or after YYYY-MM-DD")
    ask.add_argument("--date-to", default="", help="only issues covering dates on or before YYYY-MM-DD")
    ask.add_argument("--section", default="", help="only sections whose name contains this")
    common(ask)

    idx = sub.add_parser("index", help="list indexes or remove a newsletter")
    isub = idx.add_subparsers(dest="index_command", required=True)
    lst = isub.add_parser("list", help="list indexes and their newsletters")
    common(lst)
    rm = isub.add_parser("remove", help="remove newsletters by doc id")
    rm.add_argument("doc_ids", nargs="+")
    rm.add_argument("--yes", action="store_true", help="remove without asking")
    common(rm)

    ev = sub.add_parser("eval", help="benchmarks")
    esub = ev.add_subparsers(dest="eval_command", required=True)
    from rag import evaluation

    evaluation.add_arguments(esub)

    fb = sub.add_parser("feedback", help="staff feedback from the web UI")
    fsub = fb.add_subparsers(dest="feedback_command", required=True)
    exp = fsub.add_parser("export", help="write all feedback as CSV or JSON Lines")
    exp.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    exp.add_argument("--out", type=Path, help="output file (default: stdout)")

    keys = sub.add_parser("keys", help="API keys for the HTTP API (stored hashed in <data_dir>/keys.json)")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    kc = ksub.add_parser("create", help="create a key; its secret is printed once")
    kc.add_argument("name", help="who or what the key is for, e.g. intranet-portal")
    kc.add_argument("--scope", action="append", choices=("ask", "admin"), help="ask (default) and/or admin")
    ksub.add_parser("list", help="list keys (never their secrets)")
    kr = ksub.add_parser("revoke", help="revoke a key by its id")
    kr.add_argument("key_id")
    return p


def backend_argument(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--backend",
        choices=("faiss", "milvus"),
        help="where the vectors live: faiss (files in the index folder, default) or milvus (milvus_uri)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    s = load_settings(args.config)
    changes: dict[str, object] = {}
    if getattr(args, "index_name", None):
        changes["index_name"] = args.index_name
    if getattr(args, "embedders", None):
        changes["embedders"] = args.embedders
    if getattr(args, "no_lexical", False):
        changes["lexical"] = False
    if getattr(args, "backend", None):
        changes["index_backend"] = args.backend
    return s.replace(**changes) if changes else s


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    handlers = {"ingest": _ingest, "ask": _ask, "index": _index, "eval": _eval, "feedback": _feedback, "keys": _keys}
    handler = handlers[args.command]
    try:
        return handler(args, settings)
    except KeyboardInterrupt:
        return 130


def _pipeline(settings: Settings):  # type: ignore[no-untyped-def]
    from rag.pipeline import Pipeline

    return Pipeline(settings)


ETA = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed} elapsed, ETA {remaining}, {rate_fmt}]"


def _progress():  # type: ignore[no-untyped-def]
    """A tqdm bar per stage on stderr, with the stage's ETA."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="item", file=sys.stderr, leave=True, bar_format=ETA)
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update


def _confirm(yes: bool, index_name: str):  # type: ignore[no-untyped-def]
    """Removal consent: --yes, or a y/N question when a person is at the terminal; otherwise refuse."""

    def confirm(doc_ids) -> bool:  # type: ignore[no-untyped-def]
        if yes:
            return True
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            return False
        shown = "\n".join(f"  {d}" for d in doc_ids)
        print(f"this removes {len(doc_ids)} newsletter(s) from index {index_name!r}:\n{shown}", file=sys.stderr)
        print("remove them? [y/N] ", end="", file=sys.stderr, flush=True)
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    return confirm


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from rag.embed import EmbedderError
    from rag.pipeline import NothingToIngest, RemovalRefused
    from rag.store import StoreError

    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"error: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = _pipeline(settings).ingest(
            args.paths,
            progress=_progress(),
            rebuild=args.rebuild,
            replace_all=args.prune,
            confirm=_confirm(args.yes, settings.index_name),
        )
    except (StoreError, EmbedderError, NothingToIngest, RemovalRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    status = EXIT_PARTIAL if report.skipped else 0
    counts = {k: sum(f.status == k for f in report.files) for k in ("added", "updated", "unchanged", "skipped")}
    if args.json:
        out = {
            "index": settings.index_name,
            "files": [f.to_dict() for f in report.files],
            "counts": counts,
            "removed": list(report.removed),
            "reindexed": list(report.reindexed),
            "chunks": report.chunks,
            "embedded_chunks": report.embedded_chunks,
            "seconds": round(report.seconds, 2),
            "exit_code": status,
        }
        print(json.dumps(out, ensure_ascii=False))
        return status
    for f in report.files:
        line = f"{f.status} {f.path}" + (f" ({f.doc_id})" if f.doc_id and f.status != "skipped" else "")
        print(line + (f": {f.reason}" if f.reason else ""), file=sys.stderr if f.status == "skipped" else sys.stdout)
    extra = f", {len(report.reindexed)} kept and re-indexed" if report.reindexed else ""
    extra += f", {len(report.removed)} removed" if report.removed else ""
    print(
        f"index {settings.index_name!r}: {counts['added']} added, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged, {counts['skipped']} skipped{extra}; {report.chunks} chunks "
        f"({report.embedded_chunks} embedded) in {report.seconds:.1f} s"
    )
    return status


def _filters(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The retrieval filters; ValueError for a malformed date (it would silently filter everything out)."""
    from rag.service import InvalidFilter, parse_filters

    try:
        return parse_filters(args.language, args.issue, args.date_from, args.date_to, args.section)
    except InvalidFilter as exc:
        if exc.key == "bad_date":
            flag = "--" + exc.values["field"].replace("_", "-")
            value = str(exc.values["value"])
            shown = value if len(value) <= 40 else value[:40] + "…"  # never echo a huge argument back
            raise ValueError(f"{flag} {shown!r} is not a date YYYY-MM-DD") from None
        raise ValueError(str(exc)) from None


def _service(settings: Settings):  # type: ignore[no-untyped-def]
    from rag.service import Service

    return Service(_pipeline(settings))


def _operator():  # type: ignore[no-untyped-def]
    """The person at the command line: they can already write the index folder, so they hold every scope."""
    import getpass

    from rag.auth import SCOPES, Principal

    return Principal(f"cli:{getpass.getuser()}", frozenset(SCOPES), "local")


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    from rag.auth import ServiceError
    from rag.embed import EmbedderError

    if args.batch is None and args.question is None:
        print("error: give a question, or --batch FILE", file=sys.stderr)
        return EXIT_USAGE
    if args.k is not None and args.k < 1:
        print(f"error: --k must be at least 1, got {args.k}", file=sys.stderr)
        return EXIT_USAGE
    if args.k is not None and args.k > MAX_K:
        print(f"error: --k must be at most {MAX_K}, got {args.k}", file=sys.stderr)
        return EXIT_USAGE
    try:
        filters = _filters(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        service = _service(settings)
        if args.batch is not None:
            return _ask_batch(service, args, filters)
        answer = service.ask(args.question, k=args.k, filters=filters)
    except (ServiceError, EmbedderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False))
    else:
        print(render_text(answer))
    return 0


def _ask_batch(service, args: argparse.Namespace, filters) -> int:  # type: ignore[no-untyped-def]
    """One answer (or error object) per non-empty line; a bad line is reported and the batch goes on."""
    from rag.service import InvalidQuestion
    from rag.store import StoreError

    try:
        data = sys.stdin.buffer.read() if str(args.batch) == "-" else args.batch.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.batch}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    status = 0
    for n, raw in enumerate(data.split(b"\n"), start=1):
        line = raw.rstrip(b"\r").decode("utf-8", "replace")
        if not line.strip():
            continue
        if "\ufffd" in line and b"\xef\xbf\xbd" not in raw:
            print(f"warning: line {n}: invalid UTF-8, read with U+FFFD replacement characters", file=sys.stderr)
        try:
            out = service.ask(line, k=args.k, filters=filters).to_dict()
        except InvalidQuestion as exc:
            out = {"question": line, "error": str(exc)}
            status = 1
        except StoreError:
            raise  # the index, not the line: the whole batch would fail the same way
        except Exception as exc:  # one line must not stop the batch
            out = {"question": line, "error": f"line {n}: {type(exc).__name__}: {str(exc)[:300]}"}
            status = 1
        print(json.dumps(out, ensure_ascii=False) if args.json else render_text_dict(out), flush=True)
    return status


def render_text(answer) -> str:  # type: ignore[no-untyped-def]
    return render_text_dict(answer.to_dict())


def render_text_dict(d: dict) -> str:
    if "error" in d:
        return f"error: {d['error']}"
    from rag.answer import CLOSEST

    lines = []
    if d.get("verdict") == "closest":
        lines.append(f"({CLOSEST.get(d['language'], CLOSEST['en'])})")
    lines += [d["answer"], ""]
    for c in d["citations"]:
        where = " · ".join(x for x in (c["title"], f"issue {c['issue']}" if c["issue"] else "", c["section"]) if x)
        lines.append(f"[{c['n']}] {where} ({c['doc_id']}, chars {c['start']}–{c['end']}, score {c['score']:.2f})")
        if c.get("aligned"):
            lines.append(f"    {c['aligned']['language']} edition: {c['aligned']['quote']} ({c['aligned']['doc_id']})")
        if c.get("also_in"):
            lines.append(f"    also in: {', '.join(c['also_in'])}")
    if "confidence" in d:
        lines.append(f"confidence {d['confidence']:.2f}")
    return "\n".join(lines).rstrip()


def _index(args: argparse.Namespace, settings: Settings) -> int:
    from rag.backend import backend_of
    from rag.embed import EmbedderError
    from rag.store import FormatOutdated, StoreError, list_indexes, open_index

    if args.index_command == "list":
        names = list_indexes(settings.index_root)
        if not names:
            print(f"no indexes under {settings.index_root} (the first `ask` builds 'default')")
        damaged = 0
        for name in names:
            try:
                folder = settings.index_root / name
                idx = open_index(folder, vectors=backend_of(folder) != "milvus")  # (vectors in Milvus: not here)
            except FormatOutdated as exc:
                print(f"{name}: outdated ({exc}); the next ask or ingest re-indexes its newsletters")
                continue
            except StoreError as exc:
                print(f"{name}: DAMAGED ({exc})")
                damaged += 1
                continue
            m = idx.manifest
            where = f", vectors in Milvus at {m.backend.get('uri')}" if m.backend.get("name") == "milvus" else ""
            print(
                f"{name}: {len(idx.documents)} newsletters, {len(idx.chunks)} chunks, "
                f"embedders {','.join(m.embedders)}{' + bm25' if m.lexical else ''}, built {m.created}{where}"
            )
            for d in idx.documents.values():
                print(f"  {d.doc_id}  [{d.language}]  {d.meta.title}  issue {d.meta.issue}  {d.meta.period}")
        return 1 if damaged else 0
    from rag.auth import ServiceError
    from rag.pipeline import RemovalRefused

    try:
        service = _service(settings)
        held = service.documents()
        missing = [d for d in args.doc_ids if d not in held]
        if missing:  # all or nothing: check every id before removing any
            raise KeyError(
                f"not in index {settings.index_name!r}: {', '.join(missing)}; it holds: {', '.join(sorted(held))}"
            )
        if not _confirm(args.yes, settings.index_name)(args.doc_ids):
            raise RemovalRefused(settings.index_name, args.doc_ids)
        for doc_id in args.doc_ids:
            report = service.remove(_operator(), doc_id)
    except (KeyError, ServiceError, StoreError, EmbedderError, RemovalRefused) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"removed {', '.join(args.doc_ids)}; index {settings.index_name!r} now has {report.chunks} chunks")
    return 0


def _eval(args: argparse.Namespace, settings: Settings) -> int:
    from rag import evaluation

    return evaluation.run(args, settings)


def _feedback(args: argparse.Namespace, settings: Settings) -> int:
    from rag.feedback import export

    return export(settings.data_dir, args.format, args.out)


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from rag.auth import KeyStore

    store = KeyStore(Path(settings.data_dir) / "keys.json")
    if args.keys_command == "create":
        rec, secret = store.create(args.name, tuple(dict.fromkeys(args.scope or ["ask"])))
        print(f"created key {rec.key_id} ({rec.name}, scopes {','.join(rec.scopes)}); copy it now, it is not stored:")
        print(secret)
        return 0
    if args.keys_command == "list":
        for rec in store.list():
            state = f"revoked {rec.revoked}" if rec.revoked else "active"
            print(f"{rec.key_id}  {rec.name}  scopes={','.join(rec.scopes)}  created {rec.created}  {state}")
        return 0
    try:
        rec = store.revoke(args.key_id)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    print(f"revoked key {rec.key_id} ({rec.name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
