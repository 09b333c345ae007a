"""The forward pass traces as one graph under torch.compile: token batches arrive already cut to length.

Cutting token batches inside the text encoder made the shape data-dependent (``int(tensor)``), a graph
break per text pass; the cut now happens where the tokens are made: prompts when the classes are set,
description batches when they are collated.
"""
import pytest
import torch

from finecliper.clip.tokenizer import truncate_to_longest
from finecliper.data.dataset import collate_clips
from test_model_wiring import build, make_batch

EOT = 49407


def test_prompt_tokens_are_cut_after_the_longest_prompt_once():
    model = build(variant="base")
    pos, neg = model.pos_tokens, model.neg_tokens
    assert pos.shape == neg.shape and pos.shape[1] < model.prompt_encoder.context_length
    assert int(torch.cat([pos, neg]).argmax(-1).max()) == pos.shape[1] - 1  # the longest EOT is the last column
    assert ((pos == EOT).sum(1) == 1).all() and ((neg == EOT).sum(1) == 1).all()
    model.set_classes(["happiness", "a much longer class name than the others"])
    assert model.pos_tokens.shape[1] > pos.shape[1]  # re-cut for the new prompts


def test_collate_cuts_description_tokens_after_the_batch_longest():
    items = []
    for n in (3, 7, 5):
        t = torch.zeros(248, dtype=torch.long)
        t[0], t[1:n], t[n] = 49406, 320, EOT
        items.append({"description_tokens": t, "clip_id": f"c{n}"})
    batch = collate_clips(items)
    assert batch["description_tokens"].shape == (3, 8)
    assert torch.equal(batch["description_tokens"], truncate_to_longest(torch.stack([i["description_tokens"] for i in items])))


@pytest.mark.parametrize("variant", ["base", "star_dagger"])
def test_forward_has_no_graph_break(variant):
    model = build(variant=variant).train()
    batch = make_batch(model)
    batch["description_tokens"] = truncate_to_longest(batch["description_tokens"])
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(batch)
    assert explained.graph_break_count == 0, [r.reason.splitlines()[0] for r in explained.break_reasons]
