# Hosted GPU demo image. Not buildable on the development machines (no Docker engine there).
# The full image (CUDA torch, optional online backends facenet-pytorch / lpips, app + worker) lands with
# the dashboard issue; this one runs the CLI on the CPU build.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt requirements-assets.txt constraints.txt ./
RUN pip install --no-cache-dir -c constraints.txt -r requirements.txt \
 && pip install --no-cache-dir --no-deps -r requirements-assets.txt
COPY . .
RUN pip install --no-cache-dir --no-deps -e .
CMD ["python", "app.py"]
