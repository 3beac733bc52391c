#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "radviewer.settings.base")
    from django.core.management import execute_from_command_line

    from radviewer.settings.env import ConfigError

    try:
        execute_from_command_line(sys.argv)
    except ConfigError as exc:
        # A configuration mistake is the operator's to fix: say which variable, no traceback.
        sys.stderr.write(f"RadViewer configuration error: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
