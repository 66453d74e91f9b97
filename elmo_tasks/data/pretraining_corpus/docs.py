"""Technical English from Debian's documentation packages: which pages of each are read, and how.

=====================  ==============================================  ============================
package                pages                                           markup
=====================  ==============================================  ============================
``linux-doc-6.1``      ``usr/share/doc/linux-doc-6.1/html/**.html``    Sphinx HTML
``python3.11-doc``     ``usr/share/doc/python3.11/html/**.html``       Sphinx HTML
``postgresql-doc-15``  ``usr/share/doc/postgresql-doc-15/html/*.html`` DocBook HTML
``git-doc``            ``usr/share/doc/git-doc/**.html``               AsciiDoc HTML
``perl-doc``           ``usr/share/perl/*/pod/*.pod``                  POD
=====================  ==============================================  ============================

Left out: translations (``translations/``), indexes, search and table-of-contents pages, change
logs and release notes (lists of changes, not prose), and Sphinx's copies of sources.
Pages are read in sorted path order, so the corpus does not depend on the file system.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from elmo_tasks.data.pretraining_corpus.html_text import html_paragraphs
from elmo_tasks.data.pretraining_corpus.pod_text import pod_paragraphs

_SKIP_PAGE = re.compile(r"(?:^|/)(?:_sources|_static|_downloads|_images|translations)/|(?:^|/)(?:genindex[^/]*|"
                        r"py-modindex|modindex|search|contents|bookindex|index-\w+|changelog|release-[\d-]+|"
                        r"RelNotes[^/]*)\.html$", re.I)

HTML_FOLDERS = {
    "linux-doc-6.1": "usr/share/doc/linux-doc-6.1/html",
    "python3.11-doc": "usr/share/doc/python3.11/html",
    "postgresql-doc-15": "usr/share/doc/postgresql-doc-15/html",
    "git-doc": "usr/share/doc/git-doc",
}


def html_pages(folder: Path) -> list[Path]:
    """The HTML pages under ``folder`` that are read (sorted; see the module docstring)."""
    pages = []
    for path in sorted(folder.rglob("*.html")):
        if not _SKIP_PAGE.search(path.relative_to(folder).as_posix()):
            pages.append(path)
    return pages


def read_html_docs(root: Path, package: str) -> Iterator[str]:
    """Prose paragraphs of the HTML documentation package ``package`` unpacked at ``root``."""
    folder = root / HTML_FOLDERS[package]
    pages = html_pages(folder)
    if not pages:
        raise RuntimeError(f"{folder} holds no HTML page")
    for path in pages:
        yield from html_paragraphs(path.read_text(encoding="utf-8", errors="replace"))


def read_perl_docs(root: Path) -> Iterator[str]:
    """Prose paragraphs of Perl's POD manuals (``perl-doc``) unpacked at ``root``."""
    pods = sorted(root.glob("usr/share/perl/*/pod/*.pod"))
    if not pods:
        raise RuntimeError(f"{root}/usr/share/perl/*/pod holds no .pod file")
    for path in pods:
        if path.stem in ("perldelta",) or re.fullmatch(r"perl5\d+delta", path.stem):
            continue  # release notes
        yield from pod_paragraphs(path.read_text(encoding="utf-8", errors="replace"))
