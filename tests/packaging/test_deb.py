"""Install fleetmon's Debian packages on this machine the way a host gets them, and take them out again.

The .debs come from `make deb` (dh-virtualenv + lintian, ~2.5 minutes), built once and cached in
/tmp/fleetmon-deb-cache/<hash of the checkout>/ so reruns and unchanged checkouts reuse them.
The tests run as root and change the machine: they refuse to start when a fleetmon package is
already installed, and the module's teardown purges both packages and deletes the users and
files the tests made. systemd is not PID 1 here, so each unit's command is run the way systemd
would run it: its User=/Group= with the user's groups from /etc/group, its Environment and
EnvironmentFile, `$VAR` expansion, working directory /.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from tests.harness.servers import ProcessExited, free_port, wait_until
from tests.packaging.conftest import REPO

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("dpkg"),
                                reason="installs .debs: needs root on a Debian machine")

PACKAGES = ("fleetmon-exporter", "fleetmon-server")
UNITS = Path("/lib/systemd/system")
USERS = ("fleetmon-exporter", "fleetmon")
CACHE = Path("/tmp/fleetmon-deb-cache")
SEARCH_ROOTS = ("/etc", "/usr", "/lib/systemd", "/var/lib", "/var/log")


def sh(*cmd: str, ok: bool = True, timeout: float = 300, **kw) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    env.pop("PYTHONPATH", None)
    res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                         env=env, **kw)
    if ok:
        assert res.returncode == 0, f"{cmd}: {res.stdout[-3000:]}{res.stderr[-3000:]}"
    return res


def checkout_hash() -> str:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.split(b"\0")
    h = hashlib.sha256()
    # Tests and benchmarks are not in the packages: editing them reuses the cached build.
    for f in sorted(x for x in files if x and not x.startswith((b"tests/", b"bench/"))):
        path = REPO / f.decode()
        if path.is_file():
            h.update(f + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def built_debs() -> dict[str, Path]:
    out = CACHE / checkout_hash()
    debs = {p: next(iter(out.glob(f"{p}_*.deb")), None) for p in PACKAGES}
    if not all(debs.values()):
        res = sh("make", "--no-print-directory", "deb", f"DEB_OUT={out}", cwd=REPO, ok=False, timeout=900)
        assert res.returncode == 0, f"make deb: {res.stdout[-4000:]}{res.stderr[-4000:]}"
        debs = {p: next(iter(out.glob(f"{p}_*.deb"))) for p in PACKAGES}
    return debs  # type: ignore[return-value]


def fleet_paths() -> set[str]:
    """Every path on the machine under the usual roots whose name mentions fleet (fleetmon, fleet-*)."""
    found = set()
    for root in SEARCH_ROOTS:
        for dirpath, dirnames, filenames in os.walk(root):
            if dirpath.startswith(("/var/lib/dpkg", "/var/lib/apt", "/usr/share/man")):
                dirnames[:] = []
                continue
            for name in dirnames + filenames:
                if "fleet" in name:
                    found.add(os.path.join(dirpath, name))
    return found


def installed_version(pkg: str) -> str:
    res = sh("dpkg-query", "-W", "-f=${Status} ${Version}", pkg, ok=False)
    return res.stdout.split()[-1] if res.returncode == 0 and "install ok installed" in res.stdout else ""


def repack(deb: Path, version: str, out: Path) -> Path:
    """The same package as a newer build (only the version differs), for the upgrade test."""
    tree = out / f"{deb.stem}-tree"
    sh("dpkg-deb", "-R", str(deb), str(tree))
    control = tree / "DEBIAN" / "control"
    control.write_text(re.sub(r"^Version: .*$", f"Version: {version}", control.read_text(), flags=re.M))
    new = out / deb.name.replace("0.1.0-1", version)
    sh("dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "-b", str(tree), str(new))
    return new


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory):
    busy = [p for p in PACKAGES if installed_version(p)]
    if busy:
        pytest.fail(f"{busy} already installed on this machine: purge them before running these tests")
    users_before = {u for u in USERS if _user_exists(u)}
    debs = built_debs()
    before = fleet_paths()
    state = {"debs": debs, "before": before, "tmp": tmp_path_factory.mktemp("deb"), "logs": []}
    t0 = time.monotonic()
    sh("dpkg", "-i", *[str(debs[p]) for p in PACKAGES])
    state["install_seconds"] = time.monotonic() - t0
    try:
        yield state
    finally:
        sh("dpkg", "--purge", *PACKAGES, ok=False)
        for log in state["logs"]:
            Path(log).unlink(missing_ok=True)
        for user in USERS:
            if user not in users_before and _user_exists(user):
                sh("deluser", "--quiet", "--system", user, ok=False)
            if user not in users_before and _group_exists(user):
                sh("delgroup", "--quiet", "--system", user, ok=False)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def owner_mode(path: str) -> tuple[str, str, int]:
    st = os.stat(path)
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode)


# --------------------------------------------------------------------------- systemd, as systemd runs it

def unit_service(path: Path) -> list[tuple[str, str]]:
    """(key, value) pairs of the unit's [Service] section, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out, section = [], ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line:
            k, v = line.split("=", 1)
            out.append((k.strip(), v.strip()))
    return out


