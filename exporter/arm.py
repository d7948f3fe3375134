"""The ARM client: the only code that talks HTTP to Azure.

One requests.Session with urllib3 retries (429 and 5xx, honouring Retry-After,
bounded in count and in time), bearer tokens from azure-identity, and nextLink
paging that never sends the token to any host but the configured ARM endpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from .models import VaultRef
from .ratelimit import RateLimiter
from .telemetry import Telemetry

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
TOKEN_REFRESH_MARGIN = 300  # seconds before expiry at which a cached token is renewed
# Resources_List (Microsoft.Resources), for the protectable resources: a stable version every cloud serves.
RESOURCES_API_VERSION = "2021-04-01"
MAX_PAGES = 500  # a runaway nextLink loop must end; 500 pages of 200 jobs is far past any lookback


class TokenCredential(Protocol):
    def get_token(self, *scopes: str) -> Any: ...


class ArmError(Exception):
    """A request to ARM failed; `code` is Azure's error code where it sent one."""

    def __init__(self, message: str, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class AuthError(ArmError):
    """No token could be had from the credential."""


class _RequestContext(threading.local):
    operation: str = ""
    subscription: str = ""
    deadline: float = 0.0


class _ArmRetry(Retry):
    """urllib3's Retry, plus: report every retried response, and stop when the time budget is spent."""

    def __init__(self, *args: Any, client: ArmClient | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client = client

    def new(self, **kwargs: Any) -> _ArmRetry:
        fresh: _ArmRetry = super().new(**kwargs)
        fresh.client = self.client
        return fresh

    def increment(self, method: str | None = None, url: str | None = None,
                  response: BaseHTTPResponse | None = None, error: Exception | None = None,
                  _pool: Any = None, _stacktrace: Any = None) -> _ArmRetry:
        if self.client is not None:
            self.client.observe_retry(response)
        fresh: _ArmRetry = super().increment(method, url, response, error, _pool, _stacktrace)
        wait = (fresh.get_retry_after(response) if response is not None else None) or fresh.get_backoff_time()
        if self.client is not None and time.monotonic() + wait > self.client.context.deadline:
            raise MaxRetryError(_pool, url or "", ResponseError(f"retry budget spent (next wait {wait:.0f}s)"))
        return fresh


class _BearerAuth(AuthBase):
    """The token as requests' auth rather than a header: with no auth given, requests reads ~/.netrc on every
    call (a file lookup per request) and would replace the token with a netrc entry's Basic credentials."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


class ArmClient:
    def __init__(self, base_url: str, credential: TokenCredential, scope: str, telemetry: Telemetry, *,
                 timeout: float = 20.0, user_agent: str = "azure-backup-exporter",
                 jobs_api_version: str = "2025-02-01", vaults_api_version: str = "2025-02-01",
                 dataprotection_api_version: str = "2025-07-01",
                 max_retries: int = 4, retry_budget: float = 60.0, pool_size: int = 8,
                 limiter: RateLimiter | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._origin = _origin(self.base_url)
        self._credential = credential
        self._scope = scope
        self._telemetry = telemetry
        self._timeout = timeout
        self._retry_budget = retry_budget
        self.jobs_api_version = jobs_api_version
        self.vaults_api_version = vaults_api_version
        self.dataprotection_api_version = dataprotection_api_version
        self.context = _RequestContext()
        self.limiter = limiter or RateLimiter(rate=0, burst=0)
        self._token_lock = threading.Lock()
        self._token: tuple[str, float] | None = None
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent
        retry = _ArmRetry(
            total=max_retries, connect=2, read=1, status=max_retries, backoff_factor=0.5, backoff_max=10,
            status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=True, raise_on_status=False, client=self,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    # --- authentication -------------------------------------------------------------------------

    def token(self) -> str:
        with self._token_lock:
            if self._token and self._token[1] - TOKEN_REFRESH_MARGIN > time.time():
                return self._token[0]
            try:
                access = self._credential.get_token(self._scope)
            except Exception as exc:  # azure-identity can raise a raw JSONDecodeError, among others
                raise AuthError(f"no token for {self._scope}: {type(exc).__name__}: {_one_line(exc)}") from exc
            self._token = (access.token, float(access.expires_on))
            return self._token[0]

    def forget_token(self) -> None:
        with self._token_lock:
            self._token = None

    # --- requests -------------------------------------------------------------------------------

    def observe_retry(self, response: BaseHTTPResponse | None) -> None:
        """Called by the retry policy for each response it absorbs, so none goes uncounted."""
        if response is None:
            self._telemetry.record_failure(self.context.operation)
            return
        self._telemetry.record_response(self.context.operation, response.status, dict(response.headers),
                                        self.context.subscription)
        if response.status == 429:
            self._pause_subscription(self.context.subscription, response.headers.get("Retry-After"))

    def _pause_subscription(self, subscription: str, retry_after: str | None) -> None:
        try:
            seconds = float(retry_after) if retry_after else 1.0
        except ValueError:
            seconds = 1.0
        self.limiter.pause(subscription, min(seconds, 60.0))

    def get_json(self, operation: str, url: str) -> Mapping[str, Any]:
        """GET an absolute ARM URL and return its JSON object; raises ArmError on any failure."""
        if _origin(url) != self._origin:
            raise ArmError(f"refusing to send the token to {_show(url)}: not the ARM endpoint {self.base_url}")
        auth, headers = _BearerAuth(self.token()), {"Accept": "application/json"}
        self.context.operation = operation
        self.context.subscription = _subscription_of(url)
        self.limiter.acquire(self.context.subscription)
        self.context.deadline = time.monotonic() + self._retry_budget
        started = time.perf_counter()
        try:
            response = self.session.get(url, headers=headers, auth=auth, timeout=self._timeout,
                                        allow_redirects=False)
        except requests.RequestException as exc:
            self._telemetry.record_failure(operation)
            raise ArmError(f"{operation}: {type(exc).__name__}: {_one_line(exc)}") from exc
        finally:
            self._telemetry.api_duration.labels(operation).observe(time.perf_counter() - started)
        self._telemetry.record_response(operation, response.status_code, dict(response.headers),
                                        self.context.subscription)
        if response.status_code == 429:
            self._pause_subscription(self.context.subscription, response.headers.get("Retry-After"))
        if response.status_code == 401:
            self.forget_token()
        if response.status_code != 200:
            raise _error_from(operation, response)
        try:
            body = response.json()
        except ValueError as exc:
            raise ArmError(f"{operation}: response is not JSON", response.status_code, "MalformedJson") from exc
        if not isinstance(body, Mapping):
            raise ArmError(f"{operation}: response is not a JSON object", response.status_code, "MalformedJson")
        return body

    def paged(self, operation: str, url: str) -> Iterator[Mapping[str, Any]]:
        """Every item of a pageable list, following nextLink on the ARM endpoint only."""
        for _ in range(MAX_PAGES):
            page = self.get_json(operation, url)
            items = page.get("value", [])
            if not isinstance(items, list):
                raise ArmError(f"{operation}: 'value' is not a list", 200, "MalformedJson")
            yield from (item for item in items if isinstance(item, Mapping))
            next_link = page.get("nextLink")
            if not next_link:
                return
            if not isinstance(next_link, str) or _origin(next_link) != self._origin:
                raise ArmError(f"{operation}: nextLink points off the ARM endpoint, to {_show(str(next_link))};"
                               " not followed, the token stays here", None, "OffHostNextLink")
            url = _with_api_version(next_link, _api_version_of(url))
        raise ArmError(f"{operation}: more than {MAX_PAGES} pages; stopped", None, "TooManyPages")

    def url(self, path: str, **params: str) -> str:
        return f"{self.base_url}{path}?{urlencode(params)}"

    # --- the Azure operations the exporter uses ------------------------------------------------

    def list_vaults(self, subscription_id: str) -> Iterator[Mapping[str, Any]]:
        path = f"/subscriptions/{subscription_id}/providers/Microsoft.RecoveryServices/vaults"
        return self.paged("vaults_list", self.url(path, **{"api-version": self.vaults_api_version}))

    def get_vault(self, vault: VaultRef) -> Mapping[str, Any]:
        return self.get_json("vaults_get", self.url(vault.path, **{"api-version": self.vaults_api_version}))

    def list_jobs(self, vault: VaultRef, odata_filter: str) -> Iterator[Mapping[str, Any]]:
        params = {"api-version": self.jobs_api_version, "$filter": odata_filter}
        return self.paged("jobs_list", self.url(f"{vault.path}/backupJobs", **params))

    def list_items(self, vault: VaultRef) -> Iterator[Mapping[str, Any]]:
        params = {"api-version": self.jobs_api_version}
        return self.paged("items_list", self.url(f"{vault.path}/backupProtectedItems", **params))

    def list_policies(self, vault: VaultRef) -> Iterator[Mapping[str, Any]]:
        params = {"api-version": self.jobs_api_version}
        return self.paged("policies_list", self.url(f"{vault.path}/backupPolicies", **params))

    def get_job(self, vault: VaultRef, job_id: str) -> Mapping[str, Any]:
        url = self.url(f"{vault.path}/backupJobs/{job_id}", **{"api-version": self.jobs_api_version})
        return self.get_json("jobs_get", url)

    def list_item_recovery_points(self, vault: VaultRef, container_name: str,
                                  item_name: str) -> Iterator[Mapping[str, Any]]:
        """A protected item's recovery points, unfiltered (the form Microsoft documents with its answer: the
        distinct points and, for a database, the log ranges)."""
        path = (f"{vault.path}/backupFabrics/Azure/protectionContainers/{quote(container_name, safe='')}"
                f"/protectedItems/{quote(item_name, safe='')}/recoveryPoints")
        return self.paged("item_recovery_points_list", self.url(path, **{"api-version": self.jobs_api_version}))

    # Backup vaults (Microsoft.DataProtection): one api-version for every operation; the job list takes no
    # $filter (every retained job, about 14 days, comes back each time).

    def list_backup_vaults(self, subscription_id: str) -> Iterator[Mapping[str, Any]]:
        path = f"/subscriptions/{subscription_id}/providers/Microsoft.DataProtection/backupVaults"
        return self.paged("backup_vaults_list", self.url(path, **self._dpp))

    def get_backup_vault(self, vault: VaultRef) -> Mapping[str, Any]:
        return self.get_json("backup_vaults_get", self.url(vault.path, **self._dpp))

    def list_backup_jobs(self, vault: VaultRef) -> Iterator[Mapping[str, Any]]:
        return self.paged("backup_jobs_list", self.url(f"{vault.path}/backupJobs", **self._dpp))

    def get_backup_job(self, vault: VaultRef, job_id: str) -> Mapping[str, Any]:
        return self.get_json("backup_jobs_get", self.url(f"{vault.path}/backupJobs/{job_id}", **self._dpp))

    def list_backup_instances(self, vault: VaultRef) -> Iterator[Mapping[str, Any]]:
        return self.paged("backup_instances_list", self.url(f"{vault.path}/backupInstances", **self._dpp))

    def list_backup_policies(self, vault: VaultRef) -> Iterator[Mapping[str, Any]]:
        return self.paged("backup_policies_list", self.url(f"{vault.path}/backupPolicies", **self._dpp))

    def list_recovery_points(self, vault: VaultRef, instance: str, odata_filter: str) -> Iterator[Mapping[str, Any]]:
        params = {**self._dpp, "$filter": odata_filter}
        url = self.url(f"{vault.path}/backupInstances/{quote(instance, safe='')}/recoveryPoints", **params)
        return self.paged("recovery_points_list", url)

    def list_resources(self, subscription_id: str, odata_filter: str) -> Iterator[Mapping[str, Any]]:
        """A subscription's resources of the filter's types, each with its createdTime (protectable.py)."""
        params = {"api-version": RESOURCES_API_VERSION, "$filter": odata_filter, "$expand": "createdTime"}
        return self.paged("resources_list", self.url(f"/subscriptions/{subscription_id}/resources", **params))

    @property
    def _dpp(self) -> dict[str, str]:
        return {"api-version": self.dataprotection_api_version}

    def close(self) -> None:
        self.session.close()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower())
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port)


def _subscription_of(url: str) -> str:
    """The subscription a request spends ARM's budget of ('' for tenant-level calls)."""
    parts = urlsplit(url).path.split("/")
    for index, part in enumerate(parts[:-1]):
        if part.lower() == "subscriptions":
            return parts[index + 1].lower()
    return ""


def _show(url: str) -> str:
    """Scheme, host and port of a URL, for logs (its query may carry tokens of Azure's)."""
    scheme, host, port = _origin(url)
    return f"{scheme}://{host}:{port}"


def _api_version_of(url: str) -> str:
    for pair in urlsplit(url).query.split("&"):
        if pair.lower().startswith("api-version="):
            return pair.split("=", 1)[1]
    return ""


def _with_api_version(url: str, api_version: str) -> str:
    """nextLink with our api-version (it carries an older one), every other byte kept (the $skiptoken is fragile)."""
    base, _, query = url.partition("?")
    pairs = [p for p in query.split("&") if p and not p.lower().startswith("api-version=")]
    return f"{base}?{'&'.join([f'api-version={api_version}', *pairs])}"


def _error_from(operation: str, response: requests.Response) -> ArmError:
    code, message = "", ""
    try:
        error = response.json().get("error", {})
        code, message = str(error.get("code", "")), str(error.get("message", ""))
    except (ValueError, AttributeError):
        pass
    text = f"{operation}: HTTP {response.status_code}"
    if code:
        text += f" {code}: {_one_line(message)}"
    return ArmError(text, response.status_code, code)


def _one_line(value: object) -> str:
    text = " ".join(str(value).split())
    return text[:300]
