# newsletter-qa: the web UI and HTTP API in one process (see docs/deploy.md). Not built in CI.
# Models ship inside pip packages: the image needs no network at run time.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 \
    GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1

RUN useradd --create-home --uid 10001 qa
WORKDIR /app
COPY pyproject.toml README.md ./
COPY rag ./rag
# torch is pinned to a CPU build in pyproject.toml: point PIP_EXTRA_INDEX_URL at a CPU wheel index (or a local
# mirror) when building, or pip resolves the CUDA build.
ARG PIP_EXTRA_INDEX_URL=""
RUN pip install --upgrade pip && pip install .
COPY app.py ./
COPY data ./data
RUN mkdir -p index var && chown -R qa:qa /app
USER qa

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s CMD python -c \
  "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/healthz', timeout=4)"
# Off-loopback the server refuses to start without an admin credential: pass RAG_ADMIN_PASSWORD (or mount
# a settings file and set RAG_CONFIG), and keep index/ and var/ on volumes.
CMD ["python", "app.py"]
