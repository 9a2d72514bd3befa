"""A cluster type of its own: this machine, every job started under `nice -n NICENESS`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from threshold_probe.clusters.base import Cluster
from threshold_probe.clusters.local import LocalCluster
from threshold_probe.config import ClusterConfigBase, LocalClusterConfig
from threshold_probe.models import JobResult, JobSpec


class NiceClusterConfig(LocalClusterConfig):
    """[clusters.<name>] with type = "nice": the local cluster's fields, and a niceness."""

    type: Literal["nice"] = "nice"  # type: ignore[assignment]
    niceness: int = Field(default=10, ge=0, le=19)


class NiceCluster(LocalCluster):
    """The local cluster (its limits, workdir and preflight), at a lower CPU priority."""

    kind = "nice"
    config_model = NiceClusterConfig
    config: NiceClusterConfig

    @classmethod
    def create(cls, name: str, config: ClusterConfigBase, *, base_dir: Path | None = None) -> Cluster:
        assert isinstance(config, NiceClusterConfig)
        return cls(name, config)

    def execute(self, job: JobSpec) -> JobResult:
        niced = job.model_copy(update={"argv": ["nice", "-n", str(self.config.niceness), *job.argv]})
        return super().execute(niced)

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "niceness": str(self.config.niceness)}
