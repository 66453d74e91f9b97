"""Character ids: the mapping table of the references (elmo-reference §2.2)."""

import torch

from elmo_tasks.bilm.char_ids import batch_to_ids, token_to_char_ids


def test_boundary_tokens_match_the_reference_table():
    assert token_to_char_ids("<S>") == (259, 257, 260) + (261,) * 47
    assert token_to_char_ids("</S>") == (259, 258, 260) + (261,) * 47


def test_plain_and_empty_tokens():
    assert token_to_char_ids("the") == (259, 117, 105, 102, 260) + (261,) * 45
    assert token_to_char_ids("") == (259, 260) + (261,) * 48


def test_long_tokens_are_cut_at_48_bytes():
    ids = token_to_char_ids("x" * 60)
    assert len(ids) == 50
    assert ids[0] == 259 and ids[49] == 260  # begin mark, 48 bytes, end mark: no padding left
    assert ids[1:49] == (ord("x") + 1,) * 48


def test_multibyte_characters_are_bytes_and_may_be_split():
    assert token_to_char_ids("é")[:4] == (259, 0xC3 + 1, 0xA9 + 1, 260)
    # 1 + 30*2 bytes: the cut at 48 bytes falls inside the 24th "é", leaving its first byte only
    ids = token_to_char_ids("a" + "é" * 30)
    assert ids[1] == ord("a") + 1
    assert ids[47] == 0xA9 + 1 and ids[48] == 0xC3 + 1 and ids[49] == 260
    assert token_to_char_ids("日本")[1:8] == tuple(b + 1 for b in "日本".encode()) + (260,)


def test_unencodable_characters_are_dropped():
    assert token_to_char_ids("a\ud800b") == token_to_char_ids("ab")


def test_batch_to_ids_pads_with_zero_tokens():
    ids = batch_to_ids([["a", "b", "c"], ["d"], []])
    assert ids.shape == (3, 3, 50) and ids.dtype == torch.long
    assert ids[1, 1:].eq(0).all() and ids[2].eq(0).all()
    assert tuple(ids[1, 0].tolist()) == token_to_char_ids("d")
