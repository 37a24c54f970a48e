"""Validation: core kinds, custom resources (schema + CEL), Helm values, checkov, policies and plan-level rules."""
