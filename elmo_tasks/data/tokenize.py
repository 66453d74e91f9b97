"""A Penn-Treebank-like tokeniser and a rule-based English sentence splitter.

The task data (the WSJ POS sample, the OANC text, CoNLL-style sets) is tokenised the PTB way, so the
pretraining corpus is tokenised the same way for the biLM to see the same kind of tokens:

- punctuation is split off: ``Hello, world.`` -> ``Hello , world .``; abbreviations keep their
  period inside a sentence (``Mr.``, ``U.S.``), the sentence-final period is split off;
- clitics are separate tokens as in the WSJ: ``don't`` -> ``do n't``, ``John's`` -> ``John 's``,
  ``they're`` -> ``they 're``, also ``'ll 've 'd 'm`` and ``cannot`` -> ``can not``;
- double quotes become ````` (opening) and ``''`` (closing), an opening single quote becomes `````;
  brackets stay as they are (``(`` not ``-LRB-``), as in the WSJ sample;
- typographic quotes and dashes are mapped to their ASCII PTB forms (``“`` -> `````, ``—`` -> ``--``);
- case is kept; nothing else is normalised.

API (pure functions, no state, no dependencies)::

    tokenize(text: str) -> list[str]            # one sentence (or any span) -> PTB tokens
    split_clitic(word: str) -> list[str]        # one word -> word and clitic ("do n't")
    split_sentences(text: str) -> list[str]     # running text -> sentence strings (untokenised)
    tokenize_sentences(text: str) -> list[list[str]]   # both: running text -> tokenised sentences

The conventions are those of the Penn Treebank's tokenisation guidelines; the code is this
project's own (chunk by chunk, see ``_tokenize_chunk``) and has no dependencies.
"""

from __future__ import annotations

import re
import unicodedata

# --- characters -------------------------------------------------------------------------------

# typographic quotes say which side they are on, so they map straight to PTB quotes; ASCII quotes
# are decided by position (see _peel_front / _peel_back)
_CHAR_MAP = {
    "\u201c": " `` ", "\u201d": " '' ", "\u201e": " `` ", "\u00ab": " `` ", "\u00bb": " '' ",
    "\u2018": " ` ", "\u2019": "'", "\u201a": ",", "\u2032": "'", "\u2033": "''",
    "\u2014": " -- ", "\u2013": " -- ", "\u2012": "-", "\u2010": "-", "\u2011": "-", "\u2212": "-",
    "\u2026": " ... ", "\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl", "\u00a0": " ",
    "\u2009": " ", "\u200b": "", "\ufeff": "", "\u00ad": "",
}
_CHAR_TABLE = str.maketrans(_CHAR_MAP)


def normalize_chars(text: str) -> str:
    """NFC-normalise and map typographic quotes, dashes and spaces to their ASCII PTB forms."""
    return unicodedata.normalize("NFC", text).translate(_CHAR_TABLE)


# --- tokeniser --------------------------------------------------------------------------------
#
# Text is cut at whitespace into chunks; each chunk loses its opening marks at the front and its
# closing marks at the back, its inner punctuation is cut out, and the remaining word loses its
# clitic. Only the last chunk of the text gives up a final period (PTB keeps "Mr." and "N.V." whole
# and splits only the sentence's own period).

_ALWAYS_SPLIT = re.compile(r"(--|\.\.\.|[;@#$%&?!()\[\]{}<>]|[,:](?!\d))")  # "5,000" and "3:30" stay
_OPENERS = ("``", "`", "(", "[", "{", "<")
_CLOSERS = ("''", ")", "]", "}", ">")
# a leading apostrophe that belongs to the word: 'tis 'twas 'em 'n' '90s
_ELISION = re.compile(r"(?i)'(?:tis|twas|twere|em|n|\d\d?s?)\b")
# word-final clitics, split off as in the WSJ ("do n't", "John 's", "they 're")
_CLITIC = re.compile(r"(?i)^(.+?)(n't|'s|'m|'d|'ll|'re|'ve)$")
# whole words that the treebank splits in two
_SPLIT_WORDS = {
    "cannot": (3,), "gonna": (3,), "gotta": (3,), "wanna": (3,), "gimme": (3,), "lemme": (3,),
    "'tis": (2,), "'twas": (2,), "d'ye": (1,),
}


def _peel_front(chunk: str) -> tuple[list[str], str]:
    """Opening quotes and brackets at the front of a chunk -> (tokens, rest)."""
    tokens: list[str] = []
    while chunk:
        if chunk.startswith('"'):
            tokens.append("``")
            chunk = chunk[1:]
        elif chunk.startswith("''") and len(chunk) > 2:  # '' before a word opens a quotation
            tokens.append("``")
            chunk = chunk[2:]
        elif chunk.startswith("'") and len(chunk) > 1 and not _ELISION.match(chunk):
            tokens.append("`")
            chunk = chunk[1:]
        else:
            opener = next((o for o in _OPENERS if chunk.startswith(o)), None)
            if opener is None or len(chunk) == len(opener):
                break
            tokens.append(opener)
            chunk = chunk[len(opener):]
    return tokens, chunk


def _peel_back(chunk: str) -> tuple[str, list[str]]:
    """Closing quotes and brackets at the back of a chunk -> (rest, tokens in order)."""
    tokens: list[str] = []
    while len(chunk) > 1:
        if chunk.endswith(".") and chunk[-2] in "\"')]}>":  # a period after a closing mark: `no'.`
            tokens.append(".")
            chunk = chunk[:-1]
        elif chunk.endswith('"'):
            tokens.append("''")
            chunk = chunk[:-1]
        elif chunk.endswith("''"):
            tokens.append("''")
            chunk = chunk[:-2]
        elif chunk.endswith("'"):  # a closing single quote, or the plural possessive: boys' -> boys '
            tokens.append("'")
            chunk = chunk[:-1]
        else:
            closer = next((c for c in _CLOSERS if chunk.endswith(c)), None)
            if closer is None:
                break
            tokens.append(closer)
            chunk = chunk[:-len(closer)]
    return chunk, tokens[::-1]


