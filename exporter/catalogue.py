"""The metric catalogue: every family the exporter emits, in one place.

The collector, the README's metric table and the checks on alert rules and
dashboards all read this table, so the public contract lives in exactly one spot.
"""

from __future__ import annotations

from dataclasses import dataclass

# A vault is (subscription_id, resource_group, vault, vault_type): vault_type is recovery_services
# (Microsoft.RecoveryServices/vaults) or backup (Microsoft.DataProtection/backupVaults), two resource types
# whose vaults may share a name in one resource group (models.VaultRef.labels gives the values).
VAULT_LABELS: tuple[str, ...] = ("subscription_id", "resource_group", "vault", "vault_type")
# An item is (backup_management_type, container, backup_item) within its vault: friendly names repeat across
# containers (master on every SQL instance, one share name in two storage accounts). See the README's table.
ITEM_LABELS: tuple[str, ...] = (*VAULT_LABELS, "backup_management_type", "container", "backup_item")
JOB_LABELS: tuple[str, ...] = (*ITEM_LABELS, "operation")
# A protectable resource (issue 20, point 1): resource_id is its ARM ID lower-cased, the key the rules join on.
RESOURCE_LABELS: tuple[str, ...] = ("subscription_id", "resource_group", "resource_type", "resource", "resource_id")

CACHE_NOTE = " Cached: may be up to REFRESH_INTERVAL old."
# The one-hot families emit only the current value's series unless STATE_SERIES is `all`.
ONE_HOT_NOTE = "; with STATE_SERIES=all also 0 for the other known values."
ITEMS_CACHE_NOTE = " From the protected-items list, refreshed every ITEMS_REFRESH_INTERVAL (default 5m)."


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: str  # gauge, counter, histogram
    labels: tuple[str, ...]
    help: str
    # The switch that turns the family on or off (`--collector.<name>`); "" for families always on.
    collector: str = ""

    def sample_names(self) -> tuple[str, ...]:
        """The sample names this family renders in the text exposition."""
        if self.type == "counter":
            return (f"{self.name}_total",) if not self.name.endswith("_total") else (self.name,)
        if self.type == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


def _spec(name: str, type_: str, labels: tuple[str, ...], help_: str, collector: str = "") -> MetricSpec:
    return MetricSpec(name, type_, labels, help_, collector)


JOB_LAST_STATUS = _spec(
    "azure_backup_job_last_status", "gauge", (*JOB_LABELS, "status"),
    "Status of the latest job (by start time) of each backup item and operation: "
    "1 for the current status" + ONE_HOT_NOTE + CACHE_NOTE)
JOB_LAST_INFO = _spec(
    "azure_backup_job_last_info", "gauge",
    (*JOB_LABELS, "job_id", "job_type", "container_name", "workload_type"),
    "Identity of the latest job of each backup item and operation; always 1." + CACHE_NOTE, "job-info")
JOB_LAST_ERROR = _spec(
    "azure_backup_job_last_error_info", "gauge", (*JOB_LABELS, "job_id", "error_code", "error_title"),
    "Why the latest job of each backup item and operation failed, while that job is Failed (no series "
    "otherwise); always 1. error_code is Azure's code (Recovery Services: the number, e.g. 400006; Backup vaults: "
    "the code string), error_title its symbolic name (e.g. UserErrorVmNotFound; Backup vaults: the code again); "
    "both empty until the job's errorDetails are read, and for jobs that carry no code (MARS, DPM)." + CACHE_NOTE)
JOB_LAST_START = _spec(
    "azure_backup_job_last_start_timestamp_seconds", "gauge", JOB_LABELS,
    "Start time of the latest job of each backup item and operation, in Unix seconds." + CACHE_NOTE)
JOB_LAST_END = _spec(
    "azure_backup_job_last_end_timestamp_seconds", "gauge", JOB_LABELS,
    "End time of the latest job of each backup item and operation, in Unix seconds; "
    "absent while the job runs." + CACHE_NOTE)
JOB_LAST_DURATION = _spec(
    "azure_backup_job_last_duration_seconds", "gauge", JOB_LABELS,
    "Duration Azure reports for the latest job (elapsed so far while it runs)." + CACHE_NOTE)
