# syntax=docker/dockerfile:1
# One image for every kfaas role, chosen by command:
#   kfaas gateway | kfaas operator | kfaas runtime | kfaas poller
# Build: docker build -t kfaas:0.1.0 .   (see docs/install.md)

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# -- build: a wheel of kfaas and its dependencies, installed into a virtualenv --------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Offline builds (tests/services/images.py: no registry) put wheels made on the host in the
# context's wheelhouse/ and pass WHEELHOUSE=/src; `docker build` sends no wheelhouse
# (.dockerignore), the glob matches nothing and pip uses the index as always.
ARG WHEELHOUSE=""
COPY pyproject.toml README.md wheelhous[e] ./
RUN python -m venv /opt/kfaas \
    && /opt/kfaas/bin/pip install --no-cache-dir ${WHEELHOUSE:+--no-index --find-links "$WHEELHOUSE"} \
       "pip==24.3.1" "setuptools==75.6.0" "wheel==0.45.1"
COPY kfaas ./kfaas
COPY runtime ./runtime
COPY gateway ./gateway
COPY operator ./operator
COPY pollers ./pollers
COPY cli ./cli
COPY codestore ./codestore
COPY scheduler ./scheduler
# Bytecode checked by hash, not by the source's mtime: layer tars round mtimes to the second, so
# about half the timestamped .pyc would be stale and recompiled at every start on a read-only
# root. -I: the current folder is not put first on sys.path (./operator shadows the stdlib's).
RUN /opt/kfaas/bin/pip install --no-cache-dir ${WHEELHOUSE:+--no-index --find-links "$WHEELHOUSE"} . \
    && /opt/kfaas/bin/python -I -m compileall -q -f --invalidation-mode unchecked-hash /opt/kfaas/lib

# -- final: the virtualenv on a clean interpreter, run as an unprivileged user --------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="kfaas" \
      org.opencontainers.image.description="AWS-Lambda-style functions on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/kfaas/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LAMBDA_TASK_ROOT=/var/task
COPY --from=build /opt/kfaas /opt/kfaas
# Function code lives in /var/task (mounted read-only, or baked in by an image built FROM this).
RUN groupadd --system --gid 65532 kfaas \
    && useradd --system --uid 65532 --gid kfaas --home-dir /var/task --no-create-home kfaas \
    && mkdir -p /var/task \
    && chown kfaas:kfaas /var/task
WORKDIR /var/task
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["kfaas"]
CMD ["gateway", "--backend", "kubernetes", "--host", "0.0.0.0"]