def read_env_file(path: str) -> dict[str, str]:
    env = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")) and "=" in line:
            k, v = line.split("=", 1)
            env[k.strip()] = " ".join(shlex.split(v)) if v.strip() else ""
    return env


def unit_command(path: Path, key: str, instance: str = "") -> tuple[list[list[str]], dict[str, str], str, str]:
    """The unit's ``key`` commands with variables and %i expanded, the environment, User and Group."""
    svc = [(k, v.replace("%i", instance)) for k, v in unit_service(path)]
    user = next(v for k, v in svc if k == "User")
    group = next((v for k, v in svc if k == "Group"), user)
    pw = pwd.getpwnam(user)
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "USER": user, "LOGNAME": user, "HOME": pw.pw_dir, "SHELL": pw.pw_shell}
    for k, v in svc:
        if k == "Environment":
            env.update(dict(w.split("=", 1) for w in shlex.split(v)))
        elif k == "EnvironmentFile":
            optional = v.startswith("-")
            f = v.lstrip("-")
            if os.path.exists(f):
                env.update(read_env_file(f))
            else:
                assert optional, f"{path}: EnvironmentFile {f} missing"
    cmds = []
    for k, v in svc:
        if k != key:
            continue
        argv: list[str] = []
        for word in shlex.split(v.lstrip("-@+!:")):
            whole = re.fullmatch(r"\$(\w+)", word)
            if whole:  # $VAR: split on whitespace, dropped when empty (systemd.service(5))
                argv += env.get(whole.group(1), "").split()
            else:
                argv.append(re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), word))
        cmds.append(argv)
    return cmds, env, user, group


def as_unit_user(argv: list[str], env: dict[str, str], user: str, group: str) -> list[str]:
    # setpriv --init-groups: the user's supplementary groups from /etc/group, as User= gets them.
    return ["setpriv", f"--reuid={user}", f"--regid={group}", "--init-groups", "--inh-caps=-all",
            "--", *argv]


def run_unit(path: Path, log: Path, instance: str = "") -> subprocess.Popen:
    pre, env, user, group = unit_command(path, "ExecStartPre", instance)
    for argv in pre:
        res = subprocess.run(as_unit_user(argv, env, user, group), env=env, cwd="/", capture_output=True,
                             text=True, timeout=120)
        assert res.returncode == 0, f"{path.name} ExecStartPre {argv}: {res.stdout}{res.stderr}"
    (start,), env, user, group = unit_command(path, "ExecStart", instance)
    with open(log, "wb") as out:
        return subprocess.Popen(as_unit_user(start, env, user, group), env=env, cwd="/", stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def proc_user(pid: int) -> str:
    uid = int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("Uid:")))
    return pwd.getpwuid(uid).pw_name


