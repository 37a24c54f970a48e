"""Planning: run a stack program offline under the recording mock (with per-cloud fakes) and write the plan."""
