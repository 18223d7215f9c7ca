"""Command line: ``mbexplorer [gui|summary|predict|preprocess|convert|build] ...``. A thin layer over the core.

Errors caused by input (``MbxError``) print one line and exit 1; nothing prints a traceback unless
``--debug`` is given.

Start-up imports only what parsing the arguments needs (no numpy, onnx, onnxruntime, PIL or Qt: together
about a second); each command imports the rest when it runs, so ``--help`` and argument errors are instant.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import textwrap
import time
from pathlib import Path

from .core.conventions import CONVENTIONS, DEFAULT_CONVENTION
from .core.errors import MbxError
from .core.families import FAMILIES, RESOLUTION_RANGE, ROUNDINGS, WIDTH_RANGE
from .core.formatting import plural, si
from .core.outputs import check_output, same_file
from .core.presets_info import ALPHAS, AUTO, DECODERS, INTERPOLATION_TITLES, INTERPOLATIONS, PRESETS, REFERENCES


def _shape_arg(text: str) -> tuple[str, list[int]]:
    try:
        name, dims = text.split("=", 1)
        shape = [int(d) for d in dims.replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not NAME=D0,D1,...; e.g. input=1,3,224,224") from None
    if any(d < 1 for d in shape):
        raise argparse.ArgumentTypeError(f"'{text}': every size must be at least 1; e.g. {name}=1,3,224,224")
    return name, shape


# --------------------------------------------------------------------------------------------------
# commands


def cmd_summary(args) -> int:
    from .core.analysis import open_model
    from .core.inspect import describe_io, operators_text

    shapes = dict(args.input_shape or [])
    if args.csv:
        check_output(args.csv, inputs=[args.model], force=args.force, input_name="the model")
    a = open_model(args.model, shapes)
    report = a.costs
    conv = args.convention
    if args.csv:
        try:
            report.write_csv(args.csv, conv)
        except OSError as exc:  # a bad path is the user's to fix, like `build -o`
            raise MbxError(f"cannot write {args.csv}: {exc.strerror or exc}") from exc
    if args.json:
        json.dump(report.to_dict(conv), sys.stdout, indent=1)
        print()
        return 0
    m = a.model
    out = sys.stdout
    print(f"{m.name}  ({m.source_format}, opset {m.opset}, {m.file_size:,} bytes, sha256 {m.sha256[:16]}…)", file=out)
    src = m.source
    if src:  # what the file itself says, then the ONNX graph the app runs
        desc = f"{src['format']} (schema v{src.get('version', '?')})" + (
            f", {src['description']!r}" if src.get("description") else "")
        print(f"  source file: {desc}; {operators_text(src['operators'])}", file=out)
        for d in src["inputs"]:
            print(f"  source input  {describe_io(d)}", file=out)
        for d in src["outputs"]:
            print(f"  source output {describe_io(d)}", file=out)
    as_run = "  (ONNX, as run)" if src else ""
    for s in m.inputs:
        print(f"  input  {s.describe()}{as_run}", file=out)
    for s in m.outputs:
        print(f"  output {s.describe()}{as_run}", file=out)
    c = CONVENTIONS[conv]
    print(f"\nconvention: {conv} — {c.description}", file=out)
    blocks = report.block_totals(conv)
    w = max([len("block")] + [len(b["name"]) for b in blocks])  # names whole: they are what users grep for
    print(f"\n{'block':<{w}} {'nodes':>5} {'params':>12} {'MACs':>14} {'FLOPs':>14} ", file=out)
    t = report.totals(conv)
    for name, n, row in [(b["name"], b["nodes"], b) for b in blocks] + [("total", len(report.nodes), t)]:
        # "+": a sum of what is counted, where some of the ops are not (listed below the table)
        m, f = (" " if row["macs_complete"] else "+"), ("+" if row["not_counted"] else " ")
        print(f"{name:<{w}} {n:>5} {row['params']:>12,} {row['macs']:>14,}{m}{row['flops']:>14,}{f}", file=out)
    print(f"\nparams {si(t['params'])}, MACs {si(t['macs'])}, {c.flops_label}: {si(t['flops'])}", file=out)
    print(f"peak activation memory {t['peak_activation_bytes'] / 2**20:.2f} MiB (sum of all activations "
          f"{t['activation_bytes'] / 2**20:.2f} MiB), weights {t['weight_bytes'] / 2**20:.2f} MiB", file=out)
    nc = report.not_counted(conv)
    if nc:
        print(f"+ not counted under '{conv}': {', '.join(nc)}", file=out)
    print("\nall conventions, term by term (why published figures differ):", file=out)
    groups = ("conv+fc", "bias", "bn", "activation", "pooling", "eltwise")
    print(f"  {'convention':<12}" + "".join(f"{g:>13}" for g in groups) + f"{'FLOPs':>14}   "
          + f"{'weights':>10}{'biases':>9}{'BN g/b':>9}{'BN stats':>9}{'params':>11}", file=out)
    for row in report.comparison():
        f, p = row["breakdown"]["flops"], row["breakdown"]["params"]
        print(f"  {row['convention']:<12}" + "".join(f"{f[g]:>13,}" for g in groups) + f"{row['flops']:>14,}   "
              + f"{p['weight']:>10,}{p['bias']:>9,}{p['bn_affine']:>9,}{p['bn_stats']:>9,}{row['params']:>11,}",
              file=out)
        if row["breakdown"]["not_counted"]:
            print(f"  {'':<12}not counted by {row['convention']}: {', '.join(row['breakdown']['not_counted'])}",
                  file=out)
    return 0


CLASSES_RANGE = (1, 100_000)  # as the build dialog's spin box: a classifier head, not a memory bomb


def _check_classes(n: int) -> None:
    if not CLASSES_RANGE[0] <= n <= CLASSES_RANGE[1]:
        raise MbxError(f"--classes must be {CLASSES_RANGE[0]} ... {CLASSES_RANGE[1]:,} (got {n:,}).")


def _check_onnx_output(path, args, inputs=()) -> Path:
    return check_output(path, inputs=inputs, force=args.force, suffixes=(".onnx",), what="ONNX",
                        input_name="the input model")


def cmd_build(args) -> int:
    from .core import builder

    _check_classes(args.classes)
    out = _check_onnx_output(args.output, args)  # before the build: a bad name costs nothing
    loaded = builder.build(args.family, args.width, args.resolution, args.classes, fold_bn=args.fold_bn,
                           rounding=args.rounding, seed=args.seed)
    _save([(loaded, out, loaded.name)])
    return 0


def _save(items: list[tuple]) -> None:
    """Write (model, path, what) items, each whole or not at all, none renamed into place before all are
    written (outputs.write_together); then say what was written."""
    from .core.outputs import write_together

    try:
        write_together({out: m.model.SerializeToString() for m, out, _ in items})
    except OSError as exc:
        where = " and ".join(str(out) for _, out, _ in items)  # not exc.filename: that is the temporary's
        raise MbxError(f"cannot write {where}: {exc.strerror or exc}") from exc
    for model, out, what in items:
        print(f"wrote {out} ({out.stat().st_size:,} bytes): {what}, input {model.inputs[0].describe()}, "
              f"output {model.outputs[0].describe()}")


def _images(paths: list[str]) -> list:
    """The image files given or inside the folders given; none at all is the user's error, said once here for
    every command that takes images."""
    from .core.decoding import image_files
    from .core.formats import IMAGE_SUFFIXES

    images = image_files(paths)
    if not images:
        raise MbxError(f"no images found in {', '.join(paths)} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}).")
    return images


def cmd_predict(args) -> int:
    from .core.classify import ImageDone, Slot, Task, check_image_input, classify_job, result_topk
    from .core.inference import Classifier
    from .core.jobs import run
    from .core.labels import fits, read_label_file
    from .core.loading import load
    from .core.overview import RANDOM_WEIGHTS, random_weights, rank_text, ranking, zeros_text
    from .core.preprocess import for_model, option_warnings

    if args.top_k < 1:
        raise MbxError(f"--top-k must be at least 1 (got {args.top_k}).")
    images = _images(args.images)
    model = load(args.model)
    check_image_input(model)
    labels = read_label_file(args.labels) if args.labels else None
    custom = _custom_preprocessing(args)
    pre = for_model(model, _preset_choice(args), **custom)  # checks the options' values
    _warn(option_warnings(pre, custom))
    clf = Classifier(model, pre, labels)
    if labels and clf.num_classes and not fits(clf.num_classes, labels):
        print(f"warning: {Path(args.labels).name} has {plural(len(labels), 'name')} for "
              f"{plural(clf.num_classes, 'output')}, so it is not used; give a file with one name per output.",
              file=sys.stderr)
    # The Classify tab's job, with this classifier ready in its cache: one path from image to top-k for both.
    key = ("A", 0, None, args.fast_decode)
    slot = Slot("A", key, None, model, title=model.name)
    tasks = [Task(path, thumb=False, slots=("A",)) for path in images]
    done = []
    run(classify_job(tasks, [slot], {key: clf}, fast=args.fast_decode),
        lambda ev: done.append(ev) if isinstance(ev, ImageDone) else None)
    results, shown, failed = [], [], 0
    for ev in done:
        r = ev.results.get("A")
        error = ev.error or (r.error if r is not None else None)
        if error:  # one bad file does not stop the others
            results.append({"image": str(ev.path), "error": error})
            shown.append(None)
            failed += 1
            continue
        top = result_topk(r, args.top_k, labels)
        # JSON keeps every entry asked for, marking equal scores (their order is by output index only); the text
        # stops at the last non-zero score: a quantized model's zeros are not a ranking
        rank = ranking(r.prediction.scores, top, drop_zeros=not args.json)  # one ranking, the one shown
        results.append({"image": str(ev.path), "topk": [vars(t) | ({"tied": True} if e.tied else {})
                                                        for t, e in zip(top, rank.entries)],
                        "latency_ms": round(r.prediction.latency_ms, 3)})
        shown.append(rank)
    warning = RANDOM_WEIGHTS if random_weights(model) else None
    if args.json:
        head = {"model": model.name, "preset": clf.preprocess.name, "preprocessing": clf.preprocess.describe()}
        json.dump(head | ({"warning": warning} if warning else {}) | {"results": results}, sys.stdout, indent=1)
        print()
    else:
        print(f"{model.name}: {clf.preprocess.describe()}")
        if warning:
            print(f"warning: {warning}")
        for r, rank in zip(results, shown):
            if "error" in r:
                print(f"{r['image']}: error: {r['error']}")
                continue
            print(f"{r['image']}  ({r['latency_ms']:.1f} ms)")
            for e in rank.entries:
                print(f"  {rank_text(e):>4} {e.top.score:7.3f}  {e.top.index:>5}  {e.top.label}")
            if rank.zeros:
                print(f"       {zeros_text(rank)}")
        if any(e.tied for rank in shown if rank for e in rank.entries):
            print("=: tied (equal scores; their order is by output index only)")
    return 1 if failed else 0


def cmd_compare(args) -> int:
    from .core.compare import compare_job, strict_json
    from .core.jobs import run
    from .core.loading import load
    from .core.outputs import write_atomically

    inputs = [args.model] + ([args.other] if args.other else [])
    if args.csv:
        check_output(args.csv, inputs=inputs, force=args.force, suffixes=(".csv",), what="CSV",
                     input_name="a model")
    images = _images(args.images)
    if args.other:  # two files: the first is the float one
        float_model, quant_model = load(args.model), load(args.other)
    else:
        quant_model = load(args.model)
        float_model = getattr(quant_model, "float_twin", None)
        if float_model is None:
            raise MbxError(f"{Path(args.model).name} has no float twin (only a quantized TFLite model has one); "
                           "give the float model and the quantized one.")
    c = run(compare_job(float_model, quant_model, images, _preset_choice(args), isolated=not args.no_isolated),
            lambda ev: print(f"warning: {ev.message}", file=sys.stderr) if getattr(ev, "level", "") == "warning"
            else None)
    if not c.images:
        raise MbxError("no image could be read; nothing was compared.")
    result = c.to_dict()
    keys = ["name", "quant_name", "node", "op_type", "block", "sqnr_db", "cosine", "mse", "max_abs", "rel_l2",
            "isolated_sqnr_db"]
    if args.csv:
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(keys)
        w.writerows([["" if r[k] is None else r[k] for k in keys] for r in result["tensors"]])
        try:
            write_atomically(args.csv, buf.getvalue())
        except OSError as exc:
            raise MbxError(f"cannot write {args.csv}: {exc.strerror or exc}") from exc
    if args.json:
        json.dump(strict_json(result), sys.stdout, indent=1, allow_nan=False)  # strict: null, never Infinity
        print()
        return 0
    rows = result["tensors"]
    worst = min(range(len(rows)), key=lambda i: rows[i]["sqnr_db"]) if rows else None
    w = max([len("tensor")] + [len(r["name"]) for r in rows])
    print(f"{float_model.name} (float) vs {quant_model.name} (quantized), {plural(c.images, 'image')}")
    print(f"  {'tensor':<{w}} {'op':<12} {'SQNR dB':>8} {'isolated':>8} {'cosine':>8} {'rel L2':>8} {'max abs':>9}")
    for i, r in enumerate(rows):
        mark = "<" if i == worst else " "
        iso = "-" if r["isolated_sqnr_db"] is None else f"{r['isolated_sqnr_db']:.2f}"
        print(f"{mark} {r['name']:<{w}} {r['op_type']:<12} {r['sqnr_db']:>8.2f} {iso:>8} {r['cosine']:>8.5f} "
              f"{r['rel_l2']:>8.4f} {r['max_abs']:>9.4g}")
    if worst is not None:
        print(f"< worst: {rows[worst]['name']} ({rows[worst]['block']}), {rows[worst]['sqnr_db']:.2f} dB")
    if result.get("fused"):
        print(f"not compared: {plural(len(result['fused']), 'tensor')} inside fused int8 kernels (a layer's value "
              "before its activation, which the quantized model never computes)")
    if result["unmatched"]:
        print(f"not matched: {plural(len(result['unmatched']), 'tensor')}: {', '.join(result['unmatched'][:5])}"
              + (" …" if len(result["unmatched"]) > 5 else ""))
    if result["weights"]:
        wr = min(result["weights"], key=lambda r: r["worst_channel_sqnr_db"])
        print(f"weights: worst channel {wr['worst_channel']} of {wr['name']}, {wr['worst_channel_sqnr_db']:.2f} dB "
              f"(whole weight {wr['sqnr_db']:.2f} dB)")
    o = result["output"]
    print(f"output: top-1 agreement {o['top1_agreement']:.1%}, top-5 agreement {o['top5_agreement']:.1%}, "
          f"SQNR {o['sqnr_db']:.2f} dB")
    return 0


def _warn(warnings: list[str]) -> None:
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)


def _triple(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"'{text}' is not one or three numbers, e.g. 0.485,0.456,0.406")
    return values


_RESIZE = {"shorter": "shorter", "whole": "whole", "central": "central_fraction"}


def _custom_preprocessing(args) -> dict:
    """The preprocessing options given on the command line, as ``Preprocess`` fields."""
    given = {"resize": _RESIZE.get(args.resize) if args.resize else None, "crop_ratio": args.crop,
             "interpolation": args.interpolation, "scale": args.scale, "mean": args.mean, "std": args.std,
             "channel_order": args.channel_order, "decoder": args.decoder, "alpha": args.alpha}
    return {k: v for k, v in given.items() if v is not None}


def _preset_choice(args) -> str | None:
    return None if args.preset in (None, "auto") else args.preset


def _size_arg(text: str) -> tuple[int, int]:
    try:
        dims = [int(d) for d in text.lower().replace("x", ",").split(",")]
    except ValueError:
        dims = []
    if len(dims) not in (1, 2) or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size in pixels: N, or HxW (e.g. 224 or 160x128)")
    return (dims[0], dims[-1])


def cmd_preprocess(args) -> int:
    from .core.export import check_destination, export_tensors
    from .core.preprocess import for_model, option_warnings, preset

    images = _images(args.images)
    if args.model and (args.layout or args.dtype):
        # the model fixes them: a tensor in another layout or type is not one it can take
        raise MbxError("--layout and --dtype come from the model with --model; give --size instead to set them.")
    if args.model and same_file(args.output, args.model):
        raise MbxError(f"will not write over {Path(args.output).name}: it is the model.")
    check_destination(images, Path(args.output), args.force)  # before the model loads: a bad -o costs nothing
    custom = _custom_preprocessing(args)
    if args.model:
        from .core.loading import load

        model = load(args.model)
        pre = for_model(model, _preset_choice(args), **custom)
    else:
        h, w = args.size
        pre = preset(_preset_choice(args) or "torchvision", h, w, layout=args.layout or "NCHW",
                     dtype=args.dtype or "float32", **custom)
    _warn(option_warnings(pre, custom))
    written = export_tensors(images, pre, Path(args.output), force=args.force)
    for image, where in written.entries:
        print(f"{image} -> {where}")
    n = len(written.entries)
    shape = (n,) + written.shape[1:] if written.kind == "npy" else written.shape
    what = {"npy": "one array", "npz": plural(n, "array"),
            "bin": f"{plural(n, 'raw .bin file')} (little-endian, no header)"}
    print(f"wrote {written.path}: {what[written.kind]}, {'x'.join(map(str, shape))} {written.dtype} "
          f"{'in all' if written.kind == 'npy' else 'each'}; {pre.describe()}")
    return 0


def cmd_convert(args) -> int:
    from .core.loading import load

    if args.float_twin and same_file(args.output, args.float_twin):
        raise MbxError(f"-o and --float-twin both name {args.output}: the model and its float twin need two files.")
    out = _check_onnx_output(args.output, args, [args.input])
    twin = _check_onnx_output(args.float_twin, args, [args.input]) if args.float_twin else None
    model = load(args.input)
    if args.float_twin and model.float_twin is None:
        raise MbxError(f"{Path(args.input).name} has no float twin: only quantized TFLite sources come with one; "
                       "drop --float-twin.")
    if args.standard_qdq and not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        raise MbxError(f"{Path(args.input).name} is a float model: it has no Q/DQ to convert; drop --standard-qdq.")
    if args.standard_qdq:
        from .core.importers.tflite_int import standard_qdq
        from .core.model import from_proto

        model = from_proto(standard_qdq(model.model), name=model.name, source_format=model.source_format,
                           source_path=model.source_path, sha256=model.sha256, file_size=model.file_size)
    written = [(model, out)] + ([(model.float_twin, twin)] if twin else [])
    _save([(m, path, f"{m.name} from {m.source_format}") for m, path in written])
    return 0


def cmd_quantize(args) -> int:
    from .core.jobs import Log, Progress, run
    from .core.loading import load
    from .core.onnx_write import save_model
    from .core.quantize import quantize_job

    images = _images(args.calib)
    out = _check_onnx_output(args.output, args, [args.model, *images])  # before calibration: a bad -o costs nothing
    model = load(args.model)
    tty = sys.stderr.isatty()

    def show(event) -> None:
        if isinstance(event, Log):  # warnings always; progress only on a terminal, never into a log file
            print(f"{event.level}: {event.message}", file=sys.stderr)
        elif isinstance(event, Progress) and tty:
            print(f"\r{event.fraction:4.0%} {event.message}\033[K", end="", file=sys.stderr, flush=True)

    try:
        quantized = run(quantize_job(model, images, preset=_preset_choice(args), per_channel=args.per_channel,
                                     method=args.method, activations=args.activations, weights=args.weights,
                                     exclude=args.exclude or ()), show)
    finally:
        if tty:
            print(file=sys.stderr)
    try:
        save_model(quantized.model, out)
    except OSError as exc:
        raise MbxError(f"cannot write {out}: {exc.strerror or exc}") from exc
    excluded = f", {plural(len(args.exclude), 'node')} excluded" if args.exclude else ""
    print(f"wrote {out} ({out.stat().st_size:,} bytes): {quantized.name}, QDQ, calibrated on "
          f"{plural(len(images), 'image')} ({args.method}), activations {args.activations}, weights {args.weights} "
          f"{'per channel' if args.per_channel else 'per tensor'}{excluded}")
    return 0


def cmd_gui(args) -> int:
    if args.model and args.build:
        raise MbxError(f"give a model file or --build {args.build}, not both (the window opens one model).")
    if args.compare and not (args.model or args.build):
        raise MbxError("--compare needs a model to compare it with: give a model file too.")
    images = []
    if args.images:
        images = _images(args.images)
    if args.build:
        _check_classes(args.classes)
    if args.screenshot:  # before the window opens: the format its suffix names, never over an input
        from PySide6.QtGui import QImageWriter

        formats = sorted("." + bytes(f).decode().lower() for f in QImageWriter.supportedImageFormats())
        others = [m for m in (args.model, args.compare) if m]
        check_output(args.screenshot, inputs=others + images, force=args.force,
                     suffixes=formats, what="the screenshot", input_name="one of the files it shows")

    from .gui.app import run_gui

    build = None
    if args.build:
        build = {"family": args.build, "width": args.width, "resolution": args.resolution,
                 "num_classes": args.classes, "fold_bn": args.fold_bn, "rounding": args.rounding}
    return run_gui(model_path=args.model, screenshot=args.screenshot, build=build, images=args.images,
                   tab=args.tab, compare=args.compare)


# --------------------------------------------------------------------------------------------------


# --help's list of presets (kept as written: one line each, the raw formatter leaves it alone)
PRESET_HELP = "presets (--preset), and what each reproduces:\n" + "\n".join(
    f"  {name:<12} {REFERENCES[name]}" for name in PRESETS if name != "custom") + "\n" + \
    textwrap.fill(f"the default: the model's source picks it ({AUTO})", 100, initial_indent=f"  {'auto':<12} ",
                  subsequent_indent=" " * 15)


def _add_preset_options(pr, auto: str) -> None:
    """--preset and the custom options, shared by predict and preprocess."""
    pr.add_argument("--preset", choices=["auto"] + [p for p in PRESETS if p != "custom"], metavar="NAME",
                    help=f"preprocessing preset: {', '.join(p for p in PRESETS if p != 'custom')} or auto "
                         f"({auto}; listed below); the options below change it into a custom one")
    cu = pr.add_argument_group("custom preprocessing (each changes one step of the preset)")
    cu.add_argument("--decoder", choices=DECODERS,
                    help="pil: PIL's convert('RGB'); tf: tf.io.decode_image (fast integer DCT); cv2: cv2.imdecode")
    cu.add_argument("--alpha", choices=ALPHAS,
                    help="drop: transparency dropped, as every reference loader does; white: composited over white")
    cu.add_argument("--resize", choices=list(_RESIZE),
                    help="shorter: shorter side then centre crop; whole: the whole image; central: central crop "
                         "then resize")
    cu.add_argument("--crop", type=float, metavar="FRACTION",
                    help="shorter: crop / resized side (224/256); central: fraction kept (0.875)")
    cu.add_argument("--interpolation", choices=INTERPOLATIONS, metavar="NAME",
                    help="; ".join(f"{k}: {v}" for k, v in INTERPOLATION_TITLES.items()))
    cu.add_argument("--scale", type=float, help="pixel values are multiplied by this first (1/255, 1/127.5)")
    cu.add_argument("--mean", type=_triple, metavar="M[,M,M]", help="subtracted after scaling, per channel")
    cu.add_argument("--std", type=_triple, metavar="S[,S,S]", help="divided by after subtracting, per channel")
    cu.add_argument("--channel-order", choices=["RGB", "BGR"])


def _add_predict(sub) -> None:
    pr = sub.add_parser("predict", help="classify images (files or folders) and print the top-k",
                        epilog=PRESET_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    pr.add_argument("model")
    pr.add_argument("images", nargs="+", metavar="IMAGE")
    pr.add_argument("--top-k", type=int, default=5)
    _add_preset_options(pr, "the default: the one the model's source implies")
    pr.add_argument("--labels", metavar="FILE", help="a label file, one class per line")
    pr.add_argument("--fast-decode", action="store_true",
                    help="decode large JPEGs at a reduced scale, as the app does (faster, scores move slightly)")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=cmd_predict)


def _add_preprocess(sub) -> None:
    pp = sub.add_parser(
        "preprocess", help="write the exact input tensors of images (.npy, .npz, or a folder of raw .bin files)",
        description=textwrap.fill(
            "Write the exact tensors a model takes for the images, as the preset's reference pipeline makes them. "
            "OUT.npy: one array, the images stacked in the order given (folders expanded, sorted); OUT.npz: one "
            "array per image, keyed by its file name; any other OUT (or an existing folder): a folder of raw "
            "little-endian .bin files, one per image (ais_bench --input, msame --input). Nothing is written unless "
            "every image converts.", 100),
        epilog=PRESET_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    pp.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    src = pp.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", metavar="MODEL",
                     help="take the input size, layout and type from this model, and its source's preset")
    src.add_argument("--size", type=_size_arg, metavar="N",
                     help="input size in pixels (N or HxW), without a model: preset torchvision, NCHW float32 "
                          "unless given")
    pp.add_argument("--layout", choices=["NCHW", "NHWC"], help="with --size (default NCHW)")
    pp.add_argument("--dtype", choices=["float32", "uint8", "int8"],
                    help="with --size (default float32); uint8: raw pixels, int8: raw pixels - 128")
    _add_preset_options(pp, "with --model the model's source picks it, with --size torchvision")
    pp.add_argument("-o", "--output", required=True, metavar="OUT", help="OUT.npy, OUT.npz or a folder")
    pp.add_argument("--force", action="store_true", help="replace an existing OUT.npy or OUT.npz, or .bin files")
    pp.set_defaults(func=cmd_preprocess)


def _add_quantize(sub) -> None:
    q = sub.add_parser("quantize", help="quantize a float model statically (QDQ), calibrated on images",
                       description="Quantize a float model with onnxruntime's static quantizer (QDQ format), "
                                   "calibrated on images through the model's preprocessing.")
    q.add_argument("model")
    q.add_argument("--calib", nargs="+", required=True, metavar="IMAGE", help="calibration images or folders")
    q.add_argument("--preset", choices=["auto"] + [p for p in PRESETS if p != "custom"], metavar="NAME",
                   help="preprocessing preset of the calibration images (default: the one the model's source implies)")
    q.add_argument("--per-channel", action="store_true",
                   help="one weight scale per output channel (MobileNets' depthwise layers need it)")
    q.add_argument("--method", choices=["minmax", "entropy", "percentile", "distribution"], default="minmax",
                   help="calibration method (default minmax)")
    q.add_argument("--activations", choices=["uint8", "int8"], default="uint8", help="activation type (uint8)")
    q.add_argument("--weights", choices=["uint8", "int8"], default="uint8", help="weight type (uint8)")
    q.add_argument("--exclude", nargs="+", action="extend", metavar="NODE", help="node names to leave in float")
    q.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    q.add_argument("--force", action="store_true", help="replace an existing output file")
    q.set_defaults(func=cmd_quantize)


def _add_compare(sub) -> None:
    c = sub.add_parser("compare", help="compare a float model and a quantized one, layer by layer, on images",
                       description=textwrap.fill(
                           "Per matched tensor: SQNR, cosine, MSE, max abs error and relative L2 of the quantized "
                           "model's value against the float one, accumulated over the images; the isolated SQNR: "
                           "the error that layer adds by itself (that layer quantized, its inputs taken from the "
                           "float model; none where an input has no float counterpart); the output's top-1 "
                           "and top-5 agreement; each Conv/Gemm weight's SQNR, per output channel too. One "
                           "quantized TFLite model is compared with its float twin; with two models, the first "
                           "is the float one. A layer's value before a fused activation (TFLite's fused ReLU6) is "
                           "not compared: the int8 kernel never computes it, and exposing it would change how the "
                           "quantized model computes; JSON lists those tensors under \"fused\".",
                           100) + "\n\n" + textwrap.fill(
                           "--json is strict JSON: an SQNR that is infinite (the two values identical) is written "
                           "null, and its entry gets \"identical\": true (\"isolated_identical\": true for the "
                           "isolated SQNR); other non-finite figures are null too. The CSV writes inf.", 100),
                       epilog=PRESET_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("model", metavar="MODEL")
    c.add_argument("other", nargs="?", metavar="OTHER", help="the quantized model, when MODEL is the float one")
    c.add_argument("--images", nargs="+", required=True, metavar="DIR", help="image files or folders")
    c.add_argument("--preset", choices=["auto"] + [p for p in PRESETS if p != "custom"], metavar="NAME",
                   help="preprocessing preset for both models (default: each model's source picks it)")
    c.add_argument("--json", action="store_true",
                   help='print strict JSON instead of a table (an infinite SQNR: null, with "identical": true)')
    c.add_argument("--csv", metavar="FILE", help="also write the per-tensor table as CSV")
    c.add_argument("--force", action="store_true", help="replace an existing CSV file")
    c.add_argument("--no-isolated", action="store_true",
                   help="skip the isolated SQNR (a third run per image, of every layer fed the float model's "
                        "inputs): faster; the table shows '-', the JSON null")
    c.set_defaults(func=cmd_compare)


# --- device plugins: plugins, profile, runs -------------------------------------------------------------------

def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1 or len(set(sizes)) != len(sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: give distinct whole numbers >= 1, such as 1,2,4,8")
    return sizes


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number >= 1")
    return n


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number >= 0")
    return n


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: give KEY=VALUE, such as soc_version=Ascend310P3")
    return key.strip(), value


def _device_dicts(info, timeout: float = 30.0) -> tuple[list[dict], str]:
    """An available plugin's devices as dicts, or ([], why listing them failed)."""
    from .core.jobs import run
    from .devices.host import devices_job

    try:
        return [d.to_dict() for d in run(devices_job(info, timeout=timeout))], ""
    except MbxError as exc:
        return [], getattr(exc, "reason", str(exc))