JOB_LAST_SIZE = _spec(
    "azure_backup_job_last_size_bytes", "gauge", JOB_LABELS,
    "Backup Size of the latest job (database backups: its Data Transferred (in MB)), where Azure reports it."
    + CACHE_NOTE)
JOB_LAST_TASK_STATUS = _spec(
    "azure_backup_job_last_task_status", "gauge", (*JOB_LABELS, "task", "status"),
    "Tasks of the latest job with their current status; always 1." + CACHE_NOTE, "tasks")
JOB_CONSECUTIVE_FAILURES = _spec(
    "azure_backup_job_consecutive_failures", "gauge", JOB_LABELS,
    "How many of the newest finished jobs of each item and operation failed in a row (a job still running is "
    "skipped, so the count holds while the next job runs; Completed, CompletedWithWarnings or Cancelled ends the "
    "run). Absent when the newest finished job did not fail." + CACHE_NOTE)
LAST_SUCCESS = _spec(
    "azure_backup_last_successful_backup_timestamp_seconds", "gauge", ITEM_LABELS,
    "Time of the item's last successful backup, in Unix seconds: the newest of the end of its latest "
    "backup job (any operation starting with Backup, such as Backup (Full) or Backup (Log)) that ended Completed "
    "or CompletedWithWarnings, its lastBackupTime when lastBackupStatus "
    "is a success, and its lastRecoveryPoint." + CACHE_NOTE)
LAST_SUCCESS_BY_KIND = _spec(
    "azure_backup_last_successful_backup_by_kind_timestamp_seconds", "gauge", (*ITEM_LABELS, "kind"),
    "Time of the item's last successful backup of each kind, in Unix seconds: kind full for Backup and "
    "Backup (Full) jobs, log for Backup (Log), differential, copy_only_full, incremental likewise; for "
    "VMs, file shares, MARS and DPM items kind full also takes the item's own lastBackupTime and "
    "lastRecoveryPoint, for Backup vault instances their newest recovery point. None for items whose backup "
    "data was deleted." + CACHE_NOTE)
JOBS = _spec(
    "azure_backup_jobs", "gauge", (*VAULT_LABELS, "backup_management_type", "operation", "status"),
    "Jobs in the lookback window by type, operation and status." + CACHE_NOTE)
JOBS_FINISHED = _spec(
    "azure_backup_jobs_finished", "counter",
    (*VAULT_LABELS, "backup_management_type", "operation", "status"),
    "Jobs seen reaching Completed, CompletedWithWarnings, Failed or Cancelled while the "
    "exporter watched the vault (jobs already finished at its first refresh are not counted)."
    + CACHE_NOTE)
JOB_DURATION = _spec(
    "azure_backup_job_duration_seconds", "histogram",
    (*VAULT_LABELS, "backup_management_type", "operation"),
    "Durations of the jobs counted in azure_backup_jobs_finished_total." + CACHE_NOTE)
TRANSFERRED = _spec(
    "azure_backup_transferred_bytes", "counter",
    (*VAULT_LABELS, "backup_management_type", "operation"),
    "Backup Size (database backups: Data Transferred) of the jobs counted in azure_backup_jobs_finished_total."
    + CACHE_NOTE)
ITEM_INFO = _spec(
    "azure_backup_item_info", "gauge",
    (*ITEM_LABELS, "item_type", "workload_type", "policy", "container_name", "source_resource_id"),
    "One series per protected item; always 1." + ITEMS_CACHE_NOTE, "items")
ITEM_COVERED_RESOURCE = _spec(
    "azure_backup_item_covered_resource_info", "gauge", (*ITEM_LABELS, "resource_id"),
    "The Azure resource the item backs up as a whole, its ARM ID lower-cased (the key of "
    "azure_backup_resource_info); always 1. Only for items that cover their resource: Recovery Services VMs "
    "(AzureIaasVM) and file shares (AzureStorage: their storage account), and every Backup vault instance; not for "
    "databases in a VM, which carry the VM's ID, nor while protection is stopped." + ITEMS_CACHE_NOTE, "items")
