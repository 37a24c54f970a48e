"""placeholder"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

GUARDRAIL_PORT = 9002


class GuardrailFailureMode(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


def ext_proc_spec(
    service_name: str,
    namespace: str | None,
    failure_mode: GuardrailFailureMode,
    check_responses: bool,
    message_timeout: str,
) -> dict[str, Any]:
    """The EnvoyExtensionPolicy's spec.extProc[0] (camelCase, as the CRD)."""
    ref: dict[str, Any] = {"group": "", "kind": "Service", "name": service_name, "port": GUARDRAIL_PORT}
    if namespace is not None:
        ref["namespace"] = namespace
    return {
        "backendRefs": [ref],
        "failOpen": failure_mode is GuardrailFailureMode.OPEN,
        "messageTimeout": message_timeout,
        "processingMode": {
            "request": {"body": "Buffered"},
            "response": {"body": "Streamed"} if check_responses else {},
            "allowModeOverride": True,
        },
    }
