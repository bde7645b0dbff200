# IGM Lab worker image: the trainer with torch (docker-compose.yml: worker-cpu with the CPU build,
# worker-gpu0 under the `gpu` profile with the CUDA build). Build arguments (from .env; .env.example
# names them): the base image, the torch index and a PyPI mirror for a lab without internet access.
#   TORCH_INDEX_URL: https://download.pytorch.org/whl/cpu (the CPU build, the default here), or
#   .../whl/cu128 (CUDA 12.8 wheels: the host driver must support it), .../whl/cu126 for older
#   drivers. The CUDA runtime comes inside the wheels: the base image needs no CUDA toolkit.
# The worker takes MLflow's tracking client only (mlflow-skinny; the server stack lives in the API
# image). It writes the service database through server.crud and server.models, so SQLAlchemy,
# psycopg and Celery come too (`pip install ".[worker]"`, pyproject.toml).
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_TRUSTED_HOST=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 \
    GIT_PYTHON_REFRESH=quiet
RUN useradd --uid 10001 --user-group --create-home igm \
    && mkdir -p /app /data && chown igm:igm /data
WORKDIR /app
# 1. torch alone from its index (its own requirements come from PyPI or the mirror in step 2)
RUN pip install --no-deps "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
# 2. the requirements, from pyproject.toml and setup.py alone (rebuilt only when they change); the
# installed torch meets torch==TORCH_VERSION. The wheel holds no module: the requirements and the
# `igm` command.
COPY pyproject.toml setup.py ./
COPY build_backend build_backend
RUN touch README.md \
    && pip install ".[worker]" \
    && rm -rf build igm_lab.egg-info README.md \
    && pip check \
    && python -c "import torch, mlflow; assert torch.__version__.startswith('${TORCH_VERSION}')" \
    && ! python -c "import flask" 2>/dev/null
# 3. the source: a code change rebuilds from here on (seconds). The code runs from /app.
COPY igm_core igm_core
COPY server server
COPY worker worker
COPY igm_client igm_client
COPY launcher launcher
COPY alembic alembic
COPY alembic.ini ./
COPY configs configs
ENV IGM_DATA_DIR=/data PYTHONPATH=/app
USER igm
