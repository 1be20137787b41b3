"""Benchmark sub-commands of `newsletter-qa eval`; each benchmark lives in its own module."""

from __future__ import annotations

import argparse

from rag.settings import Settings


def add_arguments(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `eval xquad` and `eval run`."""
    return None


def run(args: argparse.Namespace, settings: Settings) -> int:
    raise SystemExit(f"unknown eval command {args.eval_command!r}")