ITEM_LAST_BACKUP = _spec(
    "azure_backup_item_last_backup_timestamp_seconds", "gauge", ITEM_LABELS,
    "The protected item's lastBackupTime, in Unix seconds." + ITEMS_CACHE_NOTE, "items")
ITEM_LAST_BACKUP_STATUS = _spec(
    "azure_backup_item_last_backup_status", "gauge", (*ITEM_LABELS, "status"),
    "The protected item's lastBackupStatus: 1 for the current value" + ONE_HOT_NOTE + ITEMS_CACHE_NOTE, "items")
ITEM_HEALTH = _spec(
    "azure_backup_item_health_status", "gauge", (*ITEM_LABELS, "status"),
    "The protected item's healthStatus (protectedItemHealthStatus for workload items): 1 for the current "
    "value" + ONE_HOT_NOTE + " Absent for item types that report no health." + ITEMS_CACHE_NOTE, "items")
ITEM_PROTECTION_STATE = _spec(
    "azure_backup_item_protection_state", "gauge", (*ITEM_LABELS, "state"),
    "The protected item's protectionState: 1 for the current value" + ONE_HOT_NOTE + ITEMS_CACHE_NOTE,
    "items")
ITEM_LAST_RECOVERY_POINT = _spec(
    "azure_backup_item_last_recovery_point_timestamp_seconds", "gauge", ITEM_LABELS,
    "The protected item's lastRecoveryPoint, in Unix seconds, where Azure gives it." + ITEMS_CACHE_NOTE, "items")
ITEM_EXPECTED_INTERVAL = _spec(
    "azure_backup_item_expected_backup_interval_seconds", "gauge", (*ITEM_LABELS, "kind"),
    "Longest time between two scheduled backups of the item, per kind (full, differential, log, ...), from "
    "its backup policy's schedule; absent where no policy or schedule is known, and for kinds whose scheduled "
    "backups Azure does not list (a SQL database's log backups, any SAP HANA backup) until the database's "
    "recovery points have shown that kind." + ITEMS_CACHE_NOTE)
ITEM_WATCHED_SINCE = _spec(
    "azure_backup_item_watched_since_timestamp_seconds", "gauge", ITEM_LABELS,
    "Since when this exporter process has watched the item's backups, in Unix seconds: the later of its "
    "first job list of the vault and the item's first appearance in the protected-items list. A kind with "
    "an expected interval and no success seen pages only once this is older than the interval plus grace."
    + CACHE_NOTE)
VAULT_INFO = _spec(
    "azure_backup_vault_info", "gauge", (*VAULT_LABELS, "location"),
    "One series per watched vault, a Recovery Services vault (vault_type recovery_services) or a Backup vault "
    "(vault_type backup); always 1.")
VAULT_SECURITY_INFO = _spec(
    "azure_backup_vault_security_info", "gauge",
    (*VAULT_LABELS, "soft_delete", "immutability", "multi_user_authorization"),
    "How the vault guards its backups against deletion, from the vault resource (read every 3 items "
    "intervals); always 1. soft_delete: on, off or always_on; immutability: disabled, unlocked or locked; "
    "multi_user_authorization: enabled or disabled (a Backup vault's resource guard); empty where the vault "
    "does not say.")
VAULT_SECURITY_LEVEL = _spec(
    "azure_backup_vault_security_level", "gauge", (*VAULT_LABELS, "setting"),
    "Strength of each guard of azure_backup_vault_security_info, higher is stronger, so that a lower value "
    "than a day ago is a weakening: soft_delete off 0, on 1, always_on 2; immutability disabled 0, unlocked "
    "1, locked 2; multi_user_authorization disabled 0, enabled 1; soft_delete_retention_days the days.")
COVERAGE_NOTE = (" Listed by shard 0 only, with SUBSCRIPTIONS set, every COVERAGE_INTERVAL (default 1h).")
RESOURCE_INFO = _spec(
    "azure_backup_resource_info", "gauge", (*RESOURCE_LABELS, "location", "managed_by", "excluded"),
    "One series per protectable resource (virtual machine, managed disk, storage account, AKS cluster, PostgreSQL "
    "or MySQL flexible server) of the subscription; always 1. managed_by: the lower-cased ID of the VM a disk is "
    "attached to; excluded: true when a COVERAGE_EXCLUDE_TAGS tag exempts it; plus a tag_<name> label per "
    "TAG_LABELS tag (empty when the resource lacks it)." + COVERAGE_NOTE)
