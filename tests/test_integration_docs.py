"""docs/integration.md's button and token examples, run as a host app would run them, against
the service: the HTML form, and the tokens minted in Python, Node.js (jose) and Java."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app.connect.tokens import ConnectClaims, verify_connect_token
from tests.conftest import CONNECT_SECRET, PUBLIC_BASE, Service
from tests.factories import add_customer

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "integration.md"
SECTION = "## Connect links and the button"
NODE_DIR = ROOT / "var" / "integration-docs-node"  # jose, installed once per machine
JOSE = "jose@6"
COMMAND_SECONDS = 180


def examples() -> dict[str, str]:
    """The first code block of each language in the section."""
    text = DOC.read_text()
    section = text[text.index(SECTION) :]
    following = re.search(r"^## ", section[len(SECTION) :], re.MULTILINE)
    if following:
        section = section[: len(SECTION) + following.start()]
    found: dict[str, str] = {}
    for language, code in re.findall(r"^```(\w+)\n(.*?)^```", section, re.MULTILINE | re.DOTALL):
        found.setdefault(language, code)
    return found


def run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_SECONDS, check=False
    )
    assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip()


def claims_of(token: str, lang: str | None) -> ConnectClaims:
    claims = verify_connect_token(CONNECT_SECRET, token)
    assert claims.customer_id == "cus-1" and claims.lang == lang and claims.jti
    assert (claims.expires_at - claims.issued_at).total_seconds() == 600
    return claims


async def click_with(service: Service, token: str) -> None:
    """The form's POST, then the link's GET (with a second token: a jti works once)."""
    origin = {"Origin": PUBLIC_BASE}  # the form is on the host app's page
    response = await service.client.post(
        "/connect-bank-feeds", data={"token": token}, headers=origin
    )
    assert response.status_code == 303, response.text
    assert urlsplit(response.headers["location"]).path.endswith("/start")
    replay = await service.client.post("/connect-bank-feeds", data={"token": token}, headers=origin)
    assert replay.status_code == 401


class Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attrs: dict[str, str | None] = {}
        self.fields: dict[str, str] = {}
        self.button = ""
        self._in_button = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self.attrs = found
        elif tag == "input" and found.get("name"):
            self.fields[str(found["name"])] = found.get("value") or ""
        elif tag == "button":
            self._in_button = True

    def handle_data(self, data: str) -> None:
        if self._in_button:
            self.button += data

    def handle_endtag(self, tag: str) -> None:
        self._in_button = self._in_button and tag != "button"


def python_token(lang: str | None = None) -> str:
    namespace: dict[str, object] = {}
    exec(compile(examples()["python"], str(DOC), "exec"), namespace)
    mint = namespace["connect_token"]
    assert callable(mint)
    return str(mint("cus-1", CONNECT_SECRET, lang) if lang else mint("cus-1", CONNECT_SECRET))


def test_the_section_has_every_example() -> None:
    assert SECTION in DOC.read_text()
    assert set(examples()) >= {"html", "python", "js", "java", "csharp"}


async def test_the_html_form_button(service: Service) -> None:
    await add_customer(service.sessions, "cus-1")
    form = Form()
    form.feed(examples()["html"].replace("{{ connect_token }}", python_token()))
    assert form.attrs["method"] == "post" and form.button == "Connect to QuickBooks"
    action = urlsplit(str(form.attrs["action"]))
    assert action.path == "/connect-bank-feeds"
    # The browser names the host app's page as the form's Origin (HOST_APP_ORIGINS).
    response = await service.client.post(
        action.path, data=form.fields, headers={"Origin": PUBLIC_BASE}
    )
    assert response.status_code == 303, response.text


async def test_python_pyjwt(service: Service) -> None:
    await add_customer(service.sessions, "cus-1")
    claims_of(python_token(), None)
    token = python_token("fr")
    claims_of(token, "fr")
    await click_with(service, token)
    link = await service.client.get("/connect-bank-feeds", params={"token": python_token()})
    assert link.status_code == 302


@pytest.fixture(scope="module")
def node_with_jose() -> Path:
    """A folder where `import "jose"` resolves: jose from the npm registry, installed once."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js is not installed")
    if not (NODE_DIR / "node_modules" / "jose" / "package.json").exists():
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        (NODE_DIR / "package.json").write_text('{"private": true, "type": "module"}\n')
        run(["npm", "install", "--no-audit", "--no-fund", "--silent", JOSE], NODE_DIR)
    return NODE_DIR


async def test_nodejs_jose(service: Service, node_with_jose: Path) -> None:
    await add_customer(service.sessions, "cus-1")
    (node_with_jose / "connect-token.mjs").write_text(examples()["js"])
    (node_with_jose / "mint.mjs").write_text(
        'import { connectToken } from "./connect-token.mjs";\n'
        "const [customerId, secret, lang] = process.argv.slice(2);\n"
        "console.log(await connectToken(customerId, secret, lang));\n"
    )
    claims_of(run(["node", "mint.mjs", "cus-1", CONNECT_SECRET], node_with_jose), None)
    token = run(["node", "mint.mjs", "cus-1", CONNECT_SECRET, "en"], node_with_jose)
    claims_of(token, "en")
    await click_with(service, token)


async def test_java_jdk(service: Service, tmp_path: Path) -> None:
    if shutil.which("javac") is None or shutil.which("java") is None:
        pytest.skip("a JDK is not installed")
    await add_customer(service.sessions, "cus-1")
    (tmp_path / "ConnectToken.java").write_text(examples()["java"])
    (tmp_path / "Mint.java").write_text(
        "public final class Mint {\n"
        "    public static void main(String[] args) throws Exception {\n"
        "        String lang = args.length > 2 ? args[2] : null;\n"
        "        System.out.println(ConnectToken.mint(args[0], args[1], lang));\n"
        "    }\n"
        "}\n"
    )
    run(["javac", "-d", "out", "ConnectToken.java", "Mint.java"], tmp_path)
    claims_of(run(["java", "-cp", "out", "Mint", "cus-1", CONNECT_SECRET], tmp_path), None)
    token = run(["java", "-cp", "out", "Mint", "cus-1", CONNECT_SECRET, "fr"], tmp_path)
    claims_of(token, "fr")
    await click_with(service, token)


def test_the_form_posts_to_the_public_base_url_shape() -> None:
    form = Form()
    form.feed(examples()["html"])
    action = urlsplit(str(form.attrs["action"]))
    assert action.scheme == "https" and action.path == "/connect-bank-feeds"
    assert urlsplit(PUBLIC_BASE).path == ""  # the action is PUBLIC_BASE_URL + the path
