# Kneo: one image for every role. The entrypoint is `kneo`, so the command picks the role:
#   service serve --host 0.0.0.0 (the default) | worker | controller run --repo ... | db upgrade
# Build: docker build -t kneo:local .      Reference: docs/deployment.md
# With OpenTelemetry: docker build --build-arg KNEO_EXTRAS=postgres,otel -t kneo:local-otel .
# With Claude and Gemini: --build-arg KNEO_EXTRAS=postgres,anthropic,google (docs/providers.md)
ARG PYTHON_IMAGE=python:3.12-slim

# ---------------------------------------------------------------- runtime requirements
# Only the runtime dependencies (and KNEO_EXTRAS' optional ones), from pyproject.toml: a change
# to anything else in it (dev tools, linters) leaves the file, and so the dependency layer
# below, as it was. psycopg's C implementation is built against Debian's libpq here instead of
# the `binary` wheel the `postgres` extra installs: the same code, without the wheel's own
# copies of libpq, OpenSSL, Kerberos and LDAP (9 MB); the system's libpq gets Debian's
# security updates, and the runtime stage installs it (libpq5).
FROM ${PYTHON_IMAGE} AS requirements
ARG KNEO_EXTRAS=postgres
COPY pyproject.toml /
RUN KNEO_EXTRAS="${KNEO_EXTRAS}" python -c "import os, tomllib; \
p = tomllib.load(open('/pyproject.toml', 'rb'))['project']; \
extras = [e.strip() for e in os.environ['KNEO_EXTRAS'].split(',') if e.strip()]; \
deps = p['dependencies'] + [d for e in extras for d in p['optional-dependencies'][e]]; \
print('\n'.join(d.replace('psycopg[binary]', 'psycopg[c]') for d in deps))" \
  > /requirements.txt

# ---------------------------------------------------------------- build: wheels + a venv
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# The build's tools stay in this stage: binutils strips the compiled extensions, gcc and
# libpq's headers build psycopg's C implementation.
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils gcc libc6-dev libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN python -m venv --without-pip /opt/kneo
# Dependencies first: this layer is reused until the runtime requirements change, so a code
# change rebuilds only the small layers below it. Then what no role runs goes: debug symbols
# of the compiled extensions (~14 MB), the C and Cython sources they were compiled from
# (psycopg's 7 MB), the packages' own test suites and testing helpers, and type stubs (.pyi,
# read by type checkers only).
COPY --from=requirements /requirements.txt ./
# Out of site-packages too: SQLAlchemy's dialects for databases Kneo never opens (loaded by
# name, only when a URL names them) and pydantic's v1 compatibility package (nothing imports
# it): 1.3 MB, which paid for the triggers' CloudEvents and Standard Webhooks libraries.
RUN pip wheel --wheel-dir /wheels -r requirements.txt \
 && pip --python /opt/kneo/bin/python install --no-index --find-links /wheels -r requirements.txt \
 && find /opt/kneo -name '*.so*' -type f -exec strip --strip-unneeded {} + \
 && cd /opt/kneo/lib/python3*/site-packages \
 && find . -mindepth 2 -maxdepth 2 -type d \( -name tests -o -name test \) -prune \
      -exec rm -rf {} + \
 && rm -rf sqlalchemy/testing alembic/testing mako/testing \
 && rm -rf sqlalchemy/dialects/mssql sqlalchemy/dialects/mysql sqlalchemy/dialects/oracle \
      pydantic/v1 \
 && find . -type f \( -name '*.pyi' -o -name '*.c' -o -name '*.pyx' -o -name '*.pxd' \) \
      -delete
COPY pyproject.toml README.md LICENSE ./
COPY kneo ./kneo
# No .git in the build context: the version setuptools-scm would read from the tag is given
# (the release workflow passes the tag; a local build says 0.0.0+unknown).
ARG VERSION=0.0.0+unknown
RUN SETUPTOOLS_SCM_PRETEND_VERSION="${VERSION}" pip wheel --no-deps --wheel-dir /wheels . \
 && pip --python /opt/kneo/bin/python install --no-index --no-deps /wheels/kneo_platform-*.whl \
 && find /opt/kneo -depth -type d -name __pycache__ -exec rm -rf {} +

# ---------------------------------------------------------------- runtime: no compilers
FROM ${PYTHON_IMAGE}
# git: the controller reads repositories through it (init, fetch, rev-parse, ls-tree,
# cat-file: git's own C programs, and git-remote-http for HTTPS). It is installed from its
# package without the Perl it depends on for commands Kneo never runs (send-email, svn,
# ...): installing Perl also upgraded the base's perl-base whenever the archive had a
# newer one (7 MB of copied files), and Perl itself was 47 MB. An image built FROM this one
# that runs apt-get is told to `apt-get -f install`, which brings Perl back.
# Of git's own files go: the programs for serving, pushing over HTTP, mail and scalar (~15 MB,
# each a copy of git's code), what only Perl or an interactive shell reads, and the second
# copy of the git binary (a hard link instead).
# libpq5: Debian's libpq, which psycopg's C implementation (built above) links.
# safe.directory: a repository mounted into the container belongs to the host's user.
RUN printf 'path-exclude=/usr/share/doc/*\npath-exclude=/usr/share/man/*\npath-exclude=/usr/share/locale/*\n' \
      > /etc/dpkg/dpkg.cfg.d/kneo-nodoc \
 && apt-get update \
 && cd /tmp \
 && apt-get download git \
 && apt-get install -y --no-install-recommends --no-upgrade libpq5 \
      $(dpkg-deb -f git_*.deb Depends | tr ',' '\n' | sed -e 's/[(|].*//' -e 's/ //g' \
        | grep -vx -e perl -e liberror-perl -e git-man) \
 && dpkg --ignore-depends=perl,liberror-perl,git-man -i git_*.deb \
 && rm git_*.deb \
 && cd /usr/lib/git-core \
 && rm -f git-http-push git-http-fetch git-http-backend git-imap-send git-daemon git-shell \
      scalar /usr/bin/scalar /usr/bin/git-shell \
 && if cmp -s git /usr/bin/git; then ln -f /usr/bin/git git; fi \
 && rm -rf /usr/share/gitweb /usr/share/perl5 /usr/share/git-core/contrib \
      /usr/share/bash-completion \
 && cd / \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old \
      /var/log/apt /var/log/dpkg.log /var/lib/dpkg/*-old \
 && git config --system --add safe.directory '*' \
 && useradd --system --uid 10001 --user-group --home-dir /home/kneo --create-home \
      --shell /usr/sbin/nologin kneo \
 && mkdir -p /app/.kneo && chown kneo:kneo /app/.kneo
COPY --from=build /opt/kneo /opt/kneo
# Kneo's license where scanners and people look for it (the wheel's dist-info has it too)
COPY LICENSE /licenses/kneo/LICENSE
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
# The revision's ENV follows its ARG: an ENV above the ARG reads an empty ${REVISION}, and
# kneo_build_info said revision="unknown" (tests/deploy/test_container_journey.py checks it).
ARG VERSION=0.0.0+unknown
ARG REVISION=unknown
ARG CREATED=unknown
ENV KNEO_SERV_BUILD_REVISION=${REVISION}
LABEL org.opencontainers.image.title="kneo" \
      org.opencontainers.image.description="Kneo: AI agent workflows under GitOps control with durable human approval" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/kneo-agent/kneo-serv" \
      org.opencontainers.image.documentation="https://github.com/kneo-agent/kneo-serv/blob/main/docs/deployment.md" \
      org.opencontainers.image.base.name="docker.io/library/python:3.12-slim"
