"""When and how vaults are refreshed: on scrape, bounded by the scrape's deadline.

Every vault whose data is older than REFRESH_INTERVAL (a Backup vault: BACKUP_VAULT_REFRESH_INTERVAL) is
refreshed in a thread pool of CONCURRENCY workers. Concurrent scrapes share in-flight refreshes; a scrape that
runs out of time is served the last data while the refresh finishes in the background.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .arm import ArmClient, ArmError, AuthError
from .backup_vault import BackupVault
from .dataprotection import parse_backup_vault
from .models import BACKUP, DiscoveredVault, VaultRef, parse_vault
from .protectable import ResourceInventory, resource_filter
from .recovery_services import RecoveryServicesVault
from .settings import Settings
from .telemetry import Telemetry
from .vault import ListedJobs, Vault, VaultSnapshot

log = logging.getLogger(__name__)
# ARM's answers for a subscription that has not registered Microsoft.DataProtection (it has no Backup vaults).
UNREGISTERED_PROVIDER_CODES = frozenset({"MissingSubscriptionRegistration", "SubscriptionNotRegistered"})


@dataclass
class Discovery:
    """Vaults of one kind found in one subscription; kept when a later listing of that kind fails.

    Each kind is listed on its own: a role may read one provider's vaults and not the other's, and a cloud may
    serve one provider's api-version and not the other's, so one kind's failure must not hide the other kind."""

    subscription_id: str
    kind: str  # models.RECOVERY_SERVICES or models.BACKUP, the vault_type label
    vaults: dict[str, tuple[VaultRef, str]]
    success: bool | None = None
    last_run: float | None = None

    @property
    def key(self) -> str:
        return f"discovery:{self.subscription_id}:{self.kind}"

    @property
    def log_fields(self) -> str:
        return f"subscription={self.subscription_id} vault_type={self.kind}"


