"""A single-node SLURM on loopback: munged, slurmctld and slurmd, all as root, all by PID.

`start(state_dir)` writes a slurm.conf (own ports, own state, spool and log folders in
`state_dir/slurm`), starts the daemons in order and waits until the node is idle. `stop(state_dir)`
cancels every job, waits for the queue to empty, then stops slurmd, slurmctld and munged, in that
order: if slurmd died first, slurmstepd and the jobs would live on as orphans.

Memory is enforced with cgroup v1 where the machine allows it (OUT_OF_MEMORY), and with
OverMemoryKill otherwise (FAILED 0:9 plus "exceeded memory limit" in the job's output).
`THRESHOLD_PROBE_SLURM_MEMORY=cgroup|overmemorykill` forces one of them.

Standalone use: `python tests/testbed/slurm.py up|down|status STATE_DIR`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Name of the cluster this module adds to the testbed's probe.toml.
CLUSTER_NAME = "testbed-slurm"
#: File (in the slurm folder of the state dir) that records what start() did.
STATE_FILE = "slurm-state.json"
#: Memory the node keeps for the system: more than `slurmd -C` reports drains the node.
RESERVED_MB = 1024
CGROUP_MEMORY_ROOT = Path("/sys/fs/cgroup/memory")


class TestbedError(RuntimeError):
    """The SLURM testbed could not be started or stopped."""


def _slurm_dir(state_dir: Path) -> Path:
    return Path(state_dir).resolve() / "slurm"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory_enforcement() -> str:
    """'cgroup' when cgroup v1 with a writable memory controller exists, else 'overmemorykill'."""
    forced = os.environ.get("THRESHOLD_PROBE_SLURM_MEMORY", "").strip().lower()
    if forced in ("cgroup", "overmemorykill"):
        return forced
    if not (CGROUP_MEMORY_ROOT / "memory.limit_in_bytes").exists():
        return "overmemorykill"
    probe = CGROUP_MEMORY_ROOT / f"threshold_probe_check_{os.getpid()}"
    try:
        probe.mkdir()
        (probe / "memory.limit_in_bytes").write_text(str(64 * 1024**2))
    except OSError:
        return "overmemorykill"
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()
    return "cgroup"


def _node_line(node_name: str) -> str:
    """The NodeName line from `slurmd -C`, with our name, loopback address and spare memory."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30, check=True).stdout
    fields = dict(item.split("=", 1) for item in out.splitlines()[0].split() if "=" in item and item != "")
    fields.pop("UpTime", None)
    with open("/proc/meminfo") as fh:
        mem_total_mb = next(int(line.split()[1]) for line in fh if line.startswith("MemTotal")) // 1024
    real = min(int(fields.get("RealMemory", mem_total_mb)), mem_total_mb) - RESERVED_MB
    fields["NodeName"] = node_name
    fields["RealMemory"] = str(real)
    parts = [
        f"NodeName={node_name}",
        "NodeAddr=127.0.0.1",
        f"NodeHostname={socket.gethostname().split('.')[0]}",
    ]
    parts += [f"{k}={v}" for k, v in fields.items() if k != "NodeName"]
    parts.append("State=UNKNOWN")
    return " ".join(parts)


