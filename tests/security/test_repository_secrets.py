"""No secret in the repository; connections come from the environment or a secrets backend.

The scan covers every file git would commit (tracked, plus new files that are not ignored),
with the rules of ``secret_scan.py``. Azurite's public development key is the one value
allowed, and only in the files that configure the local Blob connection.
"""

from __future__ import annotations

import ast
import base64
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.secret_scan import AZURITE_PUBLIC_KEY, RULES, scan_text

ROOT = Path(__file__).resolve().parents[2]
CODE_FOLDERS = ("dags", "plugins", "include")

# Where Azurite's public key may appear (the local Blob connection), and nowhere else.
AZURITE_KEY_FILES = {
    "local/stack/config.py",
    "airflow_settings.yaml",
    "docker-compose.yaml",
    "docker-compose.override.yml",
    "tests/support/secret_scan.py",
}


def _committable_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(name for name in listed.split("\0") if name and (ROOT / name).is_file())


def _text(name: str) -> str | None:
    data = (ROOT / name).read_bytes()
    return None if b"\0" in data else data.decode("utf-8", errors="replace")


@pytest.fixture(scope="module")
def repository() -> dict[str, str]:
    files = {name: _text(name) for name in _committable_files()}
    return {name: text for name, text in files.items() if text is not None}


def test_the_repository_holds_no_secret(repository):
    assert len(repository) > 100  # the listing worked
    findings = [str(f) for name, text in repository.items() for f in scan_text(text, name)]
    assert not findings, "secrets in the repository:\n" + "\n".join(findings)


def test_the_azurite_key_is_the_public_one_and_only_where_expected(repository):
    from local.stack.config import AZURITE_KEY

    assert AZURITE_KEY == AZURITE_PUBLIC_KEY
    holders = {name for name, text in repository.items() if AZURITE_PUBLIC_KEY in text}
    assert holders == AZURITE_KEY_FILES


def _random_key() -> str:
    return base64.b64encode(bytes(range(7, 71))).decode()  # 64 bytes, like an account key


# Built at run time so that no sample is ever a literal of the repository.
SAMPLES = {
    "Databricks personal access token": "token: dapi" + "0123456789abcdef" * 2,
    "local workspace token": "DATABRICKS_TOKEN=local-" + "9f" * 16,
    "Azure storage account key": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey="
    + _random_key(),
    "Azure SAS signature": "https://a.blob.core.windows.net/c/b?sv=2025-01-05&sp=r&sig="
    + "AbCd%2BeFgH%3D" * 3,
    "AWS access key id": "aws_access_key_id = AKIA" + "ABCDEFGHIJKLMNOP",
    "AWS secret access key": "aws_secret_access_key: "
    + "wJalrXUtnFEMI/K7MDENG+bPxRfiCY"
    + "x" * 10,
    "private key": "-----BEGIN " + "OPENSSH PRIVATE KEY-----",
    "password in a URL": "postgresql+psycopg2://airflow:" + "hunter2" + "@postgres/airflow",
    "Slack webhook URL": "https://hooks.slack.com/services/T0001/B0001/" + "a1B2c3D4" * 3,
    "Slack token": "xoxb-" + "1234567890-abcdefghij",
    "GitHub token": "ghp_" + "A1b2C3d4E5" * 4,
}


@pytest.mark.parametrize(("rule", "sample"), SAMPLES.items(), ids=list(SAMPLES))
def test_the_scanner_finds_each_kind_of_secret(rule, sample):
    assert [f.rule for f in scan_text(f"x = '{sample}'", "sample")] == [rule]


def test_every_rule_has_a_sample():
    assert set(SAMPLES) == set(RULES)


@pytest.mark.parametrize(
    "allowed",
    [
        "AccountKey=" + AZURITE_PUBLIC_KEY + ";BlobEndpoint=http://127.0.0.1:10000/x",
        "postgresql+psycopg2://airflow:${POSTGRES_PASSWORD:?set it}@postgres/airflow",
        "https://<user>:<password>@example.com",
        "http://user:***@host/path",
        'assert "sig=" in link and "sp=r" in link',
        "local-dev-token-change-me",
    ],
)
def test_public_values_and_placeholders_are_not_findings(allowed):
    assert scan_text(allowed, "sample") == []


