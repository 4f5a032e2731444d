"""The recognizer's CTC posteriors: decoding spans, candidate scores, storage, and their trip to the correction step."""
from __future__ import annotations

import math

import numpy as np
import pytest

from biqe_lab.posteriors import LinePosteriors, load_lines, save_lines

LABELS = {" ": 1, "a": 2, "b": 3, "c": 4}


def posteriors_for(frames: list[str]) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """Softmax outputs (labels, frames) that put 0.9 on each frame's label ('_' = blank), and their decoding."""
    probs = np.full((5, len(frames)), 0.1 / 4, dtype=np.float32)
    decoded: list[tuple[str, int, int]] = []
    for t, ch in enumerate(frames):
        label = 0 if ch == "_" else LABELS[ch]
        probs[label, t] = 0.9
        if ch == "_":
            continue
        if decoded and decoded[-1][0] == ch and decoded[-1][2] == t - 1:
            decoded[-1] = (ch, decoded[-1][1], t)
        else:
            decoded.append((ch, t, t))
    return probs, decoded


@pytest.fixture()
def line() -> LinePosteriors:
    probs, decoded = posteriors_for(list("_aa_b__ _c_a_b_"))  # "ab cab"
    made = LinePosteriors.from_decoding("ab cab", probs, decoded, LABELS)
    assert made is not None
    return made


def test_spans_and_windows_follow_the_decoding(line):
    assert line.spans == ((1, 2), (4, 4), (7, 7), (9, 9), (11, 11), (13, 13))
    assert line.window(3, 6) == (8, 15)  # "cab": after the space's frame to the end of the line
    assert line.window(0, 2) == (0, 7)  # "ab": from the start to the space


def test_the_word_as_read_fits_its_frames_best(line):
    read, swapped, substituted, unknown, too_long = line.scores(3, 6, ["cab", "cba", "cac", "cxb", "abcabcab"])
    assert read > substituted > swapped  # one changed frame costs less than two
    assert read > math.log(0.5)  # most of the mass: 0.9 per frame
    assert unknown == -math.inf and too_long == -math.inf  # a letter the model cannot write; more labels than frames


def test_a_decoding_that_does_not_spell_the_text_gives_no_posteriors():
    probs, decoded = posteriors_for(list("_a_b_"))
    assert LinePosteriors.from_decoding("ax", probs, decoded, LABELS) is None
    assert LinePosteriors.from_decoding("abc", probs, decoded, LABELS) is None


def test_saved_posteriors_load_back(tmp_path, line):
    save_lines(tmp_path / "page.npz", [line, None])
    back, missing = load_lines(tmp_path / "page.npz")
    assert missing is None
    assert back.text == line.text and back.spans == line.spans and dict(back.labels) == LABELS
    assert back.scores(3, 6, ["cab", "cac"]) == pytest.approx(line.scores(3, 6, ["cab", "cac"]), abs=0.01)


def test_kraken_keeps_posteriors_in_memory_only(tiny_kraken_model, sample_document):
    from biqe_lab.ingest import open_image
    from biqe_lab.recognition import KrakenRecognizer

    page = sample_document.pages[0].model_copy(deep=True)  # its ground-truth lines
    page.lines = page.lines[:3]
    KrakenRecognizer(tiny_kraken_model, keep_posteriors=True).recognize(page, open_image(page.image))
    for line in page.lines:
        variant = line.variant("htr")
        kept = variant.posteriors
        assert kept is not None and kept.text == variant.text
        assert kept.logp.shape[1] > max(kept.labels.values())  # every label and the CTC blank (0)
        assert "posteriors" not in variant.model_dump_json()
    plain = sample_document.pages[0].model_copy(deep=True)  # its ground-truth lines
    plain.lines = plain.lines[:1]
    KrakenRecognizer(tiny_kraken_model).recognize(plain, open_image(plain.image))
    assert plain.lines[0].variant("htr").posteriors is None  # only kept when asked (the pipeline: when correcting)


def test_the_correction_step_uses_and_then_drops_the_posteriors(tiny_kraken_model, sample_document):
    from biqe_lab.correction import Corrector, LineInput, Proposal, load_preset
    from biqe_lab.ingest import open_image
    from biqe_lab.model import Producer
    from biqe_lab.recognition import KrakenRecognizer

    class Recording:
        origin = "lexicon"
        producer = Producer(engine="test")
        seen: list[LineInput] = []

        def settings(self) -> dict:
            return {}

        def propose(self, lines, preset):
            self.seen.extend(lines)
            return [Proposal(l.id, l.text) for l in lines]

    page = sample_document.pages[0].model_copy(deep=True)  # its ground-truth lines
    page.lines = page.lines[:2]
    KrakenRecognizer(tiny_kraken_model, keep_posteriors=True).recognize(page, open_image(page.image))
    backend = Recording()
    Corrector("cheap", backend, load_preset("generic_historical")).correct(page)
    assert [l.posteriors.text for l in backend.seen] == [l.variant("htr").text for l in page.lines]
    assert all(l.variant("htr").posteriors is None for l in page.lines)  # a long document does not pile them up


def test_posteriors_are_the_channel_only_for_presets_tuned_to_use_them(line):
    import dataclasses

    from biqe_lab.correction import LineInput, load_preset
    from biqe_lab.correction.channel import load_confusions
    from biqe_lab.correction.cheap import LexiconBackend

    model = dataclasses.replace(load_confusions("confusions.json"), posterior_keep_bias={"french_20c_notes": 3.0})
    read = LineInput("l1", line.text, confidence=0.5, posteriors=line)
    tuned = LexiconBackend(load_preset("french_20c_notes"), confusions=model)
    untuned = LexiconBackend(load_preset("generic_historical"), confusions=model)
    assert tuned.evidence(read) is line and tuned.keep_bias(read) == 3.0
    assert untuned.evidence(read) is None and untuned.keep_bias(read) == model.keep_bias
    assert tuned.evidence(LineInput("l2", "sans", confidence=0.5)) is None  # other engines: the confusion channel
