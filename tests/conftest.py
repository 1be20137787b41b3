"""Shared fixtures: tiny bilingual newsletters and a pipeline on the instant hash embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.embed import HashEmbedder
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "newsletters"

EN = """FOREWORD

This issue covers the period from May 2022 until June 2023.

PROJECT HIGHLIGHTS

Seminar on Migrant Integration

On 9-10 May 2023 a Seminar on Migrant Integration was held in Hangzhou, China. Over 30 representatives attended.

POLICY CORNER

The NIA resumed the issuance of port visas and the 144-hour visa-free transit policy.
"""

ZH = """---
title: 测试通讯
issue: 7
period: 2021年
date_start: 2021-01-01
date_end: 2021-12-31
language: zh
edition_of: test-7
---

## 项目亮点

### 边境管理研讨会

2021年6月27日，边境管理系统研讨会在北京举行。来自欧洲的专家介绍了风险评估中心的经验。
"""


def write_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "news-en.txt").write_text(EN, "utf-8")
    (folder / "news-en.meta.json").write_text(
        json.dumps(
            {
                "title": "Test Newsletter",
                "issue": "11",
                "date_start": "2022-05-01",
                "date_end": "2023-06-30",
                "language": "en",
                "edition_of": "test-11",
            }
        ),
        "utf-8",
    )
    (folder / "news-zh.md").write_text(ZH, "utf-8")
    return folder


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus")


@pytest.fixture
def settings(tmp_path: Path, corpus: Path) -> Settings:
    return Settings(
        corpus=corpus,
        index_root=tmp_path / "index",
        data_dir=tmp_path / "var",
        embedders=("hash",),
        abstain_threshold=0.0,  # mechanics under test, not the model's confidence (hash vectors)
    )


@pytest.fixture
def pipeline(settings: Settings):  # type: ignore[no-untyped-def]
    from rag.pipeline import Pipeline

    return Pipeline(settings, {"hash": HashEmbedder()})
