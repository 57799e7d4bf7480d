# syntax=docker/dockerfile:1
#
# The API image: FastAPI on uvicorn, no torch. Build from the repository root:
#   docker build -f docker/api.Dockerfile -t trainability-api .
#
# Why not `pip install '.[api]'`: torch is a core dependency of the project (the worker needs
# it), and an extra only adds to the core, so that would pull torch and its CUDA wheels (GBs)
# into an image that never imports it. Instead:
#   1. install only the `api` extra's requirements, printed from pyproject.toml by
#      docker/project_deps.py (pyproject.toml stays the only list of dependencies);
#   2. install the project's own wheel with --no-deps;
#   3. fail the build if torch is installed all the same.
# `pip check` in this image reports torch as missing: that is the point, not a fault.
# Needs BuildKit (the default builder since Docker Engine 23, and always with `docker compose`).

ARG PYTHON_IMAGE=python:3.11-slim

# ---- the project's wheel, built without its dependencies --------------------------------
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---- runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Dependencies first, in their own layer, so that a code change does not reinstall them.
RUN --mount=type=bind,source=pyproject.toml,target=/build/pyproject.toml \
    --mount=type=bind,source=docker/project_deps.py,target=/build/project_deps.py \
    python /build/project_deps.py /build/pyproject.toml requirements --extra api \
        > /tmp/requirements-api.txt \
 && pip install -r /tmp/requirements-api.txt \
 && rm /tmp/requirements-api.txt

RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-deps /wheels/*.whl

# The guarantee this image exists for: no torch, whatever the dependencies above pulled in.
RUN --mount=type=bind,source=pyproject.toml,target=/build/pyproject.toml \
    --mount=type=bind,source=docker/project_deps.py,target=/build/project_deps.py \
    python /build/project_deps.py /build/pyproject.toml check-absent torch

# A numeric USER lets Kubernetes' runAsNonRoot verify it without reading /etc/passwd.
RUN groupadd --gid 10001 trainability \
 && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin trainability
USER 10001:10001
WORKDIR /home/trainability

EXPOSE 8000
# python:3.11-slim has no curl; urlopen raises (exit 1) on a refused connection or a non-2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["uvicorn", "service.main:app", "--host", "0.0.0.0", "--port", "8000"]
