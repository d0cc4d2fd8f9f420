"""A small client of the Confluent Schema Registry REST API: the three calls tocsin needs.

Register a schema under a subject (its id back), fetch a writer schema by id, set a subject's
compatibility level. The answers of the first two never change for a given question (an id names one
schema forever), so they are cached for the life of the process: a pipeline asks once per schema, not
once per record.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request

from tocsin.serde.framing import SerdeError
from tocsin.telemetry.logging import get_logger
from tocsin.telemetry.metrics import counter

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
# The registry's error code for "no schema with this id" (Confluent's 40403; Apicurio's ccompat API too).
SCHEMA_NOT_FOUND = 40403

# Few by design (each answer is cached): a rate of these is a registry that is down or a cache that is not.
REQUESTS = counter(
    "tocsin_schema_registry_requests_total", "Requests to the schema registry", ["method", "outcome"]
)


class RegistryError(RuntimeError):
    """The registry could not be reached, or refused a request: one line saying which and why. Not a
    SerdeError: the record is not at fault, so it must not go to the dead-letter topic."""


class UnknownSchemaId(SerdeError):
    """A message names a schema id the registry does not know: the record is at fault (dead-lettered)."""


class RegistryClient:
    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._by_id: dict[int, str] = {}
        self._ids: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        try:
            answer = self._request(method, path, body)
        except UnknownSchemaId:
            REQUESTS.labels(method, "not-found").inc()
            raise
        except RegistryError:
            # Counted, not logged: the caller says it once (a command's one line, a job's failed bundle).
            REQUESTS.labels(method, "error").inc()
            raise
        REQUESTS.labels(method, "ok").inc()
        return answer

    def _request(self, method: str, path: str, body: dict | None) -> dict:
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            try:
                answer = json.loads(error.read() or b"{}")
            except ValueError:
                answer = {}
            if answer.get("error_code") == SCHEMA_NOT_FOUND:
                raise UnknownSchemaId(
                    f"schema registry {self.url} has no schema id {path.rsplit('/', 1)[-1]}"
                ) from None
            message = answer.get("message") or error.reason
            raise RegistryError(
                f"schema registry {self.url}: {method} {path}: HTTP {error.code}: {message}"
            ) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
            reason = getattr(error, "reason", None) or error
            raise RegistryError(f"schema registry {self.url} is unreachable: {reason}") from None
        except ValueError as error:  # an answer that is not JSON: not a schema registry at that URL
            raise RegistryError(f"schema registry {self.url}: {method} {path}: not JSON: {error}") from None

    @staticmethod
    def _subject_path(subject: str) -> str:
        return urllib.parse.quote(subject, safe="")

    def register(self, subject: str, schema_json: str) -> int:
        """The id of `schema_json` under `subject`, registering it if it is new there (idempotent)."""
        key = (subject, schema_json)
        with self._lock:
            if key in self._ids:
                return self._ids[key]
        path = f"/subjects/{self._subject_path(subject)}/versions"
        answer = self._call("POST", path, {"schema": schema_json})
        get_logger(stage="serde").info(
            "schema registered", registry=self.url, subject=subject, id=answer["id"]
        )
        with self._lock:
            self._ids[key] = answer["id"]
            self._by_id.setdefault(answer["id"], schema_json)
        return answer["id"]

    def schema(self, schema_id: int) -> str:
        """The schema (JSON text) the registry gave `schema_id`; UnknownSchemaId if it gave none."""
        with self._lock:
            if schema_id in self._by_id:
                return self._by_id[schema_id]
        text = self._call("GET", f"/schemas/ids/{schema_id}")["schema"]
        with self._lock:
            self._by_id[schema_id] = text
        return text

    def set_compatibility(self, subject: str, level: str) -> str:
        answer = self._call("PUT", f"/config/{self._subject_path(subject)}", {"compatibility": level})
        return answer.get("compatibility", level)

    def compatibility(self, subject: str) -> str:
        return self._call("GET", f"/config/{self._subject_path(subject)}")["compatibilityLevel"]


_clients: dict[str, RegistryClient] = {}


def registry_client(url: str) -> RegistryClient:
    """One client (and so one cache) per registry URL per process."""
    client = _clients.get(url)
    if client is None:
        client = _clients.setdefault(url, RegistryClient(url))
    return client
