"""InferStack's content-filter guardrail: an Envoy external processor (envoy.service.ext_proc.v3) that sends
each request's prompt text, and optionally the model's answer, to a moderation model served by the stack
(the Llama Guard family, through the OpenAI API) and blocks, flags or allows it per API client.

Modules: `categories` (Llama Guard 3's hazard codes and its output parser), `policy` (the per-client policy
file), `openai_text` (the text inside OpenAI request/response bodies and SSE streams), `classifier` (the
moderation model client), `processor` (the gRPC servicer), `settings` and `__main__` (the server).
"""
