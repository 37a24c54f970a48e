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
#: json.loads' peak allocation over the body's size, measured (tracemalloc, CPython 3.12) on 8 MiB bodies:
#: one long string 2.0, escaped text 1.2, many small messages 10.6, token ids 8.2, short strings 12.8,
#: `[{},{},...]` 25.2 (the worst: an empty dict per 3 bytes). Parses run one at a time (on the event loop,
#: which holds them), so one body's parse is the transient peak.
PARSE_OVERHEAD_FACTOR = 26
#: What a body checked costs while its check waits on the classifier, over its size, counted: the gRPC
#: request message and the bytes taken from it (2), the text turns (<= 1), the joined prompt (<= 1), the
#: classifier request's JSON body (1), and one more for the copies made while it is written.
HELD_FACTOR = 6
#: The processor at rest: Python, grpcio, protobuf, openai and httpx imported (~60 MiB measured).
REST_BYTES = 64 * MiB
#: Bodies up to this size are checked without a slot: their worst case, max_streams x HELD_FACTOR x this
#: (1000 x 6 x 16 KiB = 94 MiB at the defaults), is set aside in large_body_slots' arithmetic.
SMALL_BODY_BYTES = 16 * 1024
#: The share of the memory limit planned for; the rest is headroom (allocator fragmentation, gRPC buffers).
MEMORY_PLANNED_SHARE = 0.9


def max_body_bytes(max_text_chars: int) -> int:
    """The largest request body checked, bytes: max_text_chars written at JSON's worst (6 bytes a
    character), plus BODY_OVERHEAD_BYTES. A larger body holds more text than the filter reads, or more
    besides text than any request needs; it is refused with 413 before it is parsed. 500,000 characters:
    4,048,576 bytes (3.9 MiB), under the gateway's 50Mi buffer limit."""
    return JSON_BYTES_PER_CHAR * max_text_chars + BODY_OVERHEAD_BYTES


def large_body_slots(memory_limit_bytes: int, max_text_chars: int, max_streams: int) -> int:
    """How many bodies over SMALL_BODY_BYTES may be checked at once (parse to classifier verdict) without
    the pod passing `memory_limit_bytes`:

        (limit x MEMORY_PLANNED_SHARE - REST_BYTES - PARSE_OVERHEAD_FACTOR x B
            - max_streams x HELD_FACTOR x SMALL_BODY_BYTES) // (HELD_FACTOR x B),   B = max_body_bytes

    At the defaults (512Mi, 500,000 characters, 1000 streams): (460.8 - 64 - 100.4 - 93.8) MiB //
    23.2 MiB = 8. Zero or less: the limit is too small for max_text_chars (components/guardrail.py refuses
    such settings; the processor then runs with one slot and says so)."""
    body = max_body_bytes(max_text_chars)
    free = (
        memory_limit_bytes * MEMORY_PLANNED_SHARE
        - REST_BYTES
        - PARSE_OVERHEAD_FACTOR * body
        - max_streams * HELD_FACTOR * SMALL_BODY_BYTES
    )
    return int(free // (HELD_FACTOR * body))
