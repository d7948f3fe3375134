# syntax=docker/dockerfile:1
# Container image of azure-backup-exporter: docs/deploy.md says how to build and run it.
#
#   docker build -t azure-backup-exporter:0.1.0 .
#
# tests/test_container.py checks this file (and runs hadolint on it). It also runs the build stage's
# virtualenv and wheel commands below on the host, from a copy of exactly what the COPY lines take,
# and starts the console script from that virtualenv: keep them plain shell commands.

# Both stages use the same image, so the virtualenv made in the first one runs unchanged in the
# second (same interpreter at the same path).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# A virtualenv without pip or setuptools, first with the dependencies alone: the versions and hashes of
# requirements.lock (tests/test_lock.py keeps it in step with pyproject.toml), so a build installs the
# same files every time, and this layer is reused until the lock changes. Binary wheels only: this
# stage has no compiler, and a dependency that would need one fails the build.
COPY requirements.lock ./
RUN python -m venv --without-pip /opt/venv \
 && python -m pip --python /opt/venv/bin/python install --require-hashes --only-binary=:all: -r requirements.lock
# Then the exporter's wheel, made of only these files (.dockerignore allows nothing else into the build
# context), without its dependencies: pip check fails the build if the lock does not satisfy them.
COPY pyproject.toml README.md ./
COPY exporter/ exporter/
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m pip --python /opt/venv/bin/python install --no-deps /wheels/*.whl \
 && python -m pip --python /opt/venv/bin/python check

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="azure-backup-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Azure Backup jobs of Recovery Services vaults and Backup vaults" \
      org.opencontainers.image.source="https://github.com/azure-backup-exporter/azure-backup-exporter" \
      org.opencontainers.image.documentation="https://github.com/azure-backup-exporter/azure-backup-exporter/blob/main/docs/deploy.md" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
# Owned by root and read-only for the exporter's user; nothing is written at run time, so the
# container runs with a read-only root filesystem (bytecode was compiled when the wheel was installed).
COPY --from=build /opt/venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A fixed uid and gid, not in /etc/passwd; Kubernetes' runAsUser in deploy/kubernetes/ matches it.
USER 10001:10001
EXPOSE 9934
# Python's standard library instead of curl (which the image does not have). It follows the port of
# AZURE_BACKUP_EXPORTER_LISTEN_ADDRESS; a port given with --web.listen-address is not seen here.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('AZURE_BACKUP_EXPORTER_LISTEN_ADDRESS', ':9934').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/-/healthy', timeout=4)"]
ENTRYPOINT ["/opt/venv/bin/azure-backup-exporter"]
