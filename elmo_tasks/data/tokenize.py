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
    split_sentences(text: str) -> list[str]     # running text -> sentence strings (untokenised)
    tokenize_sentences(text: str) -> list[list[str]]   # both: running text -> tokenised sentences

The rules follow the Treebank sed script (as in NLTK's ``TreebankWordTokenizer``), written out here
so that the project does not depend on NLTK.
"""

from __future__ import annotations

import re
import unicodedata

# --- characters -------------------------------------------------------------------------------

# typographic quotes say which side they are on: they become placeholders (private-use characters)
# that the quote rules below leave alone, and are turned into PTB quotes at the end
_OPEN2, _CLOSE2, _OPEN1 = "\ue000", "\ue001", "\ue002"
_PLACEHOLDERS = {_OPEN2: "``", _CLOSE2: "''", _OPEN1: "`"}
_CHAR_MAP = {
    "\u201c": f" {_OPEN2} ", "\u201d": f" {_CLOSE2} ", "\u201e": f" {_OPEN2} ", "\u00ab": f" {_OPEN2} ",
    "\u00bb": f" {_CLOSE2} ", "\u2018": f" {_OPEN1} ", "\u2019": "'", "\u201a": ",", "\u2032": "'", "\u2033": "''",
    "\u2014": " -- ", "\u2013": " -- ", "\u2012": "-", "\u2010": "-", "\u2011": "-", "\u2212": "-",
    "\u2026": " ... ", "\u00a0": " ", "\u2009": " ", "\u200b": "", "\ufeff": "", "\u00ad": "",
}
_CHAR_TABLE = str.maketrans(_CHAR_MAP)

# --- tokeniser rules (Treebank sed script order) ----------------------------------------------

_STARTING_QUOTES = [
    (re.compile(r'^"'), r" `` "),
    (re.compile(r"(``)"), r" \1 "),
    (re.compile(r'([ (\[{<])("|\'{2})'), r"\1 `` "),
    # an opening single quote: at the start or after a space/bracket, before a letter, but not the
    # elisions 'tis 'twas 'em 'll etc. (a following word character that makes a known clitic)
    (re.compile(r"(^|[ (\[{<])'(?!(?:tis|twas|twere|em|s|ll|re|ve|d|m|t|n)\b)(?=[A-Za-z`])", re.I), r"\1 ` "),
]

_PUNCTUATION = [
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),
    (re.compile(r"([:,])$"), r" \1 "),
    (re.compile(r"\.\.\."), r" ... "),
    (re.compile(r"[;@#$%&]"), r" \g<0> "),
    # the final period (with any closing brackets/quotes after it)
    (re.compile(r'([^\.])(\.)([\]\)}>"\']*)\s*$'), r"\1 \2\3 "),
    (re.compile(r"[?!]"), r" \g<0> "),
    (re.compile(r"([^'])' "), r"\1 ' "),
]

_PARENS = (re.compile(r"[\]\[\(\)\{\}\<\>]"), r" \g<0> ")
_DASHES = (re.compile(r"--"), r" -- ")

_ENDING_QUOTES = [
    (re.compile(r'"'), " '' "),
    (re.compile(r"(\S)('')"), r"\1 \2 "),
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
]

_CONTRACTIONS = [
    re.compile(r"(?i)\b(can)(not)\b"),
    re.compile(r"(?i)\b(d)('ye)\b"),
    re.compile(r"(?i)\b(gim)(me)\b"),
    re.compile(r"(?i)\b(gon)(na)\b"),
    re.compile(r"(?i)\b(got)(ta)\b"),
    re.compile(r"(?i)\b(lem)(me)\b"),
    re.compile(r"(?i)\b(wan)(na)\s"),
    re.compile(r"(?i) ('t)(is)\b"),
    re.compile(r"(?i) ('t)(was)\b"),
]


def normalize_chars(text: str) -> str:
    """NFC-normalise and map typographic quotes, dashes and spaces to their ASCII PTB forms."""
    text = unicodedata.normalize("NFC", text).translate(_CHAR_TABLE)
    for placeholder, quote in _PLACEHOLDERS.items():
        text = text.replace(placeholder, quote)
    return text


def tokenize(text: str) -> list[str]:
    """PTB-like tokens of one sentence (see the module docstring). Whitespace-only text gives []."""
    text = unicodedata.normalize("NFC", text).translate(_CHAR_TABLE)
    for regexp, substitution in _STARTING_QUOTES:
        text = regexp.sub(substitution, text)
    for regexp, substitution in _PUNCTUATION:
        text = regexp.sub(substitution, text)
    text = _PARENS[0].sub(_PARENS[1], text)
    text = _DASHES[0].sub(_DASHES[1], text)
    text = " " + text + " "
    for regexp, substitution in _ENDING_QUOTES:
        text = regexp.sub(substitution, text)
    for regexp in _CONTRACTIONS:
        text = regexp.sub(r" \1 \2 ", text)
    return [_PLACEHOLDERS.get(token, token) for token in text.split()]


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
