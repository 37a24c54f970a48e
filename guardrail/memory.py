"""How much memory a check costs, and so how many large ones a pod may run at once: pure arithmetic, shared
by the processor (guardrail/processor.py) and the component that sizes its pod (components/guardrail.py,
which must not import grpc)."""

from __future__ import annotations

#: Exchanges in flight per pod by default (guardrail/settings.py max_streams).
DEFAULT_MAX_STREAMS = 1000

MiB = 1024 * 1024
#: What a request body may hold besides the text checked: the JSON structure, `model`, roles, sampling
#: parameters, tool definitions, an image part or two (not classified). See max_body_bytes.
BODY_OVERHEAD_BYTES = 1 * MiB
#: JSON writes a character in at most 6 bytes: `\uXXXX` per UTF-16 code unit. (A character outside the
#: Basic Multilingual Plane is two units, 12 bytes, and one Python character; but it is also at least one
#: token to the classifier, while max_text_chars stands for ~4 characters a token, so text needing more than
#: 6 bytes a character on average is past the classifier's window before it is past this bound.)
JSON_BYTES_PER_CHAR = 6
#: json.loads' peak allocation over the body's size, measured (tracemalloc, CPython 3.11.7, the image's
#: minor) on 8 MiB bodies: one long string 2.0, escaped text 1.2, many small messages 9.2, token ids 5.1,
#: short strings 3.0, `[{},{},...]` 25.2 (the worst: an empty dict per 3 bytes). A large body is parsed in a
#: parse worker, one at a time per worker, so the transient peak is one parse per worker.
PARSE_OVERHEAD_FACTOR = 26
#: What a body checked costs while its check waits on the classifier, over its size, counted: the gRPC
#: request message and the bytes taken from it (2), the pickled copy sent to the parse worker (1), the text
#: turns (<= 1), the joined prompt (<= 1), the classifier request's JSON body (1), and one more for the
#: copies made while it is written. An answer check of a large prompt holds a slot as well (the prompt and
#: the answer are written into the classifier's request again).
HELD_FACTOR = 7
#: The processor at rest: Python, grpcio, protobuf, openai and httpx imported (~60 MiB measured).
REST_BYTES = 64 * MiB
#: A parse worker at rest (settings.parse_workers): a spawned interpreter (17 MB measured under
#: `python -m guardrail`: spawn skips re-importing a `__main__` module, so no grpcio or openai), plus
#: spawn's resource tracker (13 MB): 64 MiB leaves room.
WORKER_REST_BYTES = 64 * MiB
#: The parse workers by default (guardrail/settings.py parse_workers).
DEFAULT_PARSE_WORKERS = 1
#: Bodies up to this size are checked without a slot: their worst case, max_streams x HELD_FACTOR x this
#: (1000 x 6 x 16 KiB = 94 MiB at the defaults), is set aside in large_body_slots' arithmetic.
SMALL_BODY_BYTES = 16 * 1024
#: Bodies over this size are parsed in the processor's parse pool (guardrail/processor.py _off_loop), not
#: on the event loop: json.loads holds the GIL, ~0.15 s for a body at the byte bound (4 MiB), during which
#: no other exchange moves. 64 KiB parses in about 1 ms; sending it to a worker process costs more than that.
OFF_LOOP_BYTES = 64 * 1024
#: The share of the memory limit planned for; the rest is headroom (allocator fragmentation, gRPC buffers).
MEMORY_PLANNED_SHARE = 0.9


def max_body_bytes(max_text_chars: int) -> int:
    """The largest request body checked, bytes: max_text_chars written at JSON's worst (6 bytes a
    character), plus BODY_OVERHEAD_BYTES. A larger body holds more text than the filter reads, or more
    besides text than any request needs; it is refused with 413 before it is parsed. 500,000 characters:
    4,048,576 bytes (3.9 MiB), under the gateway's 50Mi buffer limit."""
    return JSON_BYTES_PER_CHAR * max_text_chars + BODY_OVERHEAD_BYTES


def large_body_slots(
    memory_limit_bytes: int,
    max_text_chars: int,
    max_streams: int,
    parse_workers: int = DEFAULT_PARSE_WORKERS,
) -> int:
    """How many bodies over SMALL_BODY_BYTES may be checked at once (parse to classifier verdict, and an
    answer check of such a prompt) without the pod passing `memory_limit_bytes`:

        (limit x MEMORY_PLANNED_SHARE - REST_BYTES - W x (WORKER_REST_BYTES + PARSE_OVERHEAD_FACTOR x B)
            - PARSE_OVERHEAD_FACTOR x OFF_LOOP_BYTES - max_streams x HELD_FACTOR x SMALL_BODY_BYTES)
            // (HELD_FACTOR x B),   B = max_body_bytes, W = parse_workers

    At the defaults (512Mi, 500,000 characters, 1000 streams, one worker): (460.8 - 64 - 64 - 100.4 - 1.6
    - 109.4) MiB // 27.0 MiB = 4. Zero or less: the limit is too small for max_text_chars
    (components/guardrail.py refuses such settings; the processor then runs with one slot and says so).

    Not counted: the prompts that exchanges with check_responses keep from the request check to the answer
    check (their text, about the body's size or less, for the engine's whole answer time); see
    docs/operating.md."""
    body = max_body_bytes(max_text_chars)
    free = (
        memory_limit_bytes * MEMORY_PLANNED_SHARE
        - REST_BYTES
        - parse_workers * (WORKER_REST_BYTES + PARSE_OVERHEAD_FACTOR * body)
        - PARSE_OVERHEAD_FACTOR * OFF_LOOP_BYTES
        - max_streams * HELD_FACTOR * SMALL_BODY_BYTES
    )
    return int(free // (HELD_FACTOR * body))
