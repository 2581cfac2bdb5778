"""A throw-away single-node SLURM cluster for tests/test_slurm.py.

munged, slurmctld and slurmd (Debian's packages) run as children of this process, every file they use lives
in one folder (config, keys, sockets, spool, logs), and `stop()` ends exactly the processes `start()` began,
by PID. The node offers a fake GPU (gres.conf: `File=/dev/null`) so that `--gpus=1` jobs are scheduled as
on a real GPU node.

Two shims go first on PATH for the workflow run:
- `sbatch` writes each command line to `sbatch.log` and then calls the real sbatch (the test reads it);
- `srun` puts SLURM_CONF back: the executor's job step strips every `SLURM_*` variable before it calls
  `srun` inside the job, and this cluster's config is not at /etc/slurm/slurm.conf.

Usable by hand too (as root):
    python tests/slurm/cluster.py start /tmp/slurm-test   # prints the environment to use
    python tests/slurm/cluster.py stop /tmp/slurm-test
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
BINARIES = ["munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel"]
NODE = "softlabels-node"


class ClusterError(RuntimeError):
    """The test cluster could not be installed, started or reached."""


def missing_binaries() -> list[str]:
    """The SLURM/munge programs not found on PATH (or in /usr/sbin)."""
    search = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    return [name for name in BINARIES if shutil.which(name, path=search) is None]


def ensure_installed(log=print) -> None:
    """Install Debian's slurmctld, slurmd, slurm-client and munge with apt-get when any is missing."""
    if not missing_binaries():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ClusterError(f"missing {missing_binaries()} and cannot apt-get install them (not root/Debian)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES],
    ):
        log("+ " + " ".join(cmd))
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    if missing_binaries():
        raise ClusterError(f"still missing after install: {missing_binaries()}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_total_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4096


def _sbin(name: str) -> str:
    return shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin") or name


class TestCluster:
    """munged + slurmctld + slurmd under `root`; `env()` is the environment that talks to it."""

    __test__ = False  # not a pytest class

    def __init__(self, root: Path, cpus: int = 8):
        self.root = Path(root).resolve()
        self.cpus = cpus
        self.conf = self.root / "slurm.conf"
        self.bin = self.root / "bin"
        self.sbatch_log = self.root / "sbatch.log"
        self.procs: dict[str, subprocess.Popen] = {}

    # ------------------------------------------------------------------ setup
    def _render(self) -> None:
        for sub in ("state", "spool", "log", "munge", "bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        values = {
            "@HOST@": socket.gethostname().split(".")[0],
            "@NODE@": NODE,
            "@DIR@": str(self.root),
            "@CTLD_PORT@": str(_free_port()),
            "@SLURMD_PORT@": str(_free_port()),
            "@CPUS@": str(self.cpus),
            "@MEM_MB@": str(int(_mem_total_mb() * 0.9)),
        }
        for name in ("slurm.conf", "gres.conf"):
            text = (HERE / f"{name}.in").read_text()
            for key, value in values.items():
                text = text.replace(key, value)
            (self.root / name).write_text(text)
        key = self.root / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self._write_shims()

    def _write_shims(self) -> None:
        real_sbatch = shutil.which("sbatch") or "/usr/bin/sbatch"
        real_srun = shutil.which("srun") or "/usr/bin/srun"
        shims = {
            "sbatch": f"""#!/bin/bash
# Log the command line (shell-quoted, one per line), then submit for real. Snakemake submits jobs
# concurrently: hold an exclusive lock while writing so that two lines never interleave.
{{
    flock 9
    printf '%q ' sbatch "$@" >&9
    printf '\\n' >&9
}} 9>> {shlex.quote(str(self.sbatch_log))}
exec {real_sbatch} "$@"
""",
            "srun": f"""#!/bin/sh
# The job step strips SLURM_* (SLURM_CONF too) before calling srun: point srun back at this cluster.
export SLURM_CONF={shlex.quote(str(self.conf))}
exec {real_srun} "$@"
""",
        }
        for name, text in shims.items():
            path = self.bin / name
            path.write_text(text)
            path.chmod(0o755)

    def env(self, base: dict | None = None) -> dict:
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = str(self.bin) + os.pathsep + env.get("PATH", "")
        for var in list(env):
            if var.startswith(("SLURM_JOB", "SLURM_STEP", "SBATCH_", "SRUN_")):
                env.pop(var)
        return env

    # ------------------------------------------------------------------ daemons
    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")
        self.procs[name] = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env(), start_new_session=True
        )
        log.close()
        (self.root / "pids.json").write_text(json.dumps({k: p.pid for k, p in self.procs.items()}))

    def _wait_for(self, what: str, check, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise ClusterError(f"{name} exited ({proc.returncode}) while waiting for {what}\n{self.logs()}")
            if check():
                return
            time.sleep(0.5)
        raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.logs()}")

    def _run(self, *cmd: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), env=self.env(), capture_output=True, text=True, timeout=timeout)

    def start(self, timeout: float = 90) -> "TestCluster":
        self._render()
        sock = self.root / "munge" / "munge.socket"
        self._spawn(
            "munged",
            [
                _sbin("munged"),
                "--foreground",
                "--force",
                f"--key-file={self.root / 'munge' / 'munge.key'}",
                f"--socket={sock}",
                f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
                f"--seed-file={self.root / 'munge' / 'munged.seed'}",
            ],
        )
        self._wait_for("munged socket", sock.exists, 20)
        self._spawn("slurmctld", [_sbin("slurmctld"), "-D", "-c", "-f", str(self.conf)])
        self._wait_for("slurmctld", lambda: self._run("scontrol", "ping").returncode == 0 and "UP" in self._run("scontrol", "ping").stdout, timeout)
        self._spawn("slurmd", [_sbin("slurmd"), "-D", "-N", NODE, "-f", str(self.conf)])
        self._wait_for("an idle node", self._node_idle, timeout)
        return self

    def _node_idle(self) -> bool:
        out = self._run("sinfo", "-h", "-N", "-o", "%t").stdout.split()
        return bool(out) and all(state.startswith("idle") or state.startswith("mix") for state in out)

    def logs(self) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace")
            parts.append(f"--- {path.name} (last lines)\n" + "\n".join(text.splitlines()[-25:]))
        return "\n".join(parts)

    def stop(self, timeout: float = 30) -> None:
        """Cancel the cluster's jobs, then end munged/slurmctld/slurmd (the PIDs started here)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                self._run("scancel", "--full", "--partition=debug", timeout=10)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and self._run("squeue", "-h", "-t", "R,CG,PD").stdout.strip():
                    time.sleep(0.5)
            except (subprocess.SubprocessError, OSError):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.procs.clear()

    def __enter__(self) -> "TestCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def stop_from_pidfile(root: Path) -> None:
    """End the daemons listed in `root/pids.json` (for a cluster started by `cluster.py start`)."""
    pids = json.loads((Path(root) / "pids.json").read_text())
    for name in ("slurmd", "slurmctld", "munged"):
        pid = pids.get(name)
        if pid is None:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        for _ in range(60):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print(__doc__)
        return 2
    root = Path(argv[1])
    if argv[0] == "start":
        ensure_installed()
        cluster = TestCluster(root).start()
        cluster.procs.clear()  # leave them running; `stop` ends them by the PIDs in pids.json
        print(f"export SLURM_CONF={cluster.conf}\nexport PATH={cluster.bin}:$PATH")
    else:
        stop_from_pidfile(root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