def write_config(state_dir: Path, mode: str | None = None) -> dict[str, Any]:
    """Write slurm.conf (and cgroup.conf) under state_dir/slurm; return the facts start() needs."""
    root = _slurm_dir(state_dir)
    for sub in ("state", "spool", "log", "munge", "run"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    # The test user runs sbatch and squeue over SSH: it must read the config and reach the socket.
    for p in (root, root / "log", root / "run"):
        p.chmod(0o755)
    mode = mode or memory_enforcement()
    host = socket.gethostname().split(".")[0]
    # A node name of our own (per state dir) keeps the cgroup folder (slurm_<node>) apart from
    # any other SLURM testbed running on this machine at the same time.
    node = "tp" + hashlib.sha256(str(root).encode()).hexdigest()[:6]
    ctld_port, slurmd_port = _free_port(), _free_port()
    while slurmd_port == ctld_port:
        slurmd_port = _free_port()
    munge_socket = root / "munge" / "munge.socket"
    lines = [
        "# Written by tests/testbed/slurm.py: a single-node SLURM on loopback.",
        "ClusterName=tpcluster",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CryptoType=crypto/munge",
        f"AuthInfo=socket={munge_socket}",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'run' / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'run' / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "MpiDefault=none",
        "SwitchType=switch/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "DefMemPerCPU=500",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=batch_sched_delay=0",
        "MinJobAge=3600",
        "KillWait=5",
        "ReturnToService=2",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/filetxt",
        f"JobCompLoc={root / 'log' / 'jobcomp.txt'}",
        "JobAcctGatherType=jobacct_gather/linux",
        "JobAcctGatherFrequency=task=1",
    ]
    if mode == "cgroup":
        lines += ["ProctrackType=proctrack/cgroup", "TaskPlugin=task/cgroup"]
        (root / "cgroup.conf").write_text(
            "CgroupPlugin=cgroup/v1\nCgroupAutomount=no\nConstrainRAMSpace=yes\nConstrainSwapSpace=no\n"
        )
    else:
        lines += [
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherParams=OverMemoryKill",
        ]
        (root / "cgroup.conf").write_text("CgroupPlugin=cgroup/v1\nCgroupAutomount=no\n")
    lines += [_node_line(node), f"PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP"]
    conf = root / "slurm.conf"
    conf.write_text("\n".join(lines) + "\n")
    for p in (conf, root / "cgroup.conf"):
        p.chmod(0o644)
    return {
        "slurm_conf": str(conf),
        "munge_socket": str(munge_socket),
        "node": node,
        "mode": mode,
        "ctld_port": ctld_port,
        "slurmd_port": slurmd_port,
        "partition": "debug",
    }


def slurm_env(state_dir: Path) -> dict[str, str]:
    """os.environ with SLURM_CONF pointing at the testbed: without it the tools fail here."""
    env = dict(os.environ)
    env["SLURM_CONF"] = str(_slurm_dir(state_dir) / "slurm.conf")
    return env


def _spawn(argv: list[str], log: Path, env: dict[str, str]) -> int:
    # Redirected stdio and a new session: a `$(up)` caller must not hang on our pipes, and
    # a Ctrl-C in the caller's terminal must not reach the daemons.
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return proc.pid


def _wait(what: str, check: Any, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    tail = ""
    if log is not None and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    raise TestbedError(f"SLURM testbed: {what} not ready after {timeout:.0f}s{tail}")


def _run(argv: list[str], env: dict[str, str], timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start(state_dir: Path, *, mode: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """Start munged, slurmctld and slurmd on loopback and wait until the node is idle.

    Returns the facts tests need (slurm_conf, partition, mode, pids), also written to
    state_dir/slurm/slurm-state.json for stop().
    """
    for tool in ("munged", "mungekey", "slurmctld", "slurmd", "sbatch"):
        if shutil.which(tool) is None:
            raise TestbedError(f"{tool} not found: apt-get install -y --no-install-recommends slurm-wlm munge")
    root = _slurm_dir(state_dir)
    if (root / STATE_FILE).exists():
        stop(state_dir)
    facts = write_config(state_dir, mode)
    env = slurm_env(state_dir)
    pids: dict[str, int] = {}
    state: dict[str, Any] = {**facts, "pids": pids, "state_dir": str(Path(state_dir).resolve())}

    def save() -> None:
        (root / STATE_FILE).write_text(json.dumps(state, indent=2))

    try:
        key = root / "munge" / "munge.key"
        if not key.exists():
            subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True, timeout=30)
        key.chmod(0o600)
        (root / "munge").chmod(0o755)
        sock = Path(facts["munge_socket"])
        pids["munged"] = _spawn(
            [
                "munged",
                "-F",
                "--force",
                f"--socket={sock}",
                f"--key-file={key}",
                f"--pid-file={root / 'munge' / 'munged.pid'}",
                f"--seed-file={root / 'munge' / 'munged.seed'}",
                f"--log-file={root / 'log' / 'munged.log'}",
            ],
            root / "log" / "munged.out",
            env,
        )
        save()
        _wait("munged", sock.exists, 15, root / "log" / "munged.out")
        pids["slurmctld"] = _spawn(["slurmctld", "-D", "-i"], root / "log" / "slurmctld.out", env)
        save()
        _wait(
            "slurmctld",
            lambda: _run(["scontrol", "ping"], env, 5).stdout.find("UP") >= 0,
            timeout,
            root / "log" / "slurmctld.log",
        )
        pids["slurmd"] = _spawn(["slurmd", "-D", "-N", facts["node"]], root / "log" / "slurmd.out", env)
        save()

        def node_idle() -> bool:
            out = _run(["sinfo", "-h", "-N", "-o", "%T"], env, 5).stdout.strip().lower()
            if out.startswith("drain") or (out.startswith("down") and not _alive(pids["slurmd"])):
                raise TestbedError(f"SLURM testbed: node is {out}: see {root / 'log' / 'slurmd.log'}")
            return out == "idle"

        _wait("node idle", node_idle, timeout, root / "log" / "slurmd.log")
    except BaseException:
        stop(state_dir)
        raise
    return state


def stop_controller(state_dir: Path) -> None:
    """Stop slurmctld (slurmd and the jobs stay): the controller is down until start_controller().

    SIGTERM, not SIGKILL: slurmctld saves its state on the way down. Killed hard, it would come
    back from its last periodic save and revive jobs that had ended since.
    """
    state = _read_state(state_dir)
    if state is None or not state["pids"].get("slurmctld"):
        raise TestbedError("SLURM testbed is not running")
    _kill(int(state["pids"]["slurmctld"]))


def start_controller(state_dir: Path, timeout: float = 60.0) -> None:
    """Start slurmctld again (its saved state brings the jobs back) and wait for the node."""
    root = _slurm_dir(state_dir)
    state = _read_state(state_dir)
    if state is None:
        raise TestbedError("SLURM testbed is not running")
    env = slurm_env(state_dir)
    state["pids"]["slurmctld"] = _spawn(["slurmctld", "-D", "-i"], root / "log" / "slurmctld.out", env)
    (root / STATE_FILE).write_text(json.dumps(state, indent=2))
    _wait(
        "slurmctld", lambda: "UP" in _run(["scontrol", "ping"], env, 5).stdout, timeout, root / "log" / "slurmctld.log"
    )
    _wait(
        "node idle",
        lambda: (
            _run(["sinfo", "-h", "-N", "-o", "%T"], env, 5).stdout.strip().lower() in ("idle", "mixed", "allocated")
        ),
        timeout,
        root / "log" / "slurmd.log",
    )


def _read_state(state_dir: Path) -> dict[str, Any] | None:
    path = _slurm_dir(state_dir) / STATE_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def _kill(pid: int, timeout: float = 15.0) -> None:
    if not _alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + 5
        while time.monotonic() < end and _alive(pid):
            time.sleep(0.05)
    # Reap our own child when start() and stop() run in one process.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _cgroup_dirs(node: str) -> Iterator[Path]:
    for controller in ("memory", "cpuset", "devices", "freezer", "cpuacct", "cpu", "pids"):
        base = Path("/sys/fs/cgroup") / controller / f"slurm_{node}"
        if base.is_dir():
            yield base


def _remove_cgroup_tree(base: Path) -> None:
    # Children first: a cgroup folder can only be removed once it has none.
    for path in sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            path.rmdir()
    with contextlib.suppress(OSError):
        base.rmdir()


def queue(state_dir: Path) -> list[str]:
    """Job ids SLURM still holds in a live state (pending, running, completing)."""
    out = _run(["squeue", "-h", "-o", "%i %T"], slurm_env(state_dir), 10)
    if out.returncode != 0:
        return []
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def stop(state_dir: Path, timeout: float = 60.0) -> None:
    """Cancel every job, wait for the queue to empty, stop slurmd, slurmctld, then munged."""
    state = _read_state(state_dir)
    if state is None:
        return
    env = slurm_env(state_dir)
    pids: dict[str, int] = state.get("pids", {})
    if pids.get("slurmctld") and _alive(pids["slurmctld"]):
        jobs = queue(state_dir)
        if jobs:
            _run(["scancel", "--quiet", *jobs], env, 15)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and queue(state_dir):
            time.sleep(0.2)
    for name in ("slurmd", "slurmctld", "munged"):
        pid = pids.get(name)
        if pid:
            _kill(int(pid))
    for base in _cgroup_dirs(str(state.get("node", "tpnode"))):
        _remove_cgroup_tree(base)
    with contextlib.suppress(OSError):
        (_slurm_dir(state_dir) / STATE_FILE).unlink()


def cluster_config(state: dict[str, Any], *, host: str | None = None, **ssh: Any) -> dict[str, Any]:
    """The `[clusters.testbed-slurm]` table: submit over SSH when host is given, else locally."""
    table: dict[str, Any] = {
        "type": "slurm",
        "partition": state["partition"],
        "slurm_conf": state["slurm_conf"],
        "poll_interval": 0.2,
        # A loopback controller can take frequent polls; tests then see the end of long jobs soon.
        "max_poll_interval": 2.0,
    }
    if host is not None:
        table["host"] = host
    table.update({k: v for k, v in ssh.items() if v is not None})
    return table


def main(argv: list[str]) -> int:
    """`up|down|status STATE_DIR`: start, stop or show the SLURM testbed."""
    if len(argv) != 2 or argv[0] not in ("up", "down", "status"):
        sys.stderr.write("usage: slurm.py up|down|status STATE_DIR\n")
        return 2
    state_dir = Path(argv[1])
    if argv[0] == "up":
        state = start(state_dir)
        sys.stdout.write(json.dumps(state, indent=2) + "\n")
    elif argv[0] == "down":
        stop(state_dir)
    else:
        sys.stdout.write(json.dumps(_read_state(state_dir), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
