"""``read_body``: gunicorn's fast path returns exactly what the standard stream returns."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from django.core.handlers.wsgi import WSGIRequest
from gunicorn.http.body import Body, LengthReader
from gunicorn.http.unreader import SocketUnreader

from radviewer.lib.http import read_body


def _request(payload: bytes) -> tuple[WSGIRequest, socket.socket]:
    ours, theirs = socket.socketpair()
    threading.Thread(target=theirs.sendall, args=(payload,), daemon=True).start()
    stream = Body(LengthReader(SocketUnreader(ours), len(payload)))
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/dicomweb/studies", "wsgi.input": stream,
               "CONTENT_LENGTH": str(len(payload)), "SERVER_NAME": "x", "SERVER_PORT": "80",
               "wsgi.url_scheme": "http"}
    return WSGIRequest(environ), theirs


@pytest.mark.parametrize("size", [0, 1, 1023, 8193, 2 * 1024 * 1024 + 17])
def test_gunicorn_body_is_read_whole_and_identical(size):
    payload = os.urandom(size)
    request, peer = _request(payload)
    assert read_body(request, limit=10 * 1024 * 1024) == payload
    assert request._read_started  # Django will not read the consumed stream again
    peer.close()


def test_the_limit_plus_one_byte_is_what_is_read():
    payload = os.urandom(5000)
    request, peer = _request(payload)
    assert read_body(request, limit=999) == payload[:1000]
    peer.close()


def test_a_started_stream_or_another_server_takes_the_standard_path():
    payload = os.urandom(3000)
    request, peer = _request(payload)
    assert request.read(10) == payload[:10]
    assert read_body(request, limit=10_000) == payload[10:]
    peer.close()
    from django.test import RequestFactory

    plain = RequestFactory().generic("POST", "/x", data=payload, content_type="application/octet-stream")
    assert read_body(plain, limit=10_000) == payload
