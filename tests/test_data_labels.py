import pytest

from finecliper.data import labels as L


def test_canonical_orders_follow_dfer_clip():
    assert L.classes("DFEW") == ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]
    assert L.classes("ferv39k") == L.classes("dfew")
    assert L.classes("MAFW")[:7] == L.classes("dfew")
    assert L.classes("mafw")[7:] == ["contempt", "anxiety", "helplessness", "disappointment"]
    assert L.short_names("dfew") == ["Hap.", "Sad.", "Neu.", "Ang.", "Sur.", "Dis.", "Fea."]


@pytest.mark.parametrize("name,idx", [("Happy", 0), ("happiness", 0), ("Sad", 1), ("Neutral", 2), ("Angry", 3),
                                      ("anger", 3), ("Surprise", 4), ("Disgust", 5), ("Fear", 6)])
def test_names_map_to_canonical_ids(name, idx):
    assert L.to_index("dfew", name) == idx


def test_mafw_extra_classes_and_not_in_dfew():
    assert L.to_index("mafw", "contempt") == 7
    assert L.to_index("mafw", "Disappointment") == 10
    with pytest.raises(L.LabelError, match="not a dfew class"):
        L.to_index("dfew", "contempt")


def test_unknown_name_error_names_name_file_and_line():
    with pytest.raises(L.LabelError) as e:
        L.to_index("dfew", "joyful", file="a/b.txt", line=12)
    assert "a/b.txt:12" in str(e.value) and "joyful" in str(e.value)


def test_compound_label_is_sorted_canonical_tuple():
    assert L.compound_to_indices("mafw", "sadness_anxiety_helplessness") == (1, 8, 9)


def test_s2d_alphabetical_label_index_mapped_by_name(annotations_dir):
    m = L.read_id_map("ferv39k", annotations_dir / "FERV39K/Annotation/label_index.txt")
    # Angry 0, Disgust 1, Fear 2, Happy 3, Neutral 4, Sad 5, Surprise 6 -> canonical ids
    assert m == {0: 3, 1: 5, 2: 6, 3: 0, 4: 2, 5: 1, 6: 4}


def test_mafw_id_to_class_file(annotations_dir):
    m = L.read_id_map("mafw", annotations_dir / "MAFW/anno/single/no_caption/id_to_calss.txt")
    assert len(m) == 11 and m[0] == 3 and m[2] == 7 and m[8] == 2 and m[10] == 4


def test_bad_id_map_line_names_file(tmp_path):
    p = tmp_path / "label_index.txt"
    p.write_text("Angry 0\nBored 1\n")
    with pytest.raises(L.LabelError, match=r"label_index.txt:2.*Bored"):
        L.read_id_map("ferv39k", p)
