"""Choose the balanced tier's keep bias on TRAINING lines (peraire training pages, planted recognizer-like errors).

Each uncertain word's options (keep, lexicon candidates) are scored once by channel + LM with the
other words as read; the bias that leaves the fewest errors (ties: the most conservative) is printed.

    .venv/bin/python scripts/tune_balanced.py --lines 80
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from biqe_lab.correction import load_preset  # noqa: E402
from biqe_lab.correction.guards import WORD  # noqa: E402
from biqe_lab.correction.lexicon import apply_replacements, load_confusions, uncertain_words  # noqa: E402
from biqe_lab.correction.local_lm import LM_WEIGHT, LocalLMBackend  # noqa: E402
from biqe_lab.correction.step import LineInput  # noqa: E402
from biqe_lab.evaluation import score_pairs  # noqa: E402
from biqe_lab.ingest import pages_from_images  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=80)
    ap.add_argument("--preset", default="french_20c_notes")
    args = ap.parse_args()
    split = json.loads((ROOT / "training/default-model/split.json").read_text())
    images = [(ROOT / p).with_suffix(".jpg") for p in split["pages"]["train"] if "/datasets/peraire/" in p]
    rng, confusions = random.Random(11), load_confusions("confusions.json")
    refs = [l.reference for pg in pages_from_images([i for i in images[::6] if i.exists()]) for l in pg.lines
            if len(l.reference or "") >= 20][: args.lines]
    noisy = [WORD.sub(lambda m: confusions.corrupt(m.group(), rng)
                      if len(m.group()) >= 4 and rng.random() < 0.33 else m.group(), r) for r in refs]
    preset = load_preset(args.preset)
    backend = LocalLMBackend(preset, keep_bias=0.0)
    scored = []  # per line: [(start, end, [(option, channel+LM)])]
    for text in noisy:
        words = []
        for start, end, word in uncertain_words(LineInput("x", text, 0.5), preset, backend.lexical.lexicon):
            options = backend._options(word)
            if len(options) > 1:
                lm = backend.scorer.score([apply_replacements(text, [(start, end, w)]) for w, _ in options])
                words.append((start, end, [(w, LM_WEIGHT * s + c) for (w, c), s in zip(options, lm)]))
        scored.append(words)
    raw = score_pairs(list(zip(refs, noisy)))
    print(f"{len(refs)} training lines, raw CER {raw.cer:.4f} ({raw.char_errors} errors)")
    for bias in (0.0, 2.0, 4.0, 6.0, 8.0, 12.0, 1000.0):
        fixed = []
        for text, words in zip(noisy, scored):
            chosen = []
            for start, end, options in words:
                best = max(range(len(options)), key=lambda i: options[i][1] + (bias if i == 0 else 0.0))
                if best:
                    chosen.append((start, end, options[best][0]))
            fixed.append(apply_replacements(text, chosen))
        res = score_pairs(list(zip(refs, fixed)))
        print(f"keep bias {bias:>7}: CER {res.cer:.4f} ({res.char_errors - raw.char_errors:+d} errors)", flush=True)


if __name__ == "__main__":
    main()
