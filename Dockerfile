FROM python:3.11-slim
ENV DAGSTER_HOME=/opt/dagster/home PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ohlcv_assets ./ohlcv_assets
RUN pip install --no-cache-dir . && mkdir -p "$DAGSTER_HOME"
COPY deploy/dagster.yaml /opt/dagster/home/dagster.yaml
COPY deploy/workspace.yaml /app/deploy/workspace.yaml
