"""What a Backup vault costs in ARM calls per refresh: its job list takes no filter.

    python -m bench.dpp [--instances 100] [--days 14] [--page-size 200] [--out docs/performance.md]

Builds one Backup vault in the fake ARM (real HTTP on loopback, azure-identity's managed-identity flow) with
`instances` backup instances (disks, blobs, PostgreSQL flexible servers, AKS clusters), a daily policy each, a
daily Backup job per instance for `days` days and a recovery point per instance, then counts the calls of:
the cold refresh, a refresh with nothing new, a refresh after one more job finished, and a refresh that also
lists the instances (every ITEMS_REFRESH_INTERVAL). With --out it writes the table between the report's
`<!-- dpp:start -->` and `<!-- dpp:end -->` markers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exporter.settings import load_settings
from exporter.simulator.fakearm import (
    FakeArm,
    FakeBackupVault,
    FakeEstate,
    make_backup_instance,
    make_dpp_job,
    make_dpp_policy,
    make_recovery_point,
)
from exporter.wiring import build

KINDS = (("AzureDisk", 40), ("AzureBlob", 30), ("AzureDatabaseForPostgreSQLFlexibleServer", 15),
         ("AzureKubernetesService", 15))  # per 100 instances
START, END = "<!-- dpp:start -->", "<!-- dpp:end -->"
SUBSCRIPTION = "33333333-3333-3333-3333-333333333333"


def build_vault(estate: FakeEstate, instances: int, days: int, now: datetime) -> tuple[FakeBackupVault, int]:
    vault = estate.add_backup_vault(SUBSCRIPTION, "rg-backup", "bv-bench")
    kinds = [kind for kind, share in KINDS for _ in range(share)]
    jobs = 0
    for kind, _ in KINDS:
        # PostgreSQL flexible server allows weekly schedules only; daily jobs still make the list's size
        interval = "P1W" if "PostgreSQL" in kind else "P1D"
        estate.add_dpp_policy(vault.name, make_dpp_policy(vault=vault, name=f"{kind}-policy", datasource_type=kind,
                                                          interval=interval))
    for n in range(instances):
        kind = kinds[n % len(kinds)]
        name = f"{kind.lower()[5:12]}-{n:03d}"
        estate.add_backup_instance(vault.name, make_backup_instance(vault=vault, datasource_type=kind,
                                                                    datasource_name=name, policy=f"{kind}-policy"))
        instance = str(estate.backup_instances(vault.name)[-1]["name"])
        for day in range(days):
            start = now - timedelta(days=day, hours=1 + n % 20)
            jobs += 1
            estate.add_dpp_job(vault.name, make_dpp_job(
                f"{n:08d}-0000-0000-0000-{day:012d}", vault=vault, datasource_type=kind, datasource_name=name,
                policy=f"{kind}-policy", start=start, end=start + timedelta(minutes=5)))
        estate.add_recovery_point(vault.name, instance, make_recovery_point(
            vault=vault, instance=instance, time=now - timedelta(hours=1 + n % 20) + timedelta(minutes=4),
            datasource_type=kind, policy=f"{kind}-policy"))
    return vault, jobs


def _operation(path: str) -> str:
    last = path.rstrip("/").rsplit("/", 2)
    if last[-1] in ("backupJobs", "backupInstances", "backupPolicies", "recoveryPoints"):
        return last[-1]
    if last[-2] == "backupJobs":
        return "backupJobs/{id}"
    return "backupVaults/{name}" if last[-2] == "backupVaults" else last[-1]


def _calls(arm: FakeArm, since: int) -> Counter[str]:
    return Counter(_operation(r.path) for r in list(arm.requests)[since:] if not r.path.startswith("/msi"))


def measure(instances: int, days: int, page_size: int) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    estate = FakeEstate()
    vault, jobs = build_vault(estate, instances, days, now)
    with FakeArm(estate, dpp_page_size=page_size) as arm:
        os.environ["IDENTITY_ENDPOINT"], os.environ["IDENTITY_HEADER"] = arm.identity_endpoint, arm.identity_header
        settings = load_settings(overrides={"resource_manager_url": arm.url, "vaults": vault.id,
                                            "refresh_interval": "0s", "backup_vault_refresh_interval": "0s",
                                            "items_refresh_interval": "1h"})
        rounds: dict[str, Counter[str]] = {}

        def refresh(exporter: Any, name: str) -> None:
            since = len(arm.requests)
            exporter.refresher.refresh_due(time.monotonic() + 600)
            if name:
                rounds[name] = _calls(arm, since)

        exporter = build(settings, clock=lambda: now)
        refresh(exporter, "cold refresh (first list, details, instances, recovery points, policies)")
        refresh(exporter, "refresh with nothing new")
        kind = KINDS[0][0]
        estate.add_dpp_job(vault.name, make_dpp_job(
            "ffffffff-0000-0000-0000-000000000001", vault=vault, datasource_type=kind,
            datasource_name=f"{kind.lower()[5:12]}-000", policy=f"{kind}-policy",
            start=now - timedelta(minutes=20), end=now - timedelta(minutes=10)))
        refresh(exporter, "refresh after one more job finished")
        exporter.refresher.close()
        # the instances are due on every refresh of an exporter whose ITEMS_REFRESH_INTERVAL is 0
        every_time = build(settings.model_copy(update={"items_refresh_interval": timedelta(0)}), clock=lambda: now)
        refresh(every_time, "")
        refresh(every_time, "refresh that also lists the instances (every ITEMS_REFRESH_INTERVAL)")
        every_time.refresher.close()
    return {"instances": instances, "days": days, "jobs": jobs, "page_size": page_size, "rounds": rounds}


def report(result: dict[str, Any]) -> str:
    columns = ("backupJobs", "backupJobs/{id}", "backupInstances", "recoveryPoints", "backupPolicies",
               "backupVaults/{name}")
    rows = [f"One Backup vault, {result['instances']} instances, {result['jobs']:,} jobs ({result['days']} days of "
            f"daily backups), {result['page_size']} jobs per list page; measured by `python -m bench.dpp`.", "",
            "| refresh | job list pages | job details | instance lists | recovery point lists | policy lists "
            "| vault | **calls** |", "|---|---|---|---|---|---|---|---|"]
    for name, calls in result["rounds"].items():
        cells = [str(calls.get(column, 0)) for column in columns]
        rows.append(f"| {name} | {' | '.join(cells)} | **{sum(calls.values())}** |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dpp", description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--page-size", type=int, default=200)
    parser.add_argument("--out", type=Path, help="the report to write the table into, between its markers")
    args = parser.parse_args(argv)
    table = report(measure(args.instances, args.days, args.page_size))
    sys.stdout.write(table)
    return write_between_markers(args.out, table, START, END) if args.out else 0


def write_between_markers(out: Path, table: str, start: str, end: str) -> int:
    """Replace what stands between a report's two markers with `table`; 1 (and a line) if a marker is missing."""
    text = out.read_text()
    if start not in text or end not in text:
        print(f"{out}: no {start} ... {end} markers", file=sys.stderr)
        return 1
    head, rest = text.split(start, 1)
    out.write_text(f"{head}{start}\n{table}{end}{rest.split(end, 1)[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
