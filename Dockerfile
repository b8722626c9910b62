# CAM Explorer in a container: CPU-only PyTorch, non-root, Streamlit on port 8501.
#   docker build -t cam-explorer .
#   docker run --rm -p 8501:8501 cam-explorer      # then open http://localhost:8501
#   docker run --rm -v "$PWD:/data" cam-explorer cam-explorer explain /data/photo.jpg --method gradcam --out /data/out
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# CPU wheels first, from PyTorch's CPU index; requirements.txt pins the same versions, so pip keeps them.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1
COPY requirements.txt .
RUN pip install -r requirements.txt

RUN useradd --create-home --uid 1000 app
COPY --chown=app:app . .
# The project itself (no dependencies: all pinned above): puts the `cam-explorer` command on the PATH.
RUN pip install --no-deps -e .
USER app

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://localhost:8501/_stcore/health', timeout=4).status != 200)"

CMD ["streamlit", "run", "serve.py", "--server.address", "0.0.0.0", "--server.port", "8501"]