def provide_zk_files(zk_dir: Path, source: Path, role: str, user: str) -> list[Path]:
    """Copy one role's ZooKeeper files from the harness's security dir into ``zk_dir``: the
    credential 0600 owned by ``user``, the public ones 0644. Returns the files made."""
    pw = pwd.getpwnam(user)
    zk_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    made = []
    for name, mode, owner in ((f"{role}.credential", 0o600, pw.pw_uid), ("acl-ids", 0o644, 0),
                              ("ca.pem", 0o644, 0), ("rules-signing.pub", 0o644, 0)):
        dst = zk_dir / name
        shutil.copyfile(source / name, dst)
        os.chown(dst, owner, pw.pw_gid if owner else 0)
        dst.chmod(mode)
        made.append(dst)
    return made


def wait_served(proc: subprocess.Popen, log: Path, url: str, check=lambda r: True, timeout: float = 60) -> str:
    def served() -> str:
        if proc.poll() is not None:
            raise ProcessExited(f"exited {proc.returncode}: {log.read_text()[-3000:]}")
        r = requests.get(url, timeout=3)
        return r.text if r.status_code == 200 and check(r) else ""
    return wait_until(served, timeout=timeout, interval=0.3, what=url)


# --------------------------------------------------------------------------- the tests (in order)

def test_users_directories_and_conffiles(machine):
    exp = pwd.getpwnam("fleetmon-exporter")
    assert exp.pw_shell == "/usr/sbin/nologin" and exp.pw_uid < 1000
    groups = {g.gr_name for g in grp.getgrall() if "fleetmon-exporter" in g.gr_mem}
    assert {"adm", "systemd-journal"} <= groups
    assert pwd.getpwnam("fleetmon").pw_shell == "/usr/sbin/nologin"
    assert owner_mode("/var/lib/fleet-exporter") == ("fleetmon-exporter", "fleetmon-exporter", 0o700)
    assert owner_mode("/var/lib/fleetmon") == ("fleetmon", "fleetmon", 0o750)
    assert owner_mode("/var/lib/fleetmon/alert-router") == ("fleetmon", "fleetmon", 0o700)
    assert owner_mode("/etc/fleetmon/alert-router.token") == ("root", "fleetmon", 0o640)
    assert owner_mode("/etc/prometheus/fleetmon-rules") == ("prometheus", "prometheus", 0o755)
    assert len(Path("/etc/fleetmon/alert-router.token").read_text().strip()) >= 32
    conffiles = {}
    for pkg in PACKAGES:
        out = sh("dpkg-query", "-W", "-f=${Conffiles}", pkg).stdout
        conffiles[pkg] = {line.split()[0] for line in out.strip().splitlines()}
    assert conffiles["fleetmon-exporter"] == {"/etc/fleetmon/exporter.yml", "/etc/default/fleet-exporter"}
    assert conffiles["fleetmon-server"] == {"/etc/fleetmon/alert-router.yml"}
    for f in (*conffiles["fleetmon-exporter"], *conffiles["fleetmon-server"]):
        assert owner_mode(f) == ("root", "root", 0o644), f
    for cmd in ("fleet-exporter", "alert-router", "fleet-discovery", "rulesync"):
        assert os.access(f"/usr/bin/{cmd}", os.X_OK), cmd
    assert Path("/usr/share/fleetmon/prometheus/rules/recording.yml").read_bytes() == \
        (REPO / "prometheus" / "rules" / "recording.yml").read_bytes()
    # The exporter's venv carries only what the exporter imports.
    site = next(Path("/usr/lib/fleetmon-exporter/lib").glob("python3*/site-packages"))
    assert not [p for p in ("flask", "apprise", "waitress", "pip") if (site / p).exists()]


