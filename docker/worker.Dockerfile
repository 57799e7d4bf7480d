# syntax=docker/dockerfile:1
#
# The worker image: Celery with torch, on the official PyTorch CUDA runtime image. Build from the
# repository root:
#   docker build -f docker/worker.Dockerfile -t trainability-worker .
#
# The base image's torch is the one we run: a CUDA build that matches the image's CUDA and
# cuDNN. `pip install .` could replace it with another build from PyPI, so instead:
#   1. install the project's requirements except torch, printed from pyproject.toml by
#      docker/project_deps.py (pyproject.toml stays the only list of dependencies);
#   2. check that the base image's torch is the version pyproject.toml pins (the CUDA build's
#      local label, e.g. +cu126, is ignored) — change the two together;
#   3. install the project's own wheel with --no-deps.
#
# BASE_IMAGE: pick the CUDA version your hosts' NVIDIA driver supports (`nvidia-smi` shows the
# highest); CUDA 12.x images run on drivers >= 525 (minor-version compatibility). Other tags
# of the same torch version, e.g.
#   docker build --build-arg BASE_IMAGE=pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime ...
# Pin it by digest (`...-runtime@sha256:...`) for reproducible production builds.
# Needs BuildKit (the default builder since Docker Engine 23, and always with `docker compose`).

ARG BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime

# ---- the project's wheel, built without its dependencies --------------------------------
FROM ${BASE_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---- runtime ------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Dependencies first, in their own layer, so that a code change does not reinstall them.
# torch is left out here and checked against the pin after the install, so a dependency that
# dragged in another torch would fail the build rather than ship.
RUN --mount=type=bind,source=pyproject.toml,target=/build/pyproject.toml \
    --mount=type=bind,source=docker/project_deps.py,target=/build/project_deps.py \
    python /build/project_deps.py /build/pyproject.toml requirements --exclude torch \
        > /tmp/requirements-worker.txt \
 && pip install -r /tmp/requirements-worker.txt \
 && rm /tmp/requirements-worker.txt \
 && python /build/project_deps.py /build/pyproject.toml check-pin torch \
 && python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-deps /wheels/*.whl

# A home directory: torch and Celery write small caches under $HOME.
# A numeric USER lets Kubernetes' runAsNonRoot verify it without reading /etc/passwd.
RUN groupadd --gid 10001 trainability \
 && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin trainability
USER 10001:10001
WORKDIR /home/trainability

# One worker process per GPU: the container sees the GPU(s) it was given (compose `devices`,
# `docker run --gpus`), and CUDA_VISIBLE_DEVICES (set per container) picks one of them.
# prefork with one child keeps Celery's hard time limits working, and CUDA is first touched in
# that child, never in the parent before the fork.
# The health check asks this node (Celery names it celery@<hostname>, and Docker sets
# $HOSTNAME to the container's hostname) to answer a ping over the broker; the parent process
# answers even while its child trains.
HEALTHCHECK --interval=60s --timeout=30s --start-period=60s --retries=3 \
    CMD celery -A worker.runtime.app inspect ping \
        --destination "celery@$HOSTNAME" --timeout 10 > /dev/null || exit 1
CMD ["celery", "-A", "worker.runtime.app", "worker", \
     "--pool=prefork", "--concurrency=1", "--queues=gpu,cpu", \
     "--hostname=celery@%h", "--loglevel=INFO"]