def cmd_plugins(args) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from .devices import API_VERSION
    from .devices.host import discover

    plugins = discover()
    with ThreadPoolExecutor(max_workers=4) as pool:  # each lists its devices in a child process of its own
        found = list(pool.map(lambda i: _device_dicts(i) if i.available else ([], ""), plugins))
    listed = []
    for info, (devices, error) in zip(plugins, found):
        m = info.manifest
        listed.append({"name": info.name, "version": m.version if m else "", "origin": info.origin,
                       "location": info.location, "available": info.available and not error,
                       "reason": error or info.reason, "summary": m.summary if m else "",
                       "capabilities": list(m.capabilities) if m else [], "devices": devices})
    if args.json:
        print(json.dumps({"api": "{}.{}".format(*API_VERSION), "plugins": listed}, indent=2))
        return 0
    if not listed:
        print("no device plugins found; MBEXPLORER_PLUGIN_PATH adds plugin folders")
        return 0
    for p in listed:
        state = "available" if p["available"] else f"unavailable: {p['reason']}"
        print(f"{p['name']} {p['version']} ({p['origin']}): {state}")
        if p["summary"]:
            print(f"    {p['summary']}")
        for d in p["devices"]:
            what = f"{d['name']} ({d['kind']}; {', '.join(d['precisions'])})"
            print(f"    {d['id']:<14} {what}" + ("" if d["available"] else f" - unavailable: {d['reason']}"))
    return 0