def test_installed_units_verify(machine):
    # A template is verified through an instance name, as `systemctl enable fleet-discovery@s1` uses it.
    tmp = machine["tmp"] / "units"
    tmp.mkdir()
    inst = tmp / "fleet-discovery@s1.service"
    inst.symlink_to(UNITS / "fleet-discovery@.service")
    res = sh("systemd-analyze", "verify", str(UNITS / "fleet-exporter.service"), str(UNITS / "alert-router.service"),
             str(inst), ok=False)
    # Debian's prometheus.service (named in Before=) is fine; anything about our units is not.
    problems = [line for line in (res.stdout + res.stderr).splitlines() if "fleet" in line or "alert-router" in line]
    assert res.returncode == 0 and not problems, res.stdout + res.stderr


def test_exporter_unit_serves_and_reads_a_log_through_its_group(machine):
    port = free_port()
    log = Path(f"/var/log/fleetmon-test-{uuid.uuid4().hex[:8]}.log")
    machine["logs"].append(str(log))
    log.write_text("".join(f"Nov 30 09:00:0{i} h1 app[1]: <3>line {i}\n" for i in range(5)))
    os.chown(log, 0, grp.getgrnam("adm").gr_gid)
    log.chmod(0o640)  # readable only by root and group adm, like /var/log/syslog
    conf = Path("/etc/fleetmon/exporter.yml")
    cfg = yaml.safe_load(conf.read_text())
    cfg["listen"] = f"127.0.0.1:{port}"
    cfg["logs"] = [{"path": str(log), "type": "syslog", "name": "testlog", "start_at": "beginning"}]
    conf.write_text("# edited by the deb install test\n" + yaml.safe_dump(cfg))
    machine["edited_conf"] = conf.read_text()
    out = machine["tmp"] / "exporter.log"
    proc = run_unit(UNITS / "fleet-exporter.service", out)
    try:
        body = wait_served(proc, out, f"http://127.0.0.1:{port}/metrics",
                           lambda r: re.search(r'^fleetmon_log_lines_total\{log="testlog"\} 5(\.0)?$', r.text, re.M))
        assert "node_cpu_seconds_total" in body
        assert proc_user(proc.pid) == "fleetmon-exporter"
    finally:
        stop(proc)
        log.unlink()
    # SIGTERM saved the offsets in the state directory, owned by the service user.
    assert owner_mode("/var/lib/fleet-exporter/offsets.json")[0] == "fleetmon-exporter"


