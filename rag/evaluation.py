"""Benchmark sub-commands of `newsletter-qa eval`; each benchmark lives in its own module."""

from __future__ import annotations

import argparse
import importlib

from rag.settings import Settings

# sub-command -> module with `add_arguments(parser)` and `run(args, settings) -> int`
BENCHMARKS = {"xquad": "rag.xquad", "run": "rag.qa_eval"}


def add_arguments(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register each benchmark's sub-command (modules are imported here, not at package import)."""
    for name, module in BENCHMARKS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError:
            continue
        parser = sub.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0])
        mod.add_arguments(parser)
        from rag.cli import backend_argument

        backend_argument(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Dispatch to the chosen benchmark."""
    return int(importlib.import_module(BENCHMARKS[args.eval_command]).run(args, settings))
