"""WHERE code runs: the cluster registry."""

from __future__ import annotations

from threshold_probe.clusters.base import Check, Cluster
from threshold_probe.config import ProbeConfig


def make_cluster(name: str, config: ProbeConfig) -> Cluster:
    """The cluster object for a configured name (`local` always exists)."""
    cfg = config.cluster(name)
    if cfg.type == "local":
        from threshold_probe.clusters.local import LocalCluster

        return LocalCluster(name, cfg)
    if cfg.type == "ssh":
        from threshold_probe.clusters.ssh import SSHCluster

        return SSHCluster(name, cfg, base_dir=config.base_dir)
    from threshold_probe.clusters.slurm import SlurmCluster

    return SlurmCluster(name, cfg, base_dir=config.base_dir)


__all__ = ["Check", "Cluster", "make_cluster"]
