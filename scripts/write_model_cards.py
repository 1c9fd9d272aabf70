"""Write each default model's CARD.md and the summary docs/MODELS.md from its package.

The numbers (per-depth validation Dice and seconds, split, command, commit) are read from
``UNetPlusPlus/UNetPlusPlusLib/Resources/Models/<task>/model.json`` (and ``evaluation.md``,
from scripts/evaluate_*.py, when present), so a retrained model gets a matching card by re-running

    python scripts/write_model_cards.py
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "UNetPlusPlus" / "UNetPlusPlusLib" / "Resources" / "Models"
DEPTH_KEYS = ("1", "2", "3", "4", "ensemble")

TEXT = {
    "liver": {
        "title": "Liver on CT",
        "training_note": "Trained in three runs of the same settings: `--epochs 4 --val-every 4`"
        " without `--resume` (commit `72b1f523`; validation: mean Dice 0.41-0.42 at every "
        "depth), resumed to `--epochs 14 --val-every 14` (validation: L1..L4 0.49 / 0.55 / 0.55 /"
        " 0.54; 0.78 after post-processing at L2), then resumed to 24 epochs with the command "
        "above. Every step is in `scripts/train_default_models.sh`.",
        "headline": "Dice 0.82 on the held-out demo CT (input grid, largest component)",
        "summary": "2 CTs (TotalSegmentator output + 1 clinician-corrected) / 1 CT, "
        "TotalSegmentator output (held-out demo case)",
        "data": """\
- **Training data (2 CT scans — very little):**
  - `ts-example-dicom`: TotalSegmentator example DICOM series (20 slices, 0.98 x 0.98 x 2 mm).
    Label: **TotalSegmentator model output** (label 5 = liver), not expert ground truth.
    Apache-2.0 (github.com/wasserth/TotalSegmentator, tests/reference_files).
  - `ts-s0009`: TotalSegmentator dataset case s0009 (1.5 mm abdominal CT). Label: model-assisted,
    **clinician-corrected** (liver partly outside the field of view). CC BY 4.0.
- **Validation (held out, 1 scan):** `ts-example-ct`, the whole-torso example CT bundled as
  `Resources/Examples/example_ct.nii.gz` (the demo case). Its reference is **TotalSegmentator
  model output**, so the validation Dice measures agreement with another model, not with an
  expert. The demo therefore runs on a case the model never trained on.
