"""A cluster's SSH endpoint: what a runner that opens its own connection (ClustriX) is given.

The ssh config is read as OpenSSH reads it (`ssh -G` only reads files here: nothing connects).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.base import SSHEndpoint
from threshold_probe.config import load_config
from threshold_probe.errors import UserError
from threshold_probe.pipelines.clustrix import ClustrixSerialPipeline

SSH_CONFIG = """
Host far
    HostName 127.0.0.1
    Port 2222
    User alice
    IdentityFile {key}

Host hopped
    HostName 127.0.0.1
    ProxyJump far
"""


def config(tmp_path: Path) -> Path:
    key = tmp_path / "id_test"
    key.write_text("not a real key\n")
    (tmp_path / "ssh_config").write_text(SSH_CONFIG.format(key=key))
    path = tmp_path / "probe.toml"
    path.write_text(
        "[clusters.far]\n"
        'type = "ssh"\nhost = "far"\nssh_config = "ssh_config"\npassword_env = "FAR_PASSWORD"\n'
        'known_hosts = "known"\nworkdir = "~/tp-far"\n'
        "[clusters.hopped]\n"
        'type = "ssh"\nhost = "hopped"\nssh_config = "ssh_config"\n'
        "[clusters.queue]\n"
        'type = "slurm"\nhost = "far"\nssh_config = "ssh_config"\npartition = "debug"\n'
        "[clusters.here]\n"
        'type = "slurm"\n'
    )
    return path


def test_ssh_and_slurm_clusters_give_their_resolved_endpoint(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path))
    far = make_cluster("far", cfg).ssh_endpoint()
    assert far == SSHEndpoint(
        host="127.0.0.1",
        port=2222,
        user="alice",
        identity_files=(str(tmp_path / "id_test"),),
        known_hosts="known",
        host_key_policy="reject",
        password_env="FAR_PASSWORD",
    )
    queue = make_cluster("queue", cfg).ssh_endpoint()
    assert queue is not None and (queue.host, queue.port, queue.user) == ("127.0.0.1", 2222, "alice")
    # Not reached over SSH: no endpoint.
    assert make_cluster("here", cfg).ssh_endpoint() is None
    assert make_cluster("local", cfg).ssh_endpoint() is None


def test_clustrix_is_configured_from_the_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(config(tmp_path))
    monkeypatch.setenv("FAR_PASSWORD", "s3cret")
    cx = ClustrixSerialPipeline().clustrix_config(make_cluster("far", cfg), "/r")
    assert (cx["cluster_type"], cx["cluster_host"], cx["cluster_port"], cx["username"]) == (
        "ssh",
        "127.0.0.1",
        2222,
        "alice",
    )
    assert cx["key_file"] == str(tmp_path / "id_test") and cx["password"] == "s3cret"
    slurm = ClustrixSerialPipeline().clustrix_config(make_cluster("queue", cfg), "/r")
    assert slurm["cluster_type"] == "slurm" and slurm["default_partition"] == "debug"
    with pytest.raises(UserError, match="does not support ProxyJump"):
        ClustrixSerialPipeline().clustrix_config(make_cluster("hopped", cfg), "/r")
    with pytest.raises(UserError, match="needs an ssh or slurm cluster reached over SSH; 'here' is slurm"):
        ClustrixSerialPipeline().clustrix_config(make_cluster("here", cfg), "/r")