RESOURCE_CREATED = _spec(
    "azure_backup_resource_created_timestamp_seconds", "gauge", RESOURCE_LABELS,
    "When the protectable resource was created (ARM's createdTime), in Unix seconds; absent where Azure does not "
    "say." + COVERAGE_NOTE)
RESOURCE_BACKUP_REQUIRED = _spec(
    "azure_backup_resource_backup_required", "gauge", RESOURCE_LABELS,
    "1 when the protectable resource should have a backup by now: not exempted by a COVERAGE_EXCLUDE_TAGS tag and "
    "created more than COVERAGE_GRACE (default 24h) ago, or at an unknown time; else 0." + COVERAGE_NOTE)
RESOURCE_LIST_SUCCESS = _spec(
    "azure_backup_resource_list_success", "gauge", ("subscription_id",),
    "1 if the last listing of the subscription's protectable resources succeeded, 0 if it failed (the last list "
    "is kept; a 403 means the role lacks Microsoft.Resources/subscriptions/resources/read)." + COVERAGE_NOTE)
VAULT_SCRAPE_SUCCESS = _spec(
    "azure_backup_vault_scrape_success", "gauge", VAULT_LABELS,
    "1 if the vault's last refresh succeeded, 0 if it failed (its last good data is kept).")
VAULT_SCRAPE_ERROR = _spec(
    "azure_backup_vault_scrape_error_info", "gauge", (*VAULT_LABELS, "status_code", "error_code"),
    "1 while the vault's last refresh failed: the HTTP status of the failure (none when no answer came: "
    "a timeout, a connection error, no token) and Azure's error code (ResourceNotFound, AuthorizationFailed, "
    "...). Absent while refreshes succeed.")
VAULT_SCRAPE_DURATION = _spec(
    "azure_backup_vault_scrape_duration_seconds", "gauge", VAULT_LABELS,
    "How long the vault's last refresh worked: its lists plus its details, not the wait in between.")
VAULT_LAST_REFRESH = _spec(
    "azure_backup_vault_last_refresh_timestamp_seconds", "gauge", VAULT_LABELS,
    "When the vault's jobs were last refreshed successfully, in Unix seconds (a failing protected-items or "
    "policy list does not hold it back; it sets azure_backup_vault_scrape_success to 0).")
DISCOVERY_SUCCESS = _spec(
    "azure_backup_subscription_discovery_success", "gauge", ("subscription_id", "vault_type"),
    "1 if the last listing of the subscription's vaults of this vault_type succeeded, 0 if it failed (the vaults "
    "of that type found before are still watched; the other type is listed on its own). No series for a type "
    "VAULT_TYPES leaves out.")
UP = _spec(
    "azure_backup_up", "gauge", (),
    "1 when the last refresh authenticated and at least one vault refreshed.")
API_REQUESTS = _spec(
    "azure_backup_api_requests", "counter", ("operation", "code"),
    "Requests made to Azure Resource Manager by operation and HTTP status code "
    "(code is 'error' when no response came back).")
API_DURATION = _spec(
    "azure_backup_api_request_duration_seconds", "histogram", ("operation",),
    "Latency of requests to Azure Resource Manager.")
API_THROTTLED = _spec(
    "azure_backup_api_throttled", "counter", (),
    "Responses with HTTP 429 from Azure Resource Manager, including those a retry absorbed.")
API_RATELIMIT = _spec(
    "azure_backup_api_ratelimit_remaining", "gauge", ("header", "subscription_id"),
    "Last value of each x-ms-ratelimit-remaining-* header Azure Resource Manager returned, per subscription "
    "whose read budget the request spent (empty for tenant-level calls).")
PARSE_ERRORS = _spec(
    "azure_backup_parse_errors", "counter", ("field",),
    "Values from Azure that did not parse; only that field was dropped.")
