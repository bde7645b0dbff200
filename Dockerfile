# IGM Lab image: API, MLflow server and workers run from it (docker-compose.yml).
# On Linux x86_64, PyPI's torch 2.13.0 is the CUDA build, which GPU workers need.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY igm_core igm_core
COPY server server
COPY worker worker
COPY igm_client igm_client
COPY launcher launcher
COPY web web
COPY alembic alembic
COPY alembic.ini ./
COPY configs configs
RUN pip install --no-cache-dir -e .
ENV IGM_DATA_DIR=/data PYTHONUNBUFFERED=1
