"""The web page's static files, read without a browser: offline-safe assets and no markup sinks.

The page shows text written by whoever submitted a job (statements, proof states, error details), so
app.js must never hand a string to an API that parses HTML; and it must work on a machine with no
internet, so nothing may be loaded from another origin.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

import prover.service

WEB = Path(prover.service.__file__).parent / "web"
FILES = ("index.html", "app.js", "style.css")

# Every way a browser script turns a string into markup or code (DOM XSS sinks).
MARKUP_SINKS = re.compile(
    r"""
      \.innerHTML\b | \.outerHTML\b | \binsertAdjacentHTML\b | \bdocument\.write(ln)?\b
    | \bcreateContextualFragment\b | \bDOMParser\b | \bparseHTMLUnsafe\b | \bsetHTMLUnsafe\b | \.srcdoc\b
    | \beval\s*\( | \bnew\s+Function\b | \bsetTimeout\s*\(\s*[`'"] | \bsetInterval\s*\(\s*[`'"]
    | setAttribute\s*\(\s*[`'"]on | \bjavascript:
    """,
    re.VERBOSE,
)
REMOTE = re.compile(r"""(?i)\b(?:https?|wss?|ftp):(//)?|(?:src|href|action)\s*=\s*["']?//|url\(\s*["']?//|@import""")


def read(name: str) -> str:
    return (WEB / name).read_text(encoding="utf-8")


class _References(HTMLParser):
    """Collects the page's `src`/`href` references, inline scripts and inline event handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.handlers: list[str] = []
        self.inline_scripts = 0
        self.meta_csp: str | None = None
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, value in attrs:
            if name in ("src", "href", "action") and value is not None:
                self.references.append(value)
            if name.startswith("on"):
                self.handlers.append(f"<{tag} {name}>")
        if tag == "meta" and (values.get("http-equiv") or "").lower() == "content-security-policy":
            self.meta_csp = values.get("content")
        self._in_script = tag == "script" and "src" not in values

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


def test_the_page_files_exist() -> None:
    for name in FILES:
        assert (WEB / name).is_file(), f"{WEB / name} is missing"


@pytest.mark.parametrize("name", FILES)
def test_no_file_of_the_page_names_a_remote_url(name: str) -> None:
    text = read(name)
    found = [match.group(0) for match in REMOTE.finditer(text)]
    assert not found, f"{name} refers to another origin ({found}); the page must work offline"


def test_index_references_only_its_own_files() -> None:
    page = _References()
    page.feed(read("index.html"))
    assert page.references, "index.html references no assets at all"
    for reference in page.references:
        if reference.startswith("data:"):
            continue
        # The app serves index.html at `/` and this directory at `/static/`.
        assert reference.startswith("static/") or reference.startswith("/static/"), reference
        target = WEB / reference.split("static/", 1)[1].split("?")[0]
        assert target.is_file(), f"index.html refers to {reference}, which is not in {WEB}"
    assert {"static/app.js", "static/style.css"} <= {ref.lstrip("/") for ref in page.references}


def test_index_has_no_inline_code_and_a_same_origin_content_security_policy() -> None:
    page = _References()
    page.feed(read("index.html"))
    assert page.inline_scripts == 0, "inline <script> code: the CSP forbids it and it bypasses review"
    assert page.handlers == [], f"inline event handlers: {page.handlers}"
    assert page.meta_csp is not None, "index.html has no Content-Security-Policy"
    directives = {part.split()[0]: part.split()[1:] for part in page.meta_csp.split(";") if part.strip()}
    assert directives["script-src"] == ["'self'"]
    assert directives["connect-src"] == ["'self'"]
    assert "'unsafe-inline'" not in page.meta_csp and "'unsafe-eval'" not in page.meta_csp


@pytest.mark.parametrize(
    "line",
    [
        "row.innerHTML = job.request.statement;",
        "pre.outerHTML = `<pre>${data.state}</pre>`;",
        'list.insertAdjacentHTML("beforeend", item);',
        "document.write(detail)",
        "range.createContextualFragment(text)",
        "new DOMParser().parseFromString(body, 'text/html')",
        "eval(event.data)",
        'node.setAttribute("onclick", data.proof)',
        "setTimeout('refresh()', 10)",
    ],
)
def test_the_sink_check_catches_markup_sinks(line: str) -> None:
    assert MARKUP_SINKS.search(line), line


def test_app_js_uses_no_markup_sink_and_writes_text_with_textContent() -> None:
    text = read("app.js")
    found = [(text.count("\n", 0, match.start()) + 1, match.group(0)) for match in MARKUP_SINKS.finditer(text)]
    assert not found, f"app.js parses strings as markup or code at (line, sink): {found}"
    # The safe way is actually used for what the server sends, not merely the unsafe ways avoided.
    for field in ("data.state", "data.proof", "data.judge", "entry.state"):
        assert field in text, f"app.js no longer shows {field}; update this test"
    assert text.count(".textContent =") >= 10
    # Server data becomes DOM text only through `element()`, which sets textContent.
    assert re.search(r"function element\([^)]*\)\s*\{[^}]*\.textContent = String\(text\)", text)
