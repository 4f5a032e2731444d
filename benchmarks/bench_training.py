"""Training cost per line on the CPU: the plain CTC loop (biqe_lab.finetune) against kraken's ppocrv6 trainer step.

Both run the same ported PP-OCRv6 network on the same real line images (held-out-free: the
training lines of the shared line sets), batch 16, AdamW, forward + backward + step. kraken's
trainer step is reproduced as kraken 7.1.1 runs it: every batch padded to ``--max-width`` and an
auxiliary NRTR decoder (kraken's own ``NRTRHead``, the variant's size) trained beside CTC; its
``torch.compile`` is left out (compile time would only add to it). Prints seconds per line
(median of REPEATS steps after one warm-up) and each variant's ratio to the plain loop.

    .venv/bin/python benchmarks/bench_training.py [--variant small] [--repeats 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import glob
import os
import random
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINES = ROOT.parent / "shared" / "datasets" / "lines"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="small")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from kraken.lib.ppocr.network import MODEL_VARIANTS
    from kraken.lib.ppocr.nrtr import NRTRHead

    from biqe_lab.ppocrv6 import line_tensor, port

    torch.set_num_threads(args.threads)
    model, _ = port(args.variant)
    net = model.nn
    files = sorted(glob.glob(str(LINES / "*" / "**" / "*.png"), recursive=True))
    random.Random(0).shuffle(files)
    images = [line_tensor(model, Image.open(f)) for f in files[: args.batch * (args.repeats + 1)]]
    cfg = MODEL_VARIANTS[args.variant]["nrtr"]
    nrtr = NRTRHead(in_channels=net.backbone.out_channels, vocab_size=model.num_classes + 2, d_model=cfg["dim"],
                    num_decoder_layers=cfg["num_decoder_layers"], max_len=2048)

    def step(batch, pad_to=None, aux=False, frozen=()):
        width = pad_to or max(x.shape[2] for x in batch)
        x = torch.stack([F.pad(b, (0, width - b.shape[2])) for b in batch])
        lens = torch.tensor([b.shape[2] for b in batch])
        targets = torch.randint(1, model.num_classes, (len(batch) * 40,))
        tlens = torch.full((len(batch),), 40)
        for name, p in net.named_parameters():
            p.requires_grad_(not any(name.startswith(f) for f in frozen))
        params = [p for p in net.parameters() if p.requires_grad] + (list(nrtr.parameters()) if aux else [])
        opt = torch.optim.AdamW(params, lr=1e-4)
        start = time.perf_counter()
        logits, olens, feat = net.forward_train(x, lens)
        logp = logits.log_softmax(1).squeeze(2).permute(2, 0, 1)
        loss = F.ctc_loss(logp, targets, olens, tlens, zero_infinity=True)
        if aux:
            tgt = torch.randint(1, model.num_classes, (len(batch), width // 8 + 2))
            mask = torch.arange(feat.shape[-1])[None, :] < olens[:, None]
            out = nrtr(feat, tgt[:, :-1], mask)
            loss = loss + F.cross_entropy(out.reshape(-1, out.shape[-1]), tgt[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return (time.perf_counter() - start) / len(batch)

    widths = sorted(x.shape[2] for x in images)
    print(f"PP-OCRv6 {args.variant}, {len(images)} real lines (width after height-48 normalization: median "
          f"{widths[len(widths) // 2]}, max {widths[-1]} px), batch {args.batch}, {args.threads} thread(s)\n")
    variants = [("plain CTC loop (biqe_lab.finetune)", {}),
                ("plain CTC, stem frozen", {"frozen": ("backbone.conv1", "backbone.blocks2")}),
                ("kraken trainer step, max-width 2560", {"pad_to": 2560, "aux": True}),
                ("kraken trainer step, max-width 1600", {"pad_to": 1600, "aux": True})]
    base = None
    print(f"{'step':40} {'s/line (median)':>16} {'min':>7} {'max':>7} {'vs plain':>9}")
    for label, kw in variants:
        times = []
        for r in range(args.repeats + 1):
            batch = images[r * args.batch:(r + 1) * args.batch]
            t = step(batch, **kw)
            if r:
                times.append(t)
        med = statistics.median(times)
        base = base or med
        print(f"{label:40} {med:>16.3f} {min(times):>7.3f} {max(times):>7.3f} {med / base:>8.2f}x", flush=True)


if __name__ == "__main__":
    main()
