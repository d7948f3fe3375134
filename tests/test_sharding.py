"""Sharding: N replicas together emit every vault exactly once, and the same series as one exporter."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from exporter.models import VaultRef
from exporter.settings import shard_of
from exporter.simulator.fakearm import FakeEstate, make_job, make_protected_item

from .conftest import NOW, SUB_A, SUB_B, Exporter, fixed_clock

# The exporter's own metrics differ by replica by nature (its requests, its shard); vault data must not.
OWN = ("azure_backup_api_", "azure_backup_parse_errors", "azure_backup_up", "azure_backup_exporter_",
       "azure_backup_subscription_discovery_success", "azure_backup_vault_scrape_duration_seconds", "process_")


def _series(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {(sample.name, tuple(sorted(sample.labels.items())), sample.value)
            for family in text_string_to_metric_families(text) for sample in family.samples
            if not sample.name.startswith(OWN)}


def _vaults(series: set[tuple[str, tuple[tuple[str, str], ...], float]]) -> set[str]:
    return {dict(labels)["vault"] for name, labels, _ in series if name == "azure_backup_vault_info"}


def test_three_shards_together_equal_one_exporter(estate: FakeEstate, make_exporter: Callable[..., Exporter]) -> None:
    explicit = []
    for n in range(12):
        sub = SUB_A if n % 2 else SUB_B
        vault = estate.add_vault(sub, f"rg-{n % 3}", f"vault-{n:02d}")
        estate.add_job(vault.name, make_job(f"00000000-0000-0000-0000-{n:012d}", vault=vault, item=f"vm-{n}",
                                            status="Failed" if n % 4 == 0 else "Completed",
                                            start=NOW - timedelta(hours=n + 1), end=NOW - timedelta(hours=n)))
        estate.add_item(vault.name, make_protected_item(vault=vault, friendly_name=f"vm-{n}", health_status="Passed",
                                                        last_backup_status="Completed",
                                                        last_backup_time=NOW - timedelta(hours=n)))
        if sub == SUB_B:
            explicit.append(vault.id)
    # One subscription by discovery, the other by explicit IDs: both paths are sharded.
    settings = {"subscriptions": SUB_A, "vaults": ",".join(explicit)}
    whole = _series(make_exporter(fixed_clock(NOW), **settings).scrape())
    shards = [_series(make_exporter(fixed_clock(NOW), shard=str(i), shards="3", **settings).scrape())
              for i in range(3)]
    assert set().union(*shards) == whole
    owned = [_vaults(s) for s in shards]
    assert sum(len(v) for v in owned) == len(_vaults(whole)) == 12  # each vault exactly once
    assert all(owned), "12 vaults over 3 shards: each shard should get some"


def test_shard_assignment_is_stable_and_case_insensitive() -> None:
    ref = VaultRef.parse(f"/subscriptions/{SUB_A}/resourceGroups/RG/providers/Microsoft.RecoveryServices/vaults/V1")
    lower = VaultRef.parse(ref.path.lower())
    assert shard_of(ref, 5) == shard_of(lower, 5)
    # pinned: a change of hash would move every vault between replicas on upgrade
    assert [shard_of(VaultRef(SUB_A, "rg", f"v{n}"), 3) for n in range(6)] == [2, 0, 1, 0, 1, 0]
