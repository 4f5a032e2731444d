"""How much of a recognizer's error word-level correction could remove at best (an oracle bound).

Aligns each line's recognized words with its reference words (Levenshtein over word tokens)
and counts, for 1:1 substituted words, the character errors a perfect word corrector could
fix: the reference word is in the preset's lexicon and lies within the edit reach. Printed for
the cheap/balanced tiers' reach (out-of-lexicon words only, 1 edit up to 4 letters, 2 above)
and for wider ones. Input: pairs from scripts/collect_htr_pairs.py (use `--part test` for
held-out pages: this measures, it tunes nothing).

    .venv/bin/python scripts/correction_headroom.py --pairs /tmp/heldout_pairs.jsonl --preset french_20c_notes
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rapidfuzz.distance import Levenshtein

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from biqe_lab.correction import load_preset  # noqa: E402
from biqe_lab.correction.lexicon import LETTERS, load_lexicon  # noqa: E402

REACHES = (  # (edits up to 4 letters, edits above, also words the lexicon knows (real-word errors))
    (1, 2, False), (1, 3, False), (2, 3, False), (1, 2, True), (2, 3, True), (99, 99, True))


def fixable_errors(rows: list[dict], lexicon, short: int, long: int, known_too: bool, min_length: int) -> int:
    fixed = 0
    for r in rows:
        raw, ref = r["raw"].split(), r["ref"].split()
        for op in Levenshtein.opcodes(raw, ref):
            if op.tag != "replace" or op.src_end - op.src_start != op.dest_end - op.dest_start:
                continue
            for a, b in zip(raw[op.src_start:op.src_end], ref[op.dest_start:op.dest_end]):
                seen, meant = LETTERS.search(a), LETTERS.search(b)
                if not seen or not meant or len(seen.group()) < min_length:
                    continue
                if seen.group() in lexicon and not known_too:
                    continue
                distance = Levenshtein.distance(seen.group().lower(), meant.group().lower())
                if meant.group() in lexicon and distance <= (short if len(seen.group()) <= 4 else long):
                    fixed += distance
    return fixed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=Path, required=True)
    ap.add_argument("--preset", default="french_20c_notes")
    ap.add_argument("--dataset", default=None, help="only this data set's lines")
    args = ap.parse_args()
    preset = load_preset(args.preset)
    lexicon = load_lexicon(preset.wordlists, preset.hunspell, preset.vocabularies)
    rows = [json.loads(l) for l in args.pairs.read_text(encoding="utf-8").splitlines() if l.strip()]
    rows = [r for r in rows if args.dataset in (None, r.get("dataset"))]
    errors = sum(Levenshtein.distance(r["raw"], r["ref"]) for r in rows)
    chars = sum(len(r["ref"]) for r in rows)
    print(f"{len(rows)} lines, CER {errors / max(chars, 1):.2%} ({errors} errors)\n")
    print(f"{'reach (edits <=4 letters / longer)':36} {'known words too':>15} {'fixable errors':>15} {'share':>7}")
    for short, long, known_too in REACHES:
        fixed = fixable_errors(rows, lexicon, short, long, known_too, preset.min_word_length)
        label = "any" if short > 9 else f"{short} / {long}"
        print(f"{label:36} {'yes' if known_too else 'no':>15} {fixed:>15} {fixed / max(errors, 1):>7.1%}")


if __name__ == "__main__":
    main()
