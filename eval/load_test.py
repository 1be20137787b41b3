"""Load test of `/v1/ask` on loopback: N concurrent clients × M asks, idle and while an upload is indexing.

    .venv/bin/python eval/load_test.py                      # 32 clients × 20 asks, hash embedder, sample corpus
    .venv/bin/python eval/load_test.py --embedders use,e5   # the real models (slower: expect minutes)

The server runs as a subprocess (`app.py` on 127.0.0.1, a fresh index and data folder under a temporary
directory); the clients are threads of this process. During the second phase another thread keeps
re-uploading a large newsletter, so every ask of that phase overlaps indexing. Prints and (with --out)
writes JSON: p50/p95/max per phase, errors, and whether p95 during indexing ≤ 2 × p95 idle.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = (
    "Where was the Seminar on Migrant Integration held?",
    "移民融合研讨会在哪里举行？",
    "Which policies did the NIA resume?",
    "When was the 144-hour visa-free transit policy resumed?",
)
PASSWORD = "load-test-admin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, embedders: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "RAG_INDEX_ROOT": str(tmp / "index"),
        "RAG_DATA_DIR": str(tmp / "var"),
        "RAG_EMBEDDERS": embedders,
        "RAG_ADMIN_PASSWORD": PASSWORD,
        "RAG_ASKS_PER_MINUTE": "1000000",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    cmd = [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("the server did not become healthy")


def run_phase(url: str, clients: int, asks: int) -> dict:
    """`clients` threads each ask `asks` questions one after another; latencies in ms, errors counted."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client(i: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            start.wait()
            for j in range(asks):
                q = QUESTIONS[(i + j) % len(QUESTIONS)]
                t0 = time.perf_counter()
                try:
                    r = c.post("/v1/ask", json={"question": q})
                    ok = r.status_code == 200 and "answer" in r.json()
                    err = "" if ok else f"{r.status_code} {r.text[:100]}"
                except httpx.HTTPError as exc:
                    err = repr(exc)
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(ms)
                    if err:
                        errors.append(err)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:3],
        "p50_ms": round(q[49], 1),
        "p95_ms": round(q[94], 1),
        "max_ms": round(max(latencies), 1),
        "throughput_rps": round(len(latencies) / wall, 1),
    }


def keep_indexing(url: str, stop: threading.Event, paragraphs: int, done: list[float]) -> None:
    """Upload a large newsletter again and again (its text changes each time, so it is re-indexed)."""
    n = 0
    with httpx.Client(base_url=url, timeout=600) as c:
        while not stop.is_set():
            n += 1
            text = "\n\n".join(
                f"Paragraph {i} of upload {n} reports meetings on border management and training."
                for i in range(paragraphs)
            )
            t0 = time.perf_counter()
            r = c.post(
                "/v1/documents",
                files={"files": ("load-test-bulletin.txt", text.encode(), "text/plain")},
                headers={"X-Admin-Password": PASSWORD},
            )
            r.raise_for_status()
            done.append(time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--asks", type=int, default=20, help="asks per client per phase")
    p.add_argument("--embedders", default="hash")
    p.add_argument("--paragraphs", type=int, default=3000, help="size of the newsletter uploaded during phase 2")
    p.add_argument("--out", type=Path, help="write the results as JSON")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="nqa-load-"))
    proc, url = start_server(tmp, args.embedders)
    try:
        run_phase(url, 4, 3)  # warm up
        idle = run_phase(url, args.clients, args.asks)
        stop, uploads = threading.Event(), []
        writer = threading.Thread(target=keep_indexing, args=(url, stop, args.paragraphs, uploads))
        writer.start()
        time.sleep(0.5)  # the first upload is indexing
        during = run_phase(url, args.clients, args.asks)
        stop.set()
        writer.join()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "clients": args.clients,
        "asks_per_client": args.asks,
        "embedders": args.embedders,
        "cpus": os.cpu_count(),
        "idle": idle,
        "during_indexing": {
            **during,
            "uploads_indexed": len(uploads),
            "upload_seconds": [round(s, 1) for s in uploads],
        },
        "p95_ratio": round(during["p95_ms"] / idle["p95_ms"], 2),
        "command": "python eval/load_test.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    result["ok"] = idle["errors"] == 0 and during["errors"] == 0 and result["p95_ratio"] <= 2.0
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", "utf-8")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
