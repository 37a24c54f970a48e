"""InferStack: the offline plan/check tooling (planning, validation, reporting) and the `inferstack` CLI."""
