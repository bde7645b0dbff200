# IGM Lab API image: the API with its dashboard, and the MLflow tracking server (docker-compose.yml
# runs both from it). No torch: `pip install ".[server]"`.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY build_backend build_backend
COPY igm_core igm_core
COPY server server
COPY worker worker
COPY igm_client igm_client
COPY launcher launcher
COPY web web
COPY alembic alembic
COPY alembic.ini ./
COPY configs configs
RUN pip install --no-cache-dir ".[server]" \
    && ! python -c "import torch" 2>/dev/null
# the code runs from /app, beside alembic/ and web/ (which the wheel does not carry): the
# installed copy only brings the requirements and the `igm` command
ENV IGM_DATA_DIR=/data PYTHONUNBUFFERED=1 PYTHONPATH=/app
