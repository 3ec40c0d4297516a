"""checkov, a standard scanner of Kubernetes manifests that platform teams run at
admission, over what Modelplane renders. It lives in its own environment, `.venv-scan`
(made by `scripts/setup --testbed` from `tests/scanner-requirements.txt`), because its
dependencies conflict with MLflow's and kopf's."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.conftest import REPO

CHECKOV = REPO / ".venv-scan" / "bin" / "checkov"
# Checks that do not apply to what Modelplane renders, each with why. Any other failed
# check fails the tests that scan.
NOT_APPLICABLE = {
    "CKV_K8S_43": "Image should use digest: images are named by the release they carry (the chart's appVersion, "
    "the operator's serving image, spec.image); which registry and digests a cluster trusts is its "
    "admission's to enforce, with the image named as the platform team chooses",
    "CKV_K8S_15": "Image Pull Policy should be Always: release tags are not moved, so IfNotPresent (Kubernetes' "
    "default for them) lets a node restart a pod without the image registry",
    "CKV_K8S_35": "Prefer secrets as files over environment variables: MLflow's clients take registry credentials "
    "only from their variables (MLFLOW_TRACKING_TOKEN, _USERNAME, _PASSWORD), which pods and the "
    "operator read from Secrets (envFrom, secretKeyRef); none is written into a manifest",
}


@dataclass(frozen=True)
class Finding:
    check: str
    name: str
    resource: str

    def __str__(self) -> str:
        return f"{self.check} ({self.name}) on {self.resource}"


def scan(documents: list[dict], folder: Path) -> list[Finding]:
    """Every check checkov fails on `documents`, scanned together (so its graph checks see
    which NetworkPolicy selects which pods), written as YAML into `folder`."""
    if not CHECKOV.exists():
        raise AssertionError(f"{CHECKOV} is missing: run scripts/setup --testbed, which installs the scanner")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scanned.yaml").write_text(yaml.safe_dump_all(documents, sort_keys=False))
    # --skip-download: nothing is fetched from the scanner vendor's service (its guidelines),
    # which CI cannot reach and the checks do not need.
    result = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(folder),
            "--framework",
            "kubernetes",
            "--quiet",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode not in (0, 1):
        raise AssertionError(f"checkov failed to run (exit code {result.returncode}): {result.stderr[-2000:]}")
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert sum(report.get("summary", {}).get("resource_count", 0) for report in reports), "checkov scanned nothing"
    return [
        Finding(failed["check_id"], failed["check_name"], failed["resource"])
        for report in reports
        for failed in report.get("results", {}).get("failed_checks", [])
    ]


def unexpected(findings: list[Finding], also_not_applicable: dict[str, str] | None = None) -> list[str]:
    """The findings whose check is neither in NOT_APPLICABLE nor in `also_not_applicable`
    (check to why), as text for an assertion's message."""
    skipped = {**NOT_APPLICABLE, **(also_not_applicable or {})}
    return sorted(str(finding) for finding in findings if finding.check not in skipped)
