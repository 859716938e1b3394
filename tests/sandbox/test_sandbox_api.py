"""Codat's companies, connections and integrations endpoints, as the sandbox serves them."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.sandbox.emulator import Sandbox
from tests.sandbox.sandbox_oas import check_response
from tests.sandbox.sandbox_support import BASE_URL


def _otp(link_url: str) -> str:
    return parse_qs(urlsplit(link_url).query)["otp"][0]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic " + base64.b64encode(b"wrong-key").decode(),
        "Bearer " + base64.b64encode(b"sandbox-key").decode(),
        "Basic sandbox-key",
    ],
)
async def test_requests_without_the_api_key_get_401_error_message(
    api: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await httpx.AsyncClient(transport=api._transport, base_url=BASE_URL).get(
        "/companies", headers=headers
    )

    assert response.status_code == 401
    body = response.json()
    assert body["statusCode"] == 401
    assert body["service"] == "PublicApi"
    assert body["canBeRetried"] == "Unknown"
    assert body["correlationId"]
    check_response("GET", "/companies", 401, response.content)


async def test_unknown_route_is_404_error_message(api: httpx.AsyncClient) -> None:
    response = await api.get("/no/such/route")

    assert response.status_code == 404
    assert response.json()["statusCode"] == 404
    assert response.json()["correlationId"]


async def test_wrong_method_is_405_error_message(api: httpx.AsyncClient) -> None:
    response = await api.put("/companies", json={"name": "Acme"})

    assert response.status_code == 405
    assert response.json()["statusCode"] == 405


async def test_each_error_has_its_own_correlation_id(api: httpx.AsyncClient) -> None:
    first = await api.get("/companies/3fa85f64-5717-4562-b3fc-2c963f66afa6")
    second = await api.get("/companies/3fa85f64-5717-4562-b3fc-2c963f66afa6")

    assert first.status_code == second.status_code == 404
    assert first.json()["correlationId"] != second.json()["correlationId"]


async def test_create_company_is_200_with_the_company(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/companies",
        json={"name": "Acme Hardware", "description": "cust-42", "tags": {"uid": "abc"}},
    )

    assert response.status_code == 200
    company = response.json()
    assert company["name"] == "Acme Hardware"
    assert company["description"] == "cust-42"
    assert company["tags"] == {"uid": "abc"}
    assert company["dataConnections"] == []
    assert company["products"] == []
    assert company["lastSync"] is None
    assert company["redirect"] == f"{BASE_URL}/link/company/{company['id']}"
    assert company["created"].endswith("Z")
    assert (await api.get(f"/companies/{company['id']}")).json()["name"] == "Acme Hardware"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "Acme (UK) Ltd"}, "name"),
        ({"name": "Acme", "tags": {f"k{n}": "v" for n in range(11)}}, "tags"),
        ({"name": "Acme", "tags": {"k" * 28: "v"}}, "tags." + "k" * 28),
        ({"name": "Acme", "tags": {"uid": "v" * 101}}, "tags.uid"),
        ({"name": "Acme", "tags": {"uid": 7}}, "tags.uid"),
    ],
)
async def test_create_company_rejects_what_the_spec_forbids(
    api: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await api.post("/companies", json=body)

    assert response.status_code == 400
    assert field in [e["itemId"] for e in response.json()["validation"]["errors"]]


async def test_create_company_rejects_a_body_that_is_not_json(api: httpx.AsyncClient) -> None:
    response = await api.post("/companies", content=b"{name", headers={"content-type": "x"})

    assert response.status_code == 400


async def test_delete_company_is_204_and_removes_its_connections(
    api: httpx.AsyncClient, new_connection, sandbox: Sandbox
) -> None:
    ref = await new_connection(accounts=1)

    response = await api.delete(f"/companies/{ref.company_id}")

    assert response.status_code == 204
    assert response.content == b""
    assert (await api.get(f"/companies/{ref.company_id}")).status_code == 404
    assert (await api.get(ref.path)).status_code == 404
    assert sandbox.store.snapshot()["companies"] == []


async def _company(api: httpx.AsyncClient, name: str, **tags: str) -> str:
    response = await api.post("/companies", json={"name": name, "tags": tags})
    return str(response.json()["id"])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("uid=abc", {"A"}),
        ("uid = abc", {"A"}),
        ("region != uk", {"A", "C"}),
        ("region=uk && team=lending", {"B"}),
        ("  uid=abc&&region!=uk  ", {"A"}),
        ("team ~ lend", {"B", "C"}),
        ("team~payroll", set()),
    ],
)
async def test_list_companies_filters_by_tags(
    api: httpx.AsyncClient, query: str, expected: set[str]
) -> None:
    await _company(api, "A", uid="abc", region="us")
    await _company(api, "B", uid="def", region="uk", team="lending")
    await _company(api, "C", uid="ghi", team="lending-ops-team")

    response = await api.get("/companies", params={"tags": query})

    assert response.status_code == 200
    assert {c["name"] for c in response.json()["results"]} == expected


@pytest.mark.parametrize(
    "query", ["uid", "=abc", "uid=", "uid==abc", "uid=abc &&", "uid=abc & region=uk", "a" * 2048]
)
async def test_malformed_tags_query_is_400(api: httpx.AsyncClient, query: str) -> None:
    response = await api.get("/companies", params={"tags": query})

    assert response.status_code == 400
    assert response.json()["statusCode"] == 400


async def test_list_companies_pages_with_links(api: httpx.AsyncClient) -> None:
    for n in range(5):
        await _company(api, f"Company {n}")

    first = (await api.get("/companies", params={"page": 1, "pageSize": 2})).json()
    last = (await api.get("/companies", params={"page": 3, "pageSize": 2})).json()

    assert [c["name"] for c in first["results"]] == ["Company 0", "Company 1"]
    assert (first["pageNumber"], first["pageSize"], first["totalResults"]) == (1, 2, 5)
    assert first["_links"]["self"] == {"href": "/companies"}
    assert first["_links"]["current"] == {"href": "/companies?page=1&pageSize=2"}
    assert first["_links"]["next"] == {"href": "/companies?page=2&pageSize=2"}
    assert "previous" not in first["_links"]
    assert [c["name"] for c in last["results"]] == ["Company 4"]
    assert "next" not in last["_links"]
    assert last["_links"]["previous"] == {"href": "/companies?page=2&pageSize=2"}


async def test_list_companies_orders_and_caps_the_echoed_page_size(
    api: httpx.AsyncClient,
) -> None:
    for name in ("Bravo", "Alpha", "Charlie"):
        await _company(api, name)

    response = await api.get("/companies", params={"orderBy": "-name", "pageSize": 5000})

    assert [c["name"] for c in response.json()["results"]] == ["Charlie", "Bravo", "Alpha"]
    assert response.json()["pageSize"] == 2000


@pytest.mark.parametrize(
    "params", [{"page": 0}, {"pageSize": 5001}, {"pageSize": "ten"}, {"orderBy": "colour"}]
)
async def test_bad_paging_parameters_are_400(
    api: httpx.AsyncClient, params: dict[str, object]
) -> None:
    assert (await api.get("/companies", params=params)).status_code == 400


async def test_create_connection_is_200_pending_auth_with_a_link_url(
    api: httpx.AsyncClient,
) -> None:
    company_id = await _company(api, "Acme")

    response = await api.post(f"/companies/{company_id}/connections", json={"platformKey": "hcws"})

    assert response.status_code == 200
    connection = response.json()
    assert connection["status"] == "PendingAuth"
    assert connection["sourceType"] == "BankFeed"
    assert connection["platformName"] == "QuickBooks Online Bank Feeds"
    assert connection["integrationKey"] == "hcws"
    assert connection["lastSync"] is None
    assert connection["dataConnectionErrors"] is None
    assert connection["connectionInfo"] is None
    expected = f"{BASE_URL}/link/companies/{company_id}/connections/{connection['id']}/start?otp="
    assert connection["linkUrl"].startswith(expected)
    assert len(_otp(connection["linkUrl"])) == 6


@pytest.mark.parametrize(
    ("body", "status"),
    [({"platformKey": "gbol"}, 404), ({"platformKey": "HCWS"}, 400), ({}, 400), ("hcws", 400)],
)
async def test_create_connection_refuses_other_platforms(
    api: httpx.AsyncClient, body: object, status: int
) -> None:
    company_id = await _company(api, "Acme")

    response = await api.post(f"/companies/{company_id}/connections", json=body)

    assert response.status_code == status


async def test_create_connection_for_an_unknown_company_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/companies/3fa85f64-5717-4562-b3fc-2c963f66afa6/connections", json={"platformKey": "hcws"}
    )

    assert response.status_code == 404


async def test_every_read_of_a_connection_hands_out_a_new_one_time_password(
    api: httpx.AsyncClient, new_connection
) -> None:
    ref = await new_connection()

    reads = [(await api.get(ref.path)).json()["linkUrl"] for _ in range(3)]
    listed = (await api.get(f"/companies/{ref.company_id}/connections")).json()["results"]
    company = (await api.get(f"/companies/{ref.company_id}")).json()

    link_urls = [
        ref.link_url,
        *reads,
        listed[0]["linkUrl"],
        company["dataConnections"][0]["linkUrl"],
    ]
    otps = [_otp(url) for url in link_urls]
    assert len(set(otps)) == len(otps)
    assert all(otp.isdigit() and len(otp) == 6 for otp in otps)


async def test_list_connections_is_paged(api: httpx.AsyncClient, new_connection) -> None:
    ref = await new_connection()

    page = (await api.get(f"/companies/{ref.company_id}/connections")).json()

    assert page["totalResults"] == 1
    assert page["results"][0]["id"] == ref.connection_id
    assert page["_links"]["self"] == {"href": f"/companies/{ref.company_id}/connections"}


async def test_unlink_needs_a_linked_connection(api: httpx.AsyncClient, new_connection) -> None:
    ref = await new_connection()

    pending = await api.patch(ref.path, json={"status": "Unlinked"})
    unknown_field = await api.patch(ref.path, json={"status": "Unlinked", "reason": "x"})
    relink = await api.patch(ref.path, json={"status": "Linked"})

    assert pending.status_code == 400
    assert unknown_field.status_code == 400
    assert relink.status_code == 400


async def test_delete_connection_is_200_with_an_empty_body(
    api: httpx.AsyncClient, new_connection
) -> None:
    ref = await new_connection()

    response = await api.delete(ref.path)

    assert response.status_code == 200
    assert response.content == b""
    assert (await api.get(ref.path)).status_code == 404


async def test_get_integration_hcws(api: httpx.AsyncClient) -> None:
    response = await api.get("/integrations/hcws")

    assert response.status_code == 200
    integration = response.json()
    assert integration["name"] == "QuickBooks Online Bank Feeds"
    assert integration["enabled"] is True
    assert integration["sourceType"] == "BankFeed"
    assert (await api.get("/integrations/gbol")).status_code == 404


async def test_calls_are_recorded_without_pages_or_admin_routes(
    api: httpx.AsyncClient, browser: httpx.AsyncClient, new_connection, sandbox: Sandbox
) -> None:
    ref = await new_connection()
    sandbox.reset_calls()

    await api.get(ref.path)
    await api.get("/companies/3fa85f64-5717-4562-b3fc-2c963f66afa6")
    await browser.get(f"/link/companies/{ref.company_id}/connections/{ref.connection_id}/start")
    await api.get("/_sandbox/state")

    assert [(c.method, c.path, c.route, c.status) for c in sandbox.calls] == [
        ("GET", ref.path, "/companies/{companyId}/connections/{connectionId}", 200),
        ("GET", "/companies/3fa85f64-5717-4562-b3fc-2c963f66afa6", "/companies/{companyId}", 404),
    ]
    assert all(c.at.tzinfo is not None for c in sandbox.calls)


async def test_concurrent_creates_of_one_company_name_make_distinct_companies(
    api: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    responses = await asyncio.gather(
        *(api.post("/companies", json={"name": "Same"}) for _ in range(20))
    )

    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["id"] for r in responses}) == 20
    assert len(sandbox.store.companies) == 20


async def test_clock_is_timezone_aware_and_only_moves_forward(sandbox: Sandbox) -> None:
    before = sandbox.clock.now()

    after = sandbox.clock.advance(timedelta(hours=2))

    assert before.tzinfo is not None
    assert after - before >= timedelta(hours=2)
    with pytest.raises(ValueError):
        sandbox.clock.advance(timedelta(seconds=-1))
