"""Callback URL checks (no DNS: a fake resolver stands in for the network)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from clinical.services.callback_urls import CallbackUrlError, callback_url_validate


def client(**kw):
    return SimpleNamespace(allowed_callback_hosts=kw.get("hosts", []), allow_private_callbacks=kw.get("private", False))


def resolver(*addresses):
    return lambda host: list(addresses)


@pytest.fixture
def production(settings):
    settings.PROFILE = "production"


@pytest.mark.parametrize("addresses", [("10.0.0.5",), ("93.184.216.34", "192.168.1.9"), ("::1",),
                                       ("::ffff:127.0.0.1",), ("fe80::1",), ("100.64.0.1",), ("0.0.0.0",)])  # noqa: S104
def test_production_refuses_hosts_that_resolve_inwards(production, addresses):
    with pytest.raises(CallbackUrlError, match="refused"):
        callback_url_validate("https://ris.example.org/hook", client=client(), resolver=resolver(*addresses))


def test_production_accepts_public_hosts_and_private_when_allowed(production):
    url = "https://ris.example.org:8443/hook?x=1"
    assert callback_url_validate(url, client=client(), resolver=resolver("93.184.216.34")) == url
    assert callback_url_validate("http://10.0.0.5/h", client=client(private=True)) == "http://10.0.0.5/h"


def test_unresolvable_host_is_refused_in_production(production):
    with pytest.raises(CallbackUrlError, match="does not resolve"):
        callback_url_validate("https://no-such-host.invalid/h", client=client())


def test_embedded_profile_allows_the_lan_but_not_multicast(settings):
    settings.PROFILE = "embedded"
    assert callback_url_validate("http://127.0.0.1:8001/h", client=client())
    with pytest.raises(CallbackUrlError, match="multicast"):
        callback_url_validate("http://224.0.0.1/h", client=client())


@pytest.mark.parametrize(("hosts", "url", "ok"), [
    (["ris.example.org"], "https://ris.example.org/h", True),
    (["ris.example.org"], "https://evil.example.net/h", False),
    (["*.example.org"], "https://a.b.example.org/h", True),
    (["*.example.org"], "https://example.org/h", False),
    (["*.example.org"], "https://example.org.evil.net/h", False),
])
def test_allowed_hosts(settings, hosts, url, ok):
    settings.PROFILE = "embedded"
    if ok:
        assert callback_url_validate(url, client=client(hosts=hosts))
    else:
        with pytest.raises(CallbackUrlError, match="not among"):
            callback_url_validate(url, client=client(hosts=hosts))


@pytest.mark.parametrize("url", ["", "ris.example.org/h", "https:///h", "https://h:99999/x", "https://h/x#frag",
                                 "https://u@h/x", "x" * 600])
def test_malformed_urls(url):
    with pytest.raises(CallbackUrlError):
        callback_url_validate(url, client=client())
