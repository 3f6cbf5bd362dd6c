# A browser worker: Debian's Chromium and chromedriver, with Xvfb, x11vnc and noVNC so that a
# human can watch and act in its browser. Build from the repository root:
#   docker build -f deploy/worker.Dockerfile -t lmarena-bridge-worker .
FROM debian:bookworm-slim

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Debian's stable updates carry Chromium security fixes: take the current one, not a pinned one.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        chromium chromium-driver xvfb x11vnc novnc websockify \
        python3 python3-venv fonts-noto-cjk fonts-noto-color-emoji ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY gateway ./gateway
COPY worker ./worker
COPY cli ./cli
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 bridge \
    && mkdir -p /data \
    && chown bridge /data

USER 10001
ENV PATH=/opt/venv/bin:$PATH \
    LMB_STATE_DIR=/data \
    LMB_CHROMIUM_PATH=/usr/bin/chromium \
    LMB_CHROMEDRIVER_PATH=/usr/bin/chromedriver
# The browser profile (the arena sign-in) lives here; keep it on a volume.
VOLUME ["/data"]
CMD ["lmarena-bridge", "worker"]
