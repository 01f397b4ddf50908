"""deploy/: the image installs what `make setup` installs, the Helm values fit Dagster's
chart and name the code location that exists, and every setting they pass is one the code
reads. No docker, no helm, no cluster: files only."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
VALUES = DEPLOY / "helm" / "values.yaml"
K8S = DEPLOY / "k8s"
CHART_FIXTURES = ROOT / "tests" / "fixtures" / "dagster_helm"
# The code nextbuy runs: where a setting it reads is read.
CODE_FOLDERS = ("orchestration", "ml", "thelook", "serving", "dbt_project")
# Set for the container, read by the shell and Python themselves.
PROCESS_SETTINGS = {"PATH", "PYTHONUNBUFFERED"}
# Settings read by a library, not by nextbuy: the library and the file that reads them.
LIBRARY_SETTINGS = {
    "MLFLOW_TRACKING_USERNAME": ("mlflow", "mlflow/environment_variables.py"),
    "MLFLOW_TRACKING_PASSWORD": ("mlflow", "mlflow/environment_variables.py"),
    "GOOGLE_APPLICATION_CREDENTIALS": ("google-auth", "google/auth/environment_vars.py"),
}


def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text(encoding="utf-8"))


def code_location() -> dict[str, Any]:
    (deployment,) = values()["dagster-user-deployments"]["deployments"]
    return deployment


def k8s_objects() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(K8S.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if doc
    ]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined, comments out."""
    lines = [
        line
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if not line.lstrip().startswith("#")
    ]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [
        (keyword.upper(), rest.strip())
        for keyword, rest in (
            line.strip().split(" ", 1) for line in joined.splitlines() if line.strip()
        )
    ]


def uv_installs(commands: str, python_flag_value: str) -> list[list[str]]:
    """The arguments of every `uv pip install` in ``commands``, after `--python <python>`."""
    installs = []
    for command in re.split(r"&&|\n", commands):
        words = shlex.split(command)
        if "pip" in words and "install" in words and any(w.endswith("uv") for w in words[:2]):
            args = words[words.index("install") + 1 :]
            assert args[:2] == ["--python", python_flag_value], command
            installs.append(args[2:])
    return installs


def makefile_setup_installs() -> list[list[str]]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("$(STAMP): pyproject.toml requirements.lock", 1)[1].split("\n\n", 1)[0]
    return uv_installs(recipe.replace("$(UV)", "uv"), "$(BIN)/python")


def dockerfile_installs() -> list[list[str]]:
    runs = "\n".join(args for keyword, args in dockerfile_instructions() if keyword == "RUN")
    return uv_installs(runs, "/opt/venv/bin/python")


def test_the_image_installs_the_lock_as_make_setup_does() -> None:
    make = makefile_setup_installs()
    image = dockerfile_installs()
    assert len(make) == 2, make  # the lock, then the project without its dependencies
    lock, project = make
    # The lock and the project the same way, in the same order; between them only the
    # image's own lock, with the lock's flags.
    assert image[0] == lock
    assert image[-1] == project
    assert image[1:-1] == [[*lock[:-1], "deploy/requirements.lock"]]
    uv_version = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert uv_version is not None
    assert ("ARG", f"UV_VERSION={uv_version.group(1)}") in dockerfile_instructions()


def pins(path: Path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)$", path.read_text(encoding="utf-8"), re.M)
    return {name.lower().replace("_", "-"): version for name, version in found}


def test_the_image_lock_changes_no_pin_of_requirements_lock() -> None:
    """deploy/requirements.lock is compiled against requirements.lock (make lock-deploy):
    installed second, it only adds packages."""
    base, extra = pins(ROOT / "requirements.lock"), pins(DEPLOY / "requirements.lock")
    differ = {name: (base[name], extra[name]) for name in base.keys() & extra.keys()}
    assert {name: pair for name, pair in differ.items() if pair[0] != pair[1]} == {}
    # Dagster's libraries are versioned 0.(minor + 16).patch beside dagster 1.minor.patch.
    _, minor, patch = base["dagster"].split(".")
    for library in ("dagster-k8s", "dagster-postgres"):
        assert extra[library] == f"0.{int(minor) + 16}.{patch}"


def test_the_chart_version_is_the_pinned_dagster() -> None:
    dagster = pins(ROOT / "requirements.lock")["dagster"]
    text = VALUES.read_text(encoding="utf-8")
    assert f"--version {dagster}" in text
    assert f"chart version {dagster}" in text


def test_the_image_copies_what_the_code_location_reads() -> None:
    copied = {
        source.rstrip("/")
        for keyword, args in dockerfile_instructions()
        if keyword == "COPY"
        for source in args.split()[:-1]
    }
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    needed = packages | {"dbt_project", "expectations", "parameters.yaml", "pyproject.toml"}
    assert needed <= copied, needed - copied
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert not needed & set(ignored)


def test_the_code_location_is_the_one_the_workspace_serves() -> None:
    (workspace,) = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"]
    module = workspace["python_module"]
    deployment = code_location()
    args = deployment["codeServerArgs"]
    assert args[args.index("--module-name") + 1] == module["module_name"]
    assert args[args.index("--attribute") + 1] == module["attribute"]
    assert deployment["name"] == module["location_name"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert deployment["name"] == pyproject["tool"]["dg"]["project"]["code_location_name"]
    assert deployment["port"] == 4000
    cmd = json.loads(dict(dockerfile_instructions())["CMD"])
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert module["module_name"] in cmd and module["attribute"] in cmd
    # The module defines the attribute as Dagster definitions (read, not imported).
    source = ROOT / (module["module_name"].replace(".", "/") + ".py")
    tree = ast.parse(source.read_text(encoding="utf-8"))
    (defs,) = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name == module["attribute"]
    ]
    assert [ast.unparse(d) for d in defs.decorator_list] == ["dg.definitions"]


