"""The README is the user's manual: what it lists must match the code."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from exporter.catalogue import CATALOGUE, markdown_table
from exporter.models import VAULT_KINDS
from exporter.settings import Settings, env_name
from exporter.vocabulary import VOCABULARIES
from exporter.vocabulary import markdown_table as vocabulary_table

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_metrics_table_matches_the_catalogue() -> None:
    table = README.split("<!-- metrics-table:start -->\n")[1].split("<!-- metrics-table:end -->")[0]
    assert table.strip() == markdown_table().strip(), "run: python -c 'from exporter.catalogue import " \
        "markdown_table; print(markdown_table())' and paste it into the README"


def test_vocabulary_table_matches_the_code() -> None:
    """Issue 17, point 6: the values of every one-hot family per kind of vault, and what the alerts fire on
    (tests/test_alerts.py checks exporter/vocabulary.py against the rules)."""
    table = README.split("<!-- vocabulary-table:start -->\n")[1].split("<!-- vocabulary-table:end -->")[0]
    assert table.strip() == vocabulary_table().strip(), "run: python -c 'from exporter.vocabulary import " \
        "markdown_table; print(markdown_table())' and paste it into the README"
    # a series per value, 1 for the current one (azure_backup_jobs, a count per status, is not one-hot)
    one_hot = {spec.name for spec in CATALOGUE if spec.labels and spec.labels[-1] in ("status", "state")
               and ("1 for the current" in spec.help or "always 1" in spec.help)}
    assert one_hot == {v.spec.name for v in VOCABULARIES}
    assert {(v.spec.name, v.vault_type) for v in VOCABULARIES} == {(n, k) for n in one_hot for k in VAULT_KINDS}


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", README, re.MULTILINE))
    assert {env_name(name).removeprefix("AZURE_BACKUP_EXPORTER_") for name in Settings.model_fields} == documented


def test_documented_defaults_match_the_code() -> None:
    rows = {m[0]: m[1] for m in re.findall(r"^\| `([A-Z_]+)` \| `[^`]+` \| `([^`]+)` \|", README, re.MULTILINE)}
    defaults = Settings.model_fields
    assert rows["LOOKBACK"] == "7d" and defaults["lookback"].default.days == 7
    assert rows["REFRESH_INTERVAL"] == "60s" and defaults["refresh_interval"].default.total_seconds() == 60
    assert rows["CONCURRENCY"] == str(defaults["concurrency"].default)
    assert rows["LISTEN_ADDRESS"] == defaults["listen_address"].default
    assert rows["JOBS_API_VERSION"] == defaults["jobs_api_version"].default


def test_readme_opens_with_the_two_commands() -> None:
    first_block = README.split("```sh\n")[1].split("```")[0]
    assert first_block.splitlines()[0].startswith("./scripts/demo")
    assert first_block.splitlines()[1].startswith("./scripts/test")
    root = Path(__file__).parent.parent
    assert (root / "scripts" / "demo").stat().st_mode & 0o111
    assert (root / "scripts" / "test").stat().st_mode & 0o111
    assert "./scripts/test" in (root / ".ci" / "run").read_text()


def test_the_alert_table_names_every_shipped_alert_with_its_severity() -> None:
    rules = yaml.safe_load((Path(__file__).parent.parent / "alerts" / "azure-backup.rules.yml").read_text())
    shipped = {rule["alert"]: rule["labels"]["severity"] for group in rules["groups"] for rule in group["rules"]}
    table = README.split("| alert | severity | fires when |")[1].split("\n\n")[0]
    documented = {name: row.split("|")[2].strip() for row in table.splitlines() if row.startswith("| `")
                  for name in re.findall(r"`(AzureBackup\w+)`", row.split("|")[1])}
    assert documented == shipped