def split_clitic(word: str) -> list[str]:
    """One word -> the word and its clitic as the treebank (and so the pretraining text) has them:
    ``don't`` -> ``do n't``, ``I'm`` -> ``I 'm``, ``gonna`` -> ``gon na``; other words unchanged."""
    return _split_word(word)


def _split_word(word: str) -> list[str]:
    """A word without surrounding punctuation -> the word and its clitic, as the treebank has them."""
    cuts = _SPLIT_WORDS.get(word.lower())
    if cuts:
        return [word[:cuts[0]], word[cuts[0]:]]
    match = _CLITIC.match(word)
    if match and match.group(1) not in ("'", "`"):
        return [match.group(1), match.group(2)]
    return [word]


def _tokenize_chunk(chunk: str) -> list[str]:
    if chunk in ("``", "''", "`", "'", "--", "...", "'n'"):
        return [chunk]
    front, chunk = _peel_front(chunk)
    chunk, back = _peel_back(chunk)
    middle: list[str] = []
    for piece in _ALWAYS_SPLIT.split(chunk):
        if not piece:
            continue
        if _ALWAYS_SPLIT.fullmatch(piece):
            middle.append(piece)
        else:
            inner_front, piece = _peel_front(piece)
            piece, inner_back = _peel_back(piece)
            middle.extend(inner_front)
            if piece:
                middle.extend(_split_word(piece))
            middle.extend(inner_back)
    return front + middle + back


# abbreviations that keep their own period at the end of a sentence, followed by the sentence's
# period (as the WSJ has "Inc. ."); a word with an inner period ("p.m.", "U.S.") does the same
_FINAL_ABBREVIATIONS = frozenset({"inc", "corp", "ltd", "co", "bros", "jr", "sr", "etc", "esq"})


def tokenize(text: str) -> list[str]:
    """PTB-like tokens of one sentence (see the module docstring). Whitespace-only text gives []."""
    tokens: list[str] = []
    for chunk in normalize_chars(text).split():
        tokens.extend(_tokenize_chunk(chunk))
    # the sentence's own period: split off the last word that ends in one (before closing marks)
    for i in range(len(tokens) - 1, -1, -1):
        token = tokens[i]
        if token in _CLOSERS or token in ("'", "''"):
            continue
        if len(token) > 1 and token.endswith(".") and not token.endswith(".."):
            word = token[:-1]
            if "." in word or word.lower() in _FINAL_ABBREVIATIONS:  # "p.m." / "Inc." keep theirs
                tokens.insert(i + 1, ".")
            else:
                tokens[i:i + 1] = [word, "."]
        break
    return tokens


# --- sentence splitting -----------------------------------------------------------------------

# abbreviations that do not end a sentence when followed by a capitalised word (lower-cased, no
# final period); single letters (initials: "J. Smith") are handled separately
ABBREVIATIONS = frozenset("""
mr mrs ms messrs mme mlle dr prof rev revd st sr jr hon capt col gen lieut lt maj sgt gov pres
supt esq fr bp abp
e.g i.e viz cf vs etc al ca approx c ch chap vol vols no nos p pp fig figs ed eds trans
jan feb mar apr jun jul aug sep sept oct nov dec
inc corp co ltd bros dept univ assn
mt ft
gen exod lev num deut josh judg ps prov eccl isa jer lam ezek dan hos matt mk lk jn rom cor gal
eph phil col thess tim tit philem heb jas pet rev
""".split())

# candidate boundary: [.!?] (possibly repeated), optional closing quotes/brackets, whitespace,
# then what may start a sentence (a capital, a digit, an opening quote or bracket)
_BOUNDARY = re.compile(r"""([.!?]+)(['"\u2019\u201d)\]]*)(\s+)(?=[`'"\u2018\u201c(\[]*[A-Z0-9])""")
_WORD_BEFORE = re.compile(r"(\S+)$")


def _is_abbreviation(word: str) -> bool:
    """``word`` is the text before a period (no period itself): an abbreviation or an initial?"""
    word = word.lstrip("`'\"([{\u2018\u201c")
    if not word:
        return False
    if len(word) == 1 and word.isalpha():  # an initial: "J. Smith", "C. Darwin"
        return True
    if re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", word):  # "U.S", "e.g", "i.e"
        return True
    return word.lower() in ABBREVIATIONS


def split_sentences(text: str) -> list[str]:
    """Split running text (whitespace, including newlines, is treated as one space) into sentences.

    A sentence ends at ``.``, ``!`` or ``?`` (with any closing quotes or brackets) followed by
    whitespace and a capital letter, digit or opening quote; a period after a known abbreviation
    or a single-letter initial does not end a sentence.
    """
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return []
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if match.group(1) == ".":
            before = _WORD_BEFORE.search(text, 0, match.start())
            if before and _is_abbreviation(before.group(1)):
                continue
        end = match.end(2)
        piece = text[start:end].strip()
        if piece:
            sentences.append(piece)
        start = match.end()
    piece = text[start:].strip()
    if piece:
        sentences.append(piece)
    return sentences


def tokenize_sentences(text: str) -> list[list[str]]:
    """Running text -> sentences -> PTB tokens (empty sentences dropped)."""
    out = []
    for sentence in split_sentences(text):
        tokens = tokenize(sentence)
        if tokens:
            out.append(tokens)
    return out