def _pick_device(info, wanted: str | None, precision: str):
    from .core.jobs import run
    from .devices.host import devices_job

    devices = run(devices_job(info))
    names = ", ".join(d.id for d in devices) or "none"
    if wanted:
        device = next((d for d in devices if d.id == wanted), None)
        if device is None:
            raise MbxError(f"the plugin {info.name} has no device {wanted!r} (its devices: {names}).")
        if not device.available:
            raise MbxError(f"the device {wanted} is unavailable: {device.reason}")
    else:
        usable = [d for d in devices if d.available and precision in d.precisions]
        if not usable:
            why = "; ".join(f"{d.id}: {d.reason or 'no ' + precision}" for d in devices) or "it lists no device"
            raise MbxError(f"the plugin {info.name} has no available device for {precision} ({why}).")
        device = usable[0]
    if precision not in device.precisions:
        raise MbxError(f"the device {device.id} runs {', '.join(device.precisions)}, not {precision}; choose "
                       f"one with --precision.")
    return device


def _onnx_for(path: Path) -> tuple[Path, str]:
    """The ONNX model a plugin takes and the sha256 of what the user gave: the file itself when it is ONNX, else
    its import, saved once in the work folder (named by the source's sha256: a second profile reuses it)."""
    from .core import formats
    from .core.loading import load
    from .core.onnx_write import save_model
    from .devices.host import model_sha256
    from .devices.store import data_home

    sha = model_sha256(path) if path.is_file() else ""
    if sha and formats.sniff_file(path) == "onnx":
        return path, sha
    model = None
    if not sha:  # a TF.js folder: its import knows its digest
        model = load(path)
        sha = model.sha256
    out = data_home() / "work" / sha[:16] / (path.stem + ".onnx")
    if not out.is_file():
        model = model or load(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            save_model(model.model, out)
        except OSError as exc:
            raise MbxError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return out, sha


def _measurement_json(m) -> dict:
    lat = m.latency_ms
    return {"batch_size": m.batch_size, "throughput": m.throughput,
            "latency_ms": {"mean": lat.mean, "p50": lat.p50, "p90": lat.p90, "p99": lat.p99},
            "iterations": m.iterations, "warmup": m.warmup, "meaning": m.meaning, "tool": m.tool,
            "tool_version": m.tool_version, "raw_ms": list(m.raw_ms)}


def _run_json(r) -> dict:
    return {"run": r.id, "plugin": r.plugin, "device": r.device, "device_name": r.device_name,
            "model_path": r.model_path, "model_sha256": r.model_sha256, "precision": r.precision,
            "status": r.status, "source": r.source, "started": r.started, "finished": r.finished,
            "error": r.error, "meaning": r.measurements[0].meaning if r.measurements else None,
            "settings": r.settings, "measurements": [_measurement_json(m) for m in r.measurements]}


_ROW = "{:>6} {:>12} {:>10} {:>10} {:>10} {:>10} {:>6}"


def _row(m) -> str:
    lat = m.latency_ms
    def ms(v):  # a percentile the tool does not report is None
        return "-" if v is None else f"{v:.3f}"

    return _ROW.format(m.batch_size, f"{m.throughput:,.1f}", ms(lat.mean), ms(lat.p50), ms(lat.p90), ms(lat.p99),
                       m.iterations)


def cmd_profile(args) -> int:
    from .core.jobs import Log, Progress, run
    from .devices import MEANINGS, CompileRequest, LogRequest, Measurement, ProfileRequest
    from .devices.host import compile_job, find, logs_job, model_sha256, profile_job
    from .devices.store import Store, data_home

    model = Path(args.model)
    if not model.exists():
        raise MbxError(f"{model} does not exist.")
    model = model.resolve()  # the run records where it is, whatever the working folder when it is reopened
    if args.batch_size is not None and not args.from_log:
        raise MbxError("--batch-size goes with --from-log (for logs that do not say it); to profile, give "
                       "--batch-sizes 1,2,4,...")
    info = find(args.plugin)
    tty = sys.stderr.isatty()
    shown_header = False

    def show(event) -> None:
        nonlocal shown_header
        if isinstance(event, Log):
            if event.level == "warning" or args.verbose:
                print(f"{event.level}: {event.message}", file=sys.stderr, flush=True)
        elif isinstance(event, Progress):
            if tty and not args.verbose:
                print(f"\r{event.fraction:4.0%} {event.message}\033[K", end="", file=sys.stderr, flush=True)
        elif isinstance(event, Measurement) and not args.json:
            if tty and not args.verbose:
                print("\r\033[K", end="", file=sys.stderr, flush=True)
            if not shown_header:
                print(_ROW.format("batch", "images/s", "mean ms", "p50 ms", "p90 ms", "p99 ms", "iters"))
                shown_header = True
            print(_row(event), flush=True)

    started = time.time()
    with Store() as store:
        try:
            if args.from_log:
                sha = model_sha256(model) if model.is_file() else ""
                request = LogRequest(tuple(args.from_log), sha, args.batch_size, args.precision or "",
                                     args.device or "")
                if not args.json:
                    print(f"reading {plural(len(args.from_log), 'log')} with {info.name}")
                result = run(logs_job(info, request, store, model_path=str(model)), show)
            else:
                precision = args.precision or "fp32"
                device = _pick_device(info, args.device, precision)
                onnx_path, sha = _onnx_for(model)
                work = data_home() / "work" / sha[:16] / info.name
                work.mkdir(parents=True, exist_ok=True)
                source = "" if onnx_path == model else str(model)
                options = tuple(args.option or ())
                artifact = None
                if "compile" in info.manifest.capabilities and not args.no_compile:
                    if not args.json:
                        print(f"compiling {model.name} for {info.name}/{device.id} ({precision})", flush=True)
                    artifact = run(compile_job(info, CompileRequest(str(onnx_path), device.id, precision,
                                                                    args.batch_sizes, str(work), source, options)),
                                   show)
                if not args.json:
                    print(f"profiling {model.name} on {info.name}/{device.id} ({device.name}), {precision}, "
                          f"{plural(args.iterations, 'iteration')} after {args.warmup} warm-up", flush=True)
                request = ProfileRequest(str(onnx_path), device.id, precision, args.batch_sizes, args.iterations,
                                         args.warmup, str(work), source, artifact, sha, options)
                result = run(profile_job(info, request, store, device.name), show)
        except KeyboardInterrupt:
            if tty:
                print(file=sys.stderr)
            recorded = _recorded_since(store, info.name, started)
            if recorded is not None:
                print(f"cancelled: run {recorded.id} is recorded with "
                      f"{plural(len(recorded.measurements), 'point')}", file=sys.stderr)
            return 130
        except MbxError as exc:
            recorded = _recorded_since(store, info.name, started)
            if recorded is None:
                raise
            raise MbxError(f"{exc} (run {recorded.id} is recorded as {recorded.status} with its log: "
                           f"`mbexplorer runs show {recorded.id}`)") from exc
        finally:
            if tty and not args.verbose:
                print("\r\033[K", end="", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(_run_json(result), indent=2))
        return 0
    meaning = MEANINGS.get(result.measurements[0].meaning, "") if result.measurements else ""
    print(f"run {result.id} {result.status}: {plural(len(result.measurements), 'measurement')} ({meaning}); "
          f"`mbexplorer runs show {result.id}` shows it again")
    return 0


def _recorded_since(store, plugin: str, started: float):
    """The run this command recorded (its plugin's newest since it started), if it got that far."""
    return next((r for r in store.runs() if r.plugin == plugin and r.started >= started), None)


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else ""


def cmd_runs(args) -> int:
    from .devices.store import Store

    with Store() as store:
        if args.runs_command == "show":
            runs = [store.run(i) for i in args.ids]
            if args.json:
                print(json.dumps([_run_json(r) for r in runs] if len(runs) > 1 else _run_json(runs[0]), indent=2))
                return 0
            for r in runs:
                _show_run(r)
            return 0
        if args.runs_command == "delete":
            runs = [store.run(i) for i in args.ids]  # every id checked before anything is deleted
            busy = [r.id for r in runs if r.status == "running"]
            if busy:
                raise MbxError(f"run {busy[0]} is still being recorded; cancel it first (or wait for it).")
            for r in runs:
                store.delete(r.id)
                print(f"deleted run {r.id} ({r.plugin}/{r.device}, {plural(len(r.measurements), 'point')})")
            return 0
        if args.runs_command == "compare":
            return _compare_runs([store.run(i) for i in args.ids], args.json)
        runs = store.runs()
    if args.json:
        print(json.dumps({"runs": [{k: v for k, v in _run_json(r).items() if k != "measurements"}
                                   | {"points": len(r.measurements)} for r in runs]}, indent=2))
        return 0
    if not runs:
        print("no stored runs; `mbexplorer profile MODEL --plugin NAME` makes one")
        return 0
    fmt = "{:>5}  {:<16}  {:<11}  {:<12}  {:<14}  {:<9}  {:>6}  {:<8}  {}"
    print(fmt.format("ID", "STARTED", "STATUS", "PLUGIN", "DEVICE", "PRECISION", "POINTS", "SOURCE", "MODEL"))
    for r in runs:
        print(fmt.format(r.id, _when(r.started), r.status, r.plugin, r.device, r.precision, len(r.measurements),
                         r.source, Path(r.model_path).name))
    return 0


def _show_run(r) -> None:
    from .devices import MEANINGS

    print(f"run {r.id}: {r.status}, {r.plugin}/{r.device}" + (f" ({r.device_name})" if r.device_name else "")
          + f", {r.precision or '?'}, {r.source}")
    print(f"  model {r.model_path} (sha256 {r.model_sha256[:16]}...)")
    print(f"  started {_when(r.started)}" + (f", finished {_when(r.finished)}" if r.finished else ""))
    if r.measurements:
        m0 = r.measurements[0]
        print(f"  {m0.tool} {m0.tool_version}: {MEANINGS.get(m0.meaning, m0.meaning)}")
        print(_ROW.format("batch", "images/s", "mean ms", "p50 ms", "p90 ms", "p99 ms", "iters"))
        for m in r.measurements:
            print(_row(m))
    if r.error:
        print("  error: " + r.error.replace("\n", "\n  "))


def _compare_runs(runs: list, as_json: bool) -> int:
    """Throughput per batch size, one column per run, and each run's ratio to the first."""
    sizes = sorted({m.batch_size for r in runs for m in r.measurements})
    table = {r.id: {m.batch_size: m.throughput for m in r.measurements} for r in runs}
    if as_json:
        print(json.dumps({"runs": [r.id for r in runs], "batch_sizes": sizes,
                          "throughput": {str(r.id): [table[r.id].get(b) for b in sizes] for r in runs}}, indent=2))
        return 0
    base = runs[0].id
    print("images/s by batch size; x = ratio to run", base)
    print(f"{'batch':>6}" + "".join(f"  {'run ' + str(r.id):>18}" for r in runs))
    for b in sizes:
        cells = []
        for r in runs:
            v, ref = table[r.id].get(b), table[base].get(b)
            ratio = f" ({v / ref:.2f}x)" if v is not None and ref and r.id != base else ""
            cells.append(f"  {('-' if v is None else f'{v:,.1f}') + ratio:>18}")
        print(f"{b:>6}" + "".join(cells))
    return 0


def _add_devices(sub) -> None:
    pl = sub.add_parser("plugins", help="list the device plugins, whether each is available (and why not), and "
                                        "their devices")
    pl.add_argument("--json", action="store_true", help="print JSON instead of a list")
    pl.set_defaults(func=cmd_plugins)

    pr = sub.add_parser("profile", help="compile and profile a model on a device through a plugin (throughput and "
                                        "latency per batch size, stored as runs)")
    pr.add_argument("model", help="the model file (ONNX; other formats are imported first)")
    pr.add_argument("--plugin", required=True, metavar="NAME", help="the plugin (see `mbexplorer plugins`)")
    pr.add_argument("--device", metavar="D", help="a device id of the plugin (default: its first available one)")
    pr.add_argument("--precision", choices=("fp32", "fp16", "int8"), help="default: fp32 (with --from-log: what "
                                                                           "the log says)")
    pr.add_argument("--batch-sizes", type=_batch_sizes, default=(1,), metavar="1,2,4,...")
    pr.add_argument("--iterations", type=_positive, default=100, metavar="N", help="timed iterations per batch "
                                                                                    "size (default 100)")
    pr.add_argument("--warmup", type=_count, default=10, metavar="N", help="untimed iterations first (default 10)")
    pr.add_argument("--option", type=_key_value, action="append", metavar="KEY=VALUE",
                    help="a plugin setting (repeat for more)")
    pr.add_argument("--no-compile", action="store_true", help="profile the ONNX model without compiling it first")
    pr.add_argument("--from-log", nargs="+", metavar="LOG",
                    help="read logs the vendor tool wrote on another machine instead of measuring here")
    pr.add_argument("--batch-size", type=_positive, metavar="N", help="with --from-log: the batch size, for logs "
                                                                       "that do not say it")
    pr.add_argument("--json", action="store_true", help="print JSON at the end instead of a table as it runs")
    pr.add_argument("-v", "--verbose", action="store_true", help="print the plugin's log lines as they come")
    pr.set_defaults(func=cmd_profile)

    rn = sub.add_parser("runs", help="list, show, compare or delete stored profiling runs")
    rn.add_argument("--json", action="store_true", help="print JSON instead of a table")
    rsub = rn.add_subparsers(dest="runs_command")
    show = rsub.add_parser("show", help="a run's measurements")
    show.add_argument("ids", type=int, nargs="+", metavar="ID")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cmp = rsub.add_parser("compare", help="throughput per batch size, runs side by side")
    cmp.add_argument("ids", type=int, nargs="+", metavar="ID")
    cmp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    rm = rsub.add_parser("delete", help="delete runs and their measurements")
    rm.add_argument("ids", type=int, nargs="+", metavar="ID")
    rn.set_defaults(func=cmd_runs)


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mbexplorer", description="Explore, run and profile MobileNet classifiers.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command")

    g = sub.add_parser("gui", help="open the app (the default)")
    g.add_argument("model", nargs="?", help="model file to open")
    g.add_argument("--screenshot", metavar="OUT.png",
                   help="render the window, save it and exit (the format its suffix names: .png, .jpg, .bmp, ...)")
    g.add_argument("--force", action="store_true", help="replace an existing screenshot file")
    g.add_argument("--images", nargs="+", metavar="IMAGE", help="images or folders to classify in the Classify tab")
    g.add_argument("--build", choices=FAMILIES, help="open a freshly built model instead of a file")
    g.add_argument("--tab", choices=("layers", "model", "classify", "quantization", "devices"),
                   help="the tab shown; quantization with --images compares the model on them (the screenshot "
                        "waits for it)")
    g.add_argument("--compare", metavar="OTHER",
                   help="for the Quantization tab: a second model file (the float one, or its quantized version); "
                        "by default a quantized TFLite is compared with its float twin")
    g.add_argument("--width", type=float, default=1.0)
    g.add_argument("--resolution", type=int, default=224)
    g.add_argument("--classes", type=int, default=1000)
    g.add_argument("--fold-bn", action="store_true")
    g.add_argument("--rounding", choices=ROUNDINGS, default="torchvision")
    g.set_defaults(func=cmd_gui)

    s = sub.add_parser("summary", help="per-block and per-layer params, MACs and FLOPs")
    s.add_argument("model")
    s.add_argument("--convention", choices=list(CONVENTIONS), default=DEFAULT_CONVENTION)
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument("--csv", metavar="FILE", help="also write the per-layer table as CSV")
    s.add_argument("--force", action="store_true", help="replace an existing CSV file")
    s.add_argument("--input-shape", type=_shape_arg, action="append", metavar="NAME=D0,D1,...",
                   help="fix an input whose size is not fixed in the file")
    s.set_defaults(func=cmd_summary)

    _add_predict(sub)
    _add_preprocess(sub)
    _add_compare(sub)
    _add_quantize(sub)
    _add_devices(sub)

    cv = sub.add_parser("convert", help="import a model (TFLite, Keras, TF.js, PyTorch, ONNX) and save it as ONNX")
    cv.add_argument("input", metavar="IN")
    cv.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    cv.add_argument("--force", action="store_true", help="replace existing output files")
    cv.add_argument("--standard-qdq", action="store_true",
                    help="for a quantized TFLite source: plain QDQ with standard ops only, for quantization tools "
                         "and NPU compilers (by default HardSwish, Add and per-channel Conv run TFLite's integer "
                         "arithmetic in model-local functions, so scores match the TFLite runtime exactly)")
    cv.add_argument("--float-twin", metavar="OUT2.onnx",
                    help="for a quantized source: also save the float model with matching tensor names")
    cv.set_defaults(func=cmd_convert)

    b = sub.add_parser("build", help="build a MobileNet as ONNX")
    b.add_argument("family", choices=FAMILIES)
    b.add_argument("--width", type=float, default=1.0, help="width multiplier ({} ... {})".format(*WIDTH_RANGE))
    b.add_argument("--resolution", type=int, default=224,
                   help="input size in pixels ({} ... {})".format(*RESOLUTION_RANGE))
    b.add_argument("--classes", type=int, default=1000, help="classifier outputs (1 ... 100,000)")
    b.add_argument("--fold-bn", action="store_true", help="fold BatchNormalization into the convolutions")
    b.add_argument("--rounding", choices=ROUNDINGS, default="torchvision",
                   help="channel rounding: torchvision make_divisible(8), PaddleClas int(c * width), or tfslim "
                        "(MobileNetV3 as TF-slim and the V3 paper: expansion from the scaled input)")
    b.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    b.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    b.add_argument("--force", action="store_true", help="replace an existing output file")
    b.set_defaults(func=cmd_build)
    p.commands = sub.choices  # sub-command name -> parser, for main()'s default command
    return p


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if a != "--debug"), None)
    if first is None or (first not in parser.commands and first not in ("-h", "--help")):
        argv.insert(argv.index(first) if first else len(argv), "gui")  # `mbexplorer [MODEL]` opens the app
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
        sys.stdout.flush()  # so a write error on stdout surfaces here, not at exit
        return rc
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly as other tools do. Point stdout at devnull so
        # the flush at exit does not fail again (the Python docs' recipe); 141 = killed by SIGPIPE.
        _drop_stdout()
        return 141
    except MbxError as exc:
        print(f"mbexplorer: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        # Errors on files the CLI opens carry the file's name (and core wraps its own); a nameless
        # write failure is stdout's, e.g. `> /dev/full` or a full disk.
        if exc.filename is None and exc.errno in _WRITE_ERRNOS:
            _drop_stdout()
            print(f"mbexplorer: error: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
            return 1
        if args.debug:
            raise
        return _internal_error(exc)
    except Exception as exc:  # a bug: one line by default, the traceback with --debug
        if args.debug:
            raise
        return _internal_error(exc)


def _internal_error(exc: BaseException) -> int:
    print(f"mbexplorer: internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
          file=sys.stderr)
    return 3


_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


def _drop_stdout() -> None:
    """Point the process's stdout at devnull, so that the flush at exit of what is still buffered does not fail
    again. Only the real stdout: a stream put in its place (main() called in-process, pytest's capture,
    redirect_stdout) and the descriptor under it belong to the caller, who flushes it."""
    if sys.stdout is not sys.__stdout__:
        return
    try:
        fd = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):  # stdout closed or not a file: nothing to redirect
        return
    try:
        os.dup2(devnull, fd)
    except OSError:
        pass
    finally:
        os.close(devnull)  # fd keeps devnull open


if __name__ == "__main__":
    sys.exit(main())
