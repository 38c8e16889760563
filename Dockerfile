# syntax=docker/dockerfile:1
#
# One image for every role of the plastics deployment:
#   webserver (default CMD)   docker run -p 3000:3000 plastics
#   daemon                    docker run plastics dagster-daemon run -w workspace.yaml
#   code server (Helm)        docker run plastics dagster api grpc -m plastics_dagster.definitions -h 0.0.0.0 -p 3030
#   celery worker (CPU)       docker run plastics dagster-celery worker start -A dagster_celery.app -y deploy/celery/celery.yaml -q dagster
#   celery worker (GPU)       docker run --gpus all plastics:gpu dagster-celery worker start -A dagster_celery.app -y deploy/celery/celery.yaml -q gpu
#   CLI                       docker run plastics plastics demo
#
# Build:
#   CPU (default):  docker build -t plastics:cpu .
#   GPU workers:    docker build --build-arg BASE=tensorflow/tensorflow:2.21.0-gpu \
#                                --build-arg TF_REQUIREMENT= \
#                                --build-arg GPU_REQUIREMENT="jax[cuda12]==0.10.2" -t plastics:gpu .
# The GPU base already ships TensorFlow 2.21 with CUDA, so TF_REQUIREMENT is left empty there;
# the CPU base installs tensorflow-cpu. GPU_REQUIREMENT adds JAX's CUDA plugin (its CUDA and cuDNN
# wheels included), which the compiled inference path uses on GPUs (docs/PERFORMANCE.md); keep its
# version equal to the project's jax pin. Models are NOT in the image (GPW models are CC BY-NC 4.0
# and loaded through the model store): mount a folder at /models or set PLASTICS_MODEL_STORE
# to s3://... Credentials come from the environment only.

ARG BASE=python:3.11-slim

# ---------------------------------------------------------------- build: wheels only
FROM ${BASE} AS build
ARG TF_REQUIREMENT="tensorflow-cpu==2.21.0"
ARG GPU_REQUIREMENT=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY plastics_core ./plastics_core
COPY plastics_dagster ./plastics_dagster
# Pinned runtime requirements from pyproject.toml, minus TensorFlow (chosen by TF_REQUIREMENT).
RUN python3 -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
print('\n'.join(d for d in deps if not d.startswith(('tensorflow', 'tensorflow-cpu'))))" > requirements.txt \
 && if [ -n "${TF_REQUIREMENT}" ]; then echo "${TF_REQUIREMENT}" >> requirements.txt; fi \
 && if [ -n "${GPU_REQUIREMENT}" ]; then echo "${GPU_REQUIREMENT}" >> requirements.txt; fi \
 && python3 -m pip wheel --wheel-dir /wheels -r requirements.txt \
 && python3 -m pip wheel --wheel-dir /wheels --no-deps . \
 && cp requirements.txt /wheels/requirements.txt

# ---------------------------------------------------------------- runtime
FROM ${BASE} AS runtime
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    PLASTICS_STORE=/data/store \
    PLASTICS_MODEL_STORE=/models \
    PLASTICS_ROI_DIR=/data/rois \
    PLASTICS_PROGRESS=0
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python3 -m pip install --no-index --find-links=/wheels -r /wheels/requirements.txt \
 && python3 -m pip install --no-index --no-deps /wheels/plastics-*.whl \
 && useradd --create-home --uid 10001 --shell /usr/sbin/nologin plastics \
 && mkdir -p /app "${DAGSTER_HOME}" /data/store /data/rois /models \
 && touch "${DAGSTER_HOME}/dagster.yaml" \
 && chown -R plastics:plastics /app /opt/dagster /data /models
WORKDIR /app
COPY --chown=plastics:plastics workspace.yaml ./workspace.yaml
COPY --chown=plastics:plastics deploy ./deploy
USER plastics
EXPOSE 3000 3030
CMD ["dagster-webserver", "-h", "0.0.0.0", "-p", "3000", "-w", "workspace.yaml"]
