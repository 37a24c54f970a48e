"""An Envoy v3 bootstrap for the guardrail test: one listener whose HTTP filter chain is the ext_proc filter
that Envoy Gateway v1.8.3 builds from an EnvoyExtensionPolicy's spec.extProc[0], then the router, routing
every path to one upstream (the stand-in model server).

Translated as Envoy Gateway does (internal/xds/translator/extproc.go extProcConfig, buildProcessingMode;
internal/gatewayapi/envoyextensionpolicy.go buildExtProc):
- grpc_service: envoy_grpc to the backend's cluster, timeout 10 s (defaultExtServiceRequestTimeout);
- processing_mode: every mode SKIP/NONE unless asked; `request` present -> request headers SEND, its
  `body` -> request_body_mode; `response` likewise; a FullDuplexStreamed body also sends its trailers;
- failure_mode_allow = failOpen; message_timeout = messageTimeout; allow_mode_override.
The cluster to the processor speaks HTTP/2 (gRPC), as Envoy Gateway's cluster for a gRPC backend does.
The listener's per-connection buffer limit is `buffer_limit_bytes` (Envoy Gateway: 32 KiB unless a
ClientTrafficPolicy sets connection.bufferLimit; the request body is BUFFERED, so this caps prompt size).

Not translated: Envoy Gateway attaches the filter disabled on the HTTP connection manager and enables it
per route (typed_per_filter_config); here it is enabled for the listener, which has one route anyway.
"""

from __future__ import annotations

import re
from typing import Any

#: Gateway API body modes -> Envoy's ProcessingMode.BodySendMode (extproc.go translateExtProcBodyProcessingMode).
BODY_MODES = {
    "Buffered": "BUFFERED",
    "BufferedPartial": "BUFFERED_PARTIAL",
    "Streamed": "STREAMED",
    "FullDuplexStreamed": "FULL_DUPLEX_STREAMED",
}
_DURATION = re.compile(r"(\d+)(h|ms|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def envoy_duration(gateway_duration: str) -> str:
    """A Gateway API Duration ("1h2m3s", "500ms") as protobuf JSON's "<seconds>s"."""
    parts = _DURATION.findall(gateway_duration)
    if not parts or "".join(n + u for n, u in parts) != gateway_duration:
        raise ValueError(f"{gateway_duration!r} is not a Gateway API Duration")
    return f"{sum(int(n) * _UNIT_S[u] for n, u in parts):g}s"


def processing_mode(spec: dict[str, Any]) -> dict[str, str]:
    """Envoy's ProcessingMode for an extProc entry's processingMode (buildProcessingMode)."""
    mode = {
        "request_header_mode": "SKIP",
        "response_header_mode": "SKIP",
        "request_body_mode": "NONE",
        "response_body_mode": "NONE",
        "request_trailer_mode": "SKIP",
        "response_trailer_mode": "SKIP",
    }
    for side in ("request", "response"):
        options = (spec.get("processingMode") or {}).get(side)
        if options is None:
            continue
        mode[f"{side}_header_mode"] = "SEND"
        if "body" in options:
            mode[f"{side}_body_mode"] = BODY_MODES[options["body"]]
            if options["body"] == "FullDuplexStreamed":
                mode[f"{side}_trailer_mode"] = "SEND"
    return mode


def bootstrap(
    ext_proc: dict[str, Any],
    processor_port: int,
    upstream_port: int,
    listen_port: int,
    admin_port: int,
    buffer_limit_bytes: int = 50 * 1024 * 1024,
) -> dict[str, Any]:
    """The bootstrap; `ext_proc` is one spec.extProc entry (camelCase, as the CRD)."""
    filter_config: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
        "grpc_service": {"envoy_grpc": {"cluster_name": "guardrail"}, "timeout": "10s"},
        "processing_mode": processing_mode(ext_proc),
        "failure_mode_allow": bool(ext_proc.get("failOpen", False)),
        "allow_mode_override": bool((ext_proc.get("processingMode") or {}).get("allowModeOverride", False)),
    }
    if "messageTimeout" in ext_proc:
        filter_config["message_timeout"] = envoy_duration(ext_proc["messageTimeout"])
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "guardrail-test",
        "route_config": {
            "name": "llm",
            "virtual_hosts": [
                {
                    "name": "llm",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "model", "timeout": "60s"}}],
                }
            ],
        },
        "http_filters": [
            {"name": "envoy.filters.http.ext_proc/guardrail", "typed_config": filter_config},
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            },
        ],
    }

    def cluster(name: str, port: int, http2: bool) -> dict[str, Any]:
        found: dict[str, Any] = {
            "name": name,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": name,
                "endpoints": [
                    {
                        "lb_endpoints": [
                            {
                                "endpoint": {
                                    "address": {
                                        "socket_address": {"address": "127.0.0.1", "port_value": port}
                                    }
                                }
                            }
                        ]
                    }
                ],
            },
        }
        if http2:
            found["typed_extension_protocol_options"] = {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                }
            }
        return found

    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "llm",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
                    "per_connection_buffer_limit_bytes": buffer_limit_bytes,
                    "filter_chains": [
                        {
                            "filters": [
                                {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                cluster("guardrail", processor_port, http2=True),
                cluster("model", upstream_port, http2=False),
            ],
        },
    }
