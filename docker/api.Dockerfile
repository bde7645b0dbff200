# IGM Lab API image: the API with its dashboard, and the MLflow tracking server (docker-compose.yml
# runs both from it). No torch: `pip install ".[server]"`.
# Build arguments (docker-compose.yml passes them from .env; .env.example names them): the base
# image, and a PyPI mirror for a lab without internet access. Nothing here needs apt.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_TRUSTED_HOST=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
# one unprivileged user for every service; the same uid in the worker image (both write /data)
RUN useradd --uid 10001 --user-group --create-home igm \
    && mkdir -p /app /data /mlartifacts /mlflow-auth \
    && chown igm:igm /data /mlartifacts /mlflow-auth
WORKDIR /app
# 1. the requirements, from pyproject.toml and setup.py alone: this layer is rebuilt only when they
# change. The wheel built here holds no module (the source is not copied yet): it brings the
# requirements and the `igm` command.
COPY pyproject.toml setup.py ./
COPY build_backend build_backend
RUN touch README.md \
    && pip install ".[server]" \
    && rm -rf build igm_lab.egg-info README.md \
    && ! python -c "import torch" 2>/dev/null
# 2. the source: a code change rebuilds from here on (seconds). The code runs from /app, beside
# alembic/ and web/.
COPY igm_core igm_core
COPY server server
COPY worker worker
COPY igm_client igm_client
COPY launcher launcher
COPY web web
COPY alembic alembic
COPY alembic.ini ./
COPY configs configs
# MLflow's basic-auth configuration (docker-compose.yml's mlflow service)
COPY docker/mlflow-auth.ini docker/mlflow-auth.ini
ENV IGM_DATA_DIR=/data PYTHONPATH=/app
USER igm
