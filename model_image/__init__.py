"""InferStack's model image launcher: `python -m model_image fetch|serve|verify|path|sums`.

`fetch` puts a verified copy of the model into the cache volume; `serve` execs the engine
(vLLM on GPU, `transformers serve` on CPU) on that copy. See model_image/README.md.
"""