# --- credentials in code: connection ids only -----------------------------------------------

CREDENTIAL_NAME = re.compile(
    r"(?i)(passw|secret|token|api_?key|access_?key|account_?key|\bsas\b|sas_|connection_?string|"
    r"conn_?str|credential|private_?key|webhook|auth)"
)
NOT_A_CREDENTIAL = re.compile(r"(?i)(_conn_id|_type|_id)$")


def _named_literals(tree: ast.AST):
    """(name, literal) for every string bound to a name: assignments, keywords, dict keys,
    argument defaults."""
    for node in ast.walk(tree):
        pairs: list[tuple[str, ast.AST]] = []
        if isinstance(node, ast.keyword) and node.arg:
            pairs.append((node.arg, node.value))
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                name = getattr(target, "id", None) or getattr(target, "attr", None)
                if name:
                    pairs.append((name, node.value))
        elif isinstance(node, ast.Dict):
            pairs += [
                (key.value, value)
                for key, value in zip(node.keys, node.values, strict=True)
                if isinstance(key, ast.Constant) and isinstance(key.value, str)
            ]
        elif isinstance(node, ast.arguments):
            positional = node.posonlyargs + node.args
            pairs += list(zip((a.arg for a in positional[::-1]), node.defaults[::-1], strict=False))
            pairs += [
                (a.arg, d) for a, d in zip(node.kwonlyargs, node.kw_defaults, strict=True) if d
            ]
        for name, value in pairs:
            if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value:
                yield name, value.value, value.lineno


def _code_files() -> list[Path]:
    return sorted(p for folder in CODE_FOLDERS for p in (ROOT / folder).rglob("*.py"))


def test_no_dag_plugin_or_include_code_hard_codes_a_credential():
    assert len(_code_files()) > 10
    found = []
    for path in _code_files():
        source = path.read_text()
        where = path.relative_to(ROOT).as_posix()
        found += [str(f) for f in scan_text(source, where)]
        for name, value, line in _named_literals(ast.parse(source)):
            templated = value.startswith("{{") and value.endswith("}}")  # rendered at run time
            credential = CREDENTIAL_NAME.search(name) and not NOT_A_CREDENTIAL.search(name)
            if credential and not templated:
                found.append(f"{where}:{line}: {name} = {value[:12]!r}...")
    assert not found, "credentials in code (use a connection id):\n" + "\n".join(found)


def test_the_credential_check_would_catch_a_hard_coded_one():
    sample = (
        "hook = DatabricksHook(token='abc123')\n"
        "conn = {'password': 'hunter2'}\n"
        "def f(sas_token='s3cr3t'): ...\n"
        "WEBHOOK_URL = 'https://example.invalid/hook'\n"
    )
    names = [name for name, _, _ in _named_literals(ast.parse(sample))]
    assert sorted(n for n in names if CREDENTIAL_NAME.search(n)) == [
        "WEBHOOK_URL",
        "password",
        "sas_token",
        "token",
    ]


def _connection_ids() -> set[str]:
    ids = set()
    for path in _code_files():
        for name, value, _ in _named_literals(ast.parse(path.read_text())):
            if name.lower().endswith("conn_id") and not value.startswith("{{"):
                ids.add(value)
    return ids


def test_the_docs_say_where_every_connection_comes_from():
    deployment = (ROOT / "docs" / "deployment.md").read_text()
    match = re.search(r"^##+ Connections and secrets\n(.*?)(?=^#{1,3} )", deployment, re.M | re.S)
    assert match, "docs/deployment.md has no 'Connections and secrets' section"
    section = match.group(1)
    assert "secrets backend" in section and "AIRFLOW_CONN_" in section
    assert "No secret is ever in the repository" in section
    ids = _connection_ids()
    assert {"databricks_default", "wasb_default", "ecom_alerts"} <= ids
    assert [conn_id for conn_id in sorted(ids) if f"`{conn_id}`" not in section] == []
    local = (ROOT / "docs" / "local_stack.md").read_text()
    assert "connections from the environment" in local
