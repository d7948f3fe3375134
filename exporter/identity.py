"""Which protected item a series names: the `container` label, and joining jobs to their items.

A friendly name is unique only inside its container: every SQL instance has a `master`, one
share name recurs across storage accounts, one VM name across resource groups. An item is
therefore (backup_management_type, container, backup_item) within its vault, with `container`
derived per type from what Azure sends (the README has the table):

    AzureIaasVM    the VM's resource group (classic VMs: the cloud service), from containerName
                   iaasvmcontainerv2;<rg>;<vm>
    AzureStorage   the storage account (jobs: storageAccountName; items: containerName's last part)
    AzureWorkload  <host>/<instance or SID> (items: serverName/parentName; jobs: the bracketed host
                   and the prefix of `MSSQLSERVER/testdb1 [sqlvm01]` or `ab4;asetestdb1 [asevm]`)
    MAB            the server (items: computerName; jobs: mabServerName)
    DPM, AzureBackupServer  the DPM/MABS server (items: backupEngineName; jobs: dpmServerName)
    anything else  Azure's containerName as it is

Jobs name their item in their own words (workload backups `H22/H22 [HANADemoIDC3]` for the item
`h22`; management jobs only `testdb1`), so a job is matched to its protected item case-insensitively
and then carries the item's spelling: job series and item series of one item have the same labels.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

ItemKey = tuple[str, str, str]  # backup_management_type, container, backup_item

# `MSSQLSERVER/testdb1 [sqlvm01]`, `ab4;asetestdb1 [asevm01]`, or `navigate-testdb2 [sqlvm01]` (no instance):
# the host is always bracketed when there is one; a name without brackets is the database's bare name.
_WORKLOAD_JOB_NAME = re.compile(r"^(?:(?P<parent>[^/;\[\]]+)[/;])?(?P<database>[^\[\]]+?)\s*\[(?P<host>[^\[\]]+)\]$")
_NETBIOS_LENGTH = 15  # serverName is the VM's NetBIOS name: at most 15 characters
_VM_TYPES = frozenset({"AzureIaasVM"})
_DPM_TYPES = frozenset({"DPM", "AzureBackupServer"})


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _segment(container_name: str, index: int) -> str:
    """One ';'-separated part of a containerName, or '' when it has too few."""
    parts = container_name.split(";")
    return parts[index] if -len(parts) <= index < len(parts) else ""


def _vm_group(container_name: str) -> str:
    # iaasvmcontainerv2;<rg>;<vm> (classic: iaasvmcontainer;<cloud service>;<vm>); the protected-items
    # list may prefix it with IaasVMContainer;.
    parts = container_name.split(";")
    return parts[-2] if len(parts) >= 3 else ""


def item_container(backup_management_type: str, props: Mapping[str, Any]) -> str:
    """The `container` label of a protected item, from its properties."""
    container_name = _text(props.get("containerName"))
    if backup_management_type in _VM_TYPES:
        return _vm_group(container_name)
    if backup_management_type == "AzureStorage":
        return _segment(container_name, -1)
    if backup_management_type == "AzureWorkload":
        host = _text(props.get("serverName")) or _segment(container_name, -1)
        return _join_host(host, _text(props.get("parentName")))
    if backup_management_type == "MAB":
        return _text(props.get("computerName")) or container_name
    if backup_management_type in _DPM_TYPES:
        return _text(props.get("backupEngineName")) or container_name
    return container_name


def job_identity(backup_management_type: str, entity: str, props: Mapping[str, Any]) -> tuple[str, str]:
    """(container, backup_item) as a job names its item, before it is matched to a protected item."""
    if backup_management_type in _VM_TYPES:
        return _vm_group(_text(props.get("containerName"))), entity
    if backup_management_type == "AzureStorage":
        return _text(props.get("storageAccountName")), entity
    if backup_management_type == "AzureWorkload":
        match = _WORKLOAD_JOB_NAME.match(entity)
        if match is None:
            return "", entity  # a management job: the bare database name
        return _join_host(match.group("host").strip(), (match.group("parent") or "").strip()), match.group("database")
    if backup_management_type == "MAB":
        return _text(props.get("mabServerName")), entity
    if backup_management_type in _DPM_TYPES:
        return _text(props.get("dpmServerName")) or _text(props.get("containerName")), entity
    return _text(props.get("containerName")), entity


def _join_host(host: str, parent: str) -> str:
    return f"{host}/{parent}" if parent else host


def folded(key: ItemKey) -> ItemKey:
    """The key as the join compares it: ARM names, hosts and database names are case-insensitive."""
    return (key[0].lower(), key[1].lower(), key[2].lower())


def _same_host(a: str, b: str) -> bool:
    """A job's bracketed host and an item's serverName name one VM: equal, or one is the other's NetBIOS cut."""
    a, b = a.lower(), b.lower()
    return a == b or (len(a) >= _NETBIOS_LENGTH <= len(b) and a[:_NETBIOS_LENGTH] == b[:_NETBIOS_LENGTH])


class ItemDirectory:
    """A vault's protected items by identity, to join jobs to them."""

    def __init__(self, keys: Iterable[ItemKey]) -> None:
        self._exact: dict[ItemKey, ItemKey] = {}
        self._by_name: dict[tuple[str, str], list[ItemKey]] = defaultdict(list)
        for key in keys:
            bmt, _, name = key
            self._exact[folded(key)] = key
            self._by_name[(bmt.lower(), name.lower())].append(key)

    def resolve(self, key: ItemKey) -> ItemKey:
        """The protected item a job's (type, container, name) names, in the item's spelling; the job's own
        names when no item matches, or when more than one could (never guess between two items)."""
        bmt, container, name = key
        exact = self._exact.get(folded(key))
        if exact is not None:
            return exact
        candidates = [c for c in self._by_name.get((bmt.lower(), name.lower()), ())
                      if _could_be(bmt, container, c[1])]
        return candidates[0] if len(candidates) == 1 else key


def _could_be(backup_management_type: str, job_container: str, item_container: str) -> bool:
    """Whether a job that did not name its item's container exactly may still be that item's: one that names
    no container at all (management jobs of databases), or a workload job whose host is cut to its NetBIOS
    form or that names no instance. Any other container is a different item."""
    if not job_container:
        return True
    if backup_management_type != "AzureWorkload":
        return False
    job_host, _, job_parent = job_container.partition("/")
    item_host, _, item_parent = item_container.partition("/")
    if job_parent and job_parent.lower() != item_parent.lower():
        return False
    return _same_host(job_host, item_host) if job_host else True