- Citation: Wasserthal J. et al., "TotalSegmentator: Robust Segmentation of 104 Anatomic Structures
  in CT Images", Radiology: Artificial Intelligence 5(5), 2023.""",
        "limits": """\
- Trained on **two** CT scans, one of which has only 20 slices, with strong augmentation (flips,
  rotation about the slice axis, scaling, intensity changes, noise). It has seen almost no
  anatomical or scanner variation: expect failures on other scanners, contrast phases,
  pathology (large tumours, cirrhosis), children and MR.
- The trainer's validation scores the raw argmax on the 3 mm grid (no post-processing), so it is
  lower than the user-facing evaluation: the network also labels scattered voxels outside the
  liver, which the largest-component step removes. On the demo case it under-segments (about
  815 ml against 1126 ml in the reference), missing parts of the liver's dome and margins.
  **This is a weak model**, shipped so that the demo and the module work out of the box; train
  your own on real data for real use.
- Validation is a single scan with model-generated labels; the numbers are a sanity check, not a
  performance claim.
- 3 mm working resolution: thin structures at the liver boundary are smoothed; the result is
  resampled back onto the input grid.
- Short training on shared CPUs (see the command); a GPU run with more epochs would do better.
- Not a medical device; research and demonstration use only.""",
    },
    "lung-nodule": {
        "title": "Lung nodule on CT (point-prompted)",
        "headline": "point prompt: Dice 0.78 on 164 held-out crops; DICOM slabs 0.90 / 0.93 "
        "(patients seen in training) and 0.17 (unseen patient)",
        "summary": "650 LIDC crops / 164 crops of other patients; expert outlines",
        "data": """\
- **Data:** 814 nodule-centred CT crops ("volumes of interest") from 444 LIDC-IDRI patients,
  masks from the LIDC radiologists' outlines (**expert** labels). Split **by patient**
  (`LIDC-IDRI-<patient>_R_<n>`): 20 % of the patients held out for validation.
  Crops via github.com/PabloLION/ct-slicing; images LIDC-IDRI, **CC BY 3.0** (Armato S. G. III et
  al., Med. Phys. 38(2), 2011; The Cancer Imaging Archive, doi:10.7937/K9/TCIA.2015.LO9QL9SX).
- **Usage:** click a point on the nodule (`unetpp segment ct --task lung-nodule --point X Y Z`,
  RAS mm on the command line); the model segments the `box_mm` box around it.""",
        "limits": """\
- The training crops are small (median about 31 x 31 x 7.5 mm) and thin in z, so the network saw
  little tissue above and below nodules; on full scans it can spill into vessels or the chest
  wall that touch the nodule. It needs a click on (or very near) the nodule and is not a
  detector.
- Nodules larger than the prompt box are cut at the box.
- Short training on shared CPUs (see the command); more epochs on a GPU would do better.
- Not a medical device; research and demonstration use only.""",
    },
    "brain-tumor": {
        "title": "Brain tumour (glioma sub-regions) on MR",
        "headline": "BraTS regions WT / TC / ET Dice 0.69 / 0.63 / 0.51 (4 held-out cases); "
        "BRATS 2012 HG0001 WT 0.89",
        "summary": "12 BraTS 2018 cases / 4 other cases; expert labels",
        "training_note": "Trained in two runs: first the same command with `--epochs 12 "
        "--val-every 12` and without `--resume` (validation then: mean Dice L1..L4 0.48 / 0.52 "
        "/ 0.53 / 0.51, ensemble 0.52), then resumed from that checkpoint to 20 epochs with the "
        "command above. Both steps are in `scripts/train_default_models.sh`.",
        "data": """\
- **Data:** 16 BraTS 2018 training cases (one patient each), four co-registered, skull-stripped
  sequences, **expert** manual labels (BraTS 2018 training set). Research use with citation:
  Menze B. H. et al., IEEE TMI 34(10), 2015; Bakas S. et al., Sci. Data 4, 2017; Bakas S. et al.,
  arXiv:1811.02629. Sample cases via github.com/koriavinash1/DeepBrainSeg (MIT code repository).
- **Inputs, in this order:** FLAIR, T1, T1ce, T2 (`unetpp segment flair t1 t1ce t2 --task
  brain-tumor`), each z-scored inside the brain.
- **Outputs (disjoint):** 1 = necrotic / non-enhancing tumour core (BraTS label 1),
  2 = oedema (BraTS 2), 3 = enhancing tumour (BraTS 4). BraTS regions: whole tumour = {1, 2, 3},
  tumour core = {1, 3}, enhancing tumour = {3}.
- BRATS 2012 (`brats2012-HG0001`, labels 1 = oedema, 2 = tumour core) cannot be mapped onto the
  three disjoint classes (its core does not separate necrosis from enhancing tumour); it was not
  used for training.""",
        "limits": """\
- Trained on **12** cases at 2 mm, for a short time on shared CPUs: sub-region boundaries are
  coarse, and the small necrotic / enhancing regions are the least reliable.
- Expects BraTS-like input: skull-stripped, co-registered sequences of the same size; without
  skull stripping results are unreliable.
- Validated on 4 cases only, and the scores vary a lot between them (enhancing tumour Dice 0.12
  to 0.85).
- Give it the whole volume: an ROI crops the input before the MR z-score, so the statistics
  come from the crop (mostly tumour) and the result degrades (whole-tumour Dice 0.45 instead of
  0.80 on `Brats18_CBICA_ALU_1` with a box 10 mm around the tumour).
- Not a medical device; research and demonstration use only.""",
    },
}


def per_depth_table(manifest: dict) -> str:
    per_depth = manifest["validation"]["per_depth"]
    names = [label["name"] for label in manifest["labels"]]
    header = "| depth | " + " | ".join(names) + " | mean Dice | s / volume |"
    lines = [header, "|" + "---|" * (len(names) + 3)]
    for key in DEPTH_KEYS:
        entry = per_depth.get(key)
        if entry is None:
            continue
        tag = "ensemble" if key == "ensemble" else f"L{key}"
        if key == str(manifest["recommended_depth"]):
            tag = f"**{tag}** (recommended)"
        dice = [_fmt(entry["dice"].get(n)) for n in names]
        lines.append(
            f"| {tag} | "
            + " | ".join(dice)
            + f" | {_fmt(entry['mean_dice'])} | {entry['seconds_per_volume']:.2f} |"
        )
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _time_ratio(row: dict) -> float:
    """With / without TTA, from CPU seconds where recorded (steadier on a loaded machine)."""
    if row.get("cpu_seconds") and row.get("cpu_seconds_tta"):
        return row["cpu_seconds_tta"] / row["cpu_seconds"]
    return row["seconds_tta"] / row["seconds"]


