# The production image: the controller (`nublado serve`, its default command),
# the daemon and the lab-side tools (`nublado inithome|landingpage|startup|purger`)
# are all the one `nublado` command, installed in a virtual environment at
# /opt/nublado without the sandbox, Google or dev extras.
#
# It runs unchanged under Phalanx's nublado chart (README, "The container image"):
# no command or args needed, configuration at /etc/nublado/config.yaml, port
# 8080, uid/gid 1000, read-only root filesystem. tests/deploy/test_image.py
# starts the built wheel exactly as this file does.
#
#   docker build -t ghcr.io/lsst-sqre/nublado:$(git describe --tags) \
#     --build-arg NUBLADO_IMAGE_TAG=$(git describe --tags) .
#
# The base is pinned to an exact Python release; pin its digest too
# (python:3.11.14-slim-bookworm@sha256:...) where the registry is reachable.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the wheel is built from (pyproject.toml's hatch targets): the package,
# the templates and the examples it installs, and the README its metadata names.
COPY pyproject.toml README.md LICENSE ./
COPY nublado nublado
COPY templates templates
COPY examples examples
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/nublado \
    && /opt/nublado/bin/pip install /wheels/nublado-*.whl \
    && /opt/nublado/bin/pip check \
    && /opt/nublado/bin/pip uninstall --yes pip \
    && /opt/nublado/bin/nublado --version

FROM ${PYTHON_IMAGE}
# The image names itself: lab init containers (inithome, landingpage, startup),
# file servers and fsadmin run NUBLADO_CONTROLLER_REPOSITORY:TAG, which Phalanx
# does not set. Build with the repository and tag the image is pushed as.
ARG NUBLADO_IMAGE_REPOSITORY=ghcr.io/lsst-sqre/nublado
ARG NUBLADO_IMAGE_TAG=11.0.0
ENV NUBLADO_CONTROLLER_REPOSITORY=${NUBLADO_IMAGE_REPOSITORY} \
    NUBLADO_CONTROLLER_TAG=${NUBLADO_IMAGE_TAG} \
    PATH=/opt/nublado/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Phalanx's securityContext: runAsUser 1000, runAsGroup 1000, runAsNonRoot.
RUN groupadd --gid 1000 nublado \
    && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin nublado
# Compiled at install time in the build stage: nothing is written at run time.
COPY --from=build /opt/nublado /opt/nublado
USER 1000:1000
WORKDIR /
EXPOSE 8080
ENTRYPOINT ["nublado"]
CMD ["serve", "--config", "/etc/nublado/config.yaml"]
