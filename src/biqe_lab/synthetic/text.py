"""The text of synthetic pages: lines composed from Debian word lists of a language, and built-in sentences."""
from __future__ import annotations

import random
import re
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

from ..errors import InputError
from .fonts import _font_draws

# Short everyday sentences written for this module, free to reuse; only characters every font draws.
SENTENCES = (
    "Le vent du soir passait sur les toits gris.",
    "Nous sommes partis avant le lever du jour.",
    "La rivière était haute après les pluies d'avril.",
    "Mon frère a promis d'écrire chaque semaine.",
    "Le marché ouvre ses portes à six heures.",
    "On entendait les cloches de l'église voisine.",
    "Il faudra réparer le mur du jardin cet été.",
    "Ma tante garde les lettres dans une boîte en fer.",
    "Le train de Lyon avait encore une heure de retard.",
    "Les enfants ont cueilli des mûres près du chemin.",
    "Je vous remercie de votre aimable réponse.",
    "La neige couvrait déjà les champs de blé.",
    "Le notaire a signé l'acte devant trois témoins.",
    "Nous avons dîné tard, à la lueur d'une bougie.",
    "Le facteur est passé deux fois ce matin.",
    "The harbour lights were lit before dusk.",
    "We walked along the river until noon.",
    "My sister sends her kind regards to all of you.",
    "The old mill has stood there for a century.",
    "Please forward the parcel to my new address.",
    "It rained all week, and the roads were mud.",
    "The garden gate creaks whenever the wind blows.",
    "He wrote the accounts in a small brown ledger.",
    "Our ship reached the coast on the third of May.",
    "The children were reading by the kitchen fire.",
    "I shall return as soon as the harvest is done.",
    "A letter from London arrived this morning.",
    "The bells rang twice, and then all was quiet.",
    "She kept the keys in the drawer of her desk.",
    "We hope the weather will be fine on Sunday.",
)


SENTENCE_LANGUAGES = {"fra": SENTENCES[:15], "eng": SENTENCES[15:]}

# Debian word lists (packages wfrench, wamerican/wbritish, wngerman, witalian, wspanish) under
# DICT_DIR, by language code; the first file found is used. Without one, lines fall back to SENTENCES.
DICT_DIR = Path("/usr/share/dict")
WORD_LISTS = {
    "fra": ("french",),
    "eng": ("american-english", "british-english"),
    "deu": ("ngerman",),
    "ita": ("italian",),
    "spa": ("spanish",),
}
LANGUAGES = ("fra", "eng")
TEXT_SOURCES = ("mixed", "words", "sentences")  # "mixed": mostly word-list lines, some SENTENCES
SENTENCE_SHARE = 0.25  # of the lines of "mixed" text
WORDS_PER_LINE = (4, 10)
MAX_LINE_CHARS = 56  # about what fits a page line at the common x-height

# Frequent short words, so that word-list lines read less like a list of rare dictionary entries.
_FUNCTION_WORDS = {
    "fra": ("le", "la", "les", "de", "des", "du", "un", "une", "et", "à", "au", "aux", "en", "dans", "sur",
            "pour", "par", "avec", "que", "qui", "ne", "pas", "il", "elle", "nous", "vous", "ils", "on",
            "est", "sont", "a", "ont", "mais", "ou", "son", "sa", "ses", "ce", "cette", "plus", "très",
            "tout", "bien", "leur", "mon", "notre"),
    "eng": ("the", "of", "and", "to", "a", "in", "is", "was", "that", "for", "on", "with", "as", "by", "at",
            "his", "her", "it", "we", "they", "from", "not", "but", "or", "be", "had", "have", "this", "my",
            "our", "which", "all", "so", "an", "will", "their", "were"),
}
_FUNCTION_SHARE = 0.35
_ELISIONS = {"fra": ("l'", "d'", "qu'", "n'", "s'", "j'")}  # joined to a following word starting with a vowel
_VOWELS = frozenset("aeiouyhàâéèêëîïôûüAEIOUYHÉ")
_MAX_WORD_CHARS = 14


