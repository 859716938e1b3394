"""Reading the sandbox's HTML pages the way a browser test would: by id, label and form."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[str] = field(default_factory=list)
    checkboxes: dict[str, str] = field(default_factory=dict)  # label text -> value


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text_by_id: dict[str, str] = {}
        self.attrs_by_id: dict[str, dict[str, str]] = {}
        self.forms: list[Form] = []
        self._open_ids: list[tuple[str, str, int]] = []  # (id, tag, depth)
        self._depth = 0
        self._label_for_checkbox: str | None = None
        self._button_text: list[str] | None = None
        self._label_text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag not in ("input", "meta", "br", "link"):
            self._depth += 1
        if "id" in values:
            self.attrs_by_id[values["id"]] = values
            self.text_by_id.setdefault(values["id"], "")
            if tag not in ("input",):
                self._open_ids.append((values["id"], tag, self._depth))
        if tag == "form":
            self.forms.append(Form(values.get("action", ""), values.get("method", "get").lower()))
        elif tag == "input" and self.forms:
            if values.get("type") == "checkbox":
                self._label_for_checkbox = values.get("value", "")
            elif values.get("type") in ("hidden", "text", "date", "password"):
                self.forms[-1].fields[values.get("name", "")] = values.get("value", "")
        elif tag == "button":
            self._button_text = []
        elif tag == "label" and values.get("class") == "choice":
            self._label_text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button_text is not None and self.forms:
            self.forms[-1].buttons.append("".join(self._button_text).strip())
            self._button_text = None
        if tag == "label" and self._label_text is not None and self.forms:
            label = " ".join("".join(self._label_text).split())
            self.forms[-1].checkboxes[label] = self._label_for_checkbox or ""
            self._label_text = None
        while self._open_ids and self._open_ids[-1][2] >= self._depth:
            self._open_ids.pop()
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        for element_id, _, _ in self._open_ids:
            self.text_by_id[element_id] += data
        if self._button_text is not None:
            self._button_text.append(data)
        if self._label_text is not None:
            self._label_text.append(data)


class Page:
    def __init__(self, html: str) -> None:
        self.html = html
        parser = _PageParser()
        parser.feed(html)
        self._parser = parser

    def text(self, element_id: str) -> str:
        return " ".join(self._parser.text_by_id[element_id].split())

    def has(self, element_id: str) -> bool:
        return element_id in self._parser.text_by_id

    def attr(self, element_id: str, name: str) -> str:
        return self._parser.attrs_by_id[element_id][name]

    def form_with_button(self, text: str) -> Form:
        for form in self._parser.forms:
            if text in form.buttons:
                return form
        raise AssertionError(f"no form with a {text!r} button in the page")


def path_of(url: str) -> str:
    """The path and query of an absolute URL, for an httpx client with its own base_url."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
