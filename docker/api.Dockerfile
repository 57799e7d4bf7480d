# syntax=docker/dockerfile:1
#
# The API image: FastAPI on uvicorn, no torch. Build from the repository root:
#   docker build -f docker/api.Dockerfile -t trainability-api .
#
# The project with its `api` extra: FastAPI, uvicorn, Celery, Redis, matplotlib; no torch
# (torch is in the `worker` extra only). The image also serves the notifier (webhook
# deliveries and MLflow exports, docker-compose.yml: hence the `mlflow` extra, mlflow-skinny)
# and carries the `trainability` command.
# Needs BuildKit (the default builder since Docker Engine 23, and always with `docker compose`).

ARG PYTHON_IMAGE=python:3.11-slim

# ---- the project's wheel ------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---- runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# The wheel with its extras, as `pip install '.[api,mlflow]'` would, without the sources in the image.
# pip's cache is a build cache mount (not a layer): a code change reinstalls the dependencies
# from it rather than downloading them again.
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    --mount=type=cache,target=/root/.cache/pip \
    pip install "$(echo /wheels/trainability-*.whl)[api,mlflow]" \
 && pip check

# The guarantees this image exists for: no torch, whatever the dependencies pulled in, and a
# working `trainability` command (the client's commands and `api`, `worker --queues webhooks`).
RUN python -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') and 'torch must not be in this image')" \
 && trainability --help > /dev/null

# A numeric USER lets Kubernetes' runAsNonRoot verify it without reading /etc/passwd.
RUN groupadd --gid 10001 trainability \
 && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin trainability
USER 10001:10001
WORKDIR /home/trainability

EXPOSE 8000
# python:3.11-slim has no curl; urlopen raises (exit 1) on a refused connection or a non-2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# --no-access-log: the access line is the API's own (service/live/metrics.py), one per request.
CMD ["uvicorn", "service.main:app", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
