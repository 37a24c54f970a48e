"""Tests of the GCP building blocks."""
