"""The cold-start budget (stacks/cold_start.py): its arithmetic per platform, capacity type, engine, store
and load mode; the load_mode rules of the stack schema; the summary's section and the diff's line."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from inferstack.reporting.diff import Side, StackDiff, cold_start_of, render_markdown
from stacks.cold_start import (
    ENGINE_LOAD,
    IMAGE_PULL,
    NODE_PROVISIONING,
    STARTUP_ALLOWANCE,
    WARM_UP,
    WEIGHT_FETCH,
    ColdStartBudget,
    LoadMode,
    cold_start_budget,
    engine_seconds,
)
from stacks.config import (
    ConfigError,
    alternative_budget,
    cold_start_budget_of,
    cold_start_seconds,
    config_values_from_stack_yaml,
    load_stack_file,
    parse_stack_config,
)
from stacks.stack_yaml import load_yaml

ROOT = Path(__file__).resolve().parents[1]
STACK_FILES = {
    p.name.removeprefix("Pulumi.").removesuffix(".yaml"): p for p in (ROOT / "stacks").glob("Pulumi.*.yaml")
}
GB = 1e9


def budget(**over: Any) -> ColdStartBudget:
    args: dict[str, Any] = dict(
        platform="aws",
        spot=False,
        engine="vllm",
        store="s3",
        weight_bytes=16 * GB,
        startup_timeout_seconds=600,
    )
    args.update(over)
    return cold_start_budget(**args)


def seconds(b: Any) -> dict[str, int]:
    return {item.name: item.seconds for item in b.items}


# --- arithmetic ---------------------------------------------------------------------------------------


def test_a_known_config_gives_known_seconds() -> None:
    # EKS on-demand, vLLM, 16 GB from S3, copy, a 600 s probe: every figure by hand.
    b = budget()
    assert seconds(b) == {
        NODE_PROVISIONING: 300,  # Karpenter on-demand
        IMAGE_PULL: 354,  # 10 GB at 5.4 GB / 191 s = 28.27 MB/s -> 353.7
        WEIGHT_FETCH: 160,  # 16 GB at 100 MB/s
        ENGINE_LOAD: 48,  # 16 GB at 16 GB / 48 s
        WARM_UP: 120,
        STARTUP_ALLOWANCE: 600 - 48 - 120,
    }
    assert b.total_seconds == 300 + 354 + 160 + 600 == 1414
    assert b.expected_seconds == 300 + 354 + 160 + 48 + 120 == 982


@pytest.mark.parametrize(
    ("platform", "spot", "node"),
    [("aws", False, 300), ("aws", True, 480), ("gcp", False, 480), ("gcp", True, 660), ("onprem", False, 0)],
)
@pytest.mark.parametrize("mode", list(LoadMode))
@pytest.mark.parametrize("timeout", [60, 600, 3600])
def test_items_sum_to_the_total(platform: str, spot: bool, node: int, mode: LoadMode, timeout: int) -> None:
    b = budget(platform=platform, spot=spot, load_mode=mode, startup_timeout_seconds=timeout)
    assert b.item(NODE_PROVISIONING).seconds == node
    assert b.total_seconds == sum(seconds(b).values())
    assert b.expected_seconds == b.total_seconds - b.item(STARTUP_ALLOWANCE).seconds
    # The engine's share and its allowance fill the startup probe's budget exactly, never less than the
    # engine's own estimate.
    assert b.item(STARTUP_ALLOWANCE).seconds + engine_seconds(b) == max(timeout, engine_seconds(b))
    assert all(item.assumption for item in b.items)


def test_each_store_has_its_own_bandwidth() -> None:
    fetch = {store: budget(store=store).item(WEIGHT_FETCH).seconds for store in ("s3", "gs", "hf", "file")}
    assert fetch == {"s3": 160, "gs": 160, "hf": 320, "file": 160}
    assert "Hugging Face" in budget(store="hf").item(WEIGHT_FETCH).assumption


def test_the_cpu_image_is_smaller_and_compiles_nothing() -> None:
    gpu, cpu = budget(), budget(engine="transformers", weight_bytes=1 * GB)
    assert cpu.item(IMAGE_PULL).seconds < gpu.item(IMAGE_PULL).seconds
    assert cpu.item(WARM_UP).seconds < gpu.item(WARM_UP).seconds
    assert "CPU image" in cpu.item(IMAGE_PULL).assumption


def test_stream_replaces_the_fetch_and_streams_into_gpu_memory() -> None:
    copy_, stream = budget(), budget(load_mode=LoadMode.STREAM)
    assert stream.item(WEIGHT_FETCH).seconds == 0
    assert stream.item(ENGINE_LOAD).seconds == 32  # 16 GB at 500 MB/s
    assert stream.expected_seconds == copy_.expected_seconds - 160 - 48 + 32
    assert stream.load_mode is LoadMode.STREAM


@pytest.mark.parametrize(
    ("engine", "store", "words"),
    [("transformers", "s3", "transformers"), ("vllm", "hf", "hf://"), ("vllm", "file", "file://")],
)
def test_stream_is_refused_where_it_cannot_work(engine: str, store: str, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        budget(engine=engine, store=store, load_mode=LoadMode.STREAM)


# --- the stack schema ---------------------------------------------------------------------------------


def values_of(stack: str) -> dict[str, Any]:
    document = load_yaml(STACK_FILES[stack].read_text(encoding="utf-8")).document
    return copy.deepcopy(config_values_from_stack_yaml(document, stack))


def problems_of(values: dict[str, Any], stack: str) -> str:
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(values, stack)
    return str(raised.value)


def test_copy_is_the_default_and_stream_validates_on_a_dev_bucket_stack() -> None:
    values = values_of("dev-aws")
    assert parse_stack_config(values, "dev-aws").model.load_mode is LoadMode.COPY
    values["model"]["load_mode"] = "stream"
    cfg = parse_stack_config(values, "dev-aws")
    assert cfg.model.load_mode is LoadMode.STREAM
    # The hold, the cooldown and the deadlines follow the chosen mode's total; the other mode is shown.
    assert cold_start_seconds(cfg) == cold_start_budget_of(cfg).total_seconds
    other = alternative_budget(cfg)
    assert other is not None and other.load_mode is LoadMode.COPY


@pytest.mark.parametrize(
    ("stack", "change", "field", "words"),
    [
        ("dev-aws", {"model": {"uri": "hf://acme/chat@" + "a" * 40}}, "model", "reads s3:// and gs:// only"),
        ("dev-aws", {"serving": {"engine": "transformers"}}, "model.load_mode", "transformers (CPU) engine"),
        ("prod-aws", {}, "model.load_mode", "prod stack serves verified weights only"),
    ],
)
def test_stream_where_it_cannot_work_names_the_field_and_the_fix(
    stack: str, change: dict[str, Any], field: str, words: str
) -> None:
    values = values_of(stack)
    values["model"]["load_mode"] = "stream"
    for section, keys in change.items():
        values.setdefault(section, {}).update(keys)
    message = problems_of(values, stack)
    assert field in message and words in message and "load_mode copy" in message, message


def test_a_startup_probe_shorter_than_the_engine_is_refused() -> None:
    values = values_of("dev-aws")
    values["model"]["parameters_b"] = 405  # 810 GB in bf16: 2430 s to load from disk alone
    values.setdefault("serving", {})["startup_timeout_seconds"] = 600
    message = problems_of(values, "dev-aws")
    assert "serving.startup_timeout_seconds" in message and "raise it to at least" in message, message


def test_the_cooldown_message_lists_the_budgets_items() -> None:
    values = values_of("dev-aws")
    values.setdefault("autoscaling", {}).update(enabled=True, min_replicas=0, cooldown_seconds=300)
    message = problems_of(values, "dev-aws")
    assert "node provisioning 480 + image pull 354 + weight fetch 160" in message, message


# --- reports ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", sorted(STACK_FILES))
def test_every_model_of_every_stack_has_its_budget(stack: str) -> None:
    cfg = load_stack_file(STACK_FILES[stack])
    budgets = cold_start_of(cfg)
    assert len(budgets) == len(cfg.served)
    for entry in budgets.values():
        assert entry["total"] == sum(entry["items"].values())


def test_the_summary_section_shows_each_item_and_both_modes() -> None:
    from inferstack.reporting.summary import _cold_start_section

    cfg = load_stack_file(STACK_FILES["dev-aws"])
    text = "\n".join(_cold_start_section(cfg))
    chosen = cold_start_budget_of(cfg)
    other = alternative_budget(cfg)
    assert other is not None
    for item in chosen.items:
        assert (
            f"| {item.name} | {item.seconds} | {other.item(item.name).seconds} | {item.assumption} |" in text
        )
    assert f"| **total** | **{chosen.total_seconds}** | **{other.total_seconds}** | |" in text
    assert "With load_mode stream" in text and "skips the sha256 check" in text


def test_the_summary_of_an_hf_model_shows_copy_alone() -> None:
    from inferstack.reporting.summary import _cold_start_section

    cfg = load_stack_file(STACK_FILES["local"])
    text = "\n".join(_cold_start_section(cfg))
    assert alternative_budget(cfg) is None
    assert "| item | copy (s) | assumption |" in text and "With load_mode" not in text


def test_the_diff_shows_a_changed_budget_per_model() -> None:
    before = load_stack_file(STACK_FILES["dev-aws"])
    values = values_of("dev-aws")
    values["model"]["load_mode"] = "stream"
    after = parse_stack_config(values, "dev-aws")
    side = lambda cfg: Side(0, 0, cold_start=cold_start_of(cfg))  # noqa: E731
    d = StackDiff("dev-aws", "main", [], side(before), side(after))
    text = render_markdown(d)
    old, new = cold_start_budget_of(before), cold_start_budget_of(after)
    assert (
        f"- cold start of `llama-3.1-8b-instruct`: {old.total_seconds} s -> {new.total_seconds} s "
        f"(to first token {old.expected_seconds} s -> {new.expected_seconds} s; load_mode copy -> stream; "
        "weight fetch 160 -> 0, engine load 48 -> 32, startup probe allowance 432 -> 448)"
    ) in text, text
    same = StackDiff("dev-aws", "main", [], side(before), side(before))
    assert "cold start of" not in render_markdown(same)
