"""Create an integration client and print its token and webhook secret (shown once).

    manage.py create_api_client --name st-elsewhere-pacs --scopes submit,read,feedback \
        [--rate-limit 600] [--allow-private-callbacks] [--callback-host ris.hospital.org] \
        [--default-callback-url https://ris.hospital.org/radviewer-hook]
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from clinical.models import ApiClient
from clinical.services.api_clients import SCOPES, api_client_create
from clinical.services.callback_urls import CallbackUrlError, callback_url_validate


class Command(BaseCommand):
    help = "Create an API client for a PACS/RIS; prints its bearer token and webhook secret once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", required=True, help="letters, digits, '.', '_' and '-'; also the Basic-auth user")
        parser.add_argument("--scopes", required=True, help=f"comma-separated: {','.join(SCOPES)}")
        parser.add_argument("--rate-limit", type=int, default=600, help="requests per minute (default 600)")
        parser.add_argument("--allow-private-callbacks", action="store_true",
                            help="allow callback URLs on private/loopback addresses in production")
        parser.add_argument("--callback-host", action="append", default=[],
                            help="allowed callback host (repeatable; exact or *.example.org)")
        parser.add_argument("--default-callback-url", default="",
                            help="webhook URL for studies sent without their own (e.g. over STOW-RS)")

    def handle(self, *args, **opts) -> None:
        if opts["rate_limit"] < 1:
            raise CommandError("--rate-limit must be at least 1 request per minute")
        if opts["default_callback_url"]:
            probe = ApiClient(allowed_callback_hosts=opts["callback_host"],
                              allow_private_callbacks=opts["allow_private_callbacks"])
            try:
                callback_url_validate(opts["default_callback_url"], client=probe)
            except CallbackUrlError as exc:
                raise CommandError(f"--default-callback-url: {exc}") from None
        try:
            issued = api_client_create(
                name=opts["name"], scopes=opts["scopes"], rate_limit_per_minute=opts["rate_limit"],
                allow_private_callbacks=opts["allow_private_callbacks"],
                allowed_callback_hosts=opts["callback_host"], default_callback_url=opts["default_callback_url"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        client = issued.client
        self.stdout.write(f"Created API client {client.name!r} with scopes {','.join(client.scopes)} "
                          f"({client.rate_limit_per_minute} requests/minute).")
        self.stdout.write("Store these now; they are not shown again:")
        self.stdout.write(f"  token:          {issued.token}")
        self.stdout.write(f"  webhook secret: {issued.webhook_secret}")
