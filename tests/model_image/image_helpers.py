"""Helpers for the model image tests: free loopback ports, subprocess control, a tiny random chat
model made here (no hub downloads), and running the launcher the way the pod does
(`python -m model_image ...`). A uniquely named module, so test folders cannot shadow each other."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from model_image.manifest import write_sha256sums

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Settings the launcher reads; scrubbed from the environment so the host's own never leak into a test.
SETTINGS_VARS = [
    "MODEL_URI",
    "MODEL_DIR",
    "ENGINE",
    "SERVED_MODEL_NAME",
    "HOST",
    "PORT",
    "API_KEY_FILE",
    "MAX_MODEL_LEN",
    "DTYPE",
    "QUANTIZATION",
    "GPU_MEMORY_UTILIZATION",
    "SHUTDOWN_TIMEOUT",
    "EXTRA_ENGINE_ARGS",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def launcher_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARS}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(settings)
    return env


def run_launcher(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_image", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def build_tiny_chat_model(out: Path) -> Path:
    """A 2-layer GPT-2 with random weights and a byte-level BPE tokenizer with a chat template (~0.5 MB)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["the quick brown fox jumps over the lazy dog", "user: hello assistant: hi there"] * 50
    # Printable ASCII only (byte-level maps them to themselves; space and newline to Ġ and Ċ): every
    # token decodes to whole characters, so a stream of random tokens is never held back as partial UTF-8.
    alphabet = [chr(c) for c in range(33, 127)] + ["\u0120", "\u010a"]
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"], initial_alphabet=alphabet)
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=tok.get_vocab_size(),
        n_positions=2048,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        # Tied embeddings: a zero row gives end-of-text a logit of 0, below the random tokens' best,
        # so replies run to max_tokens and the tests can count them.
        model.transformer.wte.weight[0].zero_()
    model.save_pretrained(out)
    write_sha256sums(out)
    return out


@dataclass
class Store:
    """A bucket in an emulator, with the environment that points the launcher at it."""

    scheme: str
    bucket: str
    env: dict[str, str]
    dead_env: dict[str, str]  # the same settings, but the endpoint is a closed port
    upload_file: Callable[[str, Path], None]
    uploaded: list[str] = field(default_factory=list)

    def upload(self, prefix: str, folder: Path, replace: dict[str, bytes] | None = None) -> str:
        """Upload every file of `folder` under `prefix`; `replace` swaps a file's bytes (SHA256SUMS stays)."""
        replace = replace or {}
        staging = folder.parent / f"{folder.name}-{self.scheme}-{prefix.replace('/', '-')}"
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                rel = p.relative_to(folder).as_posix()
                src = p
                if rel in replace:
                    staging.mkdir(exist_ok=True)
                    src = staging / p.name
                    src.write_bytes(replace[rel])
                self.upload_file(f"{prefix}/{rel}", src)
        return f"{self.scheme}://{self.bucket}/{prefix}"


def start_server(cmd: list[str], url: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(url, 30, proc)
    except Exception:
        stop(proc)
        raise
    return proc


def dockerfile_instructions(name: str) -> list[tuple[str, str]]:
    """model_image/<name> as (INSTRUCTION, rest) pairs: continuation lines joined, comments dropped."""
    text = (REPO_ROOT / "model_image" / name).read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def base_image_default(name: str) -> str:
    """The image model_image/<name>'s runtime stage builds on by default: its first FROM, with ${ARG}
    replaced by the ARG's default (FROM ${BASE_IMAGE} AS runtime -> python:3.11-slim-bookworm@sha256:...)."""
    ins = dockerfile_instructions(name)
    defaults = dict(rest.split("=", 1) for word, rest in ins if word == "ARG" and "=" in rest)
    first = next(rest for word, rest in ins if word == "FROM").split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)].strip('"'), first)


def make_model(root: Path, files: dict[str, bytes]) -> Path:
    """A model folder of `files` (relative path -> bytes) with its SHA256SUMS."""
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    write_sha256sums(root)
    return root


def leftovers(model_dir: Path) -> list[str]:
    """What a fetch left in MODEL_DIR, lock files aside."""
    return sorted(p.name for p in model_dir.iterdir() if not p.name.endswith(".lock"))
