# dressfinder: the web app and JSON API, serving one store mounted at /store.
#
#   docker build -t dressfinder .
#   docker run --rm -p 2000:2000 -v "$PWD/demo-store:/store" dressfinder
#   curl -X POST -F "file=@dress.jpg" http://127.0.0.1:2000/upload -o retrieved_dress.jpg
#
# Build the store first, on the host (`make demo` or `dressfinder index CATALOG --store DIR`) or in a
# one-off container: docker run --rm -v "$PWD:/data" dressfinder dressfinder index /data/catalog.csv --store /data/store
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DRESSFINDER_STORE=/store \
    DRESSFINDER_CACHE=/home/app/.cache/dressfinder

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app \
    && mkdir -p /store && chown app:app /store

WORKDIR /app

# Only what serving needs: the core package (no extras: no torch, keras, dask or milvus), which
# searches with the shipped default encoder through ONNX Runtime.
RUN python -m venv /opt/venv \
    && pip install -q --upgrade pip
COPY pyproject.toml README.md ./
COPY dressfinder ./dressfinder
COPY app.py api.py ./
RUN pip install -q . \
    && rm -rf /root/.cache

USER app
# Check the shipped default encoder loads and runs.
RUN python -c "from PIL import Image; from dressfinder import get_encoder; get_encoder().encode([Image.new('RGB', (64, 64))])"

VOLUME ["/store"]
EXPOSE 2000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:2000/healthz', timeout=4)" || exit 1
CMD ["python", "api.py", "--host", "0.0.0.0"]
