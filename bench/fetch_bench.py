"""Benchmark: `python -m model_image fetch` from S3 (a moto server on loopback) against a plain boto3
download of the same files, in the same run. Not a test; run it by hand:

    .venv/bin/python bench/fetch_bench.py [--mb 200] [--rounds 3]

The model is ~200 MB in several files (four safetensors-sized shards plus small JSON files), like a
small checkpoint. Baselines:
  * boto3 sequential: `download_file` per file, one after another (boto3's transfer manager already
    splits each big file into parallel ranged parts) - what a hand-written init script would do;
  * boto3 parallel: the same calls for all files at once in a thread pool - the strongest plain boto3.
`fetch` includes sha256 verification of every byte, the fsyncs and the atomic rename; the baselines
verify nothing. Each round runs every contender once, in rotating order; the median is reported.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO_ROOT))

from model_image.manifest import write_sha256sums  # noqa: E402

CREDS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_model(root: Path, total_mb: int) -> list[str]:
    shard = total_mb * 1024 * 1024 // 4
    for i in range(1, 5):
        (root / f"model-0000{i}-of-00004.safetensors").write_bytes(os.urandom(shard))
    for name in ("config.json", "generation_config.json", "tokenizer_config.json"):
        (root / name).write_text('{"bench": true}\n' * 20)
    (root / "tokenizer.json").write_bytes(os.urandom(2 * 1024 * 1024))
    write_sha256sums(root)
    return sorted(p.name for p in root.iterdir())


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


# The baseline, as the script an init container would run instead of `fetch`: its own process too,
# so both sides pay interpreter start-up and client creation.
PLAIN_BOTO3 = """
import sys, boto3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
prefix, dest, parallel, names = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "1", sys.argv[4:]
dest.mkdir(parents=True)
client = boto3.client("s3")
def one(name):
    client.download_file("models", f"{prefix}/{name}", str(dest / name))
if parallel:
    with ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(one, names))
else:
    for name in names:
        one(name)
"""


def bench_env(endpoint: str) -> dict[str, str]:
    return {**os.environ, **CREDS, "AWS_ENDPOINT_URL": endpoint, "PYTHONPATH": str(REPO_ROOT)}


def plain_boto3(endpoint: str, prefix: str, names: list[str], dest: Path, parallel: bool) -> None:
    cmd = [sys.executable, "-c", PLAIN_BOTO3, prefix, str(dest), "1" if parallel else "0", *names]
    subprocess.run(cmd, env=bench_env(endpoint), check=True)


def launcher_fetch(endpoint: str, prefix: str, model_dir: Path) -> None:
    env = {**bench_env(endpoint), "MODEL_URI": f"s3://models/{prefix}", "MODEL_DIR": str(model_dir)}
    subprocess.run([sys.executable, "-m", "model_image", "fetch"], env=env, check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=200, help="model size in MB (default 200)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fetch-bench-"))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        src = work / "src"
        src.mkdir()
        names = make_model(src, args.mb)
        client = s3_client(endpoint)
        client.create_bucket(Bucket="models")
        for name in names:
            client.upload_file(str(src / name), "models", f"m/v1/{name}")
        total = sum((src / n).stat().st_size for n in names)
        print(
            f"model: {len(names)} files, {total / 1e6:.1f} MB; moto server on {endpoint}; {os.cpu_count()} CPUs"
        )

        contenders = {
            "fetch (verified)": lambda d: launcher_fetch(endpoint, "m/v1", d),
            "boto3 sequential": lambda d: plain_boto3(endpoint, "m/v1", names, d, parallel=False),
            "boto3 parallel": lambda d: plain_boto3(endpoint, "m/v1", names, d, parallel=True),
        }
        times: dict[str, list[float]] = {k: [] for k in contenders}
        order = list(contenders)
        for r in range(args.rounds):
            for name in order[r % len(order) :] + order[: r % len(order)]:
                dest = work / f"out-{r}-{name.split()[0]}-{len(times[name])}"
                os.sync()  # flush the previous run's writes so they do not slow this one
                started = time.perf_counter()
                contenders[name](dest)
                times[name].append(time.perf_counter() - started)
                shutil.rmtree(dest, ignore_errors=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        for k, v in times.items():
            print(
                f"{k:18s} median {med[k]:6.2f} s  ({total / 1e6 / med[k]:6.1f} MB/s)  runs {[round(x, 2) for x in v]}"
            )
        fetch_s = med["fetch (verified)"]
        print(f"ratio fetch / boto3 sequential: {fetch_s / med['boto3 sequential']:.2f}")
        print(f"ratio fetch / boto3 parallel:   {fetch_s / med['boto3 parallel']:.2f}  (target <= 1.1)")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
