# syntax=docker/dockerfile:1
#
# The worker image: Celery with torch, on the official PyTorch CUDA runtime image. Build from the
# repository root:
#   docker build -f docker/worker.Dockerfile -t trainability-worker .
#
# The project with its `worker` extra. The base image's torch is the one we run: a CUDA build
# that matches the image's CUDA and cuDNN. The extra pins torch==2.13.0, which that build
# (2.13.0+cu126) satisfies, and a constraint on exactly the installed build keeps pip from
# replacing it: a base image with another torch fails the install (pip names the conflict)
# instead of shipping a torch from PyPI. Change the base image tag and the pin together.
#
# BASE_IMAGE: pick the CUDA version your hosts' NVIDIA driver supports (`nvidia-smi` shows the
# highest); CUDA 12.x images run on drivers >= 525 (minor-version compatibility). Other tags
# of the same torch version, e.g.
#   docker build --build-arg BASE_IMAGE=pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime ...
# Pin it by digest (`...-runtime@sha256:...`) for reproducible production builds.
# Needs BuildKit (the default builder since Docker Engine 23, and always with `docker compose`).

ARG BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime

# ---- the project's wheel ------------------------------------------------------------------
FROM ${BASE_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---- runtime ------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# pip's cache is a build cache mount (not a layer): a code change reinstalls the dependencies
# from it rather than downloading them again. The last two commands show the torch that ships
# and fail the build unless the `trainability` command works here.
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    --mount=type=cache,target=/root/.cache/pip \
    python -c "import importlib.metadata as m; print('torch==' + m.version('torch'))" \
        > /tmp/base-image-constraints.txt \
 && pip install --constraint /tmp/base-image-constraints.txt \
        "$(echo /wheels/trainability-*.whl)[worker]" \
 && rm /tmp/base-image-constraints.txt \
 && python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" \
 && trainability --help > /dev/null

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
