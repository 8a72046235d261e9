# Kneo: one image for every role. The entrypoint is `kneo`, so the command picks the role:
#   service serve --host 0.0.0.0 (the default) | worker | controller run --repo ... | db upgrade
# Build: docker build -t kneo:local .      Reference: docs/deployment.md
# With OpenTelemetry: docker build --build-arg KNEO_EXTRAS=postgres,otel -t kneo:local-otel .
# With Claude and Gemini: --build-arg KNEO_EXTRAS=postgres,anthropic,google (docs/providers.md)
ARG PYTHON_IMAGE=python:3.12-slim

# ---------------------------------------------------------------- runtime requirements
# Only the runtime dependencies (and KNEO_EXTRAS' optional ones), from pyproject.toml: a change
# to anything else in it (dev tools, linters) leaves the file, and so the dependency layer
# below, as it was.
FROM ${PYTHON_IMAGE} AS requirements
ARG KNEO_EXTRAS=postgres
COPY pyproject.toml /
RUN KNEO_EXTRAS="${KNEO_EXTRAS}" python -c "import os, tomllib; \
p = tomllib.load(open('/pyproject.toml', 'rb'))['project']; \
extras = [e.strip() for e in os.environ['KNEO_EXTRAS'].split(',') if e.strip()]; \
print('\n'.join(p['dependencies'] + [d for e in extras for d in p['optional-dependencies'][e]]))" \
  > /requirements.txt

# ---------------------------------------------------------------- build: wheels + a venv
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
RUN python -m venv --without-pip /opt/kneo
# Dependencies first: this layer is reused until the runtime requirements change, so a code
# change rebuilds only the small layers below it.
COPY --from=requirements /requirements.txt ./
RUN pip wheel --wheel-dir /wheels -r requirements.txt \
 && pip --python /opt/kneo/bin/python install --no-index --find-links /wheels -r requirements.txt
# Strip debug symbols from the compiled extensions (~14 MB); binutils stays in this stage.
RUN apt-get update && apt-get install -y --no-install-recommends binutils \
 && find /opt/kneo -name '*.so*' -type f -exec strip --strip-unneeded {} + \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY kneo ./kneo
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip --python /opt/kneo/bin/python install --no-index --no-deps /wheels/kneo_serv-*.whl

# ---------------------------------------------------------------- runtime: no compilers
FROM ${PYTHON_IMAGE}
# git: the controller reads repositories through it (init, fetch, rev-parse, ls-tree,
# cat-file: git's own C programs). Perl, which Debian's git package pulls in for scripts Kneo
# never runs (send-email, svn, ...), is removed again: ~47 MB. An image built FROM this one
# that runs apt-get gets it back with `apt-get -f install`.
# safe.directory: a repository mounted into the container belongs to the host's user.
RUN printf 'path-exclude=/usr/share/doc/*\npath-exclude=/usr/share/man/*\npath-exclude=/usr/share/locale/*\n' \
      > /etc/dpkg/dpkg.cfg.d/kneo-nodoc \
 && apt-get update \
 && apt-get install -y --no-install-recommends git \
 && dpkg --purge --force-depends git-man liberror-perl perl \
      $(dpkg-query -W -f '${Package}\n' 'perl-modules-*' 'libperl5*' 'libgdbm*' 2>/dev/null) \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old \
      /var/log/apt /var/log/dpkg.log \
 && git config --system --add safe.directory '*' \
 && useradd --system --uid 10001 --user-group --home-dir /home/kneo --create-home \
      --shell /usr/sbin/nologin kneo \
 && mkdir -p /app/.kneo && chown kneo:kneo /app/.kneo
COPY --from=build /opt/kneo /opt/kneo
WORKDIR /app
# The example project (specs, functions, project config) the tutorial and the smoke use;
# build FROM this image and COPY your own project over it for a real deployment.
COPY .kneo/config.yaml .kneo/config.yaml
COPY examples examples
# Python compiles what it imports on every start when it cannot write its cache (a non-root
# user, a read-only root filesystem); the slim base ships the standard library without
# bytecode. Importing every role's modules once here, as root, writes exactly that bytecode.
RUN /opt/kneo/bin/python -c "\
import kneo.cli.main, kneo.service.app, kneo.worker, kneo.controller.runner, kneo.store.migrate"
ENV PATH=/opt/kneo/bin:$PATH \
    KNEO_SERV_BUILD_REVISION=${REVISION} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/kneo
USER 10001:10001
EXPOSE 8000
# Liveness only (the process serves); route traffic on /readyz. Worker and controller
# containers serve no API: the Compose file turns this off for them, and the manifests probe
# their metrics port (KNEO_SERV_METRICS_PORT) instead, which answers /livez and /readyz.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/livez', timeout=2)"]
ENTRYPOINT ["kneo"]
CMD ["service", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-controller"]
# The per-build values last: a build argument is part of the cache key of every RUN after it,
# so declared at the top of this stage they rebuilt the apt-get layer on every commit.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="kneo" \
      org.opencontainers.image.description="Kneo: AI agent workflows under GitOps control with durable human approval" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/kneo-agent/kneo-serv" \
      org.opencontainers.image.documentation="https://github.com/kneo-agent/kneo-serv/blob/main/docs/deployment.md" \
      org.opencontainers.image.base.name="docker.io/library/python:3.12-slim"