def tta_section(validation: dict) -> list[str]:
    """Test-time augmentation and the heads' disagreement, from scripts/evaluate_review.py
    --record (``validation.tta`` and ``validation.review``)."""
    tta, review = validation.get("tta") or {}, validation.get("review") or {}
    if not tta.get("per_depth"):
        return []
    name = lambda key: f"L{key}" if key.isdigit() else key  # noqa: E731
    lines = [
        "## Test-time augmentation and the review aid",
        "",
        f"`unetpp segment --tta` averages the softmax of mirrored passes along "
        f"{', '.join(tta['mirror_axes']) or 'no axis'} (model grid, LPS; "
        f"{2 ** len(tta['mirror_axes'])} passes). `--disagreement OUT` writes where the "
        "deep-supervision heads disagree. Measured with `"
        + tta["command"]
        + f"` on {len(tta['cases'])} case(s) ({tta['scoring']}); {tta['device']}. "
        "Details and thresholds: [docs/REVIEW.md](../../../../../docs/REVIEW.md).",
        "",
        "| depth | Dice | Dice with TTA | gain | s / case | s / case with TTA "
        "| time x (CPU s where recorded) "
        "| disagreement >= " + str(review.get("threshold", "-")) + ": precision / recall "
        "of the errors | Spearman (agreement, Dice) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(tta["per_depth"], key=DEPTH_KEYS.index):
        row = tta["per_depth"][key]
        plain, with_tta = next(iter(row["dice"].values())), next(iter(row["dice_tta"].values()))
        figures = (review.get("per_depth") or {}).get(key) or {}
        pr = " / ".join(
            "-" if figures.get(k) is None else f"{figures[k]:.2f}" for k in ("precision", "recall")
        )
        rho = "-" if figures.get("spearman") is None else f"{figures['spearman']:.2f}"
        lines.append(
            f"| {name(key)} | {plain:.3f} | {with_tta:.3f} | {with_tta - plain:+.3f} | "
            f"{row['seconds']:.2f} | {row['seconds_tta']:.2f} | "
            f"{_time_ratio(row):.1f} | {pr if figures else '-'} | {rho} |"
        )
    return lines + [""]


def card(task: str) -> str:
    folder = MODELS / task
    manifest = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    text = TEXT[task]
    validation, training = manifest["validation"], manifest["training"]
    labels = "\n".join(
        f"- {label['value']} = **{label['name']}** "
        f"({label['terminology']['type']['scheme']} {label['terminology']['type']['code']} "
        f'"{label["terminology"]["type"]["meaning"]}")'
        for label in manifest["labels"]
    )
    parts = [
        f"# {text['title']} — `{manifest['name']}` (task `{task}`)",
        "",
        "A 3D UNet++ (Zhou et al., IEEE TMI 2019, arXiv:1912.05074) trained with this project's "
        "`unetpp train`, deep supervision on the four heads, so it can be pruned at inference to "
        "depth L1..L4 or run as the ensemble of the four heads.",
        "",
        "## Model",
        "",
        f"- Network: features {manifest['network']['features']}, "
        f"{manifest['network']['norm']} norm, {manifest['network']['in_channels']} input "
        f"channel(s) ({', '.join(c['name'] for c in manifest['channels'])}); fp16 weights "
        f"(sha256 `{manifest['sha256'][:16]}…`).",
        f"- Working grid: {manifest['spacing']} mm, tile {manifest['tile_size']} voxels (x, y, z),"
        f" overlap {manifest['overlap']}; post-processing {manifest['postprocess']}.",
        f"- Prompt: {json.dumps(manifest['prompt'])}.",
        f"- Recommended depth (pruning rule: shallowest depth within "
        f"{validation.get('depth_tolerance')} mean Dice of the best): "
        f"**L{manifest['recommended_depth']}**.",
        "- Labels:",
        labels,
        "",
        "## Data, labels and licences",
        "",
        text["data"],
        "",
        "## Validation",
        "",
        f"{validation['data']}. Label source: {validation['label_source']}. "
        f"Timed on {validation.get('device', 'cpu')} (2 threads on a shared 2-core machine, so "
        "seconds are noisy; the ratios between depths are what matters).",
        "",
        f"Validation cases ({len(validation['cases'])}): "
        + ", ".join(f"`{c}`" for c in validation["cases"]),
        "",
        per_depth_table(manifest),
        "",
        "![speed / accuracy](speed_accuracy.png)",
        "",
    ]
    parts += tta_section(validation)
    extra = folder / "evaluation.md"  # written by scripts/evaluate_<task>.py
    if extra.is_file():
        parts += [
            "## Evaluation as a user runs it",
            "",
            extra.read_text(encoding="utf-8").strip(),
            "",
        ]
    parts += [
        "## Training",
        "",
        f"- Command (reproduced by `scripts/train_default_models.sh {task}`):",
        "",
        "```",
        training["command"],
        "```",
        "",
        f"- Code commit: `{training['commit']}`; {training['epochs']} epochs x "
        f"{training['iterations_per_epoch']} iterations, batch {training['batch_size']}, "
        f"{training['training_cases']} training cases, final loss {training['final_loss']}.",
        *([f"- {text['training_note']}"] if "training_note" in text else []),
        "- Hardware: CPU only (2 shared cores, `nice -n 19`, 2 threads); no GPU was available.",
        "- Log and curves: `train.log`, `history.json`, `training_curve.png` in this folder.",
        "",
        "## Known limits",
        "",
        text["limits"],
        "",
    ]
    return "\n".join(parts)


def summary(tasks: list[str]) -> str:
    lines = [
        "# Default models",
        "",
        "Three small UNet++ models ship in `UNetPlusPlus/UNetPlusPlusLib/Resources/Models/` "
        "so that `unetpp segment --task ...` "
        "and the Slicer module work out of the box. They were trained on CPU with short budgets "
        "on little public data: read each card before trusting a number. Reproduce them with "
        "`scripts/train_default_models.sh`.",
        "",
        "| task | inputs | labels | training / validation data | recommended | "
        "mean Dice L1 / L2 / L3 / L4 / ens. | s / volume L1 / L4 / ens. | as a user runs it | "
        "card |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task in tasks:
        manifest = json.loads((MODELS / task / "model.json").read_text(encoding="utf-8"))
        per_depth = manifest["validation"]["per_depth"]
        dice = " / ".join(_fmt(per_depth[k]["mean_dice"]) for k in DEPTH_KEYS)
        secs = " / ".join(
            f"{per_depth[k]['seconds_per_volume']:.2f}" for k in ("1", "4", "ensemble")
        )
        lines.append(
            f"| `{task}` | {', '.join(c['name'] for c in manifest['channels'])} | "
            f"{', '.join(label['name'] for label in manifest['labels'])} | "
            f"{TEXT[task]['summary']} | "
            f"L{manifest['recommended_depth']} | {dice} | {secs} | {TEXT[task]['headline']} | "
            f"[CARD](../UNetPlusPlus/UNetPlusPlusLib/Resources/Models/{task}/CARD.md) |"
        )
    lines += [
        "",
        "Dice is the trainer's validation on held-out cases, on the model's grid, before "
        "post-processing; each card adds an evaluation as a user runs the model (input grid, "
        "post-processing, prompts). Seconds are per validation volume on a shared 2-core CPU. "
        "Data notes: the liver references are TotalSegmentator model output "
        "(the training set adds one clinician-corrected scan); the nodule and brain-tumour "
        "references are expert labels (LIDC-IDRI readers; BraTS 2018).",
        "",
    ]
    return "\n".join(lines)


#: docs/MODELS.md below this line is written by hand and kept when the summary is regenerated.
HAND_WRITTEN = "<!-- Hand-written below this line: scripts/write_model_cards.py keeps it. -->"


def main() -> int:
    tasks = [t for t in TEXT if (MODELS / t / "model.json").is_file()]
    for task in tasks:
        (MODELS / task / "CARD.md").write_text(card(task), encoding="utf-8")
        print(MODELS / task / "CARD.md")
    models_md = ROOT / "docs" / "MODELS.md"
    old = models_md.read_text(encoding="utf-8") if models_md.is_file() else ""
    kept = old[old.index(HAND_WRITTEN) :] if HAND_WRITTEN in old else ""
    models_md.write_text(summary(tasks) + ("\n" + kept if kept else ""), encoding="utf-8")
    print(ROOT / "docs" / "MODELS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
