"""Helpers for the console tests: sign in as a browser would, read a form's CSRF token."""

from __future__ import annotations

import re

import httpx

from tests.conftest import OPS_TOKEN

FORM_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = FORM_TOKEN.search(html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


async def sign_in(
    client: httpx.AsyncClient, token: str = OPS_TOKEN, **extra: str
) -> httpx.Response:
    """GET the form (its CSRF cookie and token), then POST the token."""
    form = await client.get("/console/sign-in")
    assert form.status_code == 200, form.text
    data = {"token": token, "csrf": csrf_of(form.text), **extra}
    return await client.post("/console/sign-in", data=data)


async def signed_in_csrf(client: httpx.AsyncClient) -> str:
    """The session's CSRF token, as every console page carries it."""
    page = await client.get("/console/")
    assert page.status_code == 200, page.text
    return csrf_of(page.text)
