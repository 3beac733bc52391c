"""Clinical writes: ``<entity>_<action>(*, ...)``, atomic, audited, side effects on commit."""
