# The stateless API gateway. Build from the repository root:
#   docker build -f deploy/gateway.Dockerfile -t lmarena-bridge-gateway .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY gateway ./gateway
COPY worker ./worker
COPY cli ./cli
RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 bridge

USER 10001
# Inside a container the gateway must listen beyond loopback; the load balancer is the only peer.
ENV LMB_HOST=0.0.0.0 \
    LMB_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["lmarena-bridge", "gateway"]
