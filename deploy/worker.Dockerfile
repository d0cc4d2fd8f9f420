# tocsin's SDK worker image for distributed runners (Flink, Dataflow): Beam's own Python 3.11 SDK image at
# the apache-beam version pinned in pyproject.toml, with tocsin installed into its Python. The entrypoint
# stays Beam's boot (/opt/apache/beam/boot), which the runner starts with the Fn API endpoints of a job,
# or with --worker_pool as a pool of workers beside a Flink TaskManager (EXTERNAL environment).
#   docker build -f deploy/worker.Dockerfile -t REGISTRY/tocsin-worker:0.1.0 .
# deploy/runners/flink.args and dataflow.args name this image. The launcher (`tocsin pipeline ...`) runs
# outside it, with the same tocsin version. Not built in tocsin's CI (it has no docker engine).
FROM apache/beam_python3.11_sdk:2.77.0

WORKDIR /opt/tocsin
COPY pyproject.toml README.md ./
COPY tocsin tocsin
COPY pipelines pipelines
COPY connectors connectors
COPY router router
COPY schemas schemas
COPY sample_data sample_data
# apache-beam==2.77.0 is the image's own, so pip keeps it; tocsin and its other dependencies are added.
RUN pip install --no-cache-dir . \
    && python -c "import apache_beam, tocsin.pipelines.indicators.job, tocsin.pipelines.rules.job; \
assert apache_beam.__version__ == '2.77.0', apache_beam.__version__"

ENTRYPOINT ["/opt/apache/beam/boot"]
