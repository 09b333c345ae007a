"""Refinement of generated descriptions: no emotion words, no sentences that name or imply an emotion.

The paper refines Video-LLaVA output with regex filters, NLTK and a manual pass (App. A.5), because
descriptions that say "sad expression" or "suggesting joy" leak the label. We do the automatic part:

1. drop filler (LLM preambles such as "Sure, here is ...", "In the video, ");
2. per sentence, per clause (split at , ; : and dashes): a clause holding an emotion word or an
   inference cue ("seems", "expresses", "suggesting", "as if", ...) is removed; when it is the
   sentence's main (first) clause the whole sentence goes;
3. emotion adverbs ("smiles happily") and emotion "with a ... expression" phrases are cut alone;
4. whitespace, punctuation and capitals are normalised, and repeated sentences dropped.

Emotion words come from ``emotion_words.txt`` (all DFEW/FERV39k/MAFW class words and common
synonyms); a word matches when its lower-case form, Snowball stem or Porter stem equals that of a
listed form, so regular inflections are caught without any NLTK corpus. Each removal is reported.
"""
from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass, field
from importlib import resources

from nltk.stem import PorterStemmer, SnowballStemmer

WORD_RE = re.compile(r"[A-Za-z]+")
# Inference cues: a clause holding one of these interprets the face instead of describing it.
CUE_RE = re.compile(
    r"\b(seem|seems|seemed|seeming|seemingly|express|expresses|expressed|expressing|suggest|suggests|"
    r"suggested|suggesting|suggestive|indicate|indicates|indicated|indicating|indicative|imply|implies|"
    r"implied|implying|convey|conveys|conveyed|conveying|reflect|reflects|reflected|reflecting|"
    r"reveal|reveals|revealed|revealing|evoke|evokes|evoking|as if|as though|sense of|state of mind|"
    r"mental state|possibly|perhaps|probably|likely|maybe)\b",
    re.IGNORECASE,
)
FILLER_SENTENCE_RE = re.compile(
    r"^\s*(sure|certainly|of course|okay|ok|here is|here's|below is|as an ai)\b", re.IGNORECASE
)
FILLER_PREFIX_RE = re.compile(
    r"^\s*(in (the|this) (video|clip)|as a facial expression analyst|overall|in summary|"
    r"the (video|clip) shows( that)?)\s*,?\s*",
    re.IGNORECASE,
)
CLAUSE_SPLIT_RE = re.compile(r"(\s*[,;:]\s*|\s+[-\u2013\u2014]+\s+)")
SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+|\s*\n+\s*")
PHRASE_RE = re.compile(
    r"\s*,?\s*\b(with|in)\s+(a|an|his|her|their|the)\s+(?:[\w-]+\s+){0,3}"
    r"(expression|look|face|demeanou?r|manner|mood|tone|way)\b",
    re.IGNORECASE,
)
DANGLING_RE = re.compile(r"[\s,;:]*\b(and|or|but|with|while|as|which|that)\s*$", re.IGNORECASE)
LIST_MARK_RE = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")


@dataclass
class Removal:
    text: str
    reason: str


@dataclass
class RefineResult:
    raw: str
    text: str
    removed: list[Removal] = field(default_factory=list)

    def removed_dicts(self) -> list[dict]:
        return [asdict(r) for r in self.removed]


class EmotionLexicon:
    """Emotion word families matched by exact form or Snowball/Porter stem."""

    def __init__(self, families: list[list[str]]):
        self.snowball = SnowballStemmer("english")
        self.porter = PorterStemmer()
        self.forms = {w.lower() for fam in families for w in fam}
        self.snow_stems = {self.snowball.stem(w) for w in self.forms}
        self.porter_stems = {self.porter.stem(w) for w in self.forms}
        self.families = families

    @classmethod
    def from_text(cls, text: str, source: str = "<text>") -> "EmotionLexicon":
        families = []
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            words = line.split()
            bad = [w for w in words if not WORD_RE.fullmatch(w)]
            if bad:
                raise ValueError(f"{source}:{n}: emotion words must be plain letters, got {bad}")
            families.append(words)
        if not families:
            raise ValueError(f"{source}: no emotion words found")
        return cls(families)

    @functools.lru_cache(maxsize=65536)
    def is_emotion(self, word: str) -> bool:
        w = word.lower()
        return w in self.forms or self.snowball.stem(w) in self.snow_stems or self.porter.stem(w) in self.porter_stems

    def find(self, text: str) -> list[str]:
        return [m.group(0) for m in WORD_RE.finditer(text) if self.is_emotion(m.group(0))]


REFINE_VERSION = 1  # bump when the rules below change what refinement outputs


