"""A small secret scanner shared by the repository and log tests of this folder.

Each rule is a regular expression for one kind of credential. The only value allowed through
is Azurite's documented development account key (below); everything else that matches is a
finding. Placeholders that only *name* a secret are not findings: ``${VAR}`` references,
``<...>`` and ``***`` (Airflow's mask).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Azurite's development account key, published in Microsoft's Azurite documentation and
# identical in every Azurite install: not a secret. It appears by design in local/stack/config.py,
# airflow_settings.yaml and the compose files (the local Blob connection). Nothing else is
# allowed.
AZURITE_PUBLIC_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

RULES: dict[str, re.Pattern[str]] = {
    "Databricks personal access token": re.compile(r"\bdapi[0-9a-f]{32}(?:-\d+)?\b"),
    # local/stack/config.py: "local-" + secrets.token_hex(16)
    "local workspace token": re.compile(r"\blocal-[0-9a-f]{32}\b"),
    "Azure storage account key": re.compile(
        r"(?i)(?:AccountKey|account_key|storage_key|AZURE_STORAGE_KEY)[\"']?\s*[=:]\s*[\"']?"
        r"([A-Za-z0-9+/]{40,}={0,2})"
    ),
    "Azure SAS signature": re.compile(r"[?&]sig=([A-Za-z0-9%+/=]{16,})"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(
        r"(?i)aws_secret_access_key[\"']?\s*[=:]\s*[\"']?([A-Za-z0-9/+]{40})\b"
    ),
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    "password in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:([^/\s@'\"]+)@[\w.-]"),
    "Slack webhook URL": re.compile(
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/]{20,}"
    ),
    "Slack token": re.compile(r"\bxox[abposr]-[0-9A-Za-z-]{10,}"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
}

PLACEHOLDER = re.compile(r"^(?:\$\{[^}]*\}|<[^>]*>|\*+|x+|\.\.\.)$")


@dataclass(frozen=True)
class Finding:
    where: str
    line: int
    rule: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.where}:{self.line}: {self.rule}: {self.excerpt}"


def _allowed(match: re.Match[str]) -> bool:
    value = match.group(1) if match.re.groups else match.group(0)
    return value == AZURITE_PUBLIC_KEY or bool(PLACEHOLDER.match(value))


def _redact(text: str) -> str:
    """Enough of a finding to locate it, never the whole secret (reports end up in logs)."""
    return text[:12] + "..." if len(text) > 12 else text


def scan_text(text: str, where: str) -> list[Finding]:
    findings = []
    for number, line in enumerate(text.splitlines(), start=1):
        for rule, pattern in RULES.items():
            for match in pattern.finditer(line):
                if not _allowed(match):
                    findings.append(Finding(where, number, rule, _redact(match.group(0))))
    return findings


def scan_for_values(text: str, where: str, values: dict[str, str]) -> list[Finding]:
    """Occurrences of known secret values (a token, a key) in ``text``."""
    findings = []
    for number, line in enumerate(text.splitlines(), start=1):
        for name, value in values.items():
            if value and value in line:
                findings.append(Finding(where, number, name, _redact(value)))
    return findings
