"""Prometheus exporter for Azure Backup jobs of Recovery Services vaults and Backup vaults."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("azure-backup-exporter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
