# The production image: the controller, the daemon and the lab-side tools
# (inithome, landingpage, startup, purger) are all the `nublado` command.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY nublado nublado
COPY templates templates
COPY examples examples
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 1000 --no-create-home nublado
USER 1000
ENTRYPOINT ["nublado"]
CMD ["--help"]