@lru_cache(maxsize=None)
def _word_list(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The plain words of a word-list file: (lower-case words, capitalised ones); empty if unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return (), ()
    # Letters, maybe hyphenated: no possessives, abbreviations with dots or capitals, entries with spaces.
    words = [w for w in text.split("\n") if 1 < len(w) <= _MAX_WORD_CHARS and w.replace("-", "").isalpha()
             and "--" not in w and w[0] != "-" != w[-1] and w[1:].islower()]
    return tuple(w for w in words if w[0].islower()), tuple(w for w in words if w[0].isupper())


def _word_list_path(language: str, dict_dir: Optional[Path] = None) -> Optional[Path]:
    """The first installed word list of ``language`` (None when there is none)."""
    if language not in WORD_LISTS:
        raise InputError(f"no word list known for language {language!r}; known: {', '.join(WORD_LISTS)}")
    folder = DICT_DIR if dict_dir is None else Path(dict_dir)
    return next((folder / name for name in WORD_LISTS[language] if _word_list(folder / name)[0]), None)


def word_list(language: str, dict_dir: Optional[Path] = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The words of ``language``'s Debian word list (lower-case, capitalised); empty when none is installed."""
    path = _word_list_path(language, dict_dir)
    return _word_list(path) if path else ((), ())


@lru_cache(maxsize=64)
def _drawable_words(path: Path, font_path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The words of a word list (as ``_word_list``) that the font at ``font_path`` draws."""
    lists = _word_list(path)
    missing = "".join(sorted(c for c in set("".join(lists[0] + lists[1])) if not _font_draws(font_path, c)))
    if not missing:
        return lists
    unwanted = re.compile("[" + re.escape(missing) + "]")
    return tuple(tuple(w for w in words if not unwanted.search(w)) for words in lists)  # type: ignore[return-value]


def _number(rng: random.Random, language: str) -> str:
    kind = rng.random()
    if kind < 0.4:
        return str(rng.randint(1, 31))
    if kind < 0.7:
        return str(rng.randint(1700, 1960))
    if kind < 0.85:
        return str(rng.randint(2, 999))
    return f"{rng.randint(1, 99)}{',' if language == 'fra' else '.'}{rng.randint(0, 99):02d}"


def _punctuated(mark: str, language: str) -> str:
    """A mark as it follows a word; French sets a space before the two-part marks."""
    return f" {mark}" if language == "fra" and mark in ";:?!" else mark


def _capitalised(word: str) -> str:
    return word[:1].upper() + word[1:]


def compose_line(rng: random.Random, language: str, lower: Sequence[str], capitalised: Sequence[str] = ()) -> str:
    """One line of 4-10 random words of ``language`` with punctuation, capitals and some numbers.

    ``lower`` and ``capitalised`` are the word list's plain and proper-noun-like words (see
    ``word_list``); frequent function words of the language are mixed in. Lines stay within
    about MAX_LINE_CHARS characters.
    """
    function_words = _FUNCTION_WORDS.get(language, ())
    elisions = _ELISIONS.get(language, ())
    wanted = rng.randint(*WORDS_PER_LINE)
    words: list[str] = []
    length = 0
    capitalise_next = True
    while len(words) < wanted:
        roll = rng.random()
        if roll < 0.05:
            word = _number(rng, language)
        elif function_words and roll < 0.05 + _FUNCTION_SHARE:
            word = rng.choice(function_words)
        elif capitalised and rng.random() < 0.06:
            word = rng.choice(capitalised)
        else:
            # The shorter of two words: frequent words are short, dictionary entries long.
            word = min(rng.choice(lower), rng.choice(lower), key=len)
            if elisions and word[0] in _VOWELS and rng.random() < 0.2:
                word = rng.choice(elisions) + word
        if capitalise_next:
            word, capitalise_next = _capitalised(word), False
        mark = ""
        if len(words) < wanted - 1:
            roll = rng.random()
            if roll < 0.09:
                mark = ","
            elif roll < 0.11:
                mark = ";"
            elif roll < 0.12:
                mark = ":"
            elif roll < 0.15:
                mark, capitalise_next = ".", True
            elif roll < 0.165 and words and len(word) > 3 and word.isalpha():
                word = f"({word})"
        else:
            mark = rng.choices((".", ",", "", ";", "?", "!", ":", "..."),
                               weights=(55, 10, 15, 5, 5, 4, 3, 3))[0]
        token = word + _punctuated(mark, language) if mark else word
        if len(words) >= WORDS_PER_LINE[0] and length + 1 + len(token) > MAX_LINE_CHARS:
            words[-1] += _punctuated(".", language) if words[-1][-1].isalnum() else ""
            break
        words.append(token)
        length += len(token) + bool(length)
    return " ".join(words)


def page_texts(rng: random.Random, n_lines: int, font: Path, languages: Sequence[str] = LANGUAGES,
               text_source: str = "mixed", dict_dir: Optional[Path] = None) -> list[str]:
    """``n_lines`` lines for one page in ``font``: composed from word lists and/or from SENTENCES.

    The page has a main language (drawn from ``languages``) and now and then a line in another.
    ``text_source`` is "mixed" (word-list lines and some built-in sentences), "words" or
    "sentences". A language whose word list is not installed gets built-in sentences instead;
    words with a character ``font`` cannot draw are left out.
    """
    if text_source not in TEXT_SOURCES:
        raise InputError(f"unknown text source {text_source!r}; choose one of {', '.join(TEXT_SOURCES)}")
    languages = tuple(languages) or LANGUAGES
    lists = {language: _word_list_path(language, dict_dir) for language in languages}
    main = rng.choice(languages)
    sentences = [s for s in SENTENCES if all(_font_draws(str(font), c) for c in set(s) if not c.isspace())]
    unused = {language: [s for s in SENTENCE_LANGUAGES.get(language, ()) if s in sentences]
              for language in languages}
    texts: list[str] = []
    for _ in range(n_lines):
        language = main if rng.random() < 0.8 else rng.choice(languages)
        lower, capitalised = _drawable_words(lists[language], str(font)) if lists[language] else ((), ())
        use_sentence = rng.random() < SENTENCE_SHARE
        if text_source == "sentences" or not lower or (text_source == "mixed" and use_sentence):
            pool = unused[language] or [s for s in sentences if s not in texts] or sentences
            sentence = rng.choice(pool)
            if sentence in unused[language]:
                unused[language].remove(sentence)
            texts.append(sentence)
            continue
        for _attempt in range(5):
            line = compose_line(rng, language, lower, capitalised)
            if all(_font_draws(str(font), c) for c in set(line) if not c.isspace()):
                break
        else:
            line = rng.choice(sentences)
        texts.append(line)
    return texts