def test_router_unit_serves_as_its_user(machine):
    port = free_port()
    Path("/etc/fleetmon/alert-router.yml").write_text(f"listen: 127.0.0.1:{port}\n")
    out = machine["tmp"] / "router.log"
    proc = run_unit(UNITS / "alert-router.service", out)
    try:
        wait_served(proc, out, f"http://127.0.0.1:{port}/healthz")
        assert proc_user(proc.pid) == "fleetmon"
        token = Path("/etc/fleetmon/alert-router.token").read_text().strip()
        r = requests.post(f"http://127.0.0.1:{port}/api/v1/alerts", json={"alerts": []}, timeout=5)
        assert r.status_code == 401
        r = requests.get(f"http://127.0.0.1:{port}/api/v1/deliveries", timeout=5,
                         headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
    finally:
        stop(proc)
    assert token not in out.read_text()
    state = list(Path("/var/lib/fleetmon/alert-router").iterdir())
    assert state and all(owner_mode(str(p))[0] == "fleetmon" for p in state)


def test_discovery_unit_writes_targets_as_prometheus(machine, zk_server):
    from discovery.registry import Registrar

    root = f"/deb-{uuid.uuid4().hex[:8]}"
    port = free_port()
    targets = Path(f"/var/lib/prometheus/fleetmon/targets-{uuid.uuid4().hex[:8]}.json")
    env_file = Path("/etc/fleetmon/discovery-s1.env")
    env_file.write_text(f"FLEETMON_ZK={zk_server.hosts}\nREPLICA=a\nPROMETHEUS_URL=http://127.0.0.1:{free_port()}\n"
                        f"RULES_DIR=/etc/prometheus/fleetmon-rules\nTARGETS_FILE={targets}\n"
                        f"LISTEN=127.0.0.1:{port}\nEXTRA_ARGS=--root {root} --debounce 0.2\n")
    # What an operator ships to a shard host (docs/security.md): the sidecar's own credential,
    # the public ACL identities, the ZooKeeper CA and the rules' public key, readable by the
    # unit's user only where secret. The unit sees /etc/fleetmon/zk read-only.
    zk_dir = Path("/etc/fleetmon/zk")
    provided = provide_zk_files(zk_dir, zk_server.security_dir, "sidecar", "prometheus")
    reg = Registrar(zk_server.hosts, root=root)
    reg.start()
    reg.add("host-deb-1", "127.0.0.1:9", labels={"datacenter": "dc1", "role": "web", "env": "test"})
    out = machine["tmp"] / "discovery.log"
    proc = run_unit(UNITS / "fleet-discovery@.service", out, instance="s1")
    try:
        wait_served(proc, out, f"http://127.0.0.1:{port}/metrics")
        assert proc_user(proc.pid) == "prometheus"
        wait_until(lambda: targets.exists() and "host-deb-1" in targets.read_text(), timeout=60,
                   what="the sidecar's targets file")
        assert owner_mode(str(targets))[0] == "prometheus"
    finally:
        stop(proc)
        reg.stop(deregister=True)
        env_file.unlink()  # the admin's file: dpkg leaves it, so the test takes it away
        for f in provided:
            f.unlink()
        if zk_dir.exists() and not any(zk_dir.iterdir()):
            zk_dir.rmdir()


def test_upgrade_keeps_the_edited_conffile(machine):
    new = [repack(machine["debs"][p], "0.1.0-2", machine["tmp"]) for p in PACKAGES]
    sh("dpkg", "-i", *map(str, new))
    assert installed_version("fleetmon-exporter") == "0.1.0-2" == installed_version("fleetmon-server")
    assert Path("/etc/fleetmon/exporter.yml").read_text() == machine["edited_conf"]
    assert "# edited by the deb install test" in machine["edited_conf"]
    # Upgraded, the commands still run.
    assert "OK" in sh("/usr/bin/fleet-exporter", "check-config", "--config", "/etc/fleetmon/exporter.yml").stdout


def test_remove_then_purge_leaves_nothing(machine):
    sh("dpkg", "-r", *PACKAGES)
    left = fleet_paths() - machine["before"]
    # Removed, not purged: only the configuration (conffiles and what postinst generated), the
    # state, and whether the admin enabled the unit (deb-systemd-helper) stay until the purge.
    allowed = {"/etc/systemd/system/multi-user.target.wants/fleet-exporter.service",
               "/etc/systemd/system/multi-user.target.wants/alert-router.service",
               "/var/lib/systemd/deb-systemd-helper-enabled/fleet-exporter.service.dsh-also",
               "/var/lib/systemd/deb-systemd-helper-enabled/alert-router.service.dsh-also",
               "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/fleet-exporter.service",
               "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/alert-router.service",
               "/etc/fleetmon", "/etc/fleetmon/exporter.yml", "/etc/fleetmon/alert-router.yml",
               "/etc/fleetmon/alert-router.token", "/etc/fleetmon/recipients.yaml", "/etc/default/fleet-exporter",
               "/var/lib/fleet-exporter", "/var/lib/fleet-exporter/offsets.json", "/var/lib/fleetmon",
               "/var/lib/fleetmon/alert-router"}
    data = ("/var/lib/fleetmon/alert-router/", "/var/lib/prometheus/fleetmon", "/etc/prometheus/fleetmon-rules")
    assert {p for p in left if not p.startswith(data)} <= allowed
    assert not [p for p in left if p.startswith(("/usr/", "/lib/"))], left
    sh("dpkg", "--purge", *PACKAGES)
    assert fleet_paths() - machine["before"] == set()
    assert not installed_version("fleetmon-exporter") and not installed_version("fleetmon-server")
