"""deploy/compose.yaml and deploy/env.example checked offline (issue 16 item 5): the compose
file validates against the Compose specification's JSON Schema (as vendored by
check-jsonschema), every file it mounts exists, every variable it interpolates and every
setting the code reads is in env.example."""

from __future__ import annotations

import json
import re
from pathlib import Path

import check_jsonschema
import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SCHEMA = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
# Read by the test settings only.
NOT_FOR_DEPLOYMENT = {"RADVIEWER_TEST_MLFLOW_URI"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _env_example() -> tuple[set[str], set[str]]:
    required, optional = set(), set()
    for line in (DEPLOY / "env.example").read_text().splitlines():
        if m := re.match(r"^([A-Z][A-Z0-9_]*)=", line):
            required.add(m.group(1))
        elif m := re.match(r"^#\s*([A-Z][A-Z0-9_]*)=", line):
            optional.add(m.group(1))
    return required, optional


def test_compose_validates_against_the_compose_specification(compose):
    jsonschema.validate(compose, json.loads(SCHEMA.read_text()))
    assert {"web", "worker-inference", "worker-training", "beat", "postgres", "redis", "minio", "mlflow",
            "prometheus", "grafana", "orthanc"} <= set(compose["services"])


def test_schema_refuses_a_broken_compose_file(compose):
    broken = {**compose, "services": {**compose["services"], "web": {**compose["services"]["web"], "ports": "8000"}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, json.loads(SCHEMA.read_text()))


def test_mounted_files_exist(compose):
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which is not in deploy/"
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).exists()


def test_every_interpolated_variable_is_in_env_example():
    required, optional = _env_example()
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)(:?-[^}]*)?\}", (DEPLOY / "compose.yaml").read_text()))
    for name, default in used:
        assert name in (required if not default else required | optional), name


def test_every_setting_the_code_reads_is_in_env_example():
    read = set()
    for path in (REPO / "radviewer" / "settings").glob("*.py"):
        read |= set(re.findall(r"(?:env_\w+|require|os\.environ\.get|os\.getenv)\(\s*\"([A-Z][A-Z0-9_]*)\"",
                               path.read_text()))
    required, optional = _env_example()
    missing = sorted(read - required - optional - NOT_FOR_DEPLOYMENT)
    assert not missing, f"add to deploy/env.example: {missing}"
    production = (REPO / "radviewer" / "settings" / "production.py").read_text()
    hinted = set(re.findall(r'^\s+"([A-Z][A-Z0-9_]*)": ', production, re.M))
    set_by_compose = {"DATABASE_URL", "CELERY_BROKER_URL"}
    assert hinted - set_by_compose <= required, "a production-required setting is not uncommented in env.example"
