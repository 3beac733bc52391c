"""Settings package: ``base`` (embedded default and env-driven services), ``production``, ``test``."""
