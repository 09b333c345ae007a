"""Refinement removes every emotion word in any inflection and leaves plain facial descriptions alone."""
import pytest

from finecliper.text.refine import (
    EmotionLexicon,
    default_lexicon,
    find_emotion_words,
    refine_description,
)

LEX = default_lexicon()
ALL_FORMS = sorted({w for fam in LEX.families for w in fam})
# inflections that are not listed: they must be caught through the stemmers
UNLISTED = [
    "angers", "angering", "disgusts", "fears", "fearing", "surprises", "worries", "frightens", "saddens",
    "annoys", "amuses", "shocks", "delights", "joys", "moods", "emotions", "emotionality", "disappoints",
    "disappointments", "anxieties", "contempts", "helplessnesses", "irritates", "scares", "panics",
    "terrifies", "disdains", "scorns", "cheers", "enrage", "grieves", "sorrows", "frustrates", "feelings",
    "happinesses", "sadnesses", "neutrals", "surprisedly", "alarming", "relieves", "embarrassing",
]
FACIAL = [
    "smile", "smiles", "smiling", "frown", "frowning", "grimace", "laugh", "laughing", "cry", "crying",
    "tears", "tense", "relaxed", "depressed", "depressor", "raised", "wrinkled", "squint", "pressed",
    "stare", "expression", "face", "facial", "brows", "cheeks", "lips", "jaw", "teeth", "opens", "drops",
    "narrow", "widen", "nose", "clip", "furrow", "pout", "purse", "clench", "nod", "blink", "gaze",
]
CLEAN = [
    "The inner brows rise slightly and the mouth corners pull down in the second half of the clip.",
    "The jaw drops markedly and the mouth opens markedly throughout the clip.",
    "A man speaks to the man in front of him. The deep frown and the slightly wrinkled nose.",
    "The lower inner corners of eyebrows, the higher outer corners of eyebrows and the wide eyes.",
    "The woman smiles broadly, showing her upper teeth, and her cheeks rise.",
    "Her eyelids tighten; the lip corners are depressed and the chin is raised.",
    "At first the lips are pressed together. Then the mouth opens and the eyes close for a moment.",
    "No clear facial movement is visible in the clip.",
]


def test_lexicon_holds_every_dataset_class_word():
    classes = ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear", "contempt",
               "anxiety", "helplessness", "disappointment", "happy", "sad", "angry", "surprised",
               "disgusted", "fearful", "scared", "afraid", "contemptuous", "anxious", "helpless",
               "disappointed", "emotion", "emotional", "happily", "angrily", "joyful"]
    assert all(LEX.is_emotion(w) for w in classes)
    assert len(ALL_FORMS) > 300


@pytest.mark.parametrize("word", ALL_FORMS + UNLISTED)
@pytest.mark.parametrize("case", [str.lower, str.capitalize, str.upper])
def test_every_emotion_word_in_any_inflection_is_removed(word, case):
    w = case(word)
    for raw in (f"The mouth corners pull up and the face looks {w}. The brows rise.",
                f"The brows rise, and the mouth corners pull up {w}.",
                f"The brows rise - {w}!"):
        out = refine_description(raw)
        assert word.lower() not in out.text.lower().replace(".", " ").split(), (raw, out.text)
        assert find_emotion_words(out.text) == []
        assert out.removed and out.raw == raw
        assert "The brows rise" in out.text or "the brows rise" in out.text


@pytest.mark.parametrize("word", FACIAL)
def test_facial_action_words_are_not_emotion_words(word):
    assert not LEX.is_emotion(word)


@pytest.mark.parametrize("text", CLEAN)
def test_non_emotional_sentences_are_untouched(text):
    out = refine_description(text)
    assert out.text == text and out.removed == []


def test_sentences_that_name_or_imply_emotion_are_dropped():
    raw = ("She seems calm. He expresses his joy openly. The man appears upset. "
           "The brows draw together. Her face conveys a lot. The corners pull down, perhaps from pain.")
    out = refine_description(raw)
    assert out.text == "The brows draw together. The corners pull down."
    reasons = [r.reason for r in out.removed]
    assert reasons[:3] == ["emotion word: calm", "emotion word: joy", "emotion word: upset"]
    assert "implies emotion: conveys" in reasons and "implies emotion: perhaps" in reasons


def test_paper_examples_and_filler():
    raw = ("Sure! Here is the description:\n"
           "1. The man in the video wears a sad expression.\n"
           "2. The man's mouth is slightly ajar, showing his teeth, and his eyes are narrowed, "
           "suggesting a feeling of joy or amusement.\n"
           "3. In the video, the woman smiles happily   while her cheeks rise .\n"
           "4. The woman smiles while her cheeks rise.")
    out = refine_description(raw)
    assert out.text == ("The man's mouth is slightly ajar, showing his teeth, and his eyes are narrowed. "
                        "The woman smiles while her cheeks rise.")
    assert [r.reason for r in out.removed] == [
        "filler", "filler", "emotion word: sad", "emotion word: feeling, joy, amusement", "filler",
        "emotion adverb", "repeated sentence"]


def test_custom_lexicon_and_bad_lexicon_file():
    lex = EmotionLexicon.from_text("# comment\nglum glumly\n")
    assert lex.is_emotion("Glumness") and not lex.is_emotion("happy")
    assert refine_description("He is glum. The brows rise.", lex).text == "The brows rise."
    with pytest.raises(ValueError, match="words.txt:2"):
        EmotionLexicon.from_text("ok\nnot-ok\n", "words.txt")
