# IGM Lab worker image: the trainer with the CUDA build of torch (one container per GPU,
# docker-compose.yml). `pip install ".[worker]"` after torch itself from TORCH_INDEX_URL:
#   default https://download.pytorch.org/whl/cu128 (CUDA 12.8 wheels; the host driver must support
#   it), e.g. --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 for older
#   drivers, or https://download.pytorch.org/whl/cpu for a CPU-only worker (a much smaller image).
# The CUDA runtime comes inside the wheels: the base image needs no CUDA toolkit.
FROM python:3.11-slim
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
RUN apt-get update && apt-get install -y --no-install-recommends git curl libsndfile1 \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY build_backend build_backend
COPY igm_core igm_core
COPY server server
COPY worker worker
COPY igm_client igm_client
COPY launcher launcher
COPY alembic alembic
COPY alembic.ini ./
COPY configs configs
# torch is installed above from the CUDA index; the requirement torch==TORCH_VERSION is then met
RUN pip install --no-cache-dir ".[worker]"
# the code runs from /app, beside alembic/ and web/ (which the wheel does not carry): the
# installed copy only brings the requirements and the `igm` command
ENV IGM_DATA_DIR=/data PYTHONUNBUFFERED=1 PYTHONPATH=/app