class Refresher:
    def __init__(self, settings: Settings, client: ArmClient, telemetry: Telemetry,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings
        self.clock = clock  # wall-clock for job windows; tests pin it
        self.client = client
        self.telemetry = telemetry
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="refresh")
        # Discovery still lists every vault; a replica keeps only those of its shard.
        self._configured = {ref.key: ref for ref in settings.vault_refs if settings.owns(ref)}
        self._states = {key: self._new_state(ref) for key, ref in self._configured.items()}
        self._discoveries = {(sub, kind): Discovery(sub, kind, {})
                             for sub in settings.subscriptions for kind in settings.vault_types}
        self._inventories = {sub: ResourceInventory(sub) for sub in settings.subscriptions
                             if settings.lists_resources}
        self._inflight: dict[str, Future[None]] = {}
        self._last_attempt: dict[str, float] = {}
        self._failing: set[str] = set()
        self.auth_ok: bool | None = None
        self._ready = False
        self.on_refreshed: Callable[[VaultSnapshot], None] | None = None  # e.g. pre-render the vault

    def _new_state(self, ref: VaultRef, location: str = "") -> Vault:
        if ref.kind == BACKUP:
            return BackupVault(ref, self.settings.lookback, location, self.clock, self.settings.items_refresh_interval)
        return RecoveryServicesVault(ref, self.settings.lookback, location, self.clock,
                                     self.settings.items_refresh_interval,
                                     points_interval=self.settings.database_recovery_points_interval)

    # --- what the collector reads ----------------------------------------------------------------

    def snapshots(self) -> list[VaultSnapshot]:
        with self._lock:
            states = list(self._states.values())
        return sorted((s.snapshot for s in states), key=lambda snap: snap.ref.key)

    def discoveries(self) -> list[Discovery]:
        return [self._discoveries[key] for key in sorted(self._discoveries)]

    def inventories(self) -> list[ResourceInventory]:
        """Each subscription's protectable resources (none unless this replica lists them)."""
        return [self._inventories[sub] for sub in sorted(self._inventories)]

    @property
    def up(self) -> bool:
        return bool(self.auth_ok) and any(snap.success for snap in self.snapshots())

    # --- scheduling ------------------------------------------------------------------------------

    def refresh_due(self, deadline: float) -> None:
        """Refresh what is due and wait for it until `deadline` (time.monotonic())."""
        self._wait([*self._submit_due_discoveries(), *self._submit_due_inventories()], deadline)
        self._wait(self._submit_due_vaults(), deadline)

    def _wait(self, futures: Iterable[Future[None]], deadline: float) -> None:
        pending = list(futures)
        if pending:
            wait(pending, timeout=max(0.0, deadline - time.monotonic()))

    def _due(self, key: str, interval: float) -> bool:
        last = self._last_attempt.get(key)
        return key not in self._inflight and (last is None or time.monotonic() - last >= interval)

    def _submit(self, key: str, task: object, *args: object) -> None:
        self._last_attempt[key] = time.monotonic()
        future: Future[None] = self._executor.submit(task, *args)  # type: ignore[arg-type]
        self._inflight[key] = future
        future.add_done_callback(lambda _: self._done(key))

    def _submit_vault(self, state: Vault) -> None:
        """A vault's refresh is two tasks: its lists, then its details. The details task is queued when
        the lists are done, behind every list already queued, so at 20,000 items every job's status
        is out after all the lists (a minute) rather than after all the details (minutes)."""
        key = state.ref.key
        self._last_attempt[key] = time.monotonic()
        refreshed: Future[None] = Future()  # resolved when the whole refresh ends, well or not
        self._inflight[key] = refreshed
        refreshed.add_done_callback(lambda _: self._done(key))
        self._queue(refreshed, self._list_vault, state, refreshed)

    def _queue(self, refreshed: Future[None], task: Callable[..., None], *args: object) -> None:
        try:
            self._executor.submit(task, *args)
        except RuntimeError:  # shutting down
            refreshed.set_result(None)

    def _done(self, key: str) -> None:
        with self._lock:
            self._inflight.pop(key, None)

    def _submit_due_discoveries(self) -> list[Future[None]]:
        interval = self.settings.discovery_interval.total_seconds()
        with self._lock:
            for discovery in self._discoveries.values():
                if self._due(discovery.key, interval):
                    self._submit(discovery.key, self._discover, discovery)
            return [f for k, f in self._inflight.items() if k.startswith("discovery:")]

    def _submit_due_vaults(self) -> list[Future[None]]:
        with self._lock:
            for state in _interleaved_by_subscription(self._states.values()):
                if self._due(state.ref.key, self._refresh_interval(state.ref)):
                    self._submit_vault(state)
            return [f for k, f in self._inflight.items() if not k.startswith(("discovery:", "resources:"))]

    def _submit_due_inventories(self) -> list[Future[None]]:
        interval = self.settings.coverage_interval.total_seconds()
        with self._lock:
            for inventory in self._inventories.values():
                if self._due(inventory.key, interval):
                    self._submit(inventory.key, self._list_resources, inventory)
            return [f for k, f in self._inflight.items() if k.startswith("resources:")]

    def _refresh_interval(self, ref: VaultRef) -> float:
        """A Backup vault's list re-reads every retained job (no filter), so it has its own, longer interval."""
        interval = self.settings.backup_vault_refresh_interval if ref.kind == BACKUP else self.settings.refresh_interval
        return interval.total_seconds()

    def ready(self) -> bool:
        """True once every subscription was listed and every vault refreshed once, well or not."""
        if not self._ready:
            discovered = all(d.success is not None for d in self._discoveries.values())
            self._ready = discovered and all(s.success is not None for s in self.snapshots())
        return self._ready

    # --- the work --------------------------------------------------------------------------------

    def _list_vault(self, state: Vault, refreshed: Future[None]) -> None:
        started = time.perf_counter()
        try:
            listed = state.list_jobs(self.client, self.telemetry.parse_error)
        except Exception as exc:  # noqa: BLE001 - logged in _refresh_failed; one vault never stops the others
            self._refresh_failed(state, exc, time.perf_counter() - started)
            refreshed.set_result(None)
            return
        self.auth_ok = True
        if self.on_refreshed is not None:
            self.on_refreshed(state.snapshot)  # pre-render the jobs' status, so no scrape waits for it
        self._queue(refreshed, self._detail_vault, state, listed, refreshed)

    def _detail_vault(self, state: Vault, listed: ListedJobs, refreshed: Future[None]) -> None:
        started = time.perf_counter()
        try:
            state.fetch_details(self.client, self.telemetry.parse_error, listed)
        except Exception as exc:  # noqa: BLE001 - logged in _refresh_failed; one vault never stops the others
            self._refresh_failed(state, exc, listed.seconds + time.perf_counter() - started)
        else:
            self._note_recovery(state.ref.key, f"{state.ref.log_fields} refreshed again")
            if self.on_refreshed is not None:
                self.on_refreshed(state.snapshot)
        finally:
            refreshed.set_result(None)

    def _refresh_failed(self, state: Vault, exc: Exception, duration: float) -> None:
        if isinstance(exc, AuthError):
            state.mark_failed(duration, exc)
            self._auth_failed(exc)
        elif isinstance(exc, ArmError):  # the vault marked itself failed
            self.auth_ok = True
            self._note_failure(state.ref.key, f"{state.ref.log_fields} refresh failed, keeping its last data: {exc}")
        else:  # a bug must not kill the worker or hide the other vaults
            state.mark_failed(duration, exc)
            log.error("%s refresh failed unexpectedly", state.ref.log_fields, exc_info=exc)

    def _discover(self, discovery: Discovery) -> None:
        """List one kind of vault in one subscription; a failure keeps that kind's last list and nothing else."""
        try:
            found = {vault.ref.key: (vault.ref, vault.location) for vault in self._discovered_vaults(discovery)}
        except AuthError as exc:
            discovery.success = False
            self._auth_failed(exc)
        except ArmError as exc:
            discovery.success = False
            self._note_failure(discovery.key, f"{discovery.log_fields} vault discovery failed, keeping the last "
                                              f"list: {exc}")
        else:
            self.auth_ok = True
            discovery.vaults, discovery.success = found, True
            self._note_recovery(discovery.key, f"{discovery.log_fields} vault discovery works again")
            self._apply_discoveries()
        finally:
            discovery.last_run = time.time()

    def _list_resources(self, inventory: ResourceInventory) -> None:
        """List one subscription's protectable resources. A failure (a 403: the role lacks
        Microsoft.Resources/subscriptions/resources/read) keeps the last list, warns once and touches no vault."""
        try:
            inventory.replace(self.client.list_resources(inventory.subscription_id, resource_filter()),
                              self.telemetry.parse_error)
        except ArmError as exc:  # AuthError too: the vaults report that one themselves
            inventory.success = False
            self._note_failure(inventory.key, f"{inventory.log_fields} listing the protectable resources failed, "
                                              f"keeping the last list: {exc}")
        else:
            self._note_recovery(inventory.key, f"{inventory.log_fields} listing the protectable resources works again")
        finally:
            inventory.last_run = time.time()

    def _discovered_vaults(self, discovery: Discovery) -> list[DiscoveredVault]:
        on_error = self.telemetry.parse_error
        if discovery.kind == BACKUP:
            resources = self._backup_vault_resources(discovery)
            return [v for v in (parse_backup_vault(r, on_error) for r in resources) if v]
        resources = list(self.client.list_vaults(discovery.subscription_id))
        return [v for v in (parse_vault(r, on_error) for r in resources) if v]

    def _backup_vault_resources(self, discovery: Discovery) -> list[Mapping[str, Any]]:
        """A subscription that never registered the Backup vaults' resource provider has none: ARM answers that
        with an error, which is not a failure here. Any other error is (a 403 may be a missing role)."""
        try:
            return list(self.client.list_backup_vaults(discovery.subscription_id))
        except ArmError as exc:
            if exc.code not in UNREGISTERED_PROVIDER_CODES:
                raise
            log.debug("%s: none, the provider is not registered: %s", discovery.log_fields, exc)
            return []

    def _apply_discoveries(self) -> None:
        """Watch the union of configured and discovered vaults, each once."""
        with self._lock:
            wanted: dict[str, tuple[VaultRef, str]] = {k: (r, "") for k, r in self._configured.items()}
            for discovery in self._discoveries.values():
                for key, found in discovery.vaults.items():
                    if self.settings.owns(found[0]):
                        wanted.setdefault(key, found)
            for key in set(self._states) - set(wanted):
                log.info("%s no longer found; its series are dropped", self._states[key].ref.log_fields)
                del self._states[key]
            for key, (ref, location) in wanted.items():
                if key not in self._states:
                    self._states[key] = self._new_state(ref, location)
                elif location and not self._states[key].location:
                    self._states[key].location = location

    # --- logging without floods: state changes at WARNING/INFO, repeats at DEBUG ------------------

    def _auth_failed(self, exc: AuthError) -> None:
        was_ok = self.auth_ok
        self.auth_ok = False
        level = logging.ERROR if was_ok is not False else logging.DEBUG
        log.log(level, "authentication failed, azure_backup_up is 0: %s", exc)

    def _note_failure(self, key: str, message: str) -> None:
        level = logging.DEBUG if key in self._failing else logging.WARNING
        self._failing.add(key)
        log.log(level, message)

    def _note_recovery(self, key: str, message: str) -> None:
        if key in self._failing:
            self._failing.discard(key)
            log.info(message)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _interleaved_by_subscription(states: Iterable[Vault]) -> list[Vault]:
    """One vault of each subscription in turn: ARM's budget is per subscription, so spread the workers."""
    queues: dict[str, list[Vault]] = {}
    for state in sorted(states, key=lambda s: s.ref.key):
        queues.setdefault(state.ref.subscription_id, []).append(state)
    ordered: list[Vault] = []
    while queues:
        for sub in list(queues):
            ordered.append(queues[sub].pop(0))
            if not queues[sub]:
                del queues[sub]
    return ordered
