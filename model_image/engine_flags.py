"""Engine flags as the engine's own parser reads them: one check for the launcher and the stack schema.

The launcher sets some flags from typed settings (`--host`, `--api-key`, ...), and `EXTRA_ENGINE_ARGS`
(stack file: `serving.extra_engine_args`) must not set them again. Comparing the raw words with
`--api-key` is not enough, because vLLM's parser reads more spellings than that
(vllm/utils/argparse_utils.py `FlexibleArgumentParser.parse_args`; read at vllm-project/vllm commit
00da11e, a snapshot near the pinned v0.31.0 image - the v0.31.0 tag itself was not in the searchable
snapshot, so recheck these four points when the pin moves):

- underscores: "Everything between the first -- and the first ." has `_` replaced by `-`, so
  `--api_key` is `--api-key`, and `--api-key.x` / `--api_key=...` are the same flag;
- `--config FILE`: `_pull_args_from_config` splices the flags of a YAML file into argv, where no check
  of ours can see them;
- abbreviations: the parser is a plain `argparse.ArgumentParser` subclass built without
  `allow_abbrev=False` (vllm/entrypoints/cli/main.py), so `--api-k` is read as `--api-key` when no
  other flag starts so;
- a short option concatenated with its value: `-qfp8` is `-q fp8` (argparse, one-letter options).

A CLI `--api-key` also wins over `VLLM_API_KEY` (vLLM reads the env var only as the flag's fallback).
`normalise` gives the canonical flag for a word; `managed_flag_problems` refuses managed flags however
they are written; `weakening_flags` names flags that weaken the endpoint, which the policy pack refuses
in prod (policy/rules.py keeps a copy of these two, tests check they agree).

Standard library only: the model image imports this module, and the stack schema imports it from here.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping

#: vLLM flags the launcher sets from a setting (the flag's canonical spelling -> what sets it).
VLLM_MANAGED: Mapping[str, str] = {
    "--served-model-name": "SERVED_MODEL_NAME",
    "--host": "HOST",
    "--port": "PORT",
    # A Unix socket makes vLLM ignore host and port, so the probes and the gateway find nothing.
    "--uds": "HOST and PORT",
    "--tensor-parallel-size": "the number of visible GPUs (request more nvidia.com/gpu)",
    "-tp": "the number of visible GPUs (request more nvidia.com/gpu)",
    "--max-model-len": "MAX_MODEL_LEN",
    "--dtype": "DTYPE",
    "--quantization": "QUANTIZATION",
    "-q": "QUANTIZATION",
    "--gpu-memory-utilization": "GPU_MEMORY_UTILIZATION",
    "--api-key": "API_KEY_FILE (a CLI --api-key overrides the key the launcher passes in VLLM_API_KEY)",
    "--shutdown-timeout": "SHUTDOWN_TIMEOUT",
    "--model": "MODEL_URI",
    "--load-format": "LOAD_MODE (the stack file's model.load_mode: copy or stream)",
    # A token in argv is in the pod spec and `ps`; the engine runs offline from the verified cache.
    "--hf-token": "HF_TOKEN_PATH (read by the fetch container only; the engine runs offline)",
    "--config": "nothing: vLLM splices a YAML file's flags into argv unchecked; write the flags themselves",
}
TRANSFORMERS_MANAGED: Mapping[str, str] = {
    "--host": "HOST",
    "--port": "PORT",
    "--dtype": "DTYPE",
}

#: vLLM flags that weaken the endpoint (canonical spelling -> why). The policy pack refuses them in prod.
WEAKENING: Mapping[str, str] = {
    "--trust-remote-code": "runs Python code shipped with the model, so whoever can write the model "
    "store runs code in the serving pod",
    "--trust-request-chat-template": "renders chat templates sent by clients on the server",
    "--allowed-local-media-path": "lets any client read files of the serving pod through file:// media URLs",
    "--middleware": "imports extra ASGI middleware into the request path",
    "--tool-server": "connects the engine to tool servers (`demo` runs model-written Python)",
    # Both import a Python file named by path (vLLM's ToolParserManager / ReasoningParserManager
    # import_*_plugin): a .py in the model cache, which whoever writes the model store chooses, would run.
    "--tool-parser-plugin": "imports a Python file as a tool-call parser, so whoever can write that path "
    "(the model store, for a file in the cache) runs code in the serving pod",
    "--reasoning-parser-plugin": "imports a Python file as a reasoning parser, so whoever can write that path "
    "runs code in the serving pod",
    "--enable-prompt-embeds": "makes the engine deserialise tensors sent by clients (the class of "
    "CVE-2025-62164)",
    "--otlp-traces-endpoint": "sends request traces to an address of the stack file's choosing",
    # Flags whose JSON or names reach outside the pod or import code: prompts (KV-cache events carry the
    # prompt's token ids, vLLM ZmqEventPublisher connects out to a non-wildcard endpoint), the KV cache
    # itself, or modules chosen by name.
    "--kv-events-config": "publishes KV-cache events, with the prompts' token ids, to an endpoint of its JSON",
    "--kv-transfer-config": "sends the KV cache to peers named in its JSON and imports kv_connector_module_path",
    "--logits-processors": "imports logits processor classes by name into the engine",
    "--worker-extension-cls": "imports a worker extension class by name into every GPU worker",
    "--worker-cls": "replaces the GPU worker with a class imported by name",
    "--uvicorn-log-level": "at trace, writes every request's headers (the API key among them) to the logs",
    # Flags a stack could otherwise declare reviewed (the fourth security review): each reads a file, names
    # something imported, fetches a model, or changes who may call the engine.
    "--chat-template": "reads a template file of its choosing (put the template in the model's files: "
    "chat_template.jinja, fetched and verified)",
    "--compilation-config": "its JSON names a compile backend imported by qualified name",
    "-O": "sets the compilation config, whose JSON names a backend imported by qualified name",
    "--scheduler-cls": "imports the scheduler class by name",
    "--distributed-executor-backend": "imports an executor class by qualified name",
    "--ec-transfer-config": "sends encoder caches to peers named in its JSON and imports its connector",
    "--speculative-config": "loads a draft model that fetch neither downloads nor verifies",
    "--tokenizer": "loads a tokenizer from a path or repository that fetch neither downloads nor verifies",
    "--hf-config-path": "reads the model config from another path or repository",
    "--generation-config": "reads generation defaults from another path",
    "--hf-overrides": "rewrites the model's config (auto_map among it)",
    "--lora-modules": "loads adapter weights that fetch neither downloads nor verifies",
    "--load-format": "changes how weights are read, past the verified cache",
    "--model-loader-extra-config": "passes loader options past the verified cache",
    "--download-dir": "points the engine at another weights folder",
    "--allowed-origins": "lets browsers on other origins call the engine (CORS)",
    "--allow-credentials": "lets browsers send credentials cross-origin (CORS)",
    "--ssl-keyfile": "serves TLS from a key file of its choosing (the gateway terminates TLS)",
    "--ssl-certfile": "serves TLS from a certificate file of its choosing (the gateway terminates TLS)",
    "--ssl-ca-certs": "changes which clients the engine trusts (the gateway terminates TLS)",
    "--enable-log-requests": "writes clients' prompts to the logs",
    "--enable-log-outputs": "writes the model's answers to the logs",
}


def normalise(arg: str) -> str | None:
    """The flag `arg` names as vLLM's parser reads it before abbreviations, or None for a value.

    `--api_key=x` -> `--api-key`; `--speculative_config.model` -> `--speculative-config`; `-qfp8` -> `-q`;
    `-tp` -> `-tp`; `8000` -> None.
    """
    if not arg.startswith("-") or arg in ("-", "--"):
        return None
    if arg.startswith("--"):
        name = arg[2:].split("=", 1)[0].split(".", 1)[0]
        return "--" + name.replace("_", "-")
    short = arg.split("=", 1)[0]
    if len(short) > 2 and short[:2] in ("-q", "-O"):  # one-letter option with its value attached (-O3)
        return short[:2]
    return short


def _resolve(flag: str, guarded: Iterable[str]) -> str | None:
    """The guarded flag `flag` stands for: itself, or the one it abbreviates (argparse allow_abbrev)."""
    guarded = list(guarded)
    if flag in guarded:
        return flag
    if flag.startswith("--") and len(flag) > 3:
        # argparse takes a unique prefix of a long option; a prefix of ours may be unique in vLLM's set
        # of several hundred flags or not (then vLLM stops with "ambiguous option"): refuse it either way.
        matches = [g for g in guarded if g.startswith("--") and g.startswith(flag)]
        if matches:
            return sorted(matches)[0]
    return None


def managed_flag_problems(args: Iterable[str], managed: Mapping[str, str], where: str) -> list[str]:
    """One message per word of `args` that sets a managed flag, naming the flag, `where` and the fix."""
    problems: list[str] = []
    for arg in args:
        flag = normalise(arg)
        target = _resolve(flag, managed) if flag else None
        if target is None:
            continue
        written = "" if arg.split("=", 1)[0] == target else f" (written {arg.split('=', 1)[0]!r})"
        problems.append(
            f"{where} sets {target}{written}, which conflicts with {managed[target]}: remove it from {where}"
        )
    return problems


def weakening_flags(args: Iterable[str]) -> list[tuple[str, str]]:
    """(canonical flag, why it weakens the endpoint) for each word of `args` that sets one."""
    found: list[tuple[str, str]] = []
    for arg in args:
        flag = normalise(arg)
        target = _resolve(flag, WEAKENING) if flag else None
        if target is not None:
            found.append((target, WEAKENING[target]))
    return found


#: vLLM flags a prod stack may pass without naming them in `serving.reviewed_engine_flags`: scheduling,
#: memory and parsing knobs that read no file, reach no address, import nothing and log nothing of a
#: request. Every other flag needs that explicit entry in the stack file (reviewed in its pull request):
#: vLLM has several hundred flags and three security reviews each found one more that a deny-list of
#: weakening flags missed. `--no-X` is allowed where `--X` is.
PROD_REVIEWED: frozenset[str] = frozenset(
    {
        "--max-num-seqs",
        "--max-num-batched-tokens",
        "--enable-chunked-prefill",
        "--long-prefill-token-threshold",
        "--max-num-partial-prefills",
        "--enable-prefix-caching",
        "--kv-cache-dtype",
        "--block-size",
        "--swap-space",
        "--enforce-eager",
        "--disable-log-stats",
        "--scheduling-policy",
        "--max-logprobs",
        "--seed",
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "--reasoning-parser",
        "--limit-mm-per-prompt",
        "--async-scheduling",
        "--pipeline-parallel-size",
        "--enable-expert-parallel",
    }
)


def unreviewed_flags(args: Iterable[str], reviewed: Iterable[str] = ()) -> list[str]:
    """The flags of `args` (canonical spelling) that are neither in PROD_REVIEWED nor in `reviewed`. An
    abbreviation is never taken as the flag it may stand for: it is unreviewed until written out."""
    allowed = set(PROD_REVIEWED) | {f for f in (normalise(r) for r in reviewed) if f}
    found: set[str] = set()
    for arg in args:
        flag = normalise(arg)
        if flag is None:
            continue
        positive = "--" + flag.removeprefix("--no-") if flag.startswith("--no-") else flag
        if flag not in allowed and positive not in allowed:
            found.add(flag)
    return sorted(found)


#: Words in a flag's name whose value is a secret: never written to a log line.
_SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "credential", "auth")


def redacted(argv: list[str]) -> str:
    """`argv` as one shell line for a log, with the value of every flag named like a secret replaced by
    `***` (`--hf-token x`, `--api_key=x`, `--foo.secret_key x`): no secret ever reaches a log line."""
    shown: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next and not arg.startswith("-"):
            shown.append("***")
            hide_next = False
            continue
        hide_next = False
        secret = arg.startswith("-") and any(w in arg.split("=", 1)[0].lower() for w in _SECRET_WORDS)
        if secret and "=" in arg:
            shown.append(arg.split("=", 1)[0] + "=***")
        else:
            shown.append(arg)
            hide_next = secret
    return shlex.join(shown)
