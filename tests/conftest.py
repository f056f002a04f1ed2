"""Shared pytest configuration: hypothesis without per-example deadlines (timings on shared
2-core CI machines are noisy; speed is checked by benchmarks, never by tests)."""

from hypothesis import settings

settings.register_profile("geocell", deadline=None, max_examples=100)
settings.load_profile("geocell")
