"""The README and docs/ stay true: links resolve inside the repository, the configuration reference is the
generator's output, and the example stack files the docs walk through plan as the docs say they do.

A user's clone has nothing beside it (no ../shared), so a link that leaves the repository is a broken link.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from inferstack.planning.plan import Plan, plan_stack
from inferstack.validation.policies import check_policies
from stacks.config import load_stack_file

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", ROOT / "model_image" / "README.md", *DOCS.rglob("*.md")])
EXAMPLES = sorted((DOCS / "examples").glob("Pulumi.*.yaml"))
CONFIGURATION = DOCS / "configuration.md"

# [text](target) and ![alt](target); the target ends at whitespace or the closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
EXTERNAL = ("http://", "https://", "mailto:")
BEGIN = re.compile(r"^<!-- BEGIN GENERATED[^\n]*-->\n", re.MULTILINE)
END = "\n<!-- END GENERATED -->"


def prose(text: str) -> str:
    """The page without its fenced code blocks (commands and YAML there are not links or headings)."""
    return FENCE.sub("", text)


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)  # code spans keep their text
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found: set[str] = set()
    for match in HEADING.finditer(prose(page.read_text(encoding="utf-8"))):
        slug = github_anchor(match.group(1))
        count = seen.get(slug, 0)
        found.add(slug if count == 0 else f"{slug}-{count}")
        seen[slug] = count + 1
    return found


def links(page: Path) -> list[str]:
    return LINK.findall(prose(page.read_text(encoding="utf-8")))


def test_the_anchor_rule_matches_github_on_headings_we_use() -> None:
    assert github_anchor("IAM needed to run `pulumi up`") == "iam-needed-to-run-pulumi-up"
    assert github_anchor("DNS: who creates the record") == "dns-who-creates-the-record"
    assert github_anchor("Gated or private hf:// models") == "gated-or-private-hf-models"
    assert github_anchor("Bake mode (air-gapped sites)") == "bake-mode-air-gapped-sites"
    assert github_anchor("The gateway's address") == "the-gateways-address"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(page: Path) -> None:
    problems = []
    for target in links(page):
        if target.startswith(EXTERNAL):
            continue
        path_part, _, fragment = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.is_relative_to(ROOT):
            problems.append(f"{target}: leaves the repository (a user's clone has nothing beside it)")
            continue
        if not resolved.exists():
            problems.append(f"{target}: no such file")
            continue
        if fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            problems.append(f"{target}: {resolved.relative_to(ROOT)} has no heading with anchor #{fragment}")
    assert not problems, f"{page.relative_to(ROOT)}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_sends_users_to_a_folder_beside_the_clone(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert "../shared" not in text, f"{page.relative_to(ROOT)}: say `make fetch-schemas` instead of ../shared"


def test_the_readme_links_every_docs_page() -> None:
    readme_targets = {t.partition("#")[0] for t in links(ROOT / "README.md")}
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if f"docs/{p.name}" not in readme_targets]
    assert not missing, f"README.md does not link {missing}"


def test_readme_has_no_commit_hashes() -> None:
    # Measurement history and commit references belong in git, not on the front door.
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert not re.search(r"\bcommit [0-9a-f]{7,40}\b", text)


def test_configuration_reference_is_the_generators_output() -> None:
    from inferstack.reporting.reference import markdown_table

    text = CONFIGURATION.read_text(encoding="utf-8")
    begin = BEGIN.search(text)
    assert begin is not None and END in text, "docs/configuration.md lost its GENERATED markers"
    generated = text[begin.end() : text.index(END)]
    assert generated == markdown_table(), (
        "docs/configuration.md is stale: replace the lines between the GENERATED markers with the output "
        "of `inferstack schema --markdown`"
    )


# --- GPU quota: the docs ask for the pools' real ceiling --------------------------------------------------

QUOTA_FORMULA = re.compile(r"`\(max_replicas \+ 1\) x\s+gpus_per_replica`")


def gpu_quota_section(page: str) -> str:
    text = (DOCS / page).read_text(encoding="utf-8")
    start = text.index("## GPU quota")
    return text[start : text.index("\n## ", start + 1)]


@pytest.mark.parametrize(
    ("page", "stacks"),
    [
        ("aws.md", ["dev-aws", "prod-aws"]),
        ("gcp.md", ["dev-gcp", "prod-gcp"]),
        ("azure.md", ["dev-azure", "prod-azure"]),
    ],
)
def test_gpu_quota_asks_for_the_pools_ceiling_with_rollout_headroom(page: str, stacks: list[str]) -> None:
    from stacks.rules_aws import gpu_limit
    from stacks.rules_azure import azure_gpu_limit
    from stacks.rules_gcp import gcp_gpu_limit

    section = gpu_quota_section(page)
    assert QUOTA_FORMULA.search(section), (
        f"docs/{page} GPU quota: ask for (max_replicas + 1) x gpus_per_replica"
    )
    assert not re.search(r"`max_replicas x", section)  # the old count, one replica short
    assert "rollout" in section  # and say why the extra replica
    ceiling = {"aws.md": gpu_limit, "gcp.md": gcp_gpu_limit, "azure.md": azure_gpu_limit}[page]
    for stack in stacks:
        cfg = load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
        # QUOTA_FORMULA, evaluated: the ceiling the stack builds (its default, or a shipped stack's own
        # gpu_limit, which must say the same or the docs' number is wrong for it).
        documented = (cfg.autoscaling.max_replicas + 1) * cfg.serving.gpus_per_replica
        assert ceiling(cfg) == documented, (stack, ceiling(cfg), documented)


# --- the example stack files --------------------------------------------------------------------------


def plan_of(path: Path) -> Plan:
    return plan_stack(load_stack_file(path), path.stem.removeprefix("Pulumi."))


def manifest(plan: Plan, kind: str, name: str) -> dict[str, Any]:
    (found,) = [m for m in plan.manifests() if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


def test_there_is_an_example_and_the_docs_link_it() -> None:
    assert EXAMPLES, "docs/examples/ holds no stack file"
    linked = {target.partition("#")[0] for target in links(DOCS / "onprem.md")}
    for example in EXAMPLES:
        assert f"examples/{example.name}" in linked, f"docs/onprem.md does not link {example.name}"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_stack_file_plans_without_mandatory_policy_findings(example: Path) -> None:
    plan = plan_of(example)
    gateway = manifest(plan, "Gateway", "llm")
    assert {listener["hostname"] for listener in gateway["spec"]["listeners"]} == {
        plan.config.gateway.hostname
    }
    mandatory = [f for f in check_policies(plan) if f.mandatory]
    assert not mandatory, mandatory


def test_onprem_site_example_does_what_docs_onprem_says() -> None:
    """docs/onprem.md, "Worked example": two L40S per replica, weights read-only from the claim, MetalLB
    pool and fixed address, device plugin pinned to the admin's GPU label, internal CA."""
    plan = plan_of(DOCS / "examples" / "Pulumi.onprem-site.yaml")

    pod = manifest(plan, "Deployment", "llm")["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert server["resources"]["requests"]["nvidia.com/gpu"] == "2"
    claims = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [
        {"name": "model-source", "persistentVolumeClaim": {"claimName": "model-weights", "readOnly": True}}
    ]
    env = {e["name"]: e["value"] for e in pod["initContainers"][0]["env"]}
    assert env["MODEL_URI"] == "file:///model-source/qwen2.5-32b-instruct"
    assert pod["nodeSelector"] == {"example.com/gpu": "l40s"}

    service = manifest(plan, "EnvoyProxy", "llm")["spec"]["provider"]["kubernetes"]["envoyService"]
    assert service["annotations"] == {
        f"{prefix}/{key}": value
        for prefix in ("metallb.io", "metallb.universe.tf")  # MetalLB >= 0.14.9, and older releases
        for key, value in (("address-pool", "services"), ("loadBalancerIPs", "10.20.0.40"))
    }
    assert service["loadBalancerSourceRanges"] == ["10.0.0.0/8"]

    (plugin,) = [h for h in plan.helm_releases() if h.release == "llm-device-plugin"]
    assert plugin.values["nodeSelector"] == {"example.com/gpu": "l40s"}
    assert not [h for h in plan.helm_releases() if h.release == "llm-gpu-operator"]

    issuer = manifest(plan, "ClusterIssuer", "llm-ca")
    assert issuer["spec"] == {"ca": {"secretName": "llm-ca"}}