def refine_fingerprint(lexicon_text: str | None = None) -> str:
    """sha256 of the rule version and the word list: caches built with other rules are not reused."""
    import hashlib

    if lexicon_text is None:
        lexicon_text = resources.files("finecliper.text").joinpath("emotion_words.txt").read_text(encoding="utf-8")
    return hashlib.sha256(f"refine v{REFINE_VERSION}\x00{lexicon_text}".encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def default_lexicon() -> EmotionLexicon:
    text = resources.files("finecliper.text").joinpath("emotion_words.txt").read_text(encoding="utf-8")
    return EmotionLexicon.from_text(text, "finecliper/text/emotion_words.txt")


def find_emotion_words(text: str, lexicon: EmotionLexicon | None = None) -> list[str]:
    """Emotion words in ``text``, in order of appearance."""
    return (lexicon or default_lexicon()).find(text)


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_SPLIT_RE.split(text) if s and s.strip()]


def normalise(text: str) -> str:
    """Collapse whitespace, fix spacing around punctuation, collapse repeated punctuation."""
    text = text.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r"([,;:])(?=[^\s\d])", r"\1 ", text)
    text = re.sub(r"[,;:]+\s*([.!?])", r"\1", text)
    text = re.sub(r"([.!?])[.!?]+", r"\1", text)
    text = re.sub(r",\s*,", ",", text)
    return text.strip(" ,;:")


def _finish(sentence: str) -> str:
    sentence = DANGLING_RE.sub("", sentence.strip(" ,;:"))
    if not sentence:
        return ""
    sentence = sentence[0].upper() + sentence[1:]
    return sentence if sentence[-1] in ".!?" else sentence + "."


def _refine_sentence(sentence: str, lex: EmotionLexicon, removed: list[Removal]) -> str:
    if FILLER_SENTENCE_RE.match(sentence):
        removed.append(Removal(sentence, "filler"))
        return ""
    m = FILLER_PREFIX_RE.match(sentence)
    if m and m.end() < len(sentence):
        removed.append(Removal(m.group(0).strip(), "filler"))
        sentence = sentence[m.end():]
    end = sentence[-1] if sentence[-1] in ".!?" else "."
    body = sentence.rstrip(".!? ")

    # "with a happy expression": cut the phrase only
    def cut_phrase(m: re.Match) -> str:
        if lex.find(m.group(0)):
            removed.append(Removal(m.group(0).strip(" ,"), "emotion phrase"))
            return ""
        return m.group(0)

    body = PHRASE_RE.sub(cut_phrase, body)
    # "smiles happily": an emotion adverb goes alone
    for w in WORD_RE.findall(body):
        if w.lower().endswith("ly") and lex.is_emotion(w) and not CUE_RE.search(w):
            body = re.sub(rf"\s*\b{re.escape(w)}\b", "", body, count=1)
            removed.append(Removal(w, "emotion adverb"))

    parts = CLAUSE_SPLIT_RE.split(body)  # clause, delimiter, clause, ...
    clauses, delims = parts[0::2], [""] + parts[1::2]
    kept: list[str] = []
    for i, (clause, delim) in enumerate(zip(clauses, delims)):
        if not clause.strip():
            continue
        words, cue = lex.find(clause), CUE_RE.search(clause)
        if words or cue:
            reason = f"emotion word: {', '.join(words)}" if words else f"implies emotion: {cue.group(0)}"
            if i == 0:
                # "Her eyes widen as if ...": keep a clean description before the cue
                head = DANGLING_RE.sub("", clause[: cue.start()]).strip() if cue else ""
                if len(WORD_RE.findall(head)) >= 3 and not lex.find(head):
                    removed.append(Removal(clause[cue.start():].strip(), reason))
                    kept.append(head)
                    continue
                # otherwise the main clause names or implies an emotion: the sentence goes
                removed.append(Removal(sentence, reason))
                return ""
            removed.append(Removal(clause.strip(), reason))
            continue
        kept.append((delim if kept else "") + clause)
    return _finish("".join(kept) + end) if kept else ""


def refine_description(raw: str, lexicon: EmotionLexicon | None = None) -> RefineResult:
    """Refined text (no emotion words or emotion inferences) beside the raw text and what was removed."""
    lex = lexicon or default_lexicon()
    removed: list[Removal] = []
    out: list[str] = []
    seen: set[str] = set()
    sentences = [s for line in (raw or "").splitlines() for s in split_sentences(normalise(LIST_MARK_RE.sub("", line)))]
    for sentence in sentences:
        sentence = normalise(LIST_MARK_RE.sub("", sentence))
        if not WORD_RE.search(sentence):  # "1." left by a numbered list
            continue
        refined = _refine_sentence(sentence, lex, removed)
        if not refined:
            continue
        key = refined.lower()
        if key in seen:
            removed.append(Removal(refined, "repeated sentence"))
            continue
        seen.add(key)
        out.append(refined)
    text = normalise(" ".join(out))
    leftover = lex.find(text)
    if leftover:  # cannot happen by construction; a guard against future edits of the rules above
        raise AssertionError(f"refinement left emotion words {leftover} in {text!r}")
    return RefineResult(raw=raw, text=text, removed=removed)