SHARD_INFO = _spec(
    "azure_backup_exporter_shard_info", "gauge", ("shard", "shards"),
    "Which share of the vaults this replica watches (vaults whose ID hashes to shard, mod shards); "
    "always 1.")
BUILD_INFO = _spec(
    "azure_backup_exporter_build_info", "gauge", ("version", "python_version"),
    "Version of the exporter; always 1.")

PROCESS_HELP = " The exporter process's own, as prometheus_client's process collector reports it (Linux)."
PROCESS = (
    _spec("process_resident_memory_bytes", "gauge", (), "Resident memory size in bytes." + PROCESS_HELP),
    _spec("process_virtual_memory_bytes", "gauge", (), "Virtual memory size in bytes." + PROCESS_HELP),
    _spec("process_cpu_seconds", "counter", (), "Total user and system CPU time spent in seconds." + PROCESS_HELP),
    _spec("process_open_fds", "gauge", (), "Number of open file descriptors." + PROCESS_HELP),
    _spec("process_max_fds", "gauge", (), "Maximum number of open file descriptors." + PROCESS_HELP),
    _spec("process_start_time_seconds", "gauge", (),
          "Start time of the process since unix epoch in seconds." + PROCESS_HELP),
)

# The families rendered from each vault's job and item data, in exposition order.
VAULT_DATA: tuple[MetricSpec, ...] = (
    JOB_LAST_STATUS, JOB_LAST_INFO, JOB_LAST_ERROR, JOB_LAST_START, JOB_LAST_END, JOB_LAST_DURATION,
    JOB_LAST_SIZE, JOB_LAST_TASK_STATUS, JOB_CONSECUTIVE_FAILURES, LAST_SUCCESS, LAST_SUCCESS_BY_KIND, JOBS,
    JOBS_FINISHED, JOB_DURATION,
    TRANSFERRED, ITEM_INFO, ITEM_COVERED_RESOURCE, ITEM_LAST_BACKUP, ITEM_LAST_BACKUP_STATUS, ITEM_HEALTH,
    ITEM_PROTECTION_STATE, ITEM_LAST_RECOVERY_POINT, ITEM_EXPECTED_INTERVAL, ITEM_WATCHED_SINCE,
)

CATALOGUE: tuple[MetricSpec, ...] = (
    *VAULT_DATA, VAULT_INFO, VAULT_SECURITY_INFO, VAULT_SECURITY_LEVEL, VAULT_SCRAPE_SUCCESS, VAULT_SCRAPE_ERROR,
    VAULT_SCRAPE_DURATION, VAULT_LAST_REFRESH,
    DISCOVERY_SUCCESS, RESOURCE_INFO, RESOURCE_CREATED, RESOURCE_BACKUP_REQUIRED, RESOURCE_LIST_SUCCESS,
    UP, API_REQUESTS, API_DURATION, API_THROTTLED, API_RATELIMIT, PARSE_ERRORS,
    SHARD_INFO, BUILD_INFO, *PROCESS,
)


def sample_names() -> frozenset[str]:
    """Every sample name the exporter can render (what PromQL can select)."""
    return frozenset(n for spec in CATALOGUE for n in spec.sample_names())


def markdown_table() -> str:
    """The README's metric table, rendered from the catalogue (a test keeps the README in step)."""
    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for spec in CATALOGUE:
        name = spec.sample_names()[0] if spec.type == "counter" else spec.name
        labels = _short_labels(spec.labels)
        switch = f" Switch: `--[no-]collector.{spec.collector}`." if spec.collector else ""
        rows.append(f"| `{name}` | {spec.type} | {labels} | {spec.help.replace(CACHE_NOTE, '')}{switch} |")
    return "\n".join(rows)


def _short_labels(labels: tuple[str, ...]) -> str:
    """Labels with the shared sets abbreviated as V, I and K (defined above the README table)."""
    for short, shared in (("K", JOB_LABELS), ("I", ITEM_LABELS), ("V", VAULT_LABELS)):
        if labels[: len(shared)] == shared:
            return " + ".join([short, *(f"`{label}`" for label in labels[len(shared):])])
    return ", ".join(f"`{label}`" for label in labels) or "none"