def offline_registry() -> Registry:  # type: ignore[type-arg]
    """The chart's schema refers to Kubernetes' schemas by URL: read each as "any"."""

    def anything(uri: str) -> Resource:  # type: ignore[type-arg]
        return Resource.from_contents({}, default_specification=DRAFT7)

    return Registry(retrieve=anything)  # type: ignore[call-arg]


def problems(instance: Any, schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema, registry=offline_registry())
    return [
        f"{'.'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def test_the_helm_values_fit_the_chart() -> None:
    schema = json.loads((CHART_FIXTURES / "values_subset.schema.json").read_text())
    assert problems(values(), schema) == []
    # The check bites: a misspelt key and a wrong type are found.
    broken = values()
    broken["dagsterDaemon"]["runMonitoring"]["startTimeout"] = 300
    broken["runLauncher"]["type"] = "K8sLauncher"
    assert len(problems(broken, schema)) == 2


def deploy_files() -> Iterator[Path]:
    return (p for p in sorted(DEPLOY.rglob("*")) if p.is_file())


def code_text() -> str:
    files = [p for folder in CODE_FOLDERS for p in (ROOT / folder).rglob("*") if p.is_file()]
    return "\n".join(
        p.read_text(encoding="utf-8") for p in files if p.suffix in {".py", ".yml", ".sql"}
    )


def test_every_nextbuy_setting_in_deploy_is_read_by_the_code() -> None:
    used = {
        name
        for path in deploy_files()
        for name in re.findall(r"\bNEXTBUY_[A-Z_]+\b", path.read_text(encoding="utf-8"))
    }
    code = code_text()
    assert used, "deploy/ names no NEXTBUY_ setting"
    assert {name for name in used if not re.search(rf"\b{name}\b", code)} == set()
    # ... and every setting of profiles.yml's bigquery target is given.
    profile = (ROOT / "dbt_project" / "profiles.yml").read_text(encoding="utf-8")
    bigquery = profile.split("bigquery:", 1)[1]
    assert set(re.findall(r"env_var\('(NEXTBUY_BQ_[A-Z_]+)'", bigquery)) <= used


def environment_names() -> set[str]:
    """Every environment variable deploy/ sets: the image's ENV, the env ConfigMap, the
    Secrets given to the pods as environment."""
    env_sources = {ref["name"] for ref in code_location()["envSecrets"]}
    env_sources |= {ref["name"] for ref in code_location()["envConfigMaps"]}
    names: set[str] = set()
    for obj in k8s_objects():
        if obj["metadata"]["name"] in env_sources:
            names |= set(obj.get("data", {})) | set(obj.get("stringData", {}))
    for keyword, args in dockerfile_instructions():
        if keyword == "ENV":
            names |= set(re.findall(r"(?:^|\s)([A-Z_][A-Z0-9_]*)=", args))
    return names


def test_every_setting_deploy_passes_is_read_by_something() -> None:
    code = code_text()
    unread = set()
    for name in environment_names() - PROCESS_SETTINGS:
        if name in LIBRARY_SETTINGS:
            dist, file = LIBRARY_SETTINGS[name]
            path = Path(str(importlib.metadata.distribution(dist).locate_file(file)))
            if name not in path.read_text(encoding="utf-8"):
                unread.add(name)
        elif not re.search(rf"\b{name}\b", code):
            unread.add(name)
    assert unread == set()


def test_the_secrets_and_configmaps_the_values_name_are_there() -> None:
    deployment, launcher = code_location(), values()["runLauncher"]["config"]["k8sRunLauncher"]
    defined = {(obj["kind"], obj["metadata"]["name"]) for obj in k8s_objects()}
    # The parameters ConfigMap is made from the repo's parameters.yaml (README), not
    # written a second time.
    defined.add(("ConfigMap", "nextbuy-parameters"))
    named = {("Secret", values()["global"]["postgresqlSecretName"])}
    for where in (deployment, launcher):
        named |= {("ConfigMap", ref["name"]) for ref in where["envConfigMaps"]}
        named |= {("Secret", ref["name"]) for ref in where["envSecrets"]}
        for volume in where["volumes"]:
            if "secret" in volume:
                named.add(("Secret", volume["secret"]["secretName"]))
            if "configMap" in volume:
                named.add(("ConfigMap", volume["configMap"]["name"]))
        # Runs mount what the code location mounts.
        assert where["volumes"] == deployment["volumes"]
        assert where["volumeMounts"] == deployment["volumeMounts"]
    assert named <= defined, named - defined
    # Every Secret value in the repo is a marked placeholder.
    for obj in k8s_objects():
        for value in obj.get("stringData", {}).values() if obj["kind"] == "Secret" else ():
            assert "REPLACE_ME" in value


def test_the_mounted_files_are_where_the_settings_say() -> None:
    (env,) = [o["data"] for o in k8s_objects() if o["metadata"]["name"] == "nextbuy-env"]
    mounts = {m["name"]: m["mountPath"] for m in code_location()["volumeMounts"]}
    assert Path(env["NEXTBUY_BQ_KEYFILE"]).parent == Path(mounts["gcp-key"])
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == env["NEXTBUY_BQ_KEYFILE"]
    assert Path(env["NEXTBUY_PARAMETERS"]) == Path(mounts["parameters"]) / "parameters.yaml"
    assert env["NEXTBUY_ENV"] == "production"


@pytest.mark.parametrize(
    "path", [p for p in deploy_files() if p.suffix in {".yaml", ".yml"}], ids=str
)
def test_every_yaml_file_under_deploy_parses(path: Path) -> None:
    assert [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
